"""The socketmap codec: any chunking gives the same requests; broken framing is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.errors import ProtocolError
from srsfwd.protocols.socketmap import (
    MAX_PAYLOAD,
    ReplyDecoder,
    Request,
    RequestDecoder,
    SocketmapReply,
    Status,
    encode_reply,
    encode_request,
    netstring,
)

_NAME_CHARACTERS = st.characters(codec="utf-8", exclude_characters=" ")
names = st.one_of(st.sampled_from(["forward", "reverse", "other"]), st.text(_NAME_CHARACTERS))
# A key may hold spaces, commas, colons, line breaks: only the netstring length frames it.
keys = st.one_of(
    st.text(_NAME_CHARACTERS, max_size=60),
    st.text(st.characters(codec="utf-8"), max_size=60),
    st.lists(st.sampled_from([" ", ",", ":", "0", "\n", "\r", "\0", "\u2028", "é"])).map("".join),
)
requests = st.builds(Request, names, keys)


def feed_in_pieces(decoder: RequestDecoder, wire: bytes, cuts: list[int]) -> list[Request]:
    got: list[Request] = []
    last = 0
    for cut in [*sorted(cuts), len(wire)]:
        got += decoder.feed(wire[last:cut])
        last = cut
    return got


@given(st.lists(requests, max_size=8), st.data())
def test_any_chunking_yields_the_same_requests(reqs: list[Request], data: st.DataObject) -> None:
    wire = b"".join(encode_request(r) for r in reqs)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=10))
    decoder = RequestDecoder()
    assert feed_in_pieces(decoder, wire, cuts) == reqs
    assert decoder.error is None
    assert decoder.buffered == 0


@given(st.lists(requests, min_size=1, max_size=5))
def test_byte_by_byte_is_the_same_as_all_at_once(reqs: list[Request]) -> None:
    wire = b"".join(encode_request(r) for r in reqs)
    decoder = RequestDecoder()
    assert [r for i in range(len(wire)) for r in decoder.feed(wire[i : i + 1])] == reqs


@given(st.binary(max_size=300), st.data())
def test_garbage_never_raises_and_the_buffer_stays_bounded(
    garbage: bytes, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(garbage)), max_size=6))
    decoder = RequestDecoder()
    feed_in_pieces(decoder, garbage, cuts)
    assert decoder.buffered <= MAX_PAYLOAD + 8


@given(
    st.lists(st.builds(SocketmapReply, st.sampled_from(list(Status)), keys), max_size=6), st.data()
)
def test_replies_round_trip(replies: list[SocketmapReply], data: st.DataObject) -> None:
    wire = b"".join(encode_reply(r) for r in replies)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder, got, last = ReplyDecoder(), [], 0
    for cut in [*cuts, len(wire)]:
        got += decoder.feed(wire[last:cut])
        last = cut
    assert got == replies


def test_a_request_without_a_space_is_a_map_name_with_an_empty_key() -> None:
    assert RequestDecoder().feed(b"16:test@example.com,") == [Request("test@example.com", "")]


def test_the_key_keeps_further_spaces() -> None:
    assert RequestDecoder().feed(b"11:forward a b,") == [Request("forward", "a b")]


# postsrsd 2.x's protocol violations (tests/blackbox/socketmap.py), and some of ours.
@pytest.mark.parametrize(
    "wire",
    [
        b"0:,",
        b"1024:forward " + b"a" * 1011 + b",",
        b"get test@example.com\n",
        b"18446744073709551616:some data...",
        b"28:forward test@otherdomain.com;",
        b"-1:x,",
        b"+5:hello,",
        b" 5:hello,",
        b"5x:hello,",
        b"00000000005:hello,",
    ],
)
def test_broken_framing_is_refused(wire: bytes) -> None:
    decoder = RequestDecoder()
    assert decoder.feed(wire) == []
    assert isinstance(decoder.error, ProtocolError)
    assert decoder.feed(netstring(b"forward a@b")) == []  # dead after an error
    assert decoder.buffered == 0


def test_requests_before_the_breakage_are_still_returned() -> None:
    decoder = RequestDecoder()
    got = decoder.feed(b"9:forward a,9:reverse b,3:xyz;")
    assert got == [Request("forward", "a"), Request("reverse", "b")]
    assert decoder.error is not None


def test_an_over_long_length_is_refused_before_the_payload_arrives() -> None:
    decoder = RequestDecoder()
    assert decoder.feed(b"1024:") == []
    assert decoder.error is not None


def test_a_length_still_arriving_is_kept() -> None:
    decoder = RequestDecoder()
    assert decoder.feed(b"10") == []
    assert decoder.error is None
    assert decoder.feed(b"23:forward ") == []
    assert decoder.feed(b"a" * 1015 + b",") == [Request("forward", "a" * 1015)]


def test_replies_are_netstrings() -> None:
    assert encode_reply(SocketmapReply(Status.OK, "a@b")) == b"6:OK a@b,"
    assert encode_reply(SocketmapReply(Status.NOTFOUND, "")) == b"9:NOTFOUND ,"


def test_reply_decoder_refuses_an_unknown_status() -> None:
    with pytest.raises(ProtocolError):
        ReplyDecoder().feed(b"7:MAYBE x,")


@given(st.lists(requests, max_size=12), st.integers(1, 5), st.data())
def test_a_limit_hands_out_the_same_requests_in_batches(
    reqs: list[Request], limit: int, data: st.DataObject
) -> None:
    wire = b"".join(encode_request(r) for r in reqs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    decoder, got, last = RequestDecoder(), [], 0
    for cut in [*cuts, len(wire)]:
        batch = decoder.feed(wire[last:cut], limit)
        assert len(batch) <= limit
        got += batch
        while decoder.backlog:
            batch = decoder.feed(b"", limit)
            assert len(batch) <= limit
            got += batch
        last = cut
    assert got == reqs


@given(st.one_of(st.binary(max_size=80), requests.map(encode_request)))
def test_a_plain_request_is_what_feed_would_decode(data: bytes) -> None:
    request = RequestDecoder().plain_request(data)
    if request is not None:
        decoder = RequestDecoder()
        assert decoder.feed(data) == [request]
        assert decoder.error is None


def test_postfixs_request_is_plain_and_anything_else_goes_through_feed() -> None:
    decoder = RequestDecoder()
    assert decoder.plain_request(b"21:forward a@example.org,") == Request(
        "forward", "a@example.org"
    )
    for other in (b"3:a b,3:a b,", b"3:a b;", b"0:,", b"x:a,", b"4:a b,", b"3:a b"):
        assert decoder.plain_request(other) is None
    too_long = b"a" * (MAX_PAYLOAD + 1)
    assert decoder.plain_request(netstring(too_long)) is None
    decoder.feed(b"3:a")
    assert decoder.plain_request(b"3:a b,") is None
