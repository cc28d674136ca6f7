"""Canonicalisation: the same bytes as dkimpy's regexes, for any input.

Every test here runs twice: with the compiled scans (srsfwd/dkim/_canon.c, skipped where
it is not built) and with their Python forms forced, so both stay tested.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from unittest import mock

import dkim
import pytest
from dkim.canonicalization import Relaxed, Simple
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.dkim import canon
from srsfwd.dkim.canon import (
    Header,
    body_digest,
    parse_message,
    relaxed_body,
    relaxed_body_chunks,
    relaxed_header,
    select_headers,
    simple_body,
    simple_body_chunks,
    to_crlf,
)
from srsfwd.errors import SignatureError


@pytest.fixture(scope="module", params=["compiled", "python"], autouse=True)
def relaxed_step(request: pytest.FixtureRequest) -> Iterator[str]:
    """Which form of its whole-body scans canon uses in these tests."""
    if request.param == "compiled" and not canon.COMPILED:
        pytest.skip("the C extension is not built")
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "python":
            patch.setattr(canon, "_relaxed_lines", canon._relaxed_lines_python)
            patch.setattr(canon, "_find_bare_lf", canon._find_bare_lf_python)
        yield request.param


# Bodies made of the pieces that matter: spaces, tabs, CRLF, bare CR, text.
pieces = st.sampled_from([b" ", b"\t", b"\r\n", b"a", b"xyz", b"\r", b"  \t ", b"\xc3\xa9"])
bodies = st.lists(pieces, max_size=60).map(b"".join)


@given(bodies)
def test_relaxed_body_matches_dkimpy(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@given(bodies)
def test_simple_body_matches_dkimpy(body: bytes) -> None:
    assert simple_body(body) == Simple.canonicalize_body(body)


# Pieces cut small, so that bodies span many chunks: long runs, many empty lines, bare CR/LF.
chunk_sizes = st.integers(min_value=1, max_value=12)
long_pieces = st.sampled_from([b" " * 40, b"\r\n" * 9, b"\t \t", b"\n", b"word", b"\r\n"])
long_bodies = st.lists(st.one_of(pieces, long_pieces), max_size=80).map(b"".join)


@given(long_bodies, chunk_sizes)
def test_relaxed_body_in_chunks_matches_dkimpy(body: bytes, chunk: int) -> None:
    assert b"".join(relaxed_body_chunks(body, chunk)) == Relaxed.canonicalize_body(body)


@given(long_bodies, chunk_sizes)
def test_simple_body_in_chunks_matches_dkimpy(body: bytes, chunk: int) -> None:
    assert b"".join(simple_body_chunks(body, chunk)) == Simple.canonicalize_body(body)


@given(long_bodies)
def test_long_runs_and_many_empty_lines_match_dkimpy(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)
    assert simple_body(body) == Simple.canonicalize_body(body)


def reference_relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4 line by line, as plainly as it reads: in each CRLF-ended line, runs
    of spaces and tabs become one space and those at the line's end go; empty lines at the
    end go. Text after the last CRLF (no line end of its own) has its runs reduced and gets
    a CRLF, as dkimpy and srsfwd do."""
    *lines, unfinished = body.split(b"\r\n")
    canonical = [re.sub(rb"[ \t]+", b" ", line).rstrip(b" ") for line in lines]
    if unfinished:
        canonical.append(re.sub(rb"[ \t]+", b" ", unfinished))
    while canonical and not canonical[-1]:
        canonical.pop()
    return b"".join(line + b"\r\n" for line in canonical)


# Any bytes, and bytes drawn mostly from the ones that matter, so that runs and line ends
# are frequent.
any_bytes = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from([b" ", b"\t", b"\r", b"\n", b"\r\n", b"a", b"\x00"]), max_size=80).map(
        b"".join
    ),
)


@given(any_bytes)
def test_relaxed_body_is_the_rfc_line_by_line_on_any_bytes(body: bytes) -> None:
    assert relaxed_body(body) == reference_relaxed_body(body)


@given(any_bytes, chunk_sizes)
def test_relaxed_body_in_chunks_is_the_rfc_line_by_line_on_any_bytes(
    body: bytes, chunk: int
) -> None:
    assert b"".join(relaxed_body_chunks(body, chunk)) == reference_relaxed_body(body)


@given(long_bodies, chunk_sizes, st.integers(min_value=0, max_value=200))
def test_body_digest_hashes_the_first_length_bytes(body: bytes, chunk: int, length: int) -> None:
    canonical = Relaxed.canonicalize_body(body)
    digest, total = body_digest(relaxed_body_chunks(body, chunk), length)
    assert total == len(canonical)
    assert digest == hashlib.sha256(canonical[:length]).digest()


def test_a_body_of_a_million_spaces_squeezes_to_one_line() -> None:
    assert relaxed_body(b" " * 1_000_000) == b" \r\n"


def test_a_body_of_only_empty_lines_is_empty_in_relaxed_form() -> None:
    assert relaxed_body(b"\r\n" * 1_000_000) == b""
    assert simple_body(b"\r\n" * 1_000_000) == b"\r\n"


