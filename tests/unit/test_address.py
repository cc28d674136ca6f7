"""Envelope address checks and postsrsd's domain-set rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd import AddressError
from srsfwd.address import DomainSet, read_domains_file, split_address, strip_brackets


def test_split_takes_local_part_and_domain() -> None:
    assert split_address("a.b+c@Example.ORG") == ("a.b+c", "Example.ORG")


def test_strip_brackets_takes_off_one_pair() -> None:
    assert strip_brackets("<a@b>") == "a@b"
    assert strip_brackets("<>") == ""
    assert strip_brackets("a@b") == "a@b"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("nobody", "no @"),
        ("@x.example", "empty local part"),
        ("a@", "empty domain"),
        ("a@b@c", "more than one @"),
        ('"q"@x.example', "quoted"),
        ("a b@x.example", "spaces"),
        ("a@x..example", "not a valid domain"),
        ("ä@x.example", "not ASCII"),
        ("a@" + "x" * 600, "longer than 512"),
    ],
)
def test_bad_addresses_say_why(address: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        split_address(address)


@given(st.text(max_size=100))
def test_split_raises_only_address_errors(text: str) -> None:
    try:
        split_address(text)
    except AddressError:
        pass


def test_domain_set_exact_entry_matches_only_itself() -> None:
    domains = DomainSet(["example.com"])
    assert "EXAMPLE.com" in domains
    assert "sub.example.com" not in domains


@pytest.mark.parametrize("entry", [".example.com", "*.example.com"])
def test_domain_set_dot_entry_matches_subdomains_only(entry: str) -> None:
    domains = DomainSet([entry])
    assert "a.example.com" in domains
    assert "a.b.Example.Com" in domains
    assert "example.com" not in domains
    assert "badexample.com" not in domains


def test_domain_set_refuses_bad_entries() -> None:
    with pytest.raises(AddressError):
        DomainSet(["bad domain"])


def test_domain_set_does_not_match_non_strings() -> None:
    assert 3 not in DomainSet(["example.com"])


def test_domains_file_skips_comments_and_blank_lines() -> None:
    assert read_domains_file("# ours\na.example\n\n  .b.example # subdomains\n") == [
        "a.example",
        ".b.example",
    ]
