"""Hypothesis properties of the milter codec: chunking, round trips, robustness."""

from __future__ import annotations

import itertools
import string

from hypothesis import given
from hypothesis import strategies as st

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter import (
    CHUNK_SIZE,
    Abort,
    Accept,
    ActionFlag,
    AddHeader,
    AddRecipient,
    Body,
    ChangeFrom,
    ChangeHeader,
    Command,
    Connect,
    Continue,
    Data,
    DefineMacros,
    DeleteRecipient,
    Discard,
    EndOfHeaders,
    EndOfMessage,
    Event,
    Family,
    Helo,
    InsertHeader,
    MacroStage,
    Mail,
    MilterCodec,
    MilterHeaderField,
    MilterReply,
    OptionNegotiation,
    OptionsReply,
    PacketDecoder,
    Progress,
    ProtocolFlag,
    Quarantine,
    Quit,
    QuitNewConnection,
    Rcpt,
    Reject,
    ReplaceBody,
    Skip,
    SmtpReply,
    Tempfail,
    Unknown,
    decode_command,
)
from srsfwd.protocols.milter.mta import MtaClient, ReplyDecoder, decode_reply, encode_command

# -- strategies -------------------------------------------------------------------------

atoms = st.text(string.ascii_letters + string.digits + "-._+=", min_size=1, max_size=20)
addresses = st.builds(lambda local, domain: f"{local}@{domain}.example", atoms, atoms)
esmtp_args = st.lists(st.builds(lambda k, v: f"{k}={v}", atoms, atoms), max_size=3).map(tuple)
header_names = st.text(
    "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ":"), min_size=1, max_size=30
)
nul_free = st.binary(max_size=200).map(lambda b: b.replace(b"\0", b""))
clean_text = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40)
macro_names = st.sampled_from(["i", "j", "{client_addr}", "{auth_authen}", "{rcpt_addr}"])
# The names an MTA may define (we only ask for well-formed ones).
defined_macro_names = macro_names | clean_text.filter(bool)
# What an SMTPUTF8 client may put in MAIL FROM or RCPT TO and Postfix passes on: any UTF-8
# but NUL, line breaks and angle brackets included.
hostile_addresses = addresses | clean_text.filter(bool)


def _connects() -> st.SearchStrategy[Connect]:
    inet = st.builds(
        Connect,
        atoms,
        st.sampled_from([Family.INET, Family.INET6, Family.UNIX]),
        st.integers(0, 65_535),
        atoms,
    )
    return inet | st.builds(Connect, atoms, st.just(Family.UNKNOWN))


events: st.SearchStrategy[Event] = st.one_of(
    st.builds(
        OptionNegotiation,
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1).map(ActionFlag),
        st.integers(0, 2**32 - 1).map(ProtocolFlag),
    ),
    st.builds(
        DefineMacros,
        st.sampled_from(list(Command)),
        st.lists(st.tuples(defined_macro_names, clean_text), max_size=4).map(tuple),
    ),
    _connects(),
    st.builds(Helo, clean_text),
    st.builds(Mail, hostile_addresses | st.just(""), esmtp_args),
    st.builds(Rcpt, hostile_addresses, esmtp_args),
    st.just(Data()),
    st.builds(MilterHeaderField, header_names, nul_free),
    st.just(EndOfHeaders()),
    st.builds(Body, st.binary(max_size=300)),
    st.builds(EndOfMessage, st.binary(max_size=50)),
    st.just(Abort()),
    st.just(Quit()),
    st.just(QuitNewConnection()),
    st.builds(Unknown, clean_text),
)

folded_values = st.lists(
    st.text(string.printable.replace("\r", "").replace("\n", "").replace("\x0b", ""), max_size=30),
    min_size=1,
    max_size=3,
).map(lambda lines: "\n\t".join(lines).encode())
reply_text = st.text(string.ascii_letters + string.digits + " %.,;:!-", max_size=40).map(str.strip)

