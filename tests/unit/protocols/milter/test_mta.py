"""MtaClient: the MTA side used by tests and benchmarks behaves as Postfix does."""

from __future__ import annotations

import pytest

from srsfwd.protocols.milter import (
    CHUNK_SIZE,
    Body,
    Command,
    Connect,
    Continue,
    Data,
    DefineMacros,
    EndOfHeaders,
    EndOfMessage,
    Family,
    Mail,
    MilterCodec,
    MilterHeaderField,
    Negotiation,
    ProtocolFlag,
    Rcpt,
)
from srsfwd.protocols.milter.mta import MtaClient


def agreed_client(negotiation: Negotiation | None = None) -> MtaClient:
    client = MtaClient()
    conn = MilterCodec(negotiation)
    conn.feed(client.encode(client.offer))
    assert conn.options_reply is not None
    client.receive(conn.send(conn.options_reply))
    return client


def test_client_offers_what_postfix_offers() -> None:
    offer = MtaClient().offer
    assert (offer.version, int(offer.actions), int(offer.protocol)) == (6, 0x1FF, 0x1FFFFF)


def test_client_remembers_the_agreement() -> None:
    client = agreed_client()
    assert client.agreed is not None
    assert client.agreed.protocol & ProtocolFlag.HDR_LEADSPC


def test_expects_reply_needs_the_agreement_first() -> None:
    with pytest.raises(RuntimeError, match="OPTNEG"):
        MtaClient().expects_reply(Mail("a@x"))


def test_expects_reply_follows_the_agreed_flags() -> None:
    client = agreed_client()
    assert client.expects_reply(Mail("a@x"))
    assert not client.expects_reply(MilterHeaderField("A", b"b"))
    assert client.expects_reply(EndOfMessage())


def test_message_leaves_out_declined_events_but_keeps_their_macros() -> None:
    client = agreed_client()
    events = client.message(
        "a@example.org",
        ["b@example.net"],
        [("Subject", b" x")],
        b"hi\r\n",
        macros={Command.DATA: [("i", "QID")]},
    )
    assert events == [
        Mail("a@example.org"),
        Rcpt("b@example.net"),
        DefineMacros(Command.DATA, (("i", "QID"),)),
        MilterHeaderField("Subject", b" x"),
        Body(b"hi\r\n"),
        EndOfMessage(),
    ]
    assert Data() not in events
    assert EndOfHeaders() not in events


def test_message_body_is_sent_in_chunks_of_65535_bytes() -> None:
    body = b"x" * (2 * CHUNK_SIZE + 1)
    events = MtaClient().message("a@x", ["b@x"], [], body)
    chunks = [event.chunk for event in events if isinstance(event, Body)]
    assert [len(chunk) for chunk in chunks] == [CHUNK_SIZE, CHUNK_SIZE, 1]


def test_client_and_connection_hold_a_whole_conversation() -> None:
    client = agreed_client()
    conn = MilterCodec()
    conn.feed(client.encode(client.offer))
    assert conn.options_reply is not None
    conn.send(conn.options_reply)
    conn.feed(client.encode(Connect("h.example", Family.INET, 25, "192.0.2.1")))
    replies = []
    for event in client.message("a@x", ["b@x", "c@x"], [("To", b" b@x")], b"body\r\n"):
        conn.feed(client.encode(event))
        if client.expects_reply(event):
            replies += client.receive(conn.send(Continue()))
    # MAIL, two RCPTs and end of message were answered; nothing else was waited for.
    assert replies == [Continue()] * 4
    assert conn.message is not None
    assert conn.message.body == b"body\r\n"


def test_optneg_always_expects_a_reply() -> None:
    client = MtaClient()
    assert client.expects_reply(client.offer)
