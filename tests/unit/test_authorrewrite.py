"""The From rewrite of DMARC-safe forwarding: our address, the author in the name and Reply-To."""

from __future__ import annotations

from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import default
from email.utils import parseaddr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.authorrewrite import author_address, rewrite_author
from srsfwd.errors import AddressError

NEW = "SRS0=HHH=TT=example.org=alice@fwd.example.net"
MESSAGE = (
    b"Received: from x\r\nFrom: Alice Liddell <alice@example.org>\r\n"
    b"To: bob@example.net\r\nSubject: hi\r\n\r\nbody\r\n"
)


def header(message: bytes, name: str) -> str:
    value = message_from_bytes(message)[name]
    return str(make_header(decode_header(str(value))))


def test_from_becomes_our_address_with_the_authors_name_via_us() -> None:
    out = rewrite_author(MESSAGE, new_address=NEW, via="fwd.example.net").message
    assert parseaddr(header(out, "From")) == ("Alice Liddell via fwd.example.net", NEW)


def test_the_author_becomes_the_reply_to() -> None:
    out = rewrite_author(MESSAGE, new_address=NEW, via="fwd.example.net")
    assert header(out.message, "Reply-To") == "Alice Liddell <alice@example.org>"
    assert out.reply_to_added and out.author == "alice@example.org"


def test_an_existing_reply_to_is_kept() -> None:
    message = MESSAGE.replace(b"Subject", b"Reply-To: list@example.org\r\nSubject")
    out = rewrite_author(message, new_address=NEW, via="fwd.example.net")
    assert header(out.message, "Reply-To") == "list@example.org"
    assert not out.reply_to_added


def test_only_the_from_field_changes_in_place_and_the_body_stays() -> None:
    out = rewrite_author(MESSAGE, new_address=NEW, via="fwd.example.net").message
    old_head, _, old_body = MESSAGE.partition(b"\r\n\r\n")
    new_head, _, new_body = out.partition(b"\r\n\r\n")
    assert new_body == old_body
    old_lines, new_lines = old_head.split(b"\r\n"), new_head.split(b"\r\n")
    assert new_lines[0] == old_lines[0] and new_lines[2:4] == old_lines[2:4]
    assert new_lines[1].startswith(b"From: ") and new_lines[-1].startswith(b"Reply-To:")


def test_an_address_without_a_name_shows_the_address_spelled_out() -> None:
    message = MESSAGE.replace(b"Alice Liddell <alice@example.org>", b"alice@example.org")
    out = rewrite_author(message, new_address=NEW, via="fwd.example.net").message
    assert parseaddr(header(out, "From"))[0] == "alice at example.org via fwd.example.net"


def test_an_encoded_name_is_decoded_and_encoded_again() -> None:
    message = MESSAGE.replace(b"Alice Liddell", b"=?utf-8?q?Al=C3=AFce?=")
    out = rewrite_author(message, new_address=NEW, via="fwd.example.net").message
    assert parseaddr(header(out, "From"))[0] == "Alïce via fwd.example.net"
    assert out.isascii()


def test_a_from_without_an_address_is_an_error() -> None:
    with pytest.raises(AddressError):
        author_address(b"From: nobody\r\n\r\nbody\r\n")


@given(st.text(max_size=80))
def test_any_display_name_gives_one_from_field_on_one_line_or_a_clear_error(name: str) -> None:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').encode("utf-8", "replace")
    message = b'From: "' + quoted + b'" <alice@example.org>\r\nSubject: x\r\n\r\nbody\r\n'
    try:
        out = rewrite_author(message, new_address=NEW, via="fwd.example.net").message
    except AddressError:
        return  # e.g. a bare CR inside the field: refused, never half rewritten
    head = out.partition(b"\r\n\r\n")[0]
    from_lines = [line for line in head.split(b"\r\n") if line.lower().startswith(b"from:")]
    assert len(from_lines) == 1 and b"\n" not in from_lines[0] and b"\r" not in from_lines[0]
    (author,) = message_from_bytes(out, policy=default)["From"].addresses
    assert author.addr_spec == NEW and author.display_name.endswith(" via fwd.example.net")
