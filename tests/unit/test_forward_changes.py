"""The forward returns what it changed, and that is exactly the message it prepared.

Through the shipped example (ARC on) and the project's DNS server on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from srsfwd.config import load_config
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.message import FieldRef, ParsedMessage
from tests.dnsserver import ZoneServer

EXAMPLES = Path(__file__).parents[2] / "examples"
NORMAL = (EXAMPLES / "messages" / "normal.eml").read_bytes()
FORGED = b"Authentication-Results: fwd.example.net; spf=pass smtp.mailfrom=x\r\n"
THEIRS = b"Authentication-Results: other.example; spf=pass\r\n"


@pytest.fixture
def forwarder(example: Path, dns_server: ZoneServer) -> Forwarder:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    return Forwarder.from_config(
        load_config(example / "srsfwd.toml"), resolver=dns_server.resolver()
    )


def send(forwarder: Forwarder, message: bytes | ParsedMessage) -> ForwardResult:
    return forwarder.forward(
        message,
        client_ip="198.51.100.25",
        helo="mail.example.org",
        mail_from="alice@example.org",
        rcpts=["b@r.example"],
    )


def test_forged_results_are_deleted_by_index_highest_first(forwarder: Forwarder) -> None:
    result = send(forwarder, FORGED + THEIRS + FORGED + NORMAL)
    assert result.changes is not None
    assert result.changes.deleted == (
        FieldRef("Authentication-Results", 3),
        FieldRef("Authentication-Results", 1),
    )


def test_our_fields_go_on_top_with_the_arc_set_first(forwarder: Forwarder) -> None:
    result = send(forwarder, NORMAL)
    assert result.changes is not None
    assert result.changes.names == (
        "ARC-Seal",
        "ARC-Message-Signature",
        "ARC-Authentication-Results",
        "Authentication-Results",
        "DKIM-Signature",
    )


def test_the_srs_sender_is_a_change_of_the_envelope(forwarder: Forwarder) -> None:
    result = send(forwarder, NORMAL)
    assert result.changes is not None
    assert result.changes.new_sender == result.mail_from
    assert result.mail_from.startswith("SRS0=")


def test_the_message_is_the_changes_applied_to_what_arrived(forwarder: Forwarder) -> None:
    result = send(forwarder, FORGED + NORMAL)
    assert result.message is not None and result.changes is not None
    top = b"".join(h.raw + b"\r\n" for h in result.changes.inserted)
    assert result.message == top + NORMAL.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")


def test_a_parsed_message_is_forwarded_as_its_bytes_are(forwarder: Forwarder) -> None:
    from_bytes = send(forwarder, NORMAL)
    from_parsed = send(forwarder, ParsedMessage.parse(NORMAL))
    assert from_bytes.changes is not None and from_parsed.changes is not None
    assert from_parsed.changes.names == from_bytes.changes.names
    assert from_parsed.reasons == from_bytes.reasons


def test_a_refused_message_has_no_changes(forwarder: Forwarder) -> None:
    result = send(forwarder, b"To: b@r.example\r\n\r\nno From\r\n")
    assert result.changes is None and result.message is None
