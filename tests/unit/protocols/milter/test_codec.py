"""MilterCodec: negotiation, the order of commands, the message built, and what we
may send when."""

from __future__ import annotations

import pytest

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter import (
    DEFAULT_ACTIONS,
    DEFAULT_MACROS,
    Abort,
    Accept,
    ActionFlag,
    AddHeader,
    AddRecipient,
    Body,
    ChangeFrom,
    Command,
    Connect,
    Continue,
    Data,
    DefineMacros,
    Discard,
    EndOfHeaders,
    EndOfMessage,
    Event,
    Family,
    Helo,
    InsertHeader,
    Mail,
    MilterCodec,
    MilterHeaderField,
    Negotiation,
    OptionNegotiation,
    Progress,
    ProtocolFlag,
    Quit,
    QuitNewConnection,
    Rcpt,
    Reject,
    Skip,
    SmtpReply,
    Stage,
    Unknown,
)
from srsfwd.protocols.milter.mta import MtaClient, encode_command

ALL_FLAGS = ProtocolFlag(0x1FFFFF)
CLIENT = Connect("mail.example.org", Family.INET, 40_000, "192.0.2.7")


def stage(conn: MilterCodec) -> Stage:
    """The stage, read through a call so that mypy does not narrow it across feeds."""
    return conn.stage


def awaiting(conn: MilterCodec) -> Command | None:
    """The awaited command, read through a call for the same reason."""
    return conn.awaiting


def wire(*events: Event) -> bytes:
    return b"".join(encode_command(event) for event in events)


def negotiated(
    negotiation: Negotiation | None = None, *, offer: ProtocolFlag = ALL_FLAGS
) -> MilterCodec:
    conn = MilterCodec(negotiation)
    conn.feed(wire(OptionNegotiation(6, ActionFlag(0x1FF), offer)))
    assert conn.options_reply is not None
    conn.send(conn.options_reply)
    return conn


def connected(negotiation: Negotiation | None = None) -> MilterCodec:
    conn = negotiated(negotiation)
    conn.feed(wire(CLIENT, Helo("mail.example.org")))
    return conn


def answer_all(conn: MilterCodec, events: list[Event]) -> None:
    """Feed events one by one, answering each awaited one with CONTINUE."""
    for event in events:
        conn.feed(encode_command(event))
        if conn.awaiting is not None:
            conn.send(Continue())


def transaction(body: bytes = b"Hi\r\n") -> list[Event]:
    return [
        Mail("alice@example.org", ("BODY=8BITMIME",)),
        Rcpt("bob@example.net"),
        Rcpt("carol@example.net"),
        Data(),
        MilterHeaderField("From", b" alice@example.org"),
        MilterHeaderField("Subject", b" caf\xc3\xa9"),
        EndOfHeaders(),
        Body(body),
        EndOfMessage(),
    ]


# -- negotiation ------------------------------------------------------------------------


def test_optneg_is_answered_with_the_options_reply() -> None:
    conn = MilterCodec()
    (event,) = conn.feed(wire(OptionNegotiation(6, ActionFlag(0x1FF), ProtocolFlag(0x1FFFFF))))
    assert conn.needs_reply(event)
    assert awaiting(conn) is Command.OPTNEG
    assert conn.options_reply is not None
    assert conn.send(conn.options_reply)[4:5] == b"O"
    assert stage(conn) is Stage.CONNECT


def test_negotiation_asks_for_our_actions_and_macros() -> None:
    conn = negotiated()
    assert conn.negotiated is not None
    assert conn.negotiated.actions == DEFAULT_ACTIONS | ActionFlag.SETSYMLIST
    assert dict(conn.negotiated.macros) == dict(DEFAULT_MACROS)


def test_negotiation_keeps_only_the_flags_the_mta_offers() -> None:
    conn = negotiated(offer=ProtocolFlag.NR_HDR | ProtocolFlag.NOUNKNOWN)
    assert conn.negotiated is not None
    assert conn.negotiated.protocol == ProtocolFlag.NR_HDR | ProtocolFlag.NOUNKNOWN


