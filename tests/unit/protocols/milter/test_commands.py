"""MTA commands: byte-exact packets both ways, and malformed payloads refused.

The vectors are written out by hand from the protocol definition (sendmail's mfdef.h
and Postfix's milter8.c): 4-byte big-endian length of command byte plus payload, the
command byte, the payload.
"""

from __future__ import annotations

import pytest

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter import (
    Abort,
    ActionFlag,
    Body,
    Command,
    Connect,
    Data,
    DefineMacros,
    EndOfHeaders,
    EndOfMessage,
    Event,
    Family,
    Helo,
    Mail,
    MilterHeaderField,
    OptionNegotiation,
    ProtocolFlag,
    Quit,
    QuitNewConnection,
    Rcpt,
    Unknown,
    decode_command,
)
from srsfwd.protocols.milter.mta import encode_command

VECTORS: list[tuple[str, bytes, Event]] = [
    (
        "optneg",
        b"\x00\x00\x00\x0dO\x00\x00\x00\x06\x00\x00\x01\xff\x00\x1f\xff\xff",
        OptionNegotiation(6, ActionFlag(0x1FF), ProtocolFlag(0x1FFFFF)),
    ),
    (
        "macros",
        b"\x00\x00\x00\x27DCj\x00mx.example\x00{client_addr}\x00192.0.2.1\x00",
        DefineMacros(Command.CONNECT, (("j", "mx.example"), ("{client_addr}", "192.0.2.1"))),
    ),
    ("macros-empty", b"\x00\x00\x00\x02DT", DefineMacros(Command.DATA, ())),
    (
        "connect-inet",
        b"\x00\x00\x00\x1bCmail.example\x004\x00\x19192.0.2.1\x00",
        Connect("mail.example", Family.INET, 25, "192.0.2.1"),
    ),
    (
        "connect-inet6",
        b"\x00\x00\x00\x1eC[2001:db8::1]\x006\x01\xbb2001:db8::1\x00",
        Connect("[2001:db8::1]", Family.INET6, 443, "2001:db8::1"),
    ),
    (
        "connect-unix",
        b"\x00\x00\x00\x1aClocalhost\x00L\x00\x00/run/x.sock\x00",
        Connect("localhost", Family.UNIX, 0, "/run/x.sock"),
    ),
    ("connect-unknown", b"\x00\x00\x00\x0aCunknown\x00U", Connect("unknown", Family.UNKNOWN)),
    ("helo", b"\x00\x00\x00\x0eHmail.example\x00", Helo("mail.example")),
    (
        "mail",
        b"\x00\x00\x00\x2dM<alice@example.org>\x00SIZE=1024\x00BODY=8BITMIME\x00",
        Mail("alice@example.org", ("SIZE=1024", "BODY=8BITMIME")),
    ),
    ("mail-null-sender", b"\x00\x00\x00\x04M<>\x00", Mail("")),
    ("rcpt", b"\x00\x00\x00\x13R<bob@example.net>\x00", Rcpt("bob@example.net")),
    ("data", b"\x00\x00\x00\x01T", Data()),
    (
        "header-8bit",
        b"\x00\x00\x00\x10LSubject\x00 caf\xc3\xa9\x00",
        MilterHeaderField("Subject", b" caf\xc3\xa9"),
    ),
    ("eoh", b"\x00\x00\x00\x01N", EndOfHeaders()),
    ("body", b"\x00\x00\x00\x08BHello\r\n", Body(b"Hello\r\n")),
    ("eob", b"\x00\x00\x00\x01E", EndOfMessage()),
    ("abort", b"\x00\x00\x00\x01A", Abort()),
    ("quit", b"\x00\x00\x00\x01Q", Quit()),
    ("quit-nc", b"\x00\x00\x00\x01K", QuitNewConnection()),
    ("unknown", b"\x00\x00\x00\x0aUXFOO bar\x00", Unknown("XFOO bar")),
]


