"""DKIM tag lists (RFC 6376 §3.2): ``name=value; name=value``, for signatures and key records.

Written by hand: the grammar is ten lines, and dkimpy's parser (``dkim.util.parse_tag_value``)
accepts names the RFC does not and reports errors as a bare exception.
"""

from __future__ import annotations

from srsfwd.errors import TagListError

_FWS = b" \t\r\n"
_ALPHA = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME_CHARS = _ALPHA | frozenset(b"0123456789_")
# tag-value characters: VALCHAR = %x21-3A / %x3C-7E (everything visible except ';'),
# plus whitespace between them.
_VALUE_CHARS = frozenset(range(0x21, 0x7F)) - {0x3B} | frozenset(_FWS)
# The same sets as deletion tables: bytes.translate(None, table) removes every allowed
# byte, so what is left is what is not allowed (C speed: this runs per signature, per key).
_NAME_DELETE = bytes(_NAME_CHARS)
_VALUE_DELETE = bytes(_VALUE_CHARS)


def parse_tag_list(data: bytes) -> dict[str, bytes]:
    """The tags of ``data`` in order, values with surrounding whitespace removed.

    Raises:
        TagListError: a tag without '=', a bad name, a bad character, a duplicate tag.
    """
    tags: dict[str, bytes] = {}
    parts = data.split(b";")
    if parts and not parts[-1].strip(_FWS):
        parts.pop()  # a trailing ';' is allowed
    for part in parts:
        name, eq, value = part.partition(b"=")
        name = name.strip(_FWS)
        if not eq:
            raise TagListError(f"tag {_show(part)} has no '='")
        if not name or name[0] not in _ALPHA or name.translate(None, _NAME_DELETE):
            raise TagListError(f"bad tag name {_show(name)}")
        if value.translate(None, _VALUE_DELETE):
            raise TagListError(f"tag {name.decode()}= has a character not allowed in tags")
        key = name.decode("ascii")
        if key in tags:
            raise TagListError(f"tag {key}= appears twice")
        tags[key] = value.strip(_FWS)
    return tags


def without_whitespace(value: bytes) -> bytes:
    """``value`` with every space, tab, CR and LF removed (base64 tags may be folded)."""
    return value.translate(None, _FWS)


def _show(data: bytes) -> str:
    text = data.decode("ascii", "replace")
    return repr(text if len(text) <= 40 else text[:40] + "...")