def test_without_no_reply_flags_every_event_is_answered() -> None:
    conn = negotiated(offer=ProtocolFlag.NONE)
    conn.feed(wire(CLIENT))
    assert awaiting(conn) is Command.CONNECT


def test_symbol_lists_are_left_out_when_the_mta_cannot_take_them() -> None:
    conn = MilterCodec()
    conn.feed(wire(OptionNegotiation(6, DEFAULT_ACTIONS, ProtocolFlag(0x1FFFFF))))
    assert conn.options_reply is not None
    assert not conn.options_reply.macros
    assert not conn.options_reply.actions & ActionFlag.SETSYMLIST


def test_protocol_version_below_6_is_refused() -> None:
    with pytest.raises(ProtocolError, match="version 2"):
        MilterCodec().feed(wire(OptionNegotiation(2, ActionFlag(0x3F), ProtocolFlag(0x7F))))


def test_mta_without_a_required_action_is_refused() -> None:
    conn = MilterCodec(Negotiation(required=ActionFlag.CHGFROM))
    with pytest.raises(ProtocolError, match="CHGFROM"):
        conn.feed(wire(OptionNegotiation(6, ActionFlag.ADDHDRS, ProtocolFlag(0x1FFFFF))))


def test_newer_mta_version_gets_version_6() -> None:
    conn = MilterCodec()
    conn.feed(wire(OptionNegotiation(7, ActionFlag(0x1FF), ProtocolFlag(0x1FFFFF))))
    assert conn.options_reply is not None
    assert conn.options_reply.version == 6


# -- order of commands --------------------------------------------------------------------

OUT_OF_ORDER: list[tuple[str, list[Event]]] = [
    ("body-before-mail", [Body(b"x")]),
    ("rcpt-before-mail", [Rcpt("b@example.net")]),
    ("data-before-rcpt", [Mail("a@example.org"), Data()]),
    ("header-before-rcpt", [Mail("a@example.org"), MilterHeaderField("A", b"b")]),
    ("eom-before-mail", [EndOfMessage()]),
    ("data-twice", [Mail("a@example.org"), Rcpt("b@example.net"), Data(), Data()]),
    ("rcpt-after-data", [Mail("a@example.org"), Rcpt("b@example.net"), Data(), Rcpt("c@x")]),
    (
        "header-after-body",
        [Mail("a@example.org"), Rcpt("b@example.net"), Body(b"x"), MilterHeaderField("A", b"b")],
    ),
    ("connect-twice", [CLIENT]),
    ("optneg-twice", [OptionNegotiation(6, ActionFlag.NONE, ProtocolFlag.NONE)]),
]


@pytest.mark.parametrize("events", [o[1] for o in OUT_OF_ORDER], ids=[o[0] for o in OUT_OF_ORDER])
def test_out_of_order_command_is_a_protocol_error(events: list[Event]) -> None:
    conn = connected(Negotiation(protocol=ProtocolFlag.NONE))
    with pytest.raises(ProtocolError):
        answer_all(conn, events)


def test_command_before_optneg_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="before option negotiation"):
        MilterCodec().feed(wire(CLIENT))


def test_helo_before_connect_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="before CONNECT"):
        negotiated().feed(wire(Helo("x")))


def test_anything_after_quit_is_a_protocol_error() -> None:
    conn = connected()
    conn.feed(wire(Quit()))
    assert stage(conn) is Stage.CLOSED
    with pytest.raises(ProtocolError, match="after QUIT"):
        conn.feed(wire(Helo("x")))


def test_declined_events_may_be_missing() -> None:
    conn = connected(Negotiation(protocol=ProtocolFlag.NOMAIL | ProtocolFlag.NOHDRS))
    answer_all(conn, [Rcpt("b@example.net"), Body(b"x"), EndOfMessage()])
    assert conn.message is not None
    assert conn.message.sender is None


