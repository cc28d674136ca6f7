"""The From rewrite of DMARC-safe forwarding, as mailing list managers do it.

    rewritten = rewrite_author(message, new_address="SRS0=...@fwd.example.net",
                               via="fwd.example.net")

The From field becomes ``"Alice via fwd.example.net" <new_address>``; the original From
becomes the Reply-To, unless the message has a Reply-To already. The From field keeps
its place; the Reply-To goes last in the header section. Nothing else changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import formataddr, getaddresses

from srsfwd.errors import AddressError

#: Longest display name kept from the original author (the rest is cut).
MAX_DISPLAY = 200


@dataclass(frozen=True, slots=True)
class AuthorRewrite:
    """The rewritten message and the original author's address."""

    message: bytes
    author: str
    reply_to_added: bool


@dataclass(frozen=True, slots=True)
class AuthorChange:
    """The From rewrite as edits: From's new value, and the Reply-To value to append
    (None when the message has a Reply-To already)."""

    from_value: bytes
    reply_to_value: bytes | None
    author: str


def author_address(message: bytes) -> tuple[str, str]:
    """(display name, address) of the single From field of a CRLF ``message``.

    Raises:
        AddressError: no single From field with a single address.
    """
    froms = [_value(f) for f in _fields(_head(message)) if _name(f) == b"from"]
    return author_in(froms)


def author_in(from_values: Sequence[bytes]) -> tuple[str, str]:
    """(display name, address) of the single From field, given every From field's value.

    Raises:
        AddressError: no single From field with a single address.
    """
    if len(from_values) != 1:
        raise AddressError("the message has no single From field")
    value = from_values[0].replace(b"\r\n", b"").decode("utf-8", "replace")
    found = [(n, a) for n, a in getaddresses([value]) if "@" in a]
    if len(found) != 1:
        raise AddressError("the From field has no single address")
    name, address = found[0]
    return _readable(name), address


def author_change(
    from_values: Sequence[bytes], *, has_reply_to: bool, new_address: str, via: str
) -> AuthorChange:
    """The From rewrite of a message with these From field values, as edits.

    Raises:
        AddressError: no single From field with a single address.
    """
    name, address = author_in(from_values)
    display = f"{name or address.replace('@', ' at ')} via {via}"
    new_from = formataddr((display, new_address), charset="utf-8").encode("utf-8")
    reply_to = None if has_reply_to else from_values[0]
    return AuthorChange(b" " + new_from, reply_to, address)


def rewrite_author(message: bytes, *, new_address: str, via: str) -> AuthorRewrite:
    """``message`` (CRLF line ends) with From rewritten to ``new_address``.

    Raises:
        AddressError: no single From field with a single address.
    """
    name, address = author_address(message)
    display = f"{name or address.replace('@', ' at ')} via {via}"
    new_from = formataddr((display, new_address), charset="utf-8").encode("utf-8")
    head, separator, body = message.partition(b"\r\n\r\n")
    fields = _fields(head)
    original = next(f for f in fields if _name(f) == b"from")
    has_reply_to = any(_name(f) == b"reply-to" for f in fields)
    out = [b"From: " + new_from if f is original else f for f in fields]
    if not has_reply_to:
        out.append(b"Reply-To:" + _value(original))
    return AuthorRewrite(
        message=b"\r\n".join(out) + (separator or b"\r\n\r\n") + body,
        author=address,
        reply_to_added=not has_reply_to,
    )


def _head(message: bytes) -> bytes:
    return message.partition(b"\r\n\r\n")[0]


def _fields(head: bytes) -> list[bytes]:
    """Header fields with their folds, without the final CRLF."""
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        elif line:
            fields.append(line)
    return fields


def _name(field: bytes) -> bytes:
    return field.partition(b":")[0].strip().lower()


def _value(field: bytes) -> bytes:
    return field.partition(b":")[2]


def _readable(name: str) -> str:
    """A display name with RFC 2047 words decoded and no control characters."""
    try:
        text = str(make_header(decode_header(name)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        text = name
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())[:MAX_DISPLAY]


__all__ = [
    "MAX_DISPLAY",
    "AuthorChange",
    "AuthorRewrite",
    "author_address",
    "author_change",
    "author_in",
    "rewrite_author",
]
