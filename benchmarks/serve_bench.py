"""Lookups per second of ``srsfwd serve`` next to Debian's postsrsd 1.10, same run.

The servers are compared, not clients: the client is ``lookup_client.c`` (next to this
file), compiled with gcc into a temporary directory, which asks one lookup at a time
on one connection as a Postfix process does. A Python client saturates before either
server. Rows:

* tcp_table forward (postsrsd 1.x's protocol): postsrsd 1.10 and srsfwd (a thread per
  lookup connection, the default), every lookup a distinct sender, so srsfwd's per-day
  cache of forward answers answers none of them: the headline figure and the 1.0x target;
* socketmap forward (postsrsd 2.x's protocol): srsfwd, next to its own tcp_table;
* ``srsfwd serve --no-lookup-threads`` (lookups in the event loop) on both protocols;
* with ``--loops``: srsfwd on asyncio's own event loop instead of uvloop;
* ``--repeating N`` (1000 by default): both servers again, the lookups cycling through
  N senders, as a mail stream repeats its senders (srsfwd's cache answers them);
* with ``--baseline DIR``: srsfwd's tcp_table rows again, served by the srsfwd package
  in the checkout ``DIR`` (a ``git worktree`` of another commit), to compare code.

Server and client are pinned to the same core (``taskset -c 0``): one Postfix process
asking one lookup at a time gets no more, and the servers' cost per lookup decides.
Servers run side by side and are measured in turn, ``--rounds`` times, a different one
first each round; each figure is the median. The last columns are the server's CPU time
per lookup (postsrsd's includes the child it forks per connection), which a busy
machine disturbs less than the rate, split into user time (the server's own code: for
srsfwd, the Python) and system time (the kernel: socket calls and wake-ups); then the
client's, which is the same against every server, so that on a core nothing else uses
the rate follows the server's CPU.

    python -m benchmarks.serve_bench [--lookups N] [--rounds R] [--cpu C] [--loops]
        [--repeating N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.ports import free_port

SECRET = "benchmark-secret-0123456789"
DOMAIN = "fwd.example.net"
POSTSRSD = "/usr/sbin/postsrsd"
CLIENT_SOURCE = Path(__file__).with_name("lookup_client.c")
TARGET = 1.0


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


@dataclass
class Server:
    """A server under test: its process id and its port for each protocol."""

    pid: int
    ports: dict[str, int]


@dataclass(frozen=True)
class CPUTimes:
    """CPU seconds in user space (the server's own code, Python for srsfwd) and in the
    kernel (the socket calls and wake-ups, which every server pays)."""

    user: float
    system: float

    def __sub__(self, other: CPUTimes) -> CPUTimes:
        return CPUTimes(self.user - other.user, self.system - other.system)


def cpu_seconds(pid: int) -> CPUTimes:
    """CPU time of ``pid`` and of the children it has reaped (postsrsd forks per client)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    tick = os.sysconf("SC_CLK_TCK")
    return CPUTimes((utime + cutime) / tick, (stime + cstime) / tick)


@contextmanager
def running(
    command: Sequence[str], ports: dict[str, int], env: dict[str, str] | None = None
) -> Iterator[Server]:
    # python -m puts the working directory first on sys.path: a baseline runs in its own.
    cwd = env["PYTHONPATH"] if env else None
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    try:
        for port in ports.values():
            wait_for_port(port, process)
        yield Server(process.pid, ports)
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def postsrsd(work: Path, cpu: str) -> Iterator[Server]:
    """Debian's postsrsd 1.10 on loopback, pinned to ``cpu``; forward on tcp_table."""
    forward, reverse = free_port(), free_port()
    command = ["taskset", "-c", cpu, POSTSRSD, f"-d{DOMAIN}", f"-s{work / 'srs.secret'}"]
    command += ["-l127.0.0.1", "-4", f"-f{forward}", f"-r{reverse}", "-t60"]
    with running(command, {"tcp_table": forward}) as server:
        yield server


@contextmanager
def srsfwd(work: Path, cpu: str, loop: str, source: Path | None = None) -> Iterator[Server]:
    """``srsfwd serve`` on ``loop`` with tcp_table and socketmap ports, pinned to ``cpu``;
    ``loop`` "threads" is uvloop (when installed) with ``--lookup-threads``; the srsfwd
    package of the checkout ``source`` if given (one older than ``--no-lookup-threads``
    serves in the event loop without it)."""
    forward, reverse, socketmap = free_port(), free_port(), free_port()
    config = work / f"srsfwd-{forward}.toml"
    config.write_text(
        f'[srs]\nsrs-domain = "{DOMAIN}"\nsecrets-file = "srs.secret"\n'
        f'hash-alphabet = "classic"\n[serve]\nkeep-alive = 60\n'
        f'socketmap = ["inet:127.0.0.1:{socketmap}"]\n'
        f'tcp-table-forward = "inet:127.0.0.1:{forward}"\n'
        f'tcp-table-reverse = "inet:127.0.0.1:{reverse}"\nlog-level = "warning"\n'
    )
    command = ["taskset", "-c", cpu, sys.executable, "-m", "srsfwd", "serve"]
    if loop == "threads":
        command += ["--config", str(config), "--lookup-threads"]
    else:
        command += ["--config", str(config), "--event-loop", loop]
        cli = (source or Path(__file__).parents[1]) / "srsfwd" / "cli" / "serve.py"
        if "--no-lookup-threads" in cli.read_text():
            command.append("--no-lookup-threads")
    env = None if source is None else {**os.environ, "PYTHONPATH": str(source)}
    with running(command, {"tcp_table": forward, "socketmap": socketmap}, env) as server:
        yield server


def build_client(work: Path) -> Path:
    """``lookup_client.c`` compiled with gcc -O2 into ``work``."""
    binary = work / "lookup_client"
    subprocess.run(["gcc", "-O2", "-o", str(binary), str(CLIENT_SOURCE)], check=True)
    return binary


def write_keys(work: Path, count: int, senders: int) -> Path:
    """``count`` lookups of ``senders`` distinct senders, one per line, round-robin."""
    keys = work / f"keys-{senders}.txt"
    lines = (f"user{n % senders}x@sender{n % senders % 997}.example\n" for n in range(count))
    keys.write_text("".join(lines))
    return keys


def lookups_per_second(
    client: Path, keys: Path, port: int, protocol: str, cpu: str, lookups: int
) -> float:
    command = ["taskset", "-c", cpu, str(client), "-p", str(port), "-k", str(keys)]
    command += ["-n", str(lookups)]
    if protocol == "socketmap":
        command.append("-s")
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the lookup client failed: {done.stderr.strip()}")
    result = json.loads(done.stdout)
    if result["found"] != lookups:
        raise SystemExit(f"only {result['found']} of {lookups} lookups were rewritten")
    return float(result["per_second"])


@dataclass(frozen=True)
class Row:
    """One figure: a server, a protocol, and how often the senders repeat."""

    label: str
    server: str  # "postsrsd", or srsfwd's --event-loop
    protocol: str
    repeating: bool = False
    versus: str = "postsrsd 1.10"  # the row this one's ratio is to


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=100_000, help="lookups per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per figure (median)")
    parser.add_argument("--cpu", default="0", help="the core server and client share")
    parser.add_argument("--loops", action="store_true", help="also srsfwd on asyncio's loop")
    parser.add_argument(
        "--repeating",
        type=int,
        default=1000,
        metavar="N",
        help="also runs whose lookups cycle through N senders (0: none)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also srsfwd's tcp_table rows served by the srsfwd package in checkout DIR",
    )
    args = parser.parse_args(argv)
    for program in ("taskset", "gcc", POSTSRSD):
        if shutil.which(program) is None:
            raise SystemExit(f"{program} is missing: run .ci/run (it installs postsrsd)")
    rows = [
        Row("postsrsd 1.10", "postsrsd", "tcp_table", versus=""),
        Row("srsfwd", "threads", "tcp_table"),
        Row("srsfwd", "threads", "socketmap", versus="srsfwd"),
        Row("srsfwd, event loop", "auto", "tcp_table"),
        Row("srsfwd, event loop", "auto", "socketmap", versus="srsfwd, event loop"),
    ]
    if args.loops:
        rows.append(Row("srsfwd, asyncio loop", "asyncio", "tcp_table"))
    if args.baseline:
        rows.append(Row("baseline, threads", "baseline threads", "tcp_table"))
        rows.append(Row("baseline, event loop", "baseline auto", "tcp_table"))
    if args.repeating:
        rows.append(Row("postsrsd 1.10", "postsrsd", "tcp_table", True, versus=""))
        rows.append(Row("srsfwd", "threads", "tcp_table", True))
    rates: dict[Row, list[float]] = {row: [] for row in rows}
    user: dict[Row, list[float]] = {row: [] for row in rows}
    system: dict[Row, list[float]] = {row: [] for row in rows}
    client_cpu: dict[Row, list[float]] = {row: [] for row in rows}
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        secret = work / "srs.secret"
        secret.write_text(SECRET + "\n")
        secret.chmod(0o600)
        client = build_client(work)
        keys = {
            False: write_keys(work, args.lookups, args.lookups),
            True: write_keys(work, args.lookups, max(args.repeating, 1)),
        }
        servers = {
            server: stack.enter_context(
                postsrsd(work, args.cpu)
                if server == "postsrsd"
                else srsfwd(work, args.cpu, *baseline_server(server, args.baseline))
            )
            for server in dict.fromkeys(row.server for row in rows)
        }
        loops = {server: event_loop_of(process.pid) for server, process in servers.items()}
        for round_ in range(args.rounds):
            # A different row goes first each round: none always gets the quiet start.
            first = round_ % len(rows)
            for row in rows[first:] + rows[:first]:
                process = servers[row.server]
                before = cpu_seconds(process.pid)
                port = process.ports[row.protocol]
                # The client is the only child waited for during the run.
                client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                rate = lookups_per_second(
                    client, keys[row.repeating], port, row.protocol, args.cpu, args.lookups
                )
                client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                client_used = (client_after.ru_utime + client_after.ru_stime) - (
                    client_before.ru_utime + client_before.ru_stime
                )
                client_cpu[row].append(client_used / args.lookups * 1e6)
                rates[row].append(rate)
                used = server_cpu_after_run(process) - before
                user[row].append(used.user / args.lookups * 1e6)
                system[row].append(used.system / args.lookups * 1e6)
    median = {row: statistics.median(values) for row, values in rates.items()}
    print(
        f"forward lookups/s, 1 connection, one at a time, server and client on CPU {args.cpu};"
        f" {args.lookups} lookups per run, median of {args.rounds}"
    )
    srsfwd_loops = sorted({loops[row.server] for row in rows if row.server != "postsrsd"})
    print(f"srsfwd's event loop: {', '.join(srsfwd_loops)}")
    print(
        f"{'server':<22} {'protocol':<10} {'senders':<16} {'lookups/s':>10} {'(spread)':<13}"
        f"  {'ratio':<26} server CPU/lookup: user + system; client's"
    )
    for row in rows:
        senders = f"{args.repeating:,} repeating" if row.repeating else "all distinct"
        if row.versus:
            peer = next(r for r in rows if r.label == row.versus and r.repeating == row.repeating)
            if row.protocol == "socketmap":
                peer = Row(row.versus, row.server, "tcp_table")
            name = f"{peer.label}'s {peer.protocol}" if peer.label == row.label else peer.label
            note = f"{median[row] / median[peer]:.2f}x {name}"
        else:
            note = "(the peer)"
        print(
            f"{row.label:<22} {row.protocol:<10} {senders:<16} {median[row]:>10,.0f}"
            f" {spread(rates[row]):<13}"
            f"  {note:<26} {cpu_per_lookup(user[row], system[row])};"
            f" {statistics.median(client_cpu[row]):5.1f} us"
        )
    for label, row in (("srsfwd", rows[1]), ("srsfwd --no-lookup-threads", rows[3])):
        ratio = median[row] / median[rows[0]]
        verdict = "meets" if ratio >= TARGET else "misses"
        # Each round measures both: its own ratio shows how much the machine moved.
        rounds = [ours / peer for ours, peer in zip(rates[row], rates[rows[0]], strict=True)]
        print(
            f"tcp_table, all senders distinct: {label}/postsrsd = {ratio:.2f}x"
            f" ({min(rounds):.2f}x to {max(rounds):.2f}x by round), {verdict} the {TARGET}x target"
        )