def test_no_connect_negotiated_starts_in_session() -> None:
    conn = negotiated(Negotiation(protocol=ProtocolFlag.NOCONNECT))
    assert stage(conn) is Stage.SESSION
    conn.feed(wire(Helo("x")))


def test_mail_in_an_open_transaction_starts_a_new_one() -> None:
    conn = connected()
    answer_all(conn, [Mail("old@example.org"), Rcpt("b@example.net")])
    answer_all(conn, transaction())
    assert conn.message is not None
    assert conn.message.sender == "alice@example.org"
    assert len(conn.message.recipients) == 2


def test_helo_inside_a_transaction_aborts_it() -> None:
    conn = connected()
    answer_all(conn, [Mail("a@example.org"), Rcpt("b@example.net"), Helo("again")])
    assert stage(conn) is Stage.SESSION
    assert conn.helo == "again"
    with pytest.raises(ProtocolError):
        conn.feed(wire(Data()))


def test_abort_forgets_the_message_but_keeps_the_client() -> None:
    conn = connected()
    answer_all(conn, [Mail("a@example.org"), Rcpt("b@example.net"), Abort()])
    assert stage(conn) is Stage.SESSION
    assert conn.client == CLIENT
    answer_all(conn, transaction())
    assert conn.message is not None
    assert conn.message.client == CLIENT


def test_unknown_command_is_allowed_between_envelope_commands() -> None:
    conn = connected(Negotiation(protocol=ProtocolFlag.NONE))
    answer_all(conn, [Mail("a@example.org"), Unknown("XFOO"), Rcpt("b@example.net")])
    assert stage(conn) is Stage.RCPT


def test_quit_nc_waits_for_a_new_connect() -> None:
    conn = connected()
    conn.feed(wire(DefineMacros(Command.CONNECT, (("j", "mx"),)), QuitNewConnection()))
    assert stage(conn) is Stage.CONNECT
    assert conn.client is None
    assert not conn.macros
    conn.feed(wire(CLIENT))
    assert stage(conn) is Stage.SESSION


def test_many_messages_on_one_connection() -> None:
    conn = connected()
    for n in range(3):
        answer_all(conn, transaction(body=b"%d\r\n" % n))
        assert conn.message is not None
        assert conn.message.body == b"%d\r\n" % n


# -- the message --------------------------------------------------------------------------


def test_end_of_message_hands_over_the_whole_message() -> None:
    conn = connected()
    answer_all(conn, transaction())
    message = conn.message
    assert message is not None
    assert message.client == CLIENT
    assert message.helo == "mail.example.org"
    assert message.sender == "alice@example.org"
    assert message.sender_args == ("BODY=8BITMIME",)
    assert [r.recipient for r in message.recipients] == ["bob@example.net", "carol@example.net"]
    assert message.headers == (
        MilterHeaderField("From", b" alice@example.org"),
        MilterHeaderField("Subject", b" caf\xc3\xa9"),
    )
    assert message.body == b"Hi\r\n"
    assert not message.truncated


def test_body_chunks_and_final_eob_chunk_are_joined() -> None:
    conn = connected()
    answer_all(conn, [*transaction(b"one\r\n")[:-1], Body(b"two\r\n"), EndOfMessage(b"three\r\n")])
    assert conn.message is not None
    assert conn.message.body == b"one\r\ntwo\r\nthree\r\n"


def test_message_over_the_cap_is_truncated_and_counted() -> None:
    conn = MilterCodec(max_message=100)
    conn.feed(wire(OptionNegotiation(6, ActionFlag(0x1FF), ProtocolFlag(0x1FFFFF))))
    assert conn.options_reply is not None
    conn.send(conn.options_reply)
    conn.feed(wire(CLIENT))
    answer_all(conn, transaction(body=b"x" * 500))
    message = conn.message
    assert message is not None
    assert message.truncated
    assert len(message.headers) == 2  # kept: they came before the cap was reached
    assert message.body == b""
    # name + value + 3 per header (as a header line "name:value\r\n"), plus the body
    assert message.size == (4 + 18 + 3) + (7 + 6 + 3) + 500


