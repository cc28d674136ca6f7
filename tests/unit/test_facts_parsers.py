"""The hand-written parsers of fact gathering: Received hops, reports, gateway results."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.authresults import build_header, gateway_spf
from srsfwd.dkim.canon import parse_message
from srsfwd.facts import Hop, is_report, parse_networks, parse_received
from srsfwd.pool import DKIMCheck


@pytest.mark.parametrize(
    ("value", "hop"),
    [
        (
            b" from mx.a.example (mx.a.example [192.0.2.1])\r\n\tby mx.b (Postfix) with ESMTP id X;"
            b" Thu, 26 Nov 2026 10:00:00 +0000",
            Hop("mx.a.example", "192.0.2.1"),
        ),
        (
            b" from helo.example (unknown [IPv6:2001:db8::1]) by x; date",
            Hop("helo.example", "2001:db8::1"),
        ),
        (
            b" from [192.0.2.7] (helo=liar.example) by mx.example with esmtp (Exim 4.96)",
            Hop("liar.example", "192.0.2.7"),
        ),
        (
            b" from host ([198.51.100.3] helo=h.example) by mx with esmtps",
            Hop("h.example", "198.51.100.3"),
        ),
        (b" from [192.0.2.9] by mx.example", Hop("", "192.0.2.9")),
        (b" by mx.example (Postfix, from userid 1000) id 1; date", None),
        (b" from localhost by mx.example", None),
        (b" from x (y [999.1.1.1]) by z", None),
        (b"", None),
    ],
)
def test_parse_received(value: bytes, hop: Hop | None) -> None:
    assert parse_received(value) == hop


@given(st.binary(max_size=300))
def test_parse_received_never_raises(value: bytes) -> None:
    hop = parse_received(value)
    assert hop is None or isinstance(hop.ip, str)


@given(st.ip_addresses(), st.from_regex(r"[a-z0-9.-]{1,40}", fullmatch=True))
def test_parse_received_reads_any_address(ip: object, helo: str) -> None:
    literal = f"IPv6:{ip}" if ":" in str(ip) else str(ip)
    value = f" from {helo} ({helo} [{literal}])\r\n\tby mx.example; date".encode()
    assert parse_received(value) == Hop(helo, str(ip))


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (b"multipart/report; report-type=delivery-status; boundary=x", True),
        (b'Multipart/Report;\r\n report-type="disposition-notification"', True),
        (b"multipart/report; report-type=feedback-report", False),
        (b"multipart/mixed; boundary=x", False),
        (b"garbage;;;===", False),
    ],
)
def test_is_report(content_type: bytes, expected: bool) -> None:
    message = parse_message(b"From: a@b.example\r\nContent-Type: " + content_type + b"\r\n\r\n")
    assert is_report(message) is expected


def test_gateway_spf_trusts_only_listed_ids() -> None:
    fields = [
        b" evil.example; spf=pass smtp.mailfrom=a@b.example",
        b" garbage ;;; ===",
        b" gw.example; dkim=pass header.d=b.example; spf=softfail smtp.mailfrom=a@b.example",
    ]
    stated = gateway_spf(fields, ["GW.example"])
    assert stated is not None
    assert (stated.result, stated.mail_from) == ("softfail", "a@b.example")
    assert gateway_spf(fields, []) is None
    assert gateway_spf([b" gw.example; spf=hardfail"], ["gw.example"]) is not None


@given(st.lists(st.binary(max_size=200), max_size=4))
def test_gateway_spf_never_raises(fields: list[bytes]) -> None:
    gateway_spf(fields, ["gw.example"])


def test_build_header_keeps_reasons_printable() -> None:
    header = build_header(
        "fwd.example",
        spf="fail",
        mail_from="",
        helo="mx.example",
        spf_reason='bad "quote"\r\n\x00and more',
        dkim=[DKIMCheck("a.example", "s", "fail", "body hash\r\nmismatch")],
    )
    assert "\r" not in header and "\n" not in header and "\x00" not in header
    assert "smtp.helo=mx.example" in header
    assert "dkim=fail" in header


def test_parse_networks() -> None:
    nets = parse_networks(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32"])
    assert len(nets) == 3
    with pytest.raises(ValueError, match="does not appear"):
        parse_networks(["not-an-ip"])


@given(st.binary(max_size=400), st.one_of(st.none(), st.text(max_size=40)))
def test_mailbox_envelope_reader_never_raises(data: bytes, mbox_from: str | None) -> None:
    from srsfwd.cli.mailbox import envelope_of

    result = envelope_of(data, mbox_from)
    assert isinstance(result, str) or result.rcpts == ("forwarded@forward.invalid",)


def test_mailbox_envelope_reader() -> None:
    from srsfwd.cli.mailbox import envelope_of
    from srsfwd.facts import Envelope

    stored = (
        b"Return-Path: <a@b.example>\nReceived: from h.example\n (h.example [192.0.2.4])"
        b" by mx; date\n\nbody"
    )
    assert envelope_of(stored, None) == Envelope(
        "192.0.2.4", "h.example", "a@b.example", ("forwarded@forward.invalid",)
    )
    assert envelope_of(stored.replace(b"<a@b.example>", b"<>"), None) == Envelope(
        "192.0.2.4", "h.example", "", ("forwarded@forward.invalid",)
    )
    no_path = stored.split(b"\n", 1)[1]
    assert envelope_of(no_path, "MAILER-DAEMON Thu Nov 26 10:00:00 2026") == Envelope(
        "192.0.2.4", "h.example", "", ("forwarded@forward.invalid",)
    )
    assert envelope_of(no_path, None) == "no Return-Path"


def test_build_header_folded_reads_back() -> None:
    header = build_header(
        "fwd.example",
        spf="pass",
        mail_from="a@b.example",
        helo="h",
        spf_reason="x; y",
        dkim=[DKIMCheck("b.example", "s", "pass"), DKIMCheck("c.example", "t", "fail", "a;b")],
        folded=True,
    )
    lines = header.split(";\r\n\t")
    assert len(lines) == 4
    assert lines[0] == "Authentication-Results: fwd.example"
    stated = gateway_spf([header.partition(":")[2].encode()], ["fwd.example"])
    assert stated is not None and stated.mail_from == "a@b.example"
