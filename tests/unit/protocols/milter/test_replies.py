"""Filter replies: byte-exact packets both ways, and values Postfix would refuse rejected."""

from __future__ import annotations

import pytest

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter import (
    Accept,
    ActionFlag,
    AddHeader,
    AddRecipient,
    ChangeFrom,
    ChangeHeader,
    Continue,
    DeleteRecipient,
    Discard,
    InsertHeader,
    MacroStage,
    MilterReply,
    OptionsReply,
    Progress,
    ProtocolFlag,
    Quarantine,
    Reject,
    ReplaceBody,
    Skip,
    SmtpReply,
    Tempfail,
)
from srsfwd.protocols.milter.mta import decode_reply

SRS = "SRS0=HHH=TT=example.org=alice@fwd.example"

VECTORS: list[tuple[str, bytes, MilterReply]] = [
    ("continue", b"\x00\x00\x00\x01c", Continue()),
    ("accept", b"\x00\x00\x00\x01a", Accept()),
    ("reject", b"\x00\x00\x00\x01r", Reject()),
    ("tempfail", b"\x00\x00\x00\x01t", Tempfail()),
    ("discard", b"\x00\x00\x00\x01d", Discard()),
    ("skip", b"\x00\x00\x00\x01s", Skip()),
    ("progress", b"\x00\x00\x00\x01p", Progress()),
    (
        "replycode-percent-doubled",
        b"\x00\x00\x00\x18y550 5.7.1 100%% forged\x00",
        SmtpReply(550, "5.7.1", "100% forged"),
    ),
    (
        "addheader",
        b"\x00\x00\x00\x16hX-Srsfwd-Pool\x00 relay\x00",
        AddHeader("X-Srsfwd-Pool", b" relay"),
    ),
    (
        "insheader-top",
        b"\x00\x00\x00\x32i\x00\x00\x00\x00Authentication-Results\x00 mx.example; spf=pass\x00",
        InsertHeader(0, "Authentication-Results", b" mx.example; spf=pass"),
    ),
    (
        "chgheader-delete",
        b"\x00\x00\x00\x0em\x00\x00\x00\x01Subject\x00\x00",
        ChangeHeader(1, "Subject", b""),
    ),
    ("chgfrom", b"\x00\x00\x00\x2de<" + SRS.encode() + b">\x00", ChangeFrom(SRS)),
    (
        "chgfrom-args",
        b"\x00\x00\x00\x17e<a@b.example>\x00SIZE=10\x00",
        ChangeFrom("a@b.example", ("SIZE=10",)),
    ),
    ("addrcpt", b"\x00\x00\x00\x15+<carol@example.com>\x00", AddRecipient("carol@example.com")),
    (
        "addrcpt-par",
        b"\x00\x00\x00\x222<carol@example.com>\x00NOTIFY=NEVER\x00",
        AddRecipient("carol@example.com", ("NOTIFY=NEVER",)),
    ),
    ("delrcpt", b"\x00\x00\x00\x13-<bob@example.net>\x00", DeleteRecipient("bob@example.net")),
    ("replbody", b"\x00\x00\x00\x06bnew\r\n", ReplaceBody(b"new\r\n")),
    ("quarantine", b"\x00\x00\x00\x06qspam\x00", Quarantine("spam")),
    (
        "optneg-with-symlist",
        b"\x00\x00\x00\x1fO\x00\x00\x00\x06\x00\x00\x01\x41\x00\x00\x01\x80"
        b"\x00\x00\x00\x00{client_addr}\x00",
        OptionsReply(
            ActionFlag.ADDHDRS | ActionFlag.CHGFROM | ActionFlag.SETSYMLIST,
            ProtocolFlag.NR_HDR | ProtocolFlag.NOUNKNOWN,
            {MacroStage.CONNECT: ("{client_addr}",)},
        ),
    ),
]