@pytest.mark.parametrize(("wire", "event"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_command_decodes_to_its_event(wire: bytes, event: Event) -> None:
    assert int.from_bytes(wire[:4], "big") == len(wire) - 4  # the vector itself is sound
    assert decode_command(wire[4], wire[5:]) == event


@pytest.mark.parametrize(("wire", "event"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_mta_encoder_writes_the_same_bytes(wire: bytes, event: Event) -> None:
    assert encode_command(event) == wire


def test_eob_with_a_final_chunk_keeps_it() -> None:
    assert decode_command(ord("E"), b"tail\r\n") == EndOfMessage(b"tail\r\n")


def test_optneg_ignores_bytes_after_the_three_words() -> None:
    event = decode_command(ord("O"), b"\x00\x00\x00\x06" + b"\x00" * 8 + b"extra")
    assert event == OptionNegotiation(6, ActionFlag.NONE, ProtocolFlag.NONE)


def test_helo_keeps_8bit_bytes_recoverable() -> None:
    event = decode_command(ord("H"), b"h\xffst\x00")
    assert isinstance(event, Helo)
    assert event.name.encode("utf-8", "surrogateescape") == b"h\xffst"


def test_mail_without_angle_brackets_is_taken_as_is() -> None:
    assert decode_command(ord("M"), b"alice@example.org\x00") == Mail("alice@example.org")


MALFORMED = [
    ("unknown-command", ord("Z"), b""),
    ("optneg-short", ord("O"), b"\x00\x00\x00\x06"),
    ("macro-no-code", ord("D"), b""),
    ("macro-bad-code", ord("D"), b"Zi\x00x\x00"),
    ("macro-odd-fields", ord("D"), b"Ci\x00"),
    ("macro-unterminated", ord("D"), b"Ci\x00x"),
    ("macro-empty-name", ord("D"), b"C\x00x\x00"),
    ("macro-name-not-utf8", ord("D"), b"C\xff\x00x\x00"),
    ("connect-no-nul", ord("C"), b"host"),
    ("connect-no-family", ord("C"), b"host\x00"),
    ("connect-bad-family", ord("C"), b"host\x00X\x00\x19a\x00"),
    ("connect-no-port", ord("C"), b"host\x004"),
    ("connect-short-port", ord("C"), b"host\x004\x00"),
    ("connect-address-unterminated", ord("C"), b"host\x004\x00\x19192.0.2.1"),
    ("connect-empty-address", ord("C"), b"host\x004\x00\x19\x00"),
    ("connect-trailing-data", ord("C"), b"host\x004\x00\x19a\x00b\x00"),
    ("connect-unknown-with-data", ord("C"), b"host\x00U\x00"),
    ("connect-host-not-utf8", ord("C"), b"h\xff\x004\x00\x19a\x00"),
    ("helo-unterminated", ord("H"), b"mail.example"),
    ("helo-two-strings", ord("H"), b"a\x00b\x00"),
    ("mail-empty", ord("M"), b""),
    ("mail-unterminated", ord("M"), b"<a@b>"),
    ("mail-not-utf8", ord("M"), b"<\xff@b>\x00"),
    ("mail-empty-arg", ord("M"), b"<a@b>\x00\x00"),
    ("rcpt-empty", ord("R"), b"<>\x00"),
    ("header-one-string", ord("L"), b"Subject\x00"),
    ("header-three-strings", ord("L"), b"Subject\x00a\x00b\x00"),
    ("header-empty-name", ord("L"), b"\x00value\x00"),
    ("header-name-with-colon", ord("L"), b"Sub:ject\x00v\x00"),
    ("header-name-8bit", ord("L"), b"Subj\xe9ct\x00v\x00"),
    ("data-with-payload", ord("T"), b"x"),
    ("eoh-with-payload", ord("N"), b"x"),
    ("abort-with-payload", ord("A"), b"x"),
    ("quit-with-payload", ord("Q"), b"x"),
    ("quit-nc-with-payload", ord("K"), b"x"),
    ("unknown-unterminated", ord("U"), b"XFOO"),
]


@pytest.mark.parametrize(
    ("code", "payload"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_payload_is_a_protocol_error(code: int, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_command(code, payload)
