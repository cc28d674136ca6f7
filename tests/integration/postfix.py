"""A private Postfix on loopback and an SMTP sink, for end-to-end tests.

Postfix runs from its own configuration and queue directories (never /etc/postfix),
listens on 127.0.0.1 only and relays everything to the sink.
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.integration.peers import need
from tests.ports import free_port

_SERVICES = [
    "pickup unix n - n 60 1 pickup",
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "proxywrite unix - - n - 1 proxymap",
    "smtp unix - - n - - smtp",
    "relay unix - - n - - smtp",
    "showq unix n - n - - showq",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
]


def _services(replacements: list[str]) -> list[str]:
    """The standard master.cf services, each replaced by the one of the same name given."""
    by_name = {line.split()[0]: line for line in replacements}
    return [by_name.get(line.split()[0], line) for line in _SERVICES]


def master_services(services: list[str]) -> list[str]:
    """The standard master.cf services, same-named ones replaced by ``services``, the rest added."""
    standard = {line.split()[0] for line in _SERVICES}
    return [*_services(services), *(line for line in services if line.split()[0] not in standard)]


@dataclass
class Envelope:
    """One message as the sink received it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass
class Sink:
    """An aiosmtpd server that keeps what it receives; refuses recipients named reject*."""

    port: int
    received: list[Envelope] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address.lower().startswith("reject"):
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        with self.lock:
            self.received.append(
                Envelope(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
            )
        return "250 Message accepted"

    def wait_for(self, predicate: Any, timeout: float = 20) -> Envelope:
        """The first message matching ``predicate`` (waits for it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for envelope in self.received:
                    if predicate(envelope):
                        return envelope
            time.sleep(0.05)
        with self.lock:
            seen = [(e.mail_from, e.rcpt_tos) for e in self.received]
        pytest.fail(f"no such message at the sink within {timeout}s; it has {seen}")


@contextmanager
def sink() -> Iterator[Sink]:
    """An SMTP sink on 127.0.0.1."""
    handler = Sink(free_port())
    controller = Controller(handler, hostname="127.0.0.1", port=handler.port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@dataclass
class Postfix:
    """A running private Postfix; ``send`` injects mail over SMTP."""

    root: Path
    port: int

    def send(self, sender: str, recipients: list[str], subject: str = "test") -> None:
        message = f"From: <{sender or 'mailer-daemon@x'}>\r\nSubject: {subject}\r\n\r\nhello\r\n"
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as smtp:
            smtp.sendmail(sender, recipients, message)

    def tables(self) -> dict[str, str]:
        """The canonical maps main.cf names: ``forward`` (sender), ``reverse`` (recipient)."""
        found: dict[str, str] = {}
        for line in (self.root / "etc" / "main.cf").read_text().splitlines():
            key, _, value = line.partition(" = ")
            if key == "sender_canonical_maps":
                found["forward"] = value
            elif key == "recipient_canonical_maps":
                found["reverse"] = value
        return found

    def log(self) -> str:
        path = self.root / "log" / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""


def world_readable_tempdir(prefix: str) -> Path:
    """A fresh directory under /tmp that Postfix's unprivileged processes can enter."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


@contextmanager
def private_postfix(
    *,
    relay_port: int,
    maps: dict[str, str],
    services: list[str] | None = None,
    files: dict[str, str] | None = None,
    replaced_services: list[str] | None = None,
) -> Iterator[Postfix]:
    """Postfix on a free loopback port relaying to ``relay_port``, with ``maps`` in main.cf.

    ``services`` are extra master.cf lines and ``replaced_services`` take the place of the
    standard service of the same name; ``files`` are written to its configuration
    directory first (tables that main.cf names as ``$config_directory/NAME``).
    """
    need("postfix")
    root = world_readable_tempdir("srsfwd-postfix-")
    for name in ("etc", "spool", "lib", "log"):
        (root / name).mkdir()
    shutil.chown(root / "lib", "postfix", "postfix")
    port = free_port()
    settings = {
        "compatibility_level": "3.6",
        "config_directory": f"{root}/etc",
        "queue_directory": f"{root}/spool",
        "data_directory": f"{root}/lib",
        "maillog_file": f"{root}/log/maillog",
        "maillog_file_prefixes": f"/var, /dev/stdout, {root}/log",
        "myhostname": "mx.fwd.example",
        "mydomain": "fwd.example",
        "mydestination": "",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "relayhost": f"[127.0.0.1]:{relay_port}",
        "smtp_dns_support_level": "disabled",
        "local_transport": "error:local delivery disabled",
        "alias_maps": "",
        "alias_database": "",
        "notify_classes": "bounce, 2bounce, resource, software",
        "bounce_queue_lifetime": "0",
        "maximal_queue_lifetime": "1h",
        **maps,
    }
    for name, text in (files or {}).items():
        (root / "etc" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "etc" / name).write_text(text)
    (root / "etc" / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    (root / "etc" / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd\n"
        + "".join(s + "\n" for s in [*_services(replaced_services or []), *(services or [])])
    )
    postfix = ["postfix", "-c", str(root / "etc")]
    subprocess.run([*postfix, "check"], check=True, capture_output=True, timeout=60)
    subprocess.run([*postfix, "start"], check=True, capture_output=True, timeout=60)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                smtplib.SMTP("127.0.0.1", port, timeout=2).quit()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("private Postfix did not start")
                time.sleep(0.1)
        yield Postfix(root, port)
    finally:
        subprocess.run([*postfix, "stop"], capture_output=True, timeout=60, check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = subprocess.run(
                [*postfix, "status"], capture_output=True, timeout=60, check=False
            )
            if status.returncode != 0:
                break
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
