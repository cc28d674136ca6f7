"""One parse per message, and the changes the pipeline returns instead of a new message."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.dkim.canon import MAX_HEADER_BYTES, Header
from srsfwd.errors import SignatureError
from srsfwd.message import (
    FieldChange,
    FieldRef,
    MessageChanges,
    ParsedMessage,
    header_from_line,
)

MESSAGE = (
    b"Authentication-Results: us; spf=pass\r\nFrom: a@example.org\r\n"
    b"Authentication-Results: them; dkim=pass\r\nSubject: x\r\n\tfolded\r\n\r\nbody\r\n"
)


def test_parse_converts_bare_line_feeds_once_and_keeps_the_body_in_place() -> None:
    parsed = ParsedMessage.parse(MESSAGE.replace(b"\r\n", b"\n"))
    assert parsed.to_bytes() == MESSAGE
    assert parsed.source[parsed.body_at :] == b"body\r\n"
    assert [h.key for h in parsed.headers][-1] == b"subject"


def test_a_message_already_in_wire_form_is_not_copied() -> None:
    parsed = ParsedMessage.parse(MESSAGE)
    assert parsed.source is MESSAGE
    assert MessageChanges().apply(parsed) is MESSAGE


def test_a_last_line_without_crlf_gets_one() -> None:
    assert ParsedMessage.parse(b"From: a@x\r\n\r\nbody").to_bytes().endswith(b"body\r\n")


def test_a_header_section_over_the_limit_is_not_parsed() -> None:
    big = b"X-Big: " + b"a" * MAX_HEADER_BYTES + b"\r\n\r\nbody\r\n"
    with pytest.raises(SignatureError, match="larger than"):
        ParsedMessage.parse(big)


def test_the_header_size_counts_each_field_with_its_line_end() -> None:
    assert ParsedMessage.parse(MESSAGE).header_size == MESSAGE.index(b"\r\n\r\n") + 2


def test_changes_delete_by_name_and_index_then_change_then_add() -> None:
    changes = MessageChanges(
        deleted=(FieldRef("Authentication-Results", 1),),
        changed=(FieldChange("From", 1, b" b@example.net"),),
        appended=(Header(b"Reply-To", b" a@example.org"),),
        inserted=(Header(b"X-Top", b" 1"), Header(b"X-Second", b" 2")),
    )
    assert changes.apply(ParsedMessage.parse(MESSAGE)) == (
        b"X-Top: 1\r\nX-Second: 2\r\nFrom: b@example.net\r\n"
        b"Authentication-Results: them; dkim=pass\r\nSubject: x\r\n\tfolded\r\n"
        b"Reply-To: a@example.org\r\n\r\nbody\r\n"
    )


def test_deleting_a_field_that_is_not_there_is_an_error() -> None:
    changes = MessageChanges(deleted=(FieldRef("Authentication-Results", 3),))
    with pytest.raises(ValueError, match="number 3"):
        changes.apply(ParsedMessage.parse(MESSAGE))


def test_fields_given_by_a_milter_give_the_same_message() -> None:
    fields = [(h.name, h.value) for h in ParsedMessage.parse(MESSAGE).headers]
    assert ParsedMessage.from_fields(fields, b"body\r\n").to_bytes() == MESSAGE


def test_a_header_line_becomes_a_field() -> None:
    assert header_from_line(b"DKIM-Signature: v=1;\r\n b=x\r\n") == Header(
        b"DKIM-Signature", b" v=1;\r\n b=x"
    )


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_give_a_clear_error(data: bytes) -> None:
    try:
        parsed = ParsedMessage.parse(data)
    except SignatureError:
        return
    again = ParsedMessage.parse(parsed.to_bytes())
    assert again.headers == parsed.headers
    assert again.source[again.body_at :] == parsed.source[parsed.body_at :]


@given(
    st.lists(st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=40)), max_size=5),
    st.binary(max_size=60),
)
def test_any_milter_fields_are_taken_or_refused_clearly(
    fields: list[tuple[bytes, bytes]], body: bytes
) -> None:
    try:
        parsed = ParsedMessage.from_fields(fields, body)
    except SignatureError:
        return
    assert len(parsed.headers) == len(fields)
