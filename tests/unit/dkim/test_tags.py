"""DKIM tag lists (RFC 6376 §3.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.dkim.tags import parse_tag_list, without_whitespace
from srsfwd.errors import TagListError

names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,7}", fullmatch=True)
values = st.from_regex(r"[!-:<-~]([!-:<-~ ]{0,30}[!-:<-~])?", fullmatch=True)


@given(st.dictionaries(names, values, min_size=1, max_size=8), st.sampled_from(["", ";"]))
def test_round_trip_of_any_tag_list(tags: dict[str, str], end: str) -> None:
    unique = dict(tags.items())
    if len(set(unique)) != len(unique):
        return
    text = ";\r\n\t".join(f" {k} = {v} " for k, v in unique.items()) + end
    assert parse_tag_list(text.encode()) == {k: v.encode() for k, v in unique.items()}


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_raise_a_one_line_tag_list_error(data: bytes) -> None:
    error = ""
    try:
        parse_tag_list(data)
    except TagListError as exc:
        error = str(exc)
    # The reason goes into Authentication-Results and the log: no line break from the field.
    assert len(error.splitlines()) <= 1, error


def test_trailing_semicolon_is_allowed() -> None:
    assert parse_tag_list(b"v=1; a=rsa-sha256;") == {"v": b"1", "a": b"rsa-sha256"}


def test_duplicate_tag_is_an_error() -> None:
    with pytest.raises(TagListError, match="twice"):
        parse_tag_list(b"v=1; v=2")


def test_tag_without_equals_is_an_error() -> None:
    with pytest.raises(TagListError, match="no '='"):
        parse_tag_list(b"v=1; oops")


def test_name_starting_with_digit_is_an_error() -> None:
    with pytest.raises(TagListError, match="bad tag name"):
        parse_tag_list(b"1a=x")


def test_non_ascii_value_is_an_error() -> None:
    with pytest.raises(TagListError, match="not allowed"):
        parse_tag_list("n=caf\u00e9".encode())


def test_folded_base64_loses_its_whitespace() -> None:
    assert without_whitespace(b"ab\r\n cd\tef ") == b"abcdef"
