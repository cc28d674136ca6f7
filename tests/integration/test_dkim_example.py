"""The shipped DKIM example (examples/dkim/run.sh) runs as a user runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parent.parent.parent


def test_shipped_dkim_example_runs() -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "dkim" / "run.sh")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pass d=example.com s=s" in done.stdout
    assert "body hash does not match" in done.stdout
    assert "sealed: i=1 cv=none" in done.stdout + done.stderr
    assert "pass d=football.example.com s=brisbane" in done.stdout
