/*
 * lookup_client.c - a load client for SRS lookup servers, fast enough that the server,
 * not the client, is what a benchmark measures (a Python client saturates first).
 *
 * Speaks Postfix's tcp_table(5) ("get KEY\n" -> "NNN text\n") and socketmap_table(5)
 * (netstrings "LEN:MAP KEY," -> "LEN:STATUS text,"). One connection, one request at a
 * time (what one Postfix process does): it sends a request and waits for its whole reply
 * before the next.
 *
 *   lookup_client -p PORT [-H 127.0.0.1] -k KEYS [-n N] [-s] [-m MAP]
 *
 *   -k KEYS  a file of lookup keys (addresses), one per line, used round-robin
 *   -n N     lookups to time (after one untimed warm-up lookup); default 100000
 *   -s       socketmap instead of tcp_table; -m names the map (default "forward")
 *
 * Prints one line of JSON: {"lookups":N,"seconds":S,"per_second":R,"found":F}.
 * Exits 1 when a reply is malformed or the server closes the connection.
 *
 * Build: gcc -O2 -o lookup_client lookup_client.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REPLY_MAX 8192

struct keys {
    char **request; /* each key already framed as a whole request */
    size_t *length;
    size_t count;
};

static double seconds_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void fail(const char *what) {
    fprintf(stderr, "lookup_client: %s\n", what);
    exit(1);
}

/* "get KEY\n" with %XX for '%', space and anything outside printable ASCII. */
static size_t frame_tcp_table(const char *key, char *out) {
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    memcpy(out, "get ", 4);
    n = 4;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '%') {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n++] = '\n';
    return n;
}

/* "LEN:MAP KEY," */
static size_t frame_socketmap(const char *map, const char *key, char *out) {
    size_t payload = strlen(map) + 1 + strlen(key);
    return (size_t)sprintf(out, "%zu:%s %s,", payload, map, key);
}

static struct keys read_keys(const char *path, int socketmap, const char *map) {
    struct keys keys = {0};
    size_t capacity = 0;
    FILE *file = fopen(path, "r");
    if (!file) fail("cannot open the key file");
    char *line = NULL;
    size_t line_size = 0;
    ssize_t got;
    while ((got = getline(&line, &line_size, file)) > 0) {
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
        if (got == 0) continue;
        if (got > 1000) fail("a key is longer than 1000 bytes");
        if (keys.count == capacity) {
            capacity = capacity ? capacity * 2 : 1024;
            keys.request = realloc(keys.request, capacity * sizeof *keys.request);
            keys.length = realloc(keys.length, capacity * sizeof *keys.length);
            if (!keys.request || !keys.length) fail("out of memory");
        }
        char *framed = malloc(3 * (size_t)got + 64);
        if (!framed) fail("out of memory");
        keys.length[keys.count] =
            socketmap ? frame_socketmap(map, line, framed) : frame_tcp_table(line, framed);
        keys.request[keys.count++] = framed;
    }
    free(line);
    fclose(file);
    if (keys.count == 0) fail("no keys");
    return keys;
}

static int connect_to(const char *host, int port) {
    int sock = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (sock < 0) fail("socket");
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) fail("bad host address");
    if (connect(sock, (struct sockaddr *)&address, sizeof address) < 0) fail("cannot connect");
    return sock;
}

static void send_all(int sock, const char *data, size_t length) {
    while (length > 0) {
        ssize_t sent = write(sock, data, length);
        if (sent <= 0) fail("write failed");
        data += sent;
        length -= (size_t)sent;
    }
}

/* Reads one reply into buffer[0..*have); returns its length and whether it was found. */
static size_t read_reply(int sock, char *buffer, size_t *have, int socketmap, int *found) {
    for (;;) {
        if (socketmap) {
            char *colon = memchr(buffer, ':', *have);
            if (colon) {
                size_t payload = strtoul(buffer, NULL, 10);
                size_t total = (size_t)(colon - buffer) + 1 + payload + 1;
                if (total > REPLY_MAX) fail("reply too long");
                if (*have >= total) {
                    if (buffer[total - 1] != ',') fail("netstring not terminated by ','");
                    *found = payload >= 3 && memcmp(colon + 1, "OK ", 3) == 0;
                    return total;
                }
            }
        } else {
            char *newline = memchr(buffer, '\n', *have);
            if (newline) {
                *found = *have >= 4 && memcmp(buffer, "200 ", 4) == 0;
                return (size_t)(newline - buffer) + 1;
            }
        }
        if (*have == REPLY_MAX) fail("reply too long");
        ssize_t got = read(sock, buffer + *have, REPLY_MAX - *have);
        if (got <= 0) fail("the server closed the connection");
        *have += (size_t)got;
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *key_file = NULL, *map = "forward";
    int port = 0, socketmap = 0, option;
    long lookups = 100000;
    while ((option = getopt(argc, argv, "H:p:k:n:sm:")) != -1) {
        switch (option) {
            case 'H': host = optarg; break;
            case 'p': port = atoi(optarg); break;
            case 'k': key_file = optarg; break;
            case 'n': lookups = atol(optarg); break;
            case 's': socketmap = 1; break;
            case 'm': map = optarg; break;
            default:
                fprintf(stderr, "usage: %s -p PORT -k KEYS [-H HOST] [-n N] [-s] [-m MAP]\n",
                        argv[0]);
                return 2;
        }
    }
    if (!port || !key_file || lookups <= 0) {
        fprintf(stderr, "lookup_client: -p PORT and -k KEYS are needed\n");
        return 2;
    }
    struct keys keys = read_keys(key_file, socketmap, map);
    int sock = connect_to(host, port);
    static char buffer[REPLY_MAX];
    size_t have = 0, used;
    int found;
    long found_count = 0;

    /* One untimed lookup: the connection is accepted (postsrsd forks) and warm. */
    send_all(sock, keys.request[0], keys.length[0]);
    used = read_reply(sock, buffer, &have, socketmap, &found);
    memmove(buffer, buffer + used, have - used);
    have -= used;

    double started = seconds_now();
    for (long i = 0; i < lookups; i++) {
        size_t index = (size_t)i % keys.count;
        send_all(sock, keys.request[index], keys.length[index]);
        used = read_reply(sock, buffer, &have, socketmap, &found);
        found_count += found;
        memmove(buffer, buffer + used, have - used);
        have -= used;
    }
    double elapsed = seconds_now() - started;
    close(sock);
    printf("{\"lookups\":%ld,\"seconds\":%.6f,\"per_second\":%.1f,\"found\":%ld}\n", lookups,
           elapsed, (double)lookups / elapsed, found_count);
    return 0;
}
