"""The envelope options of ``decide`` and ``forward``: the envelope a message arrived with."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from srsfwd.address import strip_brackets
from srsfwd.cli.common import IPAddress
from srsfwd.facts import Envelope

if TYPE_CHECKING:
    from srsfwd.forward import Forwarder, ForwardResult


@dataclasses.dataclass(frozen=True, slots=True)
class EnvelopeOptions:
    """``--client-ip``, ``--helo``, ``--mail-from``, ``--rcpt``, ``--spam`` and
    ``--sasl-user`` as given (None or empty: not given)."""

    client_ip: str | None
    helo: str | None
    mail_from: str | None
    rcpts: tuple[str, ...]
    spam: bool
    sasl_user: str | None

    def missing(self) -> list[str]:
        """The options of the envelope that were not given."""
        given = (
            ("--client-ip", self.client_ip),
            ("--helo", self.helo),
            ("--mail-from", self.mail_from),
            ("--rcpt", self.rcpts or None),
        )
        return [flag for flag, value in given if value is None]

    def envelope(self) -> Envelope:
        """The envelope as given.

        Raises:
            click.UsageError: an option of the envelope is missing.
        """
        if self.client_ip is None or self.helo is None or self.mail_from is None or not self.rcpts:
            raise click.UsageError(f"missing {', '.join(self.missing())}")
        return Envelope(self.client_ip, self.helo, self.mail_from, self.rcpts)

    def inbound(self) -> Envelope:
        """The envelope as a decision reports it: the sender without angle brackets."""
        envelope = self.envelope()
        return dataclasses.replace(envelope, mail_from=strip_brackets(envelope.mail_from.strip()))

    def forward(
        self, forwarder: Forwarder, message: bytes, *, dry_run: bool = False
    ) -> ForwardResult:
        """What ``forwarder`` does with ``message`` arriving with this envelope."""
        envelope = self.envelope()
        return forwarder.forward(
            message,
            client_ip=envelope.client_ip,
            helo=envelope.helo,
            mail_from=envelope.mail_from,
            rcpts=envelope.rcpts,
            spam=self.spam,
            sasl_user=self.sasl_user,
            dry_run=dry_run,
        )


def envelope_options(*, required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--client-ip``, ``--helo``, ``--mail-from``, ``--rcpt`` (repeatable),
    ``--spam`` and ``--sasl-user``, the first four ``required`` or all optional; the
    command gets them together as ``envelope: EnvelopeOptions``."""

    def add_options(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def with_envelope(*args: Any, **kwargs: Any) -> Any:
            kwargs["envelope"] = EnvelopeOptions(
                kwargs.pop("client_ip"),
                kwargs.pop("helo"),
                kwargs.pop("mail_from"),
                kwargs.pop("rcpts"),
                kwargs.pop("spam"),
                kwargs.pop("sasl_user"),
            )
            return function(*args, **kwargs)

        options = [
            click.option(
                "--client-ip",
                required=required,
                type=IPAddress(),
                help="The connecting client's address.",
            ),
            click.option(
                "--helo", required=required, metavar="NAME", help="The client's HELO/EHLO name."
            ),
            click.option(
                "--mail-from",
                required=required,
                metavar="ADDR",
                help="Envelope sender ('' or '<>' for a bounce).",
            ),
            click.option(
                "--rcpt",
                "rcpts",
                multiple=True,
                required=required,
                metavar="ADDR",
                help="Envelope recipient after forwarding. Repeatable.",
            ),
            click.option(
                "--spam", is_flag=True, help="Our own spam filter judged the message spam."
            ),
            click.option(
                "--sasl-user",
                metavar="LOGIN",
                help="The session logged in with SMTP AUTH as LOGIN.",
            ),
        ]
        decorated: Callable[..., Any] = with_envelope
        for option in reversed(options):
            decorated = option(decorated)
        return decorated

    return add_options
