"""Bounces to SRS addresses: verified before anything is relayed, DSN fields read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd import DSNError, FrozenClock, SrsfwdError, SRSRewriter
from srsfwd.bounce import check_bounce

NOW = 1_700_000_000
SRS = SRSRewriter(["secret"], "fwd.example.net", clock=FrozenClock(NOW))
GOOD = SRS.forward("alice@example.org")
FORGED = "SRS0=AAAA=G3=example.org=alice@fwd.example.net"


def dsn(rcpt: str, *, to_header: bool = True) -> bytes:
    to = f"To: {rcpt}\r\n" if to_header else ""
    return (
        "From: MAILER-DAEMON@mx.receiver.example\r\n"
        f"{to}"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.receiver.example\r\n"
        "Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        "\r\n"
        "Final-Recipient: rfc822; bob@receiver.example\r\n"
        "Original-Recipient: rfc822;bob@receiver.example\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <bob@receiver.example>: user unknown\r\n"
        "\r\n"
        "Final-Recipient: rfc822; carol@receiver.example\r\n"
        "Action: delayed\r\n"
        "Status: 4.2.2\r\n"
        "\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\n\r\n"
        "--B--\r\n"
    ).encode()


def test_valid_bounce_goes_to_the_original_sender() -> None:
    report = check_bounce(dsn(GOOD), SRS)
    assert report.deliverable
    assert report.original_sender == "alice@example.org"
    assert report.srs_address == GOOD


def test_dsn_recipients_and_status_codes_are_read() -> None:
    report = check_bounce(dsn(GOOD), SRS)
    assert report.is_dsn
    assert report.reporting_mta == "mx.receiver.example"
    assert [(r.recipient, r.action, r.status) for r in report.recipients] == [
        ("bob@receiver.example", "failed", "5.1.1"),
        ("carol@receiver.example", "delayed", "4.2.2"),
    ]
    assert report.recipients[0].diagnostic == "550 5.1.1 <bob@receiver.example>: user unknown"


def test_forged_bounce_is_reported_and_not_deliverable() -> None:
    report = check_bounce(dsn(FORGED), SRS)
    assert (report.verdict, report.deliverable) == ("forged", False)
    assert report.original_sender is None


def test_expired_bounce_is_reported() -> None:
    old = SRSRewriter(["secret"], "fwd.example.net", clock=FrozenClock(NOW - 30 * 86400))
    assert check_bounce(dsn(old.forward("alice@example.org")), SRS).verdict == "expired"


def test_envelope_recipient_given_wins_over_headers() -> None:
    report = check_bounce(dsn(FORGED), SRS, rcpt=GOOD)
    assert report.deliverable


def test_envelope_recipient_found_in_delivered_to() -> None:
    message = f"Delivered-To: {GOOD}\r\n".encode() + dsn("someone@else.example")
    assert check_bounce(message, SRS).original_sender == "alice@example.org"


def test_bounce_without_srs_recipient_is_not_srs() -> None:
    report = check_bounce(dsn("postmaster@fwd.example.net"), SRS)
    assert (report.verdict, report.srs_address) == ("not-srs", None)


def test_plain_message_to_srs_address_is_checked_too() -> None:
    message = f"To: {GOOD}\r\nSubject: out of office\r\n\r\nI am away.\r\n".encode()
    report = check_bounce(message, SRS)
    assert report.deliverable and not report.is_dsn


def test_malformed_srs_recipient_is_reported() -> None:
    report = check_bounce(dsn("x@y"), SRS, rcpt="SRS0=abcd@fwd.example.net")
    assert report.verdict == "malformed"


def test_status_part_that_does_not_parse_as_headers_is_read_by_hand() -> None:
    message = dsn(GOOD).replace(b"message/delivery-status", b"message/delivery-status\r\nX: y")
    assert check_bounce(message, SRS).is_dsn


def test_empty_message_is_a_clear_error() -> None:
    with pytest.raises(DSNError):
        check_bounce(b"", SRS)


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_nothing_but_srsfwd_errors(data: bytes) -> None:
    try:
        check_bounce(data, SRS)
    except SrsfwdError:
        pass


@given(st.binary(max_size=500))
def test_garbage_inside_a_status_part_raises_nothing(garbage: bytes) -> None:
    message = dsn(GOOD).replace(b"Reporting-MTA: dns; mx.receiver.example\r\n", garbage)
    try:
        check_bounce(message, SRS)
    except SrsfwdError:
        pass
