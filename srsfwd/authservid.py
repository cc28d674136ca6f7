"""Which ADMD an Authentication-Results field claims to come from (RFC 8601 §2.2, §5).

RFC 8601 §5: a receiver must remove arriving Authentication-Results fields that claim its
own authserv-id, or anyone could write its verdicts. Whether a field claims ours is decided
here, and only here, for every place that asks (the pipeline's stripping, the ARC sealer's
consolidation, the milter's deletions, the gateway results we trust).

The grammar is read by hand because ``authres`` cannot answer the question: it reads the
authserv-id as a dot-atom (RFC 8601 says ``value``: a token or a quoted-string) and gives
no answer at all for a field whose rest is broken, while a receiver down the line may still
read such a field as ours. Here a field is ours when its authserv-id, read with the real
grammar (comments, nested comments, folding, quoted-strings, case-insensitive, an optional
version after it), is ours; and when the grammar breaks before the first ``;`` and our id
appears anywhere in the field, it is treated as ours too: when in doubt, it goes.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email.header import decode_header

from srsfwd.errors import SrsfwdError

#: The field name, as found in the lower-cased head.
_NAME = b"authentication-results"
#: The line break that ends a field: one not followed by a continuation line.
_FIELD_END = re.compile(rb"\r\n(?![ \t])")
#: RFC 2045 tspecials: what a token cannot hold (besides space and controls).
_TSPECIALS = frozenset(b'()<>@,;:\\"/[]?=')
_WSP = frozenset(b" \t\r\n")


class _Broken(SrsfwdError):  # noqa: N818 (control flow inside the reader)
    """The field does not follow the grammar; never leaves this module."""


@dataclass(frozen=True, slots=True)
class AuthservId:
    """The authserv-id a field states (lower case, without a final dot), or None if broken.

    ``results_at`` is where the results (``;`` on) begin in the field value.
    """

    value: str | None
    results_at: int = 0

    @property
    def broken(self) -> bool:
        return self.value is None


def find_authserv_id(field_value: bytes) -> AuthservId:
    """The authserv-id of one Authentication-Results field value (after the colon).

    ``authres-payload = [CFWS] authserv-id [CFWS authres-version] (no-result / 1*resinfo)``
    with ``authserv-id = value`` (RFC 2045 token or RFC 5322 quoted-string). Only the part
    up to the first result is read: after the id may come CFWS, a version (digits) and more
    CFWS, then ``;`` or the end. Anything else makes the field broken.
    """
    try:
        position = _skip_cfws(field_value, 0)
        if field_value[position : position + 1] == b'"':
            raw, position = _quoted_string(field_value, position)
        else:
            raw, position = _token(field_value, position)
        position = _skip_cfws(field_value, position)
        version_start = position
        while field_value[position : position + 1].isdigit():
            position += 1
        if position > version_start:
            position = _skip_cfws(field_value, position)
        if position < len(field_value) and field_value[position : position + 1] != b";":
            raise _Broken
    except _Broken:
        return AuthservId(None)
    return AuthservId(_normal(raw), position)


def claims_authserv_id(field_value: bytes, authserv_id: str) -> bool:
    """Whether a field value claims ``authserv_id`` (or might: a broken field naming it).

    A reader more lenient than the grammar may drop what splits our id: spaces, folds,
    comments, NULs, quotes (``fwd (c) . example . net``, ``"fwd.example.\r\n net"``), or
    decode an RFC 2047 encoded-word; such a field is ours too.
    """
    ours = _normal(authserv_id.encode("utf-8", "replace"))
    found = find_authserv_id(field_value)
    if found.value is not None:
        return found.value == ours or _squeezed(found.value.encode("utf-8")) == ours
    unfolded = field_value.replace(b"\r", b"").replace(b"\n", b"").lower()
    wanted = ours.encode("utf-8")
    return (
        wanted in unfolded
        or wanted in _squeezed(field_value).encode("utf-8")
        or wanted in _squeezed(_decoded_words(field_value)).encode("utf-8")
    )


#: What a lenient reader may drop between the characters of an id.
_SQUEEZED_OUT = re.compile(rb'\([^()]*\)|[\x00-\x20\x7f"\\]')
_ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def _squeezed(value: bytes) -> str:
    """``value`` without comments, white space, controls, quotes and backslashes, lower case."""
    previous = None
    while previous != value:  # nested comments go from the inside out
        previous, value = value, _SQUEEZED_OUT.sub(b"", value)
    return value.decode("utf-8", "replace").lower()


def _decoded_words(value: bytes) -> bytes:
    """``value`` with its RFC 2047 encoded-words decoded (those that decode)."""

    def decode(match: re.Match[bytes]) -> bytes:
        try:
            ((text, _),) = decode_header(match.group().decode("ascii"))
        except (ValueError, UnicodeError, binascii.Error):
            return match.group()
        return text if isinstance(text, bytes) else text.encode("utf-8")

    return _ENCODED_WORD.sub(decode, value)


def strip_our_results(message: bytes, authserv_id: str) -> bytes:
    """``message`` (CRLF line ends) without the Authentication-Results fields claiming ours.

    RFC 8601 §5: such fields that arrive from outside must go, or anyone could forge our
    verdicts. The field name is matched case-insensitively, with or without space before
    the colon; the rest of the message is left byte for byte.
    """
    # The header section is sliced off alone: partition would copy a large body too.
    end_of_head = message.find(b"\r\n\r\n")
    head = message if end_of_head == -1 else message[:end_of_head]
    lowered = head.lower()
    kept: list[bytes] = []
    position = 0
    start = lowered.find(_NAME)
    while start != -1:
        colon = start + len(_NAME)
        while lowered[colon : colon + 1] in (b" ", b"\t"):
            colon += 1
        at_line_start = start == 0 or lowered[start - 2 : start] == b"\r\n"
        if at_line_start and lowered[colon : colon + 1] == b":":
            end_of_field = _FIELD_END.search(head, colon)
            end = end_of_field.start() if end_of_field else len(head)
            if claims_authserv_id(head[colon + 1 : end], authserv_id):
                kept.append(head[position:start])
                position = end + 2 if end_of_field else len(head)  # with its line break
        start = lowered.find(_NAME, colon)
    if not kept:
        return message
    kept.append(head[position:])
    new_head = b"".join(kept)
    # The head never ends with a line break: one left means its last field went.
    new_head = new_head.removesuffix(b"\r\n")
    if end_of_head == -1:
        return new_head
    return b"".join((new_head, memoryview(message)[end_of_head:]))


def _normal(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").lower().rstrip(".")


def _skip_cfws(text: bytes, position: int) -> int:
    """The position after any folding white space and (nested) comments."""
    depth = 0
    while position < len(text):
        byte = text[position]
        if depth:
            if byte == 0x5C:  # "\" quoted-pair inside a comment
                position += 1
            elif byte == 0x28:
                depth += 1
            elif byte == 0x29:
                depth -= 1
        elif byte == 0x28:
            depth = 1
        elif byte not in _WSP:
            return position
        position += 1
    if depth:
        raise _Broken  # a comment never closed
    return position


def _token(text: bytes, position: int) -> tuple[bytes, int]:
    start = position
    while position < len(text):
        byte = text[position]
        if byte <= 0x20 or byte >= 0x7F or byte in _TSPECIALS:
            break
        position += 1
    if position == start:
        raise _Broken
    return text[start:position], position


def _quoted_string(text: bytes, position: int) -> tuple[bytes, int]:
    """The content of the quoted-string at ``position`` (quoted-pairs undone, FWS dropped)."""
    out = bytearray()
    position += 1
    while position < len(text):
        byte = text[position]
        if byte == 0x22:
            return bytes(out), position + 1
        if byte == 0x5C:
            position += 1
            if position >= len(text):
                break
            out.append(text[position])
        elif byte in (0x0D, 0x0A):
            pass  # folding inside a quoted-string
        else:
            out.append(byte)
        position += 1
    raise _Broken  # never closed