@pytest.mark.parametrize(("wire", "reply"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_reply_encodes_to_its_bytes(wire: bytes, reply: MilterReply) -> None:
    assert int.from_bytes(wire[:4], "big") == len(wire) - 4
    assert reply.encode() == wire


@pytest.mark.parametrize(("wire", "reply"), [v[1:] for v in VECTORS], ids=[v[0] for v in VECTORS])
def test_mta_decoder_reads_the_reply_back(wire: bytes, reply: MilterReply) -> None:
    assert decode_reply(wire[4], wire[5:]) == reply


def test_options_reply_announces_setsymlist_when_it_lists_macros() -> None:
    reply = OptionsReply(ActionFlag.ADDHDRS, ProtocolFlag.NONE, {MacroStage.END_OF_MESSAGE: ("i",)})
    assert reply.encode()[9:13] == b"\x00\x00\x01\x01"


def test_header_value_may_be_text() -> None:
    assert AddHeader("X-A", " b").encode() == AddHeader("X-A", b" b").encode()


def test_folded_header_value_is_allowed() -> None:
    assert b"a=1;\n\tb=2" in InsertHeader(0, "DKIM-Signature", " a=1;\n\tb=2").encode()


def test_addresses_lose_their_angle_brackets() -> None:
    assert ChangeFrom("<a@b.example>") == ChangeFrom("a@b.example")


def test_null_sender_is_encoded_as_empty_brackets() -> None:
    assert ChangeFrom("").encode() == b"\x00\x00\x00\x04e<>\x00"


def test_smtp_reply_line_reads_as_the_client_sees_it() -> None:
    assert SmtpReply(451, "4.7.1", "try later").line == "451 4.7.1 try later"
    assert SmtpReply(554, "5.7.0").line == "554 5.7.0"


BAD = [
    ("code-2xx", lambda: SmtpReply(250, "2.0.0", "ok")),
    ("code-6xx", lambda: SmtpReply(600, "5.0.0", "x")),
    ("status-class-mismatch", lambda: SmtpReply(550, "4.7.1", "x")),
    ("status-malformed", lambda: SmtpReply(550, "5.7", "x")),
    ("reply-text-crlf", lambda: SmtpReply(550, "5.7.1", "a\r\n550 b")),
    ("reply-text-nul", lambda: SmtpReply(550, "5.7.1", "a\0")),
    ("reply-text-non-ascii", lambda: SmtpReply(550, "5.7.1", "caf\u00e9")),
    ("header-name-colon", lambda: AddHeader("X:A", "v")),
    ("header-name-space", lambda: AddHeader("X A", "v")),
    ("header-name-empty", lambda: AddHeader("", "v")),
    ("header-value-nul", lambda: AddHeader("X-A", "a\0b")),
    ("header-value-cr", lambda: AddHeader("X-A", "a\r\n\tb")),
    ("header-value-bare-lf", lambda: AddHeader("X-A", "a\nb")),
    ("insheader-negative-index", lambda: InsertHeader(-1, "X-A", "v")),
    ("chgheader-index-zero", lambda: ChangeHeader(0, "X-A", "v")),
    ("chgfrom-newline", lambda: ChangeFrom("a@b\n")),
    ("chgfrom-inner-bracket", lambda: ChangeFrom("a<b@c")),
    ("chgfrom-arg-with-space", lambda: ChangeFrom("a@b", ("A B",))),
    ("addrcpt-empty", lambda: AddRecipient("<>")),
    ("replbody-too-big", lambda: ReplaceBody(b"x" * 65_536)),
    ("quarantine-newline", lambda: Quarantine("a\nb")),
    (
        "symlist-bad-name",
        lambda: OptionsReply(ActionFlag.NONE, ProtocolFlag.NONE, {MacroStage.CONNECT: ("a b",)}),
    ),
]


@pytest.mark.parametrize("make", [b[1] for b in BAD], ids=[b[0] for b in BAD])
def test_reply_postfix_would_refuse_is_a_value_error(make: object) -> None:
    assert callable(make)
    with pytest.raises(ValueError):  # noqa: PT011 - each case names its reason
        make()


MALFORMED = [
    ("unknown-code", ord("Z"), b""),
    ("unsupported-shutdown", ord("4"), b""),
    ("continue-with-data", ord("c"), b"x"),
    ("replycode-unterminated", ord("y"), b"550 5.7.1 x"),
    ("replycode-not-a-code", ord("y"), b"abc 5.7.1 x\x00"),
    ("replycode-2xx", ord("y"), b"250 2.0.0 ok\x00"),
    ("addheader-one-string", ord("h"), b"X-A\x00"),
    ("insheader-no-index", ord("i"), b"\x00\x00"),
    ("chgfrom-three-strings", ord("e"), b"<a@b>\x00x\x00y\x00"),
    ("optneg-short", ord("O"), b"\x00\x00\x00\x06"),
    ("optneg-bad-stage", ord("O"), b"\x00" * 11 + b"\x06" + b"\x00\x00\x00\x09i\x00"),
    ("optneg-symlist-unterminated", ord("O"), b"\x00" * 11 + b"\x06" + b"\x00\x00\x00\x00i"),
    ("optneg-symlist-truncated", ord("O"), b"\x00" * 11 + b"\x06" + b"\x00\x00"),
]


@pytest.mark.parametrize(
    ("code", "payload"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_reply_is_a_protocol_error(code: int, payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_reply(code, payload)


def test_replycode_decoder_undoes_percent_like_postfix() -> None:
    # Postfix turns "%%" into "%" and drops a lone "%".
    assert decode_reply(ord("y"), b"550 5.7.1 50%% a%b\x00") == SmtpReply(550, "5.7.1", "50% ab")


def test_replycode_decoder_drops_a_trailing_lone_percent() -> None:
    assert decode_reply(ord("y"), b"550 5.7.1 100%\x00") == SmtpReply(550, "5.7.1", "100")
