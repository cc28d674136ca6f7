"""A reader's folder for running documented commands as a user types them.

Commands run through bash with ``srsfwd`` and ``python`` this checkout's, in a fresh
folder holding a copy of examples/ (as ``examples/`` and as the folder itself, so
``srsfwd.toml``, ``example.zone`` and ``message.eml`` are there), with a mailbox in
``~/Maildir`` and every ``/etc/`` path made a temporary folder. A configured folder has
the example in ``/etc/srsfwd``, where the configuration is found by default, and
OpenDKIM's tables in ``/etc/opendkim``; an unconfigured one starts with ``/etc`` empty.
The DNS of every example is examples/example.zone: no network.
"""

from __future__ import annotations

import mailbox
import shlex
import shutil
import subprocess
import sys
from email.utils import formatdate
from pathlib import Path

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"

# The example messages as the mailbox in ~/Maildir holds them: name, sender, HELO, client.
DELIVERED = [
    ("normal", "alice@example.org", "mail.example.org", "198.51.100.25"),
    ("relay", "carol@unsigned.example", "mx.unsigned.example", "192.0.2.99"),
    ("no-a-no-mx", "dave@nowhere.example", "mail.nowhere.example", "192.0.2.98"),
]


class ReaderFolder:
    """Where a reader runs the documentation's commands; see the module's docstring."""

    def __init__(self, tmp: Path, *, configured: bool = True) -> None:
        self.work = tmp / "work"
        self.home = tmp / "home"
        self.etc = tmp / "etc"
        self.configured = configured
        for folder in (self.home, self.etc):
            folder.mkdir()
        for folder in (self.work, self.work / "examples"):
            copy_example(folder)
        shutil.copy(EXAMPLES / "messages" / "normal.eml", self.work / "message.eml")
        box = mailbox.Maildir(self.home / "Maildir")
        for name, sender, helo, ip in DELIVERED:
            received = (
                f"Return-Path: <{sender}>\nReceived: from {helo} ({helo} [{ip}])\n"
                f"\tby mx.fwd.example.net with ESMTP; {formatdate()}\n"
            )
            box.add(received.encode() + (EXAMPLES / "messages" / f"{name}.eml").read_bytes())
        if configured:
            self.install_example_configuration()
            self.write_opendkim_tables()

    def install_example_configuration(self) -> None:
        """What the README asks of the reader: examples/ copied into /etc/srsfwd."""
        copy_example(self.etc / "srsfwd")

    def write_opendkim_tables(self) -> None:
        """OpenDKIM's tables as docs/postfix.md describes them (`keys import-opendkim`)."""
        opendkim = self.etc / "opendkim"
        opendkim.mkdir()
        key_file = "/etc/opendkim/keys/example.com/mail.private"
        (opendkim / "KeyTable").write_text(
            f"mail._domainkey.example.com example.com:mail:{key_file}\n"
        )
        (opendkim / "SigningTable").write_text(
            "*@example.com mail._domainkey.example.com\n"
            "*@lists.example.com mail._domainkey.example.com\n"
        )

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        """``command`` through bash, as typed, with ``/etc/`` this folder's."""
        python = shlex.quote(sys.executable)
        script = (
            f'srsfwd() {{ {python} -m srsfwd "$@"; }}\npython() {{ {python} "$@"; }}\n'
            + command.replace("/etc/", f"{self.etc}/")
        )
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(self.home)}
        if self.configured:
            env["SRSFWD_CONFIG"] = str(self.etc / "srsfwd" / "srsfwd.toml")
        return subprocess.run(
            ["bash", "-c", script],
            cwd=self.work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def copy_example(folder: Path) -> None:
    """examples/ into ``folder``, with the modes git does not keep."""
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True)
    for secret in (*folder.glob("*keys/*/*.key"), folder / "srs.secret"):
        secret.chmod(0o600)
