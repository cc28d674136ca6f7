"""The README's "Using it" commands run as shown, in order, on a fresh folder.

Each command runs through bash as a user types it, in a reader's folder whose ``/etc`` is
empty at first (tests/readerfolder.py). What the README leaves to the reader is filled
in: the example configuration is copied to ``/etc/srsfwd`` before the first command that
reads it; ``dsn.eml`` is a bounce to the address ``rewrite`` printed (which ``reverse``
gets too); ``--deliver`` goes to an SMTP sink. ``serve`` runs until stopped: its own
tests start it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.readerfolder import EXAMPLES, ROOT, ReaderFolder
from tests.smtp_sink import Sink, smtp_sink

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


class Reader(ReaderFolder):
    """Runs README lines with the SMTP sink and the address ``rewrite`` printed."""

    def __init__(self, tmp: Path, sink: Sink) -> None:
        super().__init__(tmp, configured=False)
        self.sink = sink
        self.address = README_SRS_ADDRESS

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        if "--config" in command and not (self.etc / "srsfwd" / "srsfwd.toml").exists():
            self.install_example_configuration()
        return super().run(
            command.replace("127.0.0.1:25", f"{self.sink.host}:{self.sink.port}").replace(
                README_SRS_ADDRESS, self.address
            )
        )

    def install_example_configuration(self) -> None:
        """Only the configuration and its zone: the reader made the secret and the key."""
        shutil.copy(EXAMPLES / "srsfwd.toml", self.etc / "srsfwd" / "srsfwd.toml")
        shutil.copy(EXAMPLES / "example.zone", self.etc / "srsfwd" / "example.zone")

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
