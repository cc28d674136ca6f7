"""The hand-written readers of other programs' files never fail but with a clear error."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from srsfwd import SrsfwdError
from srsfwd.address import read_domains_file
from srsfwd.dns.resolver import Resolver
from srsfwd.keystore import read_opendkim_tables
from srsfwd.postsrsdconf import read_postsrsd

# Text biased towards the characters these formats are made of.
format_text = st.text(
    alphabet=st.sampled_from([*'abcSRS_DOMAIN=:"{}#,. \t\n*@/-0123456789', "é", "\x00"]),
    max_size=300,
)


@given(format_text)
def test_postsrsd_files_parse_or_raise_a_clear_error(text: str) -> None:
    try:
        read_postsrsd(text, Path("/etc/postsrsd.conf"))
    except SrsfwdError:
        pass


@given(st.text(max_size=300))
def test_postsrsd_reader_takes_any_text(text: str) -> None:
    try:
        read_postsrsd(text, Path("/etc/default/postsrsd"))
    except SrsfwdError:
        pass


zone_text = st.lists(
    st.sampled_from(
        [
            "$ORIGIN ",
            "$TTL ",
            "$INCLUDE ",
            "@",
            "*",
            "example.",
            "a",
            " ",
            "\t",
            "\n",
            "(",
            ")",
            ";",
            '"',
            "IN",
            "SOA",
            "NS",
            "TXT",
            "MX",
            "A",
            "CNAME",
            "10",
            "192.0.2.1",
            "\x00",
            "é",
        ]
    ),
    max_size=60,
).map("".join)


@given(zone_text)
def test_zone_files_parse_or_raise_a_clear_error(text: str) -> None:
    try:
        resolver = Resolver.from_zone_text(text)
        resolver.txt("a.example")
        resolver.addresses("x.a.example")
    except SrsfwdError:  # not a master file, or a CNAME loop (a temporary error)
        pass


@given(format_text, format_text)
def test_opendkim_tables_parse_or_raise_a_clear_error(keys: str, signing: str) -> None:
    try:
        read_opendkim_tables(keys, signing)
    except SrsfwdError:
        pass


@given(st.text(max_size=300))
def test_domains_file_lines_are_stripped_and_never_empty(text: str) -> None:
    for entry in read_domains_file(text):
        assert entry == entry.strip()
        assert entry
        assert "#" not in entry
