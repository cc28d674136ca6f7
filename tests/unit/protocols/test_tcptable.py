"""The tcp_table codec: %XX keys, line limits, postsrsd 1.x's refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.errors import ProtocolError
from srsfwd.protocols.tcptable import (
    MAX_LINE,
    Code,
    ReplyDecoder,
    Request,
    RequestDecoder,
    TcpTableReply,
    encode_reply,
    encode_request,
    quote,
    unquote,
)

keys = st.text(st.characters(codec="utf-8"), min_size=1, max_size=60)


@given(st.lists(st.builds(Request, keys), max_size=8), st.data())
def test_any_chunking_yields_the_same_requests(reqs: list[Request], data: st.DataObject) -> None:
    wire = b"".join(encode_request(r) for r in reqs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    decoder, got, last = RequestDecoder(), [], 0
    for cut in [*cuts, len(wire)]:
        got += decoder.feed(wire[last:cut])
        last = cut
    assert got == reqs
    assert decoder.error is None


@given(st.binary(max_size=200))
def test_quote_round_trips_and_leaves_no_space_or_newline(data: bytes) -> None:
    quoted = quote(data)
    assert unquote(quoted) == data
    assert not any(b in quoted for b in b" \r\n\t")


@given(st.binary(max_size=3000), st.data())
def test_garbage_never_raises_and_the_buffer_stays_bounded(
    garbage: bytes, data: st.DataObject
) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(garbage)), max_size=6)))
    decoder, last = RequestDecoder(), 0
    for cut in [*cuts, len(garbage)]:
        decoder.feed(garbage[last:cut])
        last = cut
        assert decoder.buffered <= MAX_LINE


@given(st.lists(st.builds(TcpTableReply, st.sampled_from(list(Code)), keys), max_size=6))
def test_found_replies_round_trip(replies: list[TcpTableReply]) -> None:
    found = [r for r in replies if r.code is Code.FOUND]
    wire = b"".join(encode_reply(r) for r in found)
    assert ReplyDecoder().feed(wire) == found


def test_keys_are_decoded_in_either_case_and_crlf_is_stripped() -> None:
    assert RequestDecoder().feed(b"get test%40otherdomain.com\r\nget a%2fb%2Fc\n") == [
        Request("test@otherdomain.com"),
        Request("a/b/c"),
    ]


def test_values_are_encoded_with_lower_case_hex_as_postsrsd() -> None:
    assert encode_reply(TcpTableReply(Code.FOUND, "SRS0=x=a b@example.com")) == (
        b"200 SRS0=x=a%20b@example.com\n"
    )
    assert encode_reply(TcpTableReply(Code.FOUND, "100%")) == b"200 100%25\n"


def test_reasons_are_one_line() -> None:
    assert encode_reply(TcpTableReply(Code.NOT_FOUND, "two\nlines")) == b"500 two lines\n"


@pytest.mark.parametrize(
    "line",
    [
        b"GET a@b\n",
        b"put a@b\n",
        b"get\n",
        b"get \n",
        b"get a%4\n",
        b"get a%zz@b\n",
        b"get " + b"a" * (MAX_LINE - 3) + b"\n",
    ],
)
def test_malformed_lines_are_refused(line: bytes) -> None:
    decoder = RequestDecoder()
    assert decoder.feed(line) == []
    assert isinstance(decoder.error, ProtocolError)


def test_an_endless_line_is_refused_before_its_end() -> None:
    decoder = RequestDecoder()
    decoder.feed(b"get " + b"a" * 2000)
    assert decoder.error is not None
    assert decoder.buffered == 0


def test_the_longest_line_postsrsd_takes_is_taken() -> None:
    line = b"get " + b"a" * (MAX_LINE - 4)
    assert RequestDecoder().feed(line + b"\n") == [Request("a" * (MAX_LINE - 4))]


@given(st.lists(st.builds(Request, keys), max_size=12), st.integers(1, 5), st.data())
def test_a_limit_hands_out_the_same_requests_in_batches(
    reqs: list[Request], limit: int, data: st.DataObject
) -> None:
    wire = b"".join(encode_request(r) for r in reqs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=4)))
    decoder, got, last = RequestDecoder(), [], 0
    for cut in [*cuts, len(wire)]:
        got += decoder.feed(wire[last:cut], limit)
        while decoder.backlog:
            got += decoder.feed(b"", limit)
        last = cut
    assert got == reqs
    assert decoder.error is None


@given(st.one_of(st.binary(max_size=80), keys.map(lambda k: encode_request(Request(k)))))
def test_a_plain_key_is_what_feed_would_decode(data: bytes) -> None:
    key = RequestDecoder().plain_key(data)
    if key is not None:
        decoder = RequestDecoder()
        assert decoder.feed(data) == [Request(key)]
        assert decoder.error is None


@given(st.one_of(st.binary(max_size=80), keys.map(lambda k: encode_request(Request(k)))))
def test_a_plain_key_reads_a_read_buffer_up_to_its_end(data: bytes) -> None:
    read_buffer = bytearray(data + b"get rest\nof the buffer")
    assert RequestDecoder().plain_key(read_buffer, len(data)) == RequestDecoder().plain_key(data)


def test_postfixs_request_is_plain_and_anything_else_goes_through_feed() -> None:
    decoder = RequestDecoder()
    assert decoder.plain_key(b"get alice@example.org\n") == "alice@example.org"
    for other in (b"get a%40b\n", b"get a\r\n", b"get a\nget b\n", b"get \n", b"put a\n"):
        assert decoder.plain_key(other) is None
    assert decoder.plain_key(b"get " + b"a" * (MAX_LINE - 4) + b"\n") is not None
    assert decoder.plain_key(b"get " + b"a" * (MAX_LINE - 3) + b"\n") is None
    decoder.feed(b"get half")
    assert decoder.plain_key(b"get alice@example.org\n") is None
