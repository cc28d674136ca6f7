"""Sending-limit checks in SQLite per CPU second: a forward's peek + record, and its statements.

A forward judges each message twice: ``peek`` before anything is done and ``record`` when
it is handed on. This times that pair against an SQLite store file (WAL) for one sender,
counts the SQL statements it costs (the connection's trace callback), and with
``--before DIR`` does the same for another checkout of srsfwd (for example
``git worktree add --detach ../before main``). Every measurement runs in a process of its
own, the two checkouts in interleaved rounds; the median and the range are printed.

The threads rows do what the milter does: N threads on one file, each with a store
(a connection) of its own, each doing the rest of a forward after a check as a milter
worker does: waiting (``--pause-ms``, as for DNS) and then working in Python, holding the
GIL (``--work-ms``); both 0 check as fast as they can. They report checks per second by
the clock, all threads together, how long a record took (mean) and the share of records
that took over 1 ms: SQLite's busy handler sleeps at least 1 ms, so that share shows
threads sleeping for the file's write lock (and, on a loaded machine, preemption). The
mean peek, a read that takes no lock, shows the waiting that is not for the lock (the GIL).

    python -m benchmarks.limits_bench [--checks N] [--rounds R] [--threads 1,4,16]
        [--pause-ms MS] [--work-ms MS] [--before DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

#: Run in a subprocess inside a checkout: prints checks per CPU second, statements per check.
_SCRIPT = """
import sys, tempfile, time
from pathlib import Path
from srsfwd.clock import SystemClock
from srsfwd.limits import LimitPolicy, SendingLimits
from srsfwd.stores.sqlite import SQLiteStore
count = int(sys.argv[1])
store = SQLiteStore.open(Path(tempfile.mkdtemp(prefix="srsfwd-limits-")) / "limits.sqlite")
policy = LimitPolicy(external_per_hour=0, internal_per_hour=0, per_day=0, per_message=0)
limits = SendingLimits(store, policy, clock=SystemClock())
def check():
    limits.peek("user@example.org", internal=1, external=1)
    limits.record("user@example.org", internal=1, external=1)
check()
statements = []
store._db.set_trace_callback(statements.append)
check()
store._db.set_trace_callback(None)
started = time.process_time()
for _ in range(count):
    check()
print(count / (time.process_time() - started), len(statements))
"""

#: Run in a subprocess inside a checkout: ``threads`` threads, a store each, one file, each
#: waiting ``pause`` ms and then working ``work`` ms in Python after a check; prints checks
#: per second by the clock, the mean record in µs, the share of records over 1 ms, and the
#: mean peek in µs (a read, which takes no lock).
_THREADS_SCRIPT = """
import statistics, sys, tempfile, threading, time
from pathlib import Path
from srsfwd.clock import SystemClock
from srsfwd.limits import LimitPolicy, SendingLimits
from srsfwd.stores.sqlite import SQLiteStore
count, threads = int(sys.argv[1]), int(sys.argv[2])
pause, busy = float(sys.argv[3]) / 1000, float(sys.argv[4]) / 1000
path = Path(tempfile.mkdtemp(prefix="srsfwd-limits-")) / "limits.sqlite"
policy = LimitPolicy(external_per_hour=0, internal_per_hour=0, per_day=0, per_message=0)
each = [SendingLimits(SQLiteStore.open(path), policy, clock=SystemClock()) for _ in range(threads)]
records = [[] for _ in range(threads)]
peeks = [[] for _ in range(threads)]
start = threading.Barrier(threads + 1)
def work(number):
    limits, took, looked = each[number], records[number], peeks[number]
    sender = f"user{number}@example.org"
    start.wait()
    for _ in range(count):
        began = time.perf_counter()
        limits.peek(sender, internal=1, external=1)
        looked.append(time.perf_counter() - began)
        began = time.perf_counter()
        limits.record(sender, internal=1, external=1)
        took.append(time.perf_counter() - began)
        time.sleep(pause)
        until = time.perf_counter() + busy
        while time.perf_counter() < until:
            pass
workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
for worker in workers:
    worker.start()
start.wait()
started = time.perf_counter()
for worker in workers:
    worker.join()
