"""A real `srsfwd serve` process under abuse: garbage, floods, trickles and vanishing
clients at once, while a well-behaved client keeps getting answers and memory stays flat."""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

from srsfwd.protocols import socketmap, tcptable
from tests.ports import free_port
from tests.serving import serve_process


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def abuse(kind: str, sock_path: str, tcp_port: int, stop: threading.Event) -> None:
    """Misbehave as ``kind`` says, over and over, a few hundred connections a second.

    (Not a connect flood: that fills the kernel's accept queue whatever the server does.)
    """
    rng = random.Random(kind)
    while not stop.wait(0.005):
        family = socket.AF_INET if kind.startswith("tcp") else socket.AF_UNIX
        address: str | tuple[str, int] = (
            ("127.0.0.1", tcp_port) if kind.startswith("tcp") else (sock_path)
        )
        try:
            with socket.socket(family) as conn:
                conn.settimeout(2)
                conn.connect(address)
                if kind == "garbage":
                    conn.sendall(rng.randbytes(rng.randint(1, 3000)))
                elif kind == "oversized":
                    conn.sendall(b"99999:forward " + b"a" * 5000)
                elif kind == "flood":  # pipelines thousands of requests, never reads
                    conn.sendall(socketmap.netstring(b"forward x@y.example") * 5000)
                elif kind == "vanish":
                    conn.sendall(b"28:forward test@oth")
                elif kind == "tcp-garbage":
                    conn.sendall(b"get " + b"%zz" * rng.randint(1, 400) + b"\n")
                elif kind == "tcp-long":
                    conn.sendall(b"get " + b"a" * 100_000)
                conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def tcp_lookup_once_free(port: int) -> tcptable.TcpTableReply:
    """A tcp_table lookup once the server has taken in the abusers' last closes.

    Until then the service may still be at its connection limit and refuse (reset) a new
    connection, as it should; so this tries again for a while.
    """
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
                tcp.sendall(b"get a@b.example\n")
                line = tcp.makefile("rb").readline()
            if line:
                (reply,) = tcptable.ReplyDecoder().feed(line)
                return reply
        except ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the tcp_table service never took a new connection")
        time.sleep(0.2)


def test_the_daemon_keeps_serving_and_memory_stays_bounded(tmp_path: Path) -> None:
    secret = tmp_path / "srs.secret"
    secret.write_text("robust-secret\n")
    secret.chmod(0o600)
    port = free_port()
    config = tmp_path / "srsfwd.toml"
    sock_path = str(tmp_path / "srs.sock")
    config.write_text(
        '[srs]\nsrs-domain = "fwd.example"\nsecrets-file = "srs.secret"\n'
        f'[serve]\nsocketmap = "unix:{sock_path}"\n'
        f'tcp-table-forward = "inet:127.0.0.1:{port}"\nkeep-alive = 10\n'
        # 100 connections in all: memory grows with the sum of the services' limits.
        'connection-limit = 50\ntcp-table-connection-limit = 50\nlog-level = "warning"\n'
    )
    with serve_process("--config", str(config), tmp=tmp_path) as (process, _):
        good = socket.socket(socket.AF_UNIX)
        good.settimeout(5)
        good.connect(sock_path)
        decoder = socketmap.ReplyDecoder()

        def ask(key: str) -> socketmap.SocketmapReply:
            good.sendall(socketmap.encode_request(socketmap.Request("forward", key)))
            while not (replies := decoder.feed(good.recv(4096))):
                pass
            return replies[0]

        assert ask("warm@up.example").status is socketmap.Status.OK
        before = rss_kib(process.pid)
        stop = threading.Event()
        kinds = ["garbage", "oversized", "flood", "vanish", "tcp-garbage", "tcp-long"]
        threads = [
            threading.Thread(target=abuse, args=(k, sock_path, port, stop)) for k in kinds * 3
        ]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 6
            count = 0
            while time.monotonic() < deadline:
                reply = ask(f"user{count}@sender.example")  # the socket's timeout bounds it
                assert reply.status is socketmap.Status.OK
                count += 1
                time.sleep(0.01)
        finally:
            stop.set()
            for thread in threads:
                thread.join(10)
        after = rss_kib(process.pid)
        # What 100 connections may hold (a 64 KiB write buffer, a 16 KiB read, a line of up
        # to 100 KB each) plus the allocator's slack; a per-request leak at these rates
        # (thousands of requests a second) goes far past it.
        assert after - before < 80_000, f"RSS grew from {before} to {after} KiB"
        assert tcp_lookup_once_free(port).code is tcptable.Code.FOUND
        good.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
        assert os.path.exists(sock_path) is False  # noqa: PTH110