def test_macros_merge_connection_and_message_names_without_braces() -> None:
    conn = negotiated()
    conn.feed(
        wire(
            DefineMacros(Command.CONNECT, (("{client_addr}", "192.0.2.7"), ("j", "mx"))),
            CLIENT,
        )
    )
    answer_all(
        conn,
        [
            DefineMacros(Command.MAIL, (("{auth_authen}", "alice"),)),
            Mail("alice@example.org"),
            DefineMacros(Command.RCPT, (("i", "4XyZ1"),)),
            Rcpt("bob@example.net"),
            EndOfMessage(),
        ],
    )
    assert conn.message is not None
    assert dict(conn.message.macros) == {
        "client_addr": "192.0.2.7",
        "j": "mx",
        "auth_authen": "alice",
        "i": "4XyZ1",
    }
    assert conn.message.queue_id == "4XyZ1"


def test_macros_of_a_skipped_event_are_kept() -> None:
    # Postfix sends DATA's macros even when the filter declined DATA itself.
    conn = connected()
    answer_all(
        conn,
        [
            Mail("a@example.org"),
            Rcpt("b@example.net"),
            DefineMacros(Command.DATA, (("i", "QID"),)),
            EndOfMessage(),
        ],
    )
    assert conn.message is not None
    assert conn.message.queue_id == "QID"


def test_message_macros_are_forgotten_after_abort() -> None:
    conn = connected()
    answer_all(
        conn,
        [DefineMacros(Command.MAIL, (("{mail_addr}", "a@x"),)), Mail("a@x"), Abort()],
    )
    assert "mail_addr" not in conn.macros


# -- what we may send ---------------------------------------------------------------------


def test_needs_reply_follows_the_no_reply_flags() -> None:
    conn = connected()
    assert not conn.needs_reply(CLIENT)
    assert not conn.needs_reply(MilterHeaderField("A", b"b"))
    assert not conn.needs_reply(Body(b"x"))
    assert conn.needs_reply(Mail("a@x"))
    assert conn.needs_reply(Rcpt("b@x"))
    assert conn.needs_reply(EndOfMessage())
    assert not conn.needs_reply(Abort())


def test_reply_when_none_is_awaited_is_refused() -> None:
    conn = connected()
    with pytest.raises(RuntimeError, match="no event awaits"):
        conn.send(Continue())


def test_action_before_end_of_message_is_refused() -> None:
    conn = connected()
    conn.feed(wire(Mail("a@x")))
    with pytest.raises(RuntimeError, match="before end of message"):
        conn.send(AddHeader("X-A", "b"))


def test_action_that_was_not_negotiated_is_refused() -> None:
    conn = connected(Negotiation(actions=ActionFlag.ADDHDRS))
    answer_all(conn, transaction()[:-1])
    conn.feed(wire(EndOfMessage()))
    with pytest.raises(RuntimeError, match="not negotiated"):
        conn.send(ChangeFrom("srs@fwd.example"))


def test_adding_a_recipient_with_args_needs_addrcpt_par() -> None:
    conn = connected()
    answer_all(conn, transaction()[:-1])
    conn.feed(wire(EndOfMessage()))
    conn.send(AddRecipient("d@example.net"))
    with pytest.raises(RuntimeError, match="ADDRCPT_PAR"):
        conn.send(AddRecipient("d@example.net", ("NOTIFY=NEVER",)))


def test_actions_then_a_final_reply_end_the_message() -> None:
    conn = connected()
    answer_all(conn, transaction()[:-1])
    conn.feed(wire(EndOfMessage()))
    out = conn.send(InsertHeader(0, "Authentication-Results", " mx.example; spf=pass"))
    out += conn.send(ChangeFrom("SRS0=x=y=example.org=alice@fwd.example"))
    out += conn.send(Progress())
    assert awaiting(conn) is Command.END_OF_MESSAGE
    out += conn.send(Accept())
    assert awaiting(conn) is None
    client = MtaClient()
    client.receive(conn.options_reply.encode() if conn.options_reply else b"")
    kinds = [type(r).__name__ for r in client.receive(out)]
    assert kinds == ["InsertHeader", "ChangeFrom", "Progress", "Accept"]


