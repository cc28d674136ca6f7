"""Lookups per second of ``srsfwd serve`` next to Debian's postsrsd 1.10, same run.

Both serve tcp_table (postsrsd 1.x's protocol; srsfwd also serves it) on loopback and
get the same client: a separate process that sends ``get <sender>`` lines in windows of
``--window`` requests and reads the replies (window 1 is Postfix's one-at-a-time
pattern). Every lookup is a distinct sender. Placements, with ``taskset``:

* same core: server(s) and client(s) on CPU 0 (what the 0.7x target is about);
* different cores: server(s) on CPU 0, client(s) on CPU 1.

Each figure is the best of ``--rounds`` runs. Target: srsfwd at least 0.7x
postsrsd on the same core, checked on window 1 (how Postfix asks); a pipelined window is
measured too. The client ACKs at once (TCP_QUICKACK): postsrsd writes each reply on its
own, and under Nagle a delayed ACK would stall it 40 ms per window.

    python -m benchmarks.serve_bench [--lookups N] [--windows 1,64] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.ports import free_port

SECRET = "benchmark-secret-0123456789"
DOMAIN = "fwd.example.net"
POSTSRSD = "/usr/sbin/postsrsd"
TARGET = 0.7


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


@contextmanager
def postsrsd(work: Path, cpu: str) -> Iterator[int]:
    """Debian's postsrsd 1.10 on loopback, pinned to ``cpu``; yields its forward port."""
    forward, reverse = free_port(), free_port()
    process = subprocess.Popen(
        [
            "taskset",
            "-c",
            cpu,
            POSTSRSD,
            f"-d{DOMAIN}",
            f"-s{work / 'srs.secret'}",
            "-l127.0.0.1",
            "-4",
            f"-f{forward}",
            f"-r{reverse}",
            "-t60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(forward, process)
        yield forward
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def srsfwd(work: Path, cpu: str) -> Iterator[int]:
    """``srsfwd serve`` with a tcp_table forward port, pinned to ``cpu``."""
    forward, reverse = free_port(), free_port()
    config = work / f"srsfwd-{forward}.toml"
    config.write_text(
        f'[srs]\nsrs-domain = "{DOMAIN}"\nsecrets-file = "srs.secret"\n'
        f'hash-alphabet = "classic"\n[serve]\nsocketmap = []\nkeep-alive = 60\n'
        f'tcp-table-forward = "inet:127.0.0.1:{forward}"\n'
        f'tcp-table-reverse = "inet:127.0.0.1:{reverse}"\nlog-level = "warning"\n'
    )
    process = subprocess.Popen(
        ["taskset", "-c", cpu, sys.executable, "-m", "srsfwd", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(forward, process)
        yield forward
    finally:
        process.terminate()
        process.wait(10)


def run_clients(port: int, cpu: str, connections: int, lookups: int, window: int) -> float:
    """Lookups per second over ``connections`` client processes pinned to ``cpu``."""
    clients = [
        subprocess.Popen(
            [
                "taskset",
                "-c",
                cpu,
                sys.executable,
                "-m",
                "benchmarks.serve_bench",
                "client",
                str(port),
                str(lookups // connections),
                str(window),
                str(index),
            ],
            stdout=subprocess.PIPE,
            cwd=Path(__file__).parent.parent,  # so that -m finds benchmarks and tests
        )
        for index in range(connections)
    ]
    # Each client reports the seconds its own lookups took (its start-up is not
    # measured); the slowest decides.
    elapsed = []
    for client in clients:
        out, _ = client.communicate(timeout=600)
        if client.returncode != 0:
            raise SystemExit("a benchmark client failed")
        elapsed.append(float(out))
    return lookups / max(elapsed)


def client(port: int, count: int, window: int, index: int) -> None:
    """The client process: ``count`` lookups in windows; prints the seconds they took."""
    lines = [f"get user{index}x{n}@sender{n % 997}.example\n".encode() for n in range(count)]
    batches = [b"".join(lines[i : i + window]) for i in range(0, count, window)]
    sizes = [min(window, count - i) for i in range(0, count, window)]
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.sendall(b"get warm@up.example\n")
    conn.recv(4096)
    started = time.perf_counter()
    for batch, size in zip(batches, sizes, strict=True):
        conn.sendall(batch)
        seen = 0
        while seen < size:
            data = conn.recv(65536)
            # ACK at once: postsrsd writes each reply on its own and, under Nagle, holds
            # the next one until this ACK, which Linux would otherwise delay by 40 ms.
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            if not data:
                raise SystemExit("server closed the connection")
            if not data.startswith(b"200 ") and b"\n500 " in b"\n" + data:
                raise SystemExit(f"lookup failed: {data[:80]!r}")
            seen += data.count(b"\n")
    elapsed = time.perf_counter() - started
    conn.close()
    print(elapsed)


def measure(
    work: Path,
    server: str,
    server_cpu: str,
    client_cpu: str,
    connections: int,
    lookups: int,
    window: int,
    rounds: int,
) -> float:
    """The best rate of ``rounds`` runs against one server started for them."""
    start = postsrsd if server == "postsrsd" else srsfwd
    best = 0.0
    with start(work, server_cpu) as port:
        for _ in range(rounds):
            best = max(best, run_clients(port, client_cpu, connections, lookups, window))
    return best


def main(argv: Sequence[str]) -> None:
    if argv[:1] == ["client"]:
        client(int(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=100_000)
    parser.add_argument("--windows", default="1,64", help="comma-separated window sizes")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    for program in ("taskset", POSTSRSD):
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is missing: run .ci/run (it installs postsrsd)")
    cores = os.cpu_count() or 1
    placements = [("same core", "0", "0")]
    if cores > 1:
        placements.append(("different cores", "0", "1"))
    windows = [int(w) for w in args.windows.split(",")]
    print(f"tcp_table forward lookups/s, {args.lookups} lookups per run, best of {args.rounds}")
    print(
        f"{'window':>6} {'placement':<16} {'conns':>5} {'postsrsd 1.10':>14} {'srsfwd':>10}"
        f" {'ratio':>6}"
    )
    ratios: dict[tuple[int, str, int], float] = {}
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        work = Path(tmp)
        secret = work / "srs.secret"
        secret.write_text(SECRET + "\n")
        secret.chmod(0o600)
        for window in windows:
            for name, server_cpu, client_cpu in placements:
                for connections in (1, 2):
                    theirs = measure(
                        work,
                        "postsrsd",
                        server_cpu,
                        client_cpu,
                        connections,
                        args.lookups,
                        window,
                        args.rounds,
                    )
                    ours = measure(
                        work,
                        "srsfwd",
                        server_cpu,
                        client_cpu,
                        connections,
                        args.lookups,
                        window,
                        args.rounds,
                    )
                    ratios[(window, name, connections)] = ours / theirs
                    print(
                        f"{window:>6} {name:<16} {connections:>5} {theirs:>14,.0f}"
                        f" {ours:>10,.0f} {ours / theirs:>5.2f}x"
                    )
    checked = [v for (w, name, _), v in ratios.items() if name == "same core" and w == windows[0]]
    worst = min(checked)
    verdict = "meets" if worst >= TARGET else "misses"
    print(
        f"same core, window {windows[0]}: srsfwd/postsrsd >= {worst:.2f}x,"
        f" {verdict} the {TARGET}x target"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
