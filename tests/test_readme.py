"""The README's "Using it" commands run as shown, in order, on a fresh folder.

Each command runs through bash as a user types it, with ``srsfwd`` this checkout's CLI.
What the README leaves to the reader is filled in: its folder ``/etc/srsfwd`` becomes a
temporary one where the example configuration is copied before the first command that
reads it; ``message.eml`` is an example message and ``dsn.eml`` a bounce to the address
``rewrite`` printed (which ``reverse`` gets too); ``--deliver`` goes to an SMTP sink and
``~/Maildir`` is a small mailbox. ``serve`` runs until stopped: its own tests start it.
"""

from __future__ import annotations

import mailbox
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smtp_sink import Sink, smtp_sink

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
README_SRS_ADDRESS = "SRS0=Hx3k=JP=example.org=alice@fwd.example.net"
SRS_ADDRESS = re.compile(r"SRS0=[\w+/-]{4}=[A-Z2-7]{2}=example\.org=alice@fwd\.example\.net")


def using_it_commands() -> list[str]:
    """The ``srsfwd`` command lines of the README's "Using it" block, continuations joined."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Using it", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    return [line for line in block.splitlines() if line.startswith("srsfwd ")]


@pytest.fixture
def sink() -> Iterator[Sink]:
    with smtp_sink() as running:
        yield running


class Reader:
    """Runs README lines in ``work`` with the README's paths made temporary."""

    def __init__(self, tmp: Path, sink: Sink) -> None:
        self.work = tmp / "work"
        self.etc = tmp / "etc" / "srsfwd"
        self.maildir = tmp / "Maildir"
        self.sink = sink
        self.work.mkdir()
        shutil.copy(EXAMPLES / "messages" / "normal.eml", self.work / "message.eml")
        box = mailbox.Maildir(self.maildir)
        for name in ("normal", "relay", "no-a-no-mx"):
            box.add((EXAMPLES / "messages" / f"{name}.eml").read_bytes())
        self.address = README_SRS_ADDRESS

    def run(self, line: str) -> subprocess.CompletedProcess[str]:
        if "--config" in line and not (self.etc / "srsfwd.toml").exists():
            self.install_example_configuration()
        line = (
            line.replace("/etc/srsfwd", str(self.etc))
            .replace("~/Maildir", str(self.maildir))
            .replace("127.0.0.1:25", f"{self.sink.host}:{self.sink.port}")
            .replace(README_SRS_ADDRESS, self.address)
        )
        cli = f"{shlex.quote(sys.executable)} -m srsfwd"
        return subprocess.run(
            ["bash", "-c", f'srsfwd() {{ {cli} "$@"; }}\n{line}'],
            cwd=self.work,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(self.work)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def install_example_configuration(self) -> None:
        """What the README asks of the reader: copy examples/srsfwd.toml and adapt it."""
        shutil.copy(EXAMPLES / "srsfwd.toml", self.etc / "srsfwd.toml")
        shutil.copy(EXAMPLES / "example.zone", self.etc / "example.zone")

    def write_bounce(self, address: str) -> None:
        self.address = address
        bounce = (EXAMPLES / "messages" / "bounce.eml").read_text()
        to = next(line for line in bounce.splitlines() if line.startswith("To: "))
        (self.work / "dsn.eml").write_text(bounce.replace(to, f"To: {address}"))


def test_the_readme_shows_the_commands_it_is_tested_with() -> None:
    names = [line.split()[1] for line in using_it_commands()]
    assert names[:3] == ["secret", "rewrite", "reverse"]
    assert {"bounce", "keygen", "sign", "verify", "decide", "forward", "doctor"} <= set(names)


def test_the_using_it_commands_work_in_order(tmp_path: Path, sink: Sink) -> None:
    reader = Reader(tmp_path, sink)
    for line in using_it_commands():
        command = line.split()[1]
        if command == "serve":
            continue
        done = reader.run(line)
        failed = f"{line}\n{done.stdout}{done.stderr}"
        if command == "doctor":  # findings about the example's DNS are its output
            assert done.returncode in (0, 1) and "Error:" not in done.stderr, failed
            continue
        assert done.returncode == 0, failed
        if command == "rewrite":
            address = done.stdout.strip()
            assert SRS_ADDRESS.fullmatch(address), failed
            reader.write_bounce(address)
        elif command == "reverse":
            assert done.stdout.strip() == "alice@example.org", failed
        elif command == "keygen":  # the reader publishes the record next to the others
            zone = done.stdout + (EXAMPLES / "example.zone").read_text()
            (reader.work / "example.zone").write_text(zone)
        elif command == "verify":
            assert done.stdout.count("pass d=") == 2, failed
    assert len(sink.messages) == 1
