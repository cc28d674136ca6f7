"""Handing a forwarded message on: by SMTP from a pool's address, or to sendmail.

Thin adapters around ``smtplib`` and the ``sendmail`` command. Whatever goes wrong comes
back as a ``SrsfwdError`` whose ``temporary`` says whether the sender should try again
(an SMTP 4xx, a dropped connection, sendmail's EX_TEMPFAIL) or not (an SMTP 5xx).
sendmail cannot choose an outbound transport per message, so what goes to it names its
pool in a header field (``X-Srsfwd-Pool``) that the MTA's header checks turn into that
pool's transport.
"""

from __future__ import annotations

import smtplib
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from srsfwd.errors import DeliveryDeferredError, DeliveryError

EX_TEMPFAIL = 75
POOL_HEADER = "X-Srsfwd-Pool"


@dataclass(frozen=True, slots=True)
class Delivered:
    """The message was taken; ``refused`` lists the recipients the next hop refused."""

    refused: dict[str, tuple[int, str]]


def deliver_smtp(
    message: bytes,
    *,
    mail_from: str,
    rcpts: Sequence[str],
    host: str,
    port: int = 25,
    source_address: str | None = None,
    helo: str | None = None,
    timeout: float = 60.0,
) -> Delivered:
    """Send ``message`` by SMTP, connecting from ``source_address`` and greeting as ``helo``.

    Raises:
        DeliveryDeferredError: a 4xx answer, or no connection (try again later).
        DeliveryError: a 5xx answer to the sender or to every recipient.
    """
    try:
        with smtplib.SMTP(
            host,
            port,
            local_hostname=helo,
            timeout=timeout,
            source_address=(source_address, 0) if source_address else None,
        ) as client:
            client.ehlo_or_helo_if_needed()
            refused = client.sendmail(mail_from, list(rcpts), message)
    except smtplib.SMTPRecipientsRefused as exc:
        return _raise_for(exc.recipients)
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode("utf-8", "replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        if 400 <= exc.smtp_code < 500:
            raise DeliveryDeferredError(f"{host}:{port} answered {exc.smtp_code} {text}") from None
        raise DeliveryError(f"{host}:{port} answered {exc.smtp_code} {text}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise DeliveryDeferredError(f"cannot deliver to {host}:{port}: {exc}") from None
    return Delivered({rcpt: (code, _text(reply)) for rcpt, (code, reply) in refused.items()})


def _raise_for(refused: dict[str, tuple[int, bytes]]) -> Delivered:
    codes = [code for code, _ in refused.values()]
    summary = "; ".join(f"{rcpt}: {code} {_text(reply)}" for rcpt, (code, reply) in refused.items())
    if any(400 <= code < 500 for code in codes):
        raise DeliveryDeferredError(f"recipients deferred: {summary}")
    raise DeliveryError(f"recipients refused: {summary}")


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def with_pool_header(message: bytes, pool: str, *, header: str = POOL_HEADER) -> bytes:
    """``message`` with ``header: pool`` as its first field and no other field of that name.

    Fields of that name already in the message (a sender's guess at our routing) go, with
    their continuation lines; the message's own line ending (CRLF or LF) is kept.
    """
    newline = b"\r\n" if message.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    lines = message.split(b"\n")
    end = next((i for i, line in enumerate(lines) if line in (b"", b"\r")), len(lines))
    name = header.lower().encode("ascii")
    kept: list[bytes] = []
    dropping = False
    for line in lines[:end]:
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() == name
        if not dropping:
            kept.append(line)
    field = f"{header}: {pool}".encode("ascii") + newline.rstrip(b"\n")
    return b"\n".join([field, *kept, *lines[end:]])


def deliver_sendmail(
    message: bytes,
    *,
    mail_from: str,
    rcpts: Sequence[str],
    sendmail: str = "/usr/sbin/sendmail",
    timeout: float = 300.0,
) -> Delivered:
    """Pipe ``message`` to ``sendmail -f SENDER -- RCPTS`` (Postfix's and others').

    Raises:
        DeliveryDeferredError: sendmail exited with EX_TEMPFAIL (75), could not be run, or
            timed out.
        DeliveryError: sendmail exited with another non-zero status.
    """
    command = [sendmail, "-i", "-f", mail_from or "<>", "--", *rcpts]
    try:
        # The operator's own sendmail, given its arguments as a list: no shell.
        done = subprocess.run(  # noqa: S603
            command, input=message, capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DeliveryDeferredError(f"cannot run {sendmail}: {exc}") from None
    if done.returncode == 0:
        return Delivered({})
    why = done.stderr.decode("utf-8", "replace").strip()[:500]
    if done.returncode == EX_TEMPFAIL:
        raise DeliveryDeferredError(f"{sendmail} exited 75 (try again later): {why}")
    raise DeliveryError(f"{sendmail} exited {done.returncode}: {why}")