def test_options_reply_outside_negotiation_is_refused() -> None:
    conn = connected()
    conn.feed(wire(Mail("a@x")))
    assert conn.options_reply is not None
    with pytest.raises(RuntimeError, match="outside negotiation"):
        conn.send(conn.options_reply)


def test_other_reply_to_optneg_is_refused() -> None:
    conn = MilterCodec()
    conn.feed(wire(OptionNegotiation(6, ActionFlag(0x1FF), ProtocolFlag(0x1FFFFF))))
    with pytest.raises(RuntimeError, match="OPTNEG"):
        conn.send(Continue())


def test_discard_at_connect_is_refused() -> None:
    conn = negotiated(offer=ProtocolFlag.NONE)
    conn.feed(wire(CLIENT))
    with pytest.raises(RuntimeError, match="DISCARD"):
        conn.send(Discard())


def test_skip_needs_negotiation() -> None:
    conn = connected()
    conn.feed(wire(Mail("a@x")))
    with pytest.raises(RuntimeError, match="SKIP"):
        conn.send(Skip())


def test_rejecting_a_recipient_keeps_the_transaction() -> None:
    conn = connected()
    conn.feed(wire(Mail("a@x")))
    conn.send(Continue())
    conn.feed(wire(Rcpt("forged@fwd.example")))
    assert conn.send(SmtpReply(550, "5.1.1", "invalid SRS")).startswith(b"\x00\x00\x00")
    conn.feed(wire(Rcpt("good@fwd.example")))
    conn.send(Reject())
    assert stage(conn) is Stage.RCPT


def test_connection_stays_broken_after_a_protocol_error() -> None:
    conn = connected()
    with pytest.raises(ProtocolError):
        conn.feed(wire(Body(b"x")))
    with pytest.raises(ProtocolError):
        conn.feed(wire(Mail("a@x")))


def test_macros_show_the_connection_and_the_open_message() -> None:
    conn = negotiated()
    conn.feed(wire(DefineMacros(Command.CONNECT, (("j", "mx"),)), CLIENT))
    answer_all(conn, [DefineMacros(Command.MAIL, (("{mail_addr}", "a@x"),)), Mail("a@x")])
    assert dict(conn.macros) == {"j": "mx", "mail_addr": "a@x"}


def test_quit_followed_by_more_in_the_same_read_is_refused() -> None:
    conn = connected()
    with pytest.raises(ProtocolError, match="after QUIT"):
        conn.feed(wire(Quit(), Helo("x")))


def test_unknown_command_after_data_aborts_the_message() -> None:
    conn = connected(Negotiation(protocol=ProtocolFlag.NONE))
    answer_all(conn, [Mail("a@x"), Rcpt("b@x"), Data(), Unknown("XFOO")])
    assert stage(conn) is Stage.SESSION
    with pytest.raises(ProtocolError, match="before MAIL"):
        conn.feed(wire(Body(b"x")))


def test_abort_between_messages_is_harmless() -> None:
    conn = connected()
    conn.feed(wire(Abort()))
    assert stage(conn) is Stage.SESSION


def test_quit_nc_without_connect_events_goes_straight_to_session() -> None:
    conn = negotiated(Negotiation(protocol=ProtocolFlag.NOCONNECT))
    conn.feed(wire(Helo("x"), QuitNewConnection()))
    assert stage(conn) is Stage.SESSION


def test_nothing_needs_a_reply_before_negotiation_but_optneg() -> None:
    conn = MilterCodec()
    assert not conn.needs_reply(Mail("a@x"))
    assert conn.needs_reply(OptionNegotiation(6, ActionFlag.NONE, ProtocolFlag.NONE))
