"""``python -m tests.lab``: build the mail lab, run every scenario, print the verdicts."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.lab.scenarios import report
from tests.lab.world import LabError, lab_world, remove


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="keep the lab's files (logs, mail)")
    parser.add_argument("--no-arc", action="store_true", help="run srsfwd without ARC sealing")
    parser.add_argument(
        "--dmarc",
        choices=["rewrite-from", "keep", "reject"],
        help="srsfwd's [forward] dmarc setting (default: srsfwd's own default)",
    )
    args = parser.parse_args()
    extra = f'dmarc = "{args.dmarc}"\n' if args.dmarc else ""
    root = Path(tempfile.mkdtemp(prefix="srsfwd-lab-"))
    try:
        with lab_world(root, arc=not args.no_arc, extra_forward=extra) as world:
            print(report(world))
    except LabError as exc:
        print(f"the lab failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"lab files kept in {root}", file=sys.stderr)
        else:
            remove(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
