"""What one milter connection holds is bounded: macros, recipients (length and count),
headers and body count against its budgets, whatever the MTA sends."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter import (
    MAX_MACROS,
    MAX_PACKET,
    ActionFlag,
    Body,
    Command,
    Connect,
    Continue,
    Data,
    DefineMacros,
    EndOfHeaders,
    EndOfMessage,
    Event,
    Family,
    Mail,
    MilterCodec,
    MilterHeaderField,
    OptionNegotiation,
    ProtocolFlag,
    Rcpt,
)
from srsfwd.protocols.milter.codec import MAX_ENVELOPE_FIELD, MAX_HEADERS, MAX_RECIPIENTS
from srsfwd.protocols.milter.mta import encode_command

CLIENT = Connect("mail.example.org", Family.INET, 40_000, "192.0.2.7")


def wire(*events: Event) -> bytes:
    return b"".join(encode_command(event) for event in events)


def in_a_transaction(max_message: int = 64 * 1024 * 1024) -> MilterCodec:
    """A connection with every event answered, MAIL sent."""
    conn = MilterCodec(max_message=max_message)
    conn.feed(wire(OptionNegotiation(6, ActionFlag(0x1FF), ProtocolFlag(0))))
    assert conn.options_reply is not None
    conn.send(conn.options_reply)
    for event in (CLIENT, Mail("alice@example.org")):
        conn.feed(encode_command(event))
        conn.send(Continue())
    return conn


def feed_answered(conn: MilterCodec, event: Event) -> None:
    conn.feed(encode_command(event))
    while conn.awaiting is not None:
        conn.send(Continue())


def flood_of_macros(rounds: int) -> list[DefineMacros]:
    return [
        DefineMacros(Command.RCPT, tuple((f"{{m{n}x{i}}}", "v" * 200) for i in range(100)))
        for n in range(rounds)
    ]


def test_a_macro_flood_is_a_protocol_error_before_it_is_held() -> None:
    conn = in_a_transaction()
    refused = None
    for event in flood_of_macros(1000):
        try:
            conn.feed(encode_command(event))
        except ProtocolError as exc:
            refused = exc
            break
        assert conn.held <= MAX_MACROS
    assert refused is not None and "macros" in str(refused)
    assert conn.held <= MAX_MACROS + MAX_PACKET


def test_macros_of_every_stage_count_against_one_budget() -> None:
    conn = MilterCodec()
    conn.feed(wire(OptionNegotiation(6, ActionFlag(0x1FF), ProtocolFlag(0))))
    half = (("{x}", "v" * (MAX_MACROS // 2)),)
    conn.feed(encode_command(DefineMacros(Command.CONNECT, half)))
    conn.feed(encode_command(DefineMacros(Command.CONNECT, half)))  # replaces the first
    with pytest.raises(ProtocolError, match="macros"):
        conn.feed(encode_command(DefineMacros(Command.HELO, half)))


def test_one_macro_packet_over_the_budget_is_refused_unread() -> None:
    conn = in_a_transaction()
    huge = DefineMacros(Command.RCPT, (("{x}", "v" * (MAX_MACROS + 1)),))
    with pytest.raises(ProtocolError, match="macros"):
        conn.feed(encode_command(huge))


def test_the_macros_postfix_sends_are_kept() -> None:
    conn = in_a_transaction()
    macros = (("i", "4F2A1"), ("{rcpt_addr}", "bob@example.net"))
    conn.feed(encode_command(DefineMacros(Command.RCPT, macros)))
    assert conn.macros["rcpt_addr"] == "bob@example.net"


def test_a_recipient_longer_than_any_mta_sends_is_a_protocol_error() -> None:
    conn = in_a_transaction()
    held = conn.held
    with pytest.raises(ProtocolError, match="RCPT"):
        conn.feed(encode_command(Rcpt("b" * (1024 * 1024 - 20) + "@x.example")))
    assert conn.held == held


def test_a_sender_longer_than_any_mta_sends_is_a_protocol_error() -> None:
    conn = in_a_transaction()
    with pytest.raises(ProtocolError, match="MAIL"):
        conn.feed(encode_command(Mail("a" * MAX_ENVELOPE_FIELD + "@x.example")))


def test_recipients_over_the_count_are_not_kept_and_refuse_the_message() -> None:
    conn = in_a_transaction()
    for n in range(MAX_RECIPIENTS + 50):
        feed_answered(conn, Rcpt(f"r{n}@example.net"))
    for event in (
        Data(),
        MilterHeaderField("From", b" a@example.org"),
        EndOfHeaders(),
        EndOfMessage(),
    ):
        feed_answered(conn, event)
    message = conn.message
    assert message is not None
    assert message.truncated
    assert len(message.recipients) == MAX_RECIPIENTS


def test_recipients_count_against_the_message_budget() -> None:
    conn = in_a_transaction(max_message=1000)
    for n in range(300):
        feed_answered(conn, Rcpt(f"recipient-{n}@example.net"))
        assert conn.held <= 1000 + MAX_ENVELOPE_FIELD
    feed_answered(conn, EndOfMessage())
    assert conn.message is not None and conn.message.truncated


def test_headers_over_the_count_are_not_kept_and_refuse_the_message() -> None:
    conn = in_a_transaction()
    feed_answered(conn, Rcpt("bob@example.net"))
    for n in range(MAX_HEADERS + 10):
        feed_answered(conn, MilterHeaderField("X", str(n).encode()))
    feed_answered(conn, EndOfMessage())
    message = conn.message
    assert message is not None
    assert message.truncated
    assert len(message.headers) == MAX_HEADERS


def test_held_is_zero_between_messages_but_for_the_connection_macros() -> None:
    conn = in_a_transaction()
    for event in (Rcpt("bob@example.net"), MilterHeaderField("From", b" a@b"), Body(b"x" * 5000)):
        feed_answered(conn, event)
    assert conn.held >= 5000
    feed_answered(conn, EndOfMessage())
    assert conn.held == 0


events = st.one_of(
    st.builds(
        DefineMacros,
        st.sampled_from([Command.CONNECT, Command.HELO, Command.MAIL, Command.RCPT]),
        st.lists(
            st.tuples(
                st.text("abcdefgh{}_", min_size=1, max_size=8),
                st.text("vwxyz .", max_size=3000),
            ),
            max_size=30,
        ).map(tuple),
    ),
    st.builds(Rcpt, st.text("abc@.", min_size=1, max_size=6000)),
    st.builds(MilterHeaderField, st.just("X"), st.binary(max_size=3000)),
    st.builds(Body, st.binary(max_size=20_000)),
)


@given(st.lists(events, max_size=60))
def test_whatever_arrives_the_connection_holds_no_more_than_its_budgets(
    sequence: list[Event],
) -> None:
    budget = 30_000
    conn = in_a_transaction(max_message=budget)
    for event in sequence:
        try:
            feed_answered(conn, event)
        except ProtocolError:
            break
        assert conn.held <= budget + MAX_MACROS + MAX_ENVELOPE_FIELD
