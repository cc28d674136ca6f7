"""An SMTP sink on loopback (aiosmtpd) that keeps what it receives, for tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.ports import free_port


@dataclass
class Received:
    """One message as the sink saw it."""

    mail_from: str
    rcpts: list[str]
    data: bytes
    peer_ip: str
    helo: str


@dataclass
class Sink:
    """What the sink received; ``answer`` makes it reply to RCPT with a fixed code."""

    host: str
    port: int
    messages: list[Received] = field(default_factory=list)
    rcpt_answer: str | None = None

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        peer: Any = session.peer
        self.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpts=list(envelope.rcpt_tos),
                data=envelope.original_content or b"",
                peer_ip=str(peer[0]),
                helo=str(session.host_name),
            )
        )
        return "250 OK queued"


@contextmanager
def smtp_sink(host: str = "127.0.0.1") -> Iterator[Sink]:
    """A running sink on ``host`` and a free port."""
    sink = Sink(host, free_port(host))
    controller = Controller(sink, hostname=host, port=sink.port, ready_timeout=10)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
