"""Organizational domains and relaxed alignment (RFC 7489 §3.1, §3.2) on the Public Suffix List."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.orgdomain import aligned, organizational_domain


@pytest.mark.parametrize(
    ("domain", "organizational"),
    [
        ("example.com", "example.com"),
        ("a.b.Example.COM.", "example.com"),
        ("mail.example.co.uk", "example.co.uk"),
        ("co.uk", "co.uk"),
        ("alice.github.io", "alice.github.io"),
        ("sender.example", "sender.example"),
        ("example", "example"),
    ],
)
def test_organizational_domain(domain: str, organizational: str) -> None:
    assert organizational_domain(domain) == organizational


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("example.com", "example.com", True),
        ("mail.example.com", "news.example.com", True),
        ("EXAMPLE.com.", "a.b.example.com", True),
        ("ample.com", "example.com", False),
        ("example.co.uk", "other.co.uk", False),
        ("co.uk", "example.co.uk", False),
        ("alice.github.io", "mallory.github.io", False),
        ("", "example.com", False),
        (None, "example.com", False),
    ],
)
def test_relaxed_alignment(first: str | None, second: str | None, expected: bool) -> None:
    assert aligned(first, second) is expected


@given(st.text(max_size=80), st.text(max_size=80))
def test_any_text_gives_an_answer_not_an_error(first: str, second: str) -> None:
    assert aligned(first, second) == aligned(second, first)
    assert isinstance(organizational_domain(first), str)