@pytest.mark.parametrize("empty_lines", [1, 31, 32, 33, 1000])
def test_many_empty_lines_after_text_go_as_dkimpy_drops_them(empty_lines: int) -> None:
    body = b"text \r\n" + b"\r\n" * empty_lines
    assert relaxed_body(body) == Relaxed.canonicalize_body(body) == b"text\r\n"
    assert simple_body(body) == Simple.canonicalize_body(body) == b"text \r\n"


@given(st.lists(st.sampled_from([b" ", b"\t", b"\r\n ", b"\r\n\t", b"v", b"a b"]), max_size=30))
def test_relaxed_header_matches_dkimpy(parts: list[bytes]) -> None:
    value = b"".join(parts)
    ((name, expected),) = Relaxed.canonicalize_headers([(b"Subject", value)])
    assert relaxed_header(b"Subject", value) + b"\r\n" == name + b":" + expected


def test_empty_body_hashes_as_the_rfc_says() -> None:
    import base64

    def bh(body: bytes) -> str:
        return base64.b64encode(hashlib.sha256(body).digest()).decode()

    assert bh(relaxed_body(b"")) == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    assert bh(simple_body(b"")) == "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="


def test_fold_right_after_the_colon_is_removed() -> None:
    assert relaxed_header(b"List-Unsubscribe", b"\r\n   <mailto:x@y>") == (
        b"list-unsubscribe:<mailto:x@y>"
    )


def test_lf_lines_become_crlf_and_bare_cr_stays() -> None:
    assert to_crlf(b"a\nb\r\nc\rd\n") == b"a\r\nb\r\nc\rd\r\n"


def test_parse_keeps_folded_values_and_body() -> None:
    msg = parse_message(b"Subject: a\n b\nFrom: x\n\nbody\n")
    assert msg.headers == (Header(b"Subject", b" a\r\n b"), Header(b"From", b" x"))
    assert msg.body == b"body\r\n"


def test_message_without_blank_line_is_all_header() -> None:
    assert parse_message(b"From: x\r\n").body == b""


def test_mbox_from_line_is_dropped() -> None:
    assert parse_message(b"From x@y Thu Nov 26\nFrom: x\n\nb\n").headers[0].name == b"From"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\r\nbody",
        b"not a header\r\n\r\n",
        b" continued: x\r\n\r\n",
        b"Bad Name: x\r\n\r\n",
        b"\x00\x01\x02",
    ],
)
def test_garbage_is_a_signature_error(data: bytes) -> None:
    with pytest.raises(SignatureError, match="not a mail message"):
        parse_message(data)


def test_white_space_before_the_colon_is_kept_on_the_wire() -> None:
    (subject,) = parse_message(b"Subject \t: Lunch\r\n\r\n").find("subject")
    assert subject.key == b"subject"
    assert subject.raw == b"Subject \t: Lunch"


def test_relaxed_form_drops_white_space_before_the_colon() -> None:
    assert relaxed_header(b"Subject \t", b" Lunch") == b"subject:Lunch"


def test_relaxed_form_of_an_obsolete_name_matches_dkimpy() -> None:
    ((name, value),) = Relaxed.canonicalize_headers([(b"Subject ", b" Lunch ")])
    assert relaxed_header(b"Subject ", b" Lunch ") + b"\r\n" == name + b":" + value


def _folded_header(lines: int) -> bytes:
    return b"X-Long: start\r\n" + b"".join(b" line %d\r\n" % i for i in range(lines))


def test_a_large_folded_header_is_parsed_whole() -> None:
    message = parse_message(b"From: x\r\n" + _folded_header(60_000) + b"\r\nbody\r\n")
    (long,) = message.find("x-long")
    assert long.value.count(b"\r\n") == 60_000
    assert long.value.endswith(b" line 59999")
    assert message.body == b"body\r\n"


def test_a_folded_header_is_assembled_once_not_line_by_line() -> None:
    with mock.patch.object(canon, "Header", wraps=Header) as built:
        parse_message(b"From: x\r\n" + _folded_header(1000) + b"\r\n")
    assert built.call_count == 2


def test_huge_header_section_is_refused() -> None:
    huge = b"X-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    with pytest.raises(SignatureError, match="larger than"):
        parse_message(b"From: x\r\n" + huge)


def test_select_headers_takes_from_the_bottom_and_oversigns() -> None:
    headers = (Header(b"From", b"1"), Header(b"To", b"2"), Header(b"From", b"3"))
    chosen = select_headers(headers, [b"from", b"from", b"from", b"to"])
    assert [h.value for h in chosen] == [b"3", b"1", b"2"]


names = st.sampled_from([b"from", b"to", b"subject", b"x"])


@given(st.lists(names, max_size=12), st.lists(names, max_size=12))
def test_select_headers_matches_dkimpy(present: list[bytes], listed: list[bytes]) -> None:
    headers = tuple(Header(name.title(), b" %d" % i) for i, name in enumerate(present))
    expected = dkim.select_headers([(h.name, h.value) for h in headers], listed)
    assert [(h.name, h.value) for h in select_headers(headers, listed)] == expected


@given(st.lists(st.sampled_from([b"a", b"\r\n", b"\n", b"\r", b" "]), max_size=40).map(b"".join))
def test_to_crlf_turns_every_bare_lf_into_crlf(data: bytes) -> None:
    assert to_crlf(data) == data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_a_cr_apart_from_the_lf_does_not_make_a_line_end() -> None:
    assert to_crlf(b"\ra\n") == b"\ra\r\n"
