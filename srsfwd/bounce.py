"""Bounces that come back to our SRS addresses: verify, reverse, and read the DSN.

A forwarder that relays every bounce sent to its SRS domain relays backscatter and
spam: only a bounce whose SRS address verifies goes on, to the sender it reverses to.
Pure: the message arrives as bytes, the answer leaves as a ``BounceReport``.
"""

from __future__ import annotations

import email
import email.message
import email.parser
import email.policy
import email.utils
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from srsfwd.errors import (
    DSNError,
    SRSAliasError,
    SRSError,
    SRSExpiredError,
    SRSFormatError,
    SRSHashError,
)
from srsfwd.sizes import MAX_MESSAGE
from srsfwd.srs import SRSRewriter

Verdict = Literal["valid", "forged", "expired", "unknown-alias", "malformed", "not-srs"]

# Headers that carry the envelope recipient once a message is delivered, most reliable first.
_ENVELOPE_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_DSN_TYPES = ("message/delivery-status", "message/global-delivery-status")
MAX_BOUNCE_SIZE = MAX_MESSAGE


@dataclass(frozen=True, slots=True)
class DSNRecipient:
    """One per-recipient block of a delivery status notification (RFC 3464 §2.3)."""

    recipient: str
    action: str
    status: str
    diagnostic: str = ""


@dataclass(frozen=True, slots=True)
class BounceReport:
    """What a bounce says and whether it may be sent on."""

    srs_address: str | None
    verdict: Verdict
    reason: str
    original_sender: str | None = None
    is_dsn: bool = False
    reporting_mta: str = ""
    recipients: tuple[DSNRecipient, ...] = ()

    @property
    def deliverable(self) -> bool:
        """True when the SRS address verified and the bounce may go to the sender."""
        return self.verdict == "valid"


def check_bounce(
    message: bytes,
    rewriter: SRSRewriter,
    *,
    rcpt: str | None = None,
    require_domain: bool = False,
) -> BounceReport:
    """Verify the SRS address a bounce came to and read what its DSN reports.

    Args:
        rcpt: the envelope recipient; found in the headers when not given.

    Raises:
        DSNError: the message is too large or is not a mail message at all.
        StoreError: database mode and the alias store could not answer.
    """
    if len(message) > MAX_BOUNCE_SIZE:
        raise DSNError(f"message is larger than {MAX_BOUNCE_SIZE} bytes")
    parsed = email.message_from_bytes(message, policy=email.policy.compat32)
    if not parsed.keys() and not rcpt:
        raise DSNError("not a mail message: no header fields")
    is_dsn, reporting_mta, recipients = read_dsn(parsed)
    found: dict[str, Any] = {
        "is_dsn": is_dsn,
        "reporting_mta": reporting_mta,
        "recipients": tuple(recipients),
    }
    candidates = [rcpt] if rcpt else _srs_candidates(parsed, rewriter)
    if not candidates:
        return BounceReport(None, "not-srs", "no SRS address among the recipients", **found)
    address = candidates[0]
    try:
        sender = rewriter.reverse(address, require_domain=require_domain)
    except SRSHashError as exc:
        return BounceReport(address, "forged", str(exc), **found)
    except SRSExpiredError as exc:
        return BounceReport(address, "expired", str(exc), **found)
    except SRSAliasError as exc:
        return BounceReport(address, "unknown-alias", str(exc), **found)
    except SRSFormatError as exc:
        verdict: Verdict = "not-srs" if not rewriter.is_srs(address) else "malformed"
        return BounceReport(address, verdict, str(exc), **found)
    except SRSError as exc:
        return BounceReport(address, "malformed", str(exc), **found)
    return BounceReport(address, "valid", "SRS address verified", sender, **found)


def read_dsn(message: email.message.Message) -> tuple[bool, str, list[DSNRecipient]]:
    """Whether ``message`` is an RFC 3464 DSN, its Reporting-MTA and its recipients."""
    for part in message.walk():
        if part.get_content_type() in _DSN_TYPES:
            blocks = _status_blocks(part)
            if not blocks:
                return True, "", []
            reporting = _field_value(blocks[0].get("Reporting-MTA", ""))
            recipients = [
                DSNRecipient(
                    recipient=_field_value(
                        block.get("Final-Recipient") or block.get("Original-Recipient", "")
                    ),
                    action=str(block.get("Action", "")).strip().lower(),
                    status=str(block.get("Status", "")).strip(),
                    diagnostic=_field_value(block.get("Diagnostic-Code", "")),
                )
                for block in blocks[1:]
                if block.get("Final-Recipient") or block.get("Original-Recipient")
            ]
            return True, reporting, recipients
    return False, "", []


def _status_blocks(part: email.message.Message) -> list[email.message.Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, email.message.Message)]
    # Some senders' status parts do not parse as header blocks: read them by hand.
    text = payload if isinstance(payload, str) else ""
    parser = email.parser.HeaderParser(policy=email.policy.compat32)
    chunks = text.replace("\r\n", "\n").split("\n\n")
    return [parser.parsestr(chunk.strip() + "\n") for chunk in chunks if chunk.strip()]


def _field_value(value: object) -> str:
    """The value of an RFC 3464 typed field (``rfc822; bob@example.org`` → the address)."""
    text = " ".join(str(value).split())
    kind, semicolon, rest = text.partition(";")
    return rest.strip() if semicolon and " " not in kind.strip() else text


def _srs_candidates(message: email.message.Message, rewriter: SRSRewriter) -> list[str]:
    addresses: Iterable[tuple[str, str]] = email.utils.getaddresses(
        [str(value) for name in _ENVELOPE_HEADERS for value in message.get_all(name, [])]
    )
    return [address for _, address in addresses if address and rewriter.is_srs(address)]