def baseline_server(server: str, baseline: Path | None) -> tuple[str, Path | None]:
    """The event loop and checkout of the srsfwd server ``server`` names."""
    loop = server.removeprefix("baseline ")
    return loop, (baseline.resolve() if baseline and loop != server else None)


def spread(rates: list[float]) -> str:
    """The lowest and highest of a row's rates, in thousands a second."""
    return f"({min(rates) / 1000:.1f}-{max(rates) / 1000:.1f}k)"


def event_loop_of(pid: int) -> str:
    """uvloop if the process ``pid`` has it loaded, else asyncio."""
    return "uvloop" if "uvloop" in Path(f"/proc/{pid}/maps").read_text() else "asyncio"


def cpu_per_lookup(user: list[float], system: list[float]) -> str:
    """The medians of a row's user, system and total CPU microseconds per lookup."""
    total = [u + s for u, s in zip(user, system, strict=True)]
    median = statistics.median
    return f"{median(user):5.1f} + {median(system):5.1f} = {median(total):5.1f} us"


def server_cpu_after_run(server: Server) -> CPUTimes:
    """The server's CPU seconds once the run's connection is accounted for.

    postsrsd serves each connection in a child it reaps when it accepts the next one:
    one more connection, opened and closed, brings the finished child's time in.
    """
    with socket.create_connection(("127.0.0.1", next(iter(server.ports.values())))):
        pass
    time.sleep(0.3)
    return cpu_seconds(server.pid)


if __name__ == "__main__":
    main(sys.argv[1:])
