"""The installed ``srsfwd`` command and ``python -m srsfwd``, run as a user runs them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent.parent


def srsfwd(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    command = shutil.which("srsfwd", path=str(Path(sys.executable).parent))
    assert command, "the srsfwd console script is not installed"
    return subprocess.run(
        [command, *args], input=stdin, capture_output=True, text=True, check=False, cwd=ROOT
    )


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "srsfwd", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("srsfwd, version ")


def test_rewrite_then_reverse_through_a_pipe(tmp_path: Path) -> None:
    secret = tmp_path / "srs.secret"
    secret.write_text("a secret of more than sixteen bytes\n")
    secret.chmod(0o600)
    rewritten = srsfwd(
        "rewrite",
        "--domain",
        "fwd.example.net",
        "--secret-file",
        str(secret),
        stdin="alice@example.org\nbob@example.com\n",
    )
    assert rewritten.returncode == 0, rewritten.stderr
    reversed_ = srsfwd("reverse", "--secret-file", str(secret), stdin=rewritten.stdout)
    assert reversed_.stdout == "alice@example.org\nbob@example.com\n"


def test_bad_input_gives_error_line_and_status_1(tmp_path: Path) -> None:
    secret = tmp_path / "srs.secret"
    secret.write_text("a secret of more than sixteen bytes\n")
    secret.chmod(0o600)
    done = srsfwd("reverse", "--secret-file", str(secret), "not-srs@example.org")
    assert done.returncode == 1
    assert done.stderr == "Error: not-srs@example.org: Not an SRS address.\n"


def test_usage_error_is_status_2() -> None:
    assert srsfwd("rewrite", "--hash-length", "99").returncode == 2


@pytest.mark.integration  # installs srsfwd into .venv with pip when it is not there
def test_shipped_example_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "run.sh")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for pool in ("normal", "relay", "high-risk"):
        assert re.search(rf"^pool: +{pool} \(SRS", done.stderr, re.M)
    assert re.search(r"^rcpt to: +<SRS0=.* sent to <alice@example\.org>$", done.stderr, re.M)
    assert "not a valid bounce address here (Hash invalid" in done.stderr
    headers = done.stdout.split("as it leaves (headers):", 1)[1].split("SRS on its own", 1)[0]
    assert "Message-ID: <minutes-1@example.org>" in headers
    assert "Hi Bob," not in headers and "\r" not in headers
