"""How long the command line takes to start: ``srsfwd --help`` and ``srsfwd rewrite``.

Each is run as a fresh process several times and the median kept, next to two same-run
baselines: ``python -c pass`` (the interpreter alone) and a process that imports every
subcommand eagerly (what each command paid before subcommands were imported lazily).
Target: both commands under 150 ms. On a busy machine the interpreter alone may take
longer than that: compare the lines with the baselines of the same run. The processes
may write their compiled bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped) and each command
runs once before it is timed, as an installed package's modules are compiled when
installed: otherwise a module changed since its last compile is compiled again at every
start, and the figure measures the compiler.

    python -m benchmarks.startup_bench [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_MS = 150.0
EAGER_IMPORT = (
    "import srsfwd.cli.srs, srsfwd.cli.dkim, srsfwd.cli.decide, srsfwd.cli.doctor,"
    " srsfwd.cli.forward, srsfwd.cli.limits, srsfwd.cli.serve"
)


def median_ms(argv: list[str], runs: int) -> float:
    """The median wall time of ``argv`` over ``runs`` fresh processes, in milliseconds."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    for run in range(runs + 1):
        started = time.perf_counter()
        subprocess.run(
            argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )
        if run:  # the first run compiles what is not compiled yet
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="processes per command [15]")
    args = parser.parse_args(argv)
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        secret = Path(folder) / "srs.secret"
        secret.write_text("startup-benchmark-secret\n")
        secret.chmod(0o600)
        rewrite = [
            *(python, "-m", "srsfwd", "rewrite", "--domain", "fwd.example.net"),
            *("--secret-file", str(secret), "alice@example.org"),
        ]
        rows = [
            ("python -c pass (baseline)", median_ms([python, "-c", "pass"], args.runs)),
            ("eager import of all subcommands", median_ms([python, "-c", EAGER_IMPORT], args.runs)),
            ("srsfwd --help", median_ms([python, "-m", "srsfwd", "--help"], args.runs)),
            ("srsfwd rewrite ...", median_ms(rewrite, args.runs)),
        ]
    baseline = rows[0][1]
    for name, ms in rows:
        print(f"{name:34} {ms:7.1f} ms  (+{ms - baseline:6.1f} ms over the interpreter alone)")
    slow = [name for name, ms in rows[2:] if ms > TARGET_MS]
    print(f"target: under {TARGET_MS:.0f} ms: {'missed by ' + ', '.join(slow) if slow else 'met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
