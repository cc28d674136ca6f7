"""Sending-limit checks in SQLite per CPU second: a forward's peek + record, and its statements.

A forward judges each message twice: ``peek`` before anything is done and ``record`` when
it is handed on. This times that pair against an SQLite store file (WAL) for one sender,
counts the SQL statements it costs (the connection's trace callback), and with
``--before DIR`` does the same for another checkout of srsfwd (for example
``git worktree add --detach ../before main``). Every measurement runs in a process of its
own, the two checkouts in interleaved rounds; the median and the range are printed.

    python -m benchmarks.limits_bench [--checks N] [--rounds R] [--before DIR]
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
    parser.add_argument("--before", type=Path, help="another srsfwd checkout to time as well")
    args = parser.parse_args()
    checkouts = {"srsfwd": Path(__file__).resolve().parents[1]}
    if args.before is not None:
        checkouts["before"] = args.before.resolve()
    rates: dict[str, list[float]] = {name: [] for name in checkouts}
    statements: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, checkout in checkouts.items():
            rate, statements[name] = measure(checkout, args.checks)
            rates[name].append(rate)

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


if __name__ == "__main__":
    main()