elapsed = time.perf_counter() - started
took = [t for one in records for t in one]
assert len(took) == count * threads, "a thread failed"
looked = [t for one in peeks for t in one]
print(
    len(took) / elapsed, statistics.mean(took) * 1e6, sum(t > 1e-3 for t in took) / len(took),
    statistics.mean(looked) * 1e6,
)
"""


def measure_threads(
    checkout: Path, count: int, threads: int, pause: float, work: float
) -> tuple[float, float, float, float]:
    """(checks per second by the clock, mean record in µs, share of records over 1 ms,
    mean peek in µs)
    with ``threads`` threads doing ``count`` checks each, then ``pause`` ms and ``work`` ms."""
    done = subprocess.run(
        [sys.executable, "-c", _THREADS_SCRIPT, *map(str, (count, threads, pause, work))],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=True,
    )
    rate, record, slow, peek = map(float, done.stdout.split())
    return rate, record, slow, peek


def measure(checkout: Path, count: int) -> tuple[float, int]:
    """(checks per CPU second, statements per check) of the limits in ``checkout``."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(count)],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=True,
    )
    rate, statements = done.stdout.split()
    return float(rate), int(statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--threads", default="1,4,16", help="thread counts for the threads rows ('' for none)"
    )
    parser.add_argument("--thread-checks", type=int, default=300, help="checks per thread")
    parser.add_argument(
        "--pause-ms", type=float, default=2.0, help="each thread's wait after a check"
    )
    parser.add_argument(
        "--work-ms", type=float, default=0.5, help="each thread's Python work after a check"
    )
    parser.add_argument("--before", type=Path, help="another srsfwd checkout to time as well")
    args = parser.parse_args()
    checkouts = {"srsfwd": Path(__file__).resolve().parents[1]}
    if args.before is not None:
        checkouts["before"] = args.before.resolve()
    thread_counts = [int(n) for n in args.threads.split(",") if n.strip()]
    rates: dict[str, list[float]] = {name: [] for name in checkouts}
    statements: dict[str, int] = {}
    threaded: dict[tuple[int, str], list[tuple[float, float, float, float]]] = {
        (threads, name): [] for threads in thread_counts for name in checkouts
    }
    for _ in range(args.rounds):
        for name, checkout in checkouts.items():
            rate, statements[name] = measure(checkout, args.checks)
            rates[name].append(rate)
            for threads in thread_counts:
                threaded[threads, name].append(
                    measure_threads(
                        checkout, args.thread_checks, threads, args.pause_ms, args.work_ms
                    )
                )

    print(f"Limit checks (peek + record) per CPU second, SQLite, {args.rounds} interleaved rounds")
    median = {name: statistics.median(found) for name, found in rates.items()}
    for name, found in rates.items():
        line = (
            f"  {name:<7} median {median[name]:>8,.0f}/s (range {min(found):,.0f} to"
            f" {max(found):,.0f}), {statements[name]} SQL statements per peek + record"
        )
        if name != "srsfwd":
            ratios = [ours / theirs for ours, theirs in zip(rates["srsfwd"], found, strict=True)]
            line += f"; srsfwd {median['srsfwd'] / median[name]:.2f}x"
            line += f" (per round {min(ratios):.2f}x to {max(ratios):.2f}x)"
        print(line)
    if thread_counts:
        print_threads(threaded, thread_counts, list(checkouts), args.rounds)


def print_threads(
    threaded: dict[tuple[int, str], list[tuple[float, float, float, float]]],
    thread_counts: list[int],
    names: list[str],
    rounds: int,
) -> None:
    """The threads rows: checks per second by the clock, and the record's latency."""
    print(f"Threads on one file, a store each, per second by the clock, {rounds} rounds")
    for threads in thread_counts:
        ours = [rate for rate, *_ in threaded[threads, "srsfwd"]]
        for name in names:
            found = threaded[threads, name]
            found_rates = [rate for rate, *_ in found]
            means = [mean for _, mean, _, _ in found]
            line = (
                f"  {threads:>2} threads {name:<7} median {statistics.median(found_rates):>8,.0f}/s"
                f" (range {min(found_rates):,.0f} to {max(found_rates):,.0f}); record mean"
                f" {statistics.median(means):,.0f} µs ({min(means):,.0f} to {max(means):,.0f}),"
                f" over 1 ms {statistics.median(slow for _, _, slow, _ in found):.1%};"
                f" peek mean {statistics.median(peek for *_, peek in found):,.0f} µs"
            )
            if name != "srsfwd":
                ratios = [a / b for a, b in zip(ours, found_rates, strict=True)]
                line += f"; srsfwd {statistics.median(ours) / statistics.median(found_rates):.2f}x"
                line += f" (per round {min(ratios):.2f}x to {max(ratios):.2f}x)"
            print(line)


if __name__ == "__main__":
    main()