replies: st.SearchStrategy[MilterReply] = st.one_of(
    st.sampled_from([Continue(), Accept(), Reject(), Tempfail(), Discard(), Skip(), Progress()]),
    st.builds(
        lambda code, a, b, t: SmtpReply(code, f"{str(code)[0]}.{a}.{b}", t),
        st.integers(400, 599),
        st.integers(0, 999),
        st.integers(0, 999),
        reply_text,
    ),
    st.builds(AddHeader, header_names, folded_values),
    st.builds(InsertHeader, st.integers(0, 1000), header_names, folded_values),
    st.builds(ChangeHeader, st.integers(1, 1000), header_names, folded_values),
    st.builds(ChangeFrom, addresses | st.just(""), esmtp_args),
    st.builds(AddRecipient, addresses, esmtp_args),
    st.builds(DeleteRecipient, addresses),
    st.builds(ReplaceBody, st.binary(max_size=300)),
    st.builds(Quarantine, st.text(string.ascii_letters + " ", max_size=30)),
    st.builds(
        OptionsReply,
        st.integers(0, 0xFF).map(ActionFlag),
        st.integers(0, 2**21 - 1).map(ProtocolFlag),
        st.dictionaries(
            st.sampled_from(list(MacroStage)), st.lists(macro_names, min_size=1).map(tuple)
        ),
    ),
)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# -- properties -------------------------------------------------------------------------


@given(st.lists(events, max_size=12))
def test_mta_encoder_and_decoder_round_trip(sample: list[Event]) -> None:
    for event in sample:
        packet = encode_command(event)
        assert decode_command(packet[4], packet[5:]) == event


@given(replies)
def test_reply_encoder_and_mta_decoder_round_trip(reply: MilterReply) -> None:
    packet = reply.encode()
    decoded = decode_reply(packet[4], packet[5:])
    assert decoded.encode() == packet


@given(st.lists(events, max_size=12), st.lists(st.integers(0, 10_000), max_size=8))
def test_any_chunking_gives_the_same_packets(sample: list[Event], cuts: list[int]) -> None:
    data = b"".join(encode_command(event) for event in sample)
    whole = PacketDecoder().feed(data)
    decoder = PacketDecoder()
    pieces = [packet for chunk in chunked(data, cuts) for packet in decoder.feed(chunk)]
    assert pieces == whole
    assert len(whole) == len(sample)


@given(
    st.lists(addresses, min_size=1, max_size=3),
    st.lists(st.tuples(header_names, nul_free), max_size=5),
    st.binary(max_size=3 * CHUNK_SIZE + 10),
    st.lists(st.integers(0, 300_000), max_size=6),
)
def test_any_chunking_of_a_session_gives_the_same_events_and_message(
    recipients: list[str], headers: list[tuple[str, bytes]], body: bytes, cuts: list[int]
) -> None:
    client = MtaClient()
    session: list[Event] = [
        client.offer,
        DefineMacros(Command.CONNECT, (("{client_addr}", "192.0.2.1"),)),
        Connect("mail.example", Family.INET, 25, "192.0.2.1"),
        Helo("mail.example"),
        *client.message("a@example.org", recipients, headers, body),
        Quit(),
    ]
    data = client.encode(*session)
    one = MilterCodec()
    whole = one.feed(data)
    other = MilterCodec()
    pieces = [event for chunk in chunked(data, cuts) for event in other.feed(chunk)]
    assert pieces == whole == session
    assert one.message == other.message
    assert one.message is not None
    assert one.message.body == body
    assert [h.name for h in one.message.headers] == [name for name, _ in headers]


@given(st.binary(max_size=400))
def test_arbitrary_bytes_raise_nothing_but_protocol_error(data: bytes) -> None:
    try:
        MilterCodec().feed(data)
    except ProtocolError:
        pass


@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=60)), max_size=10))
def test_arbitrary_packets_after_negotiation_raise_nothing_but_protocol_error(
    packets: list[tuple[int, bytes]],
) -> None:
    conn = MilterCodec()
    conn.feed(encode_command(MtaClient().offer))
    assert conn.options_reply is not None
    conn.send(conn.options_reply)
    conn.feed(encode_command(Connect("h", Family.INET, 1, "192.0.2.1")))
    for code, payload in packets:
        length = (len(payload) + 1).to_bytes(4, "big")
        try:
            conn.feed(length + bytes((code,)) + payload)
        except ProtocolError:
            return


@given(st.integers(0, 255), st.binary(max_size=200))
def test_arbitrary_reply_packets_raise_nothing_but_protocol_error(
    code: int, payload: bytes
) -> None:
    try:
        ReplyDecoder().feed((len(payload) + 1).to_bytes(4, "big") + bytes((code,)) + payload)
    except ProtocolError:
        pass


@given(st.integers(4096, 2**32 - 1), st.binary(max_size=100))
def test_oversized_packets_are_refused_without_buffering(length: int, tail: bytes) -> None:
    decoder = PacketDecoder(max_packet=4095)
    try:
        decoder.feed(length.to_bytes(4, "big") + tail)
    except ProtocolError:
        assert decoder.pending == 0
    else:
        raise AssertionError("oversized length accepted")
