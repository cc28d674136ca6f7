"""Broken ARC chains made from a good one, for the tests of attack 7 (RFC 8617 §5.2).

Each is a message that carries ARC fields, so a chain is present, but one that no honest
sealer left: its ARC-Seal removed, made unparseable, duplicated, renumbered, or saying the
chain already failed. A sealer must seal them with ``cv=fail`` (or, for the last, not at
all), never read them as "no chain" (``cv=none``) or continue them with ``cv=pass``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from srsfwd.dkim.canon import Header, Message, parse_message


def _edit_seals(sealed: bytes, edit: Callable[[Header], list[Header]]) -> bytes:
    """``sealed`` with every ARC-Seal field replaced by what ``edit`` makes of it."""
    message = parse_message(sealed)
    headers: list[Header] = []
    for field in message.headers:
        headers.extend(edit(field) if field.key == b"arc-seal" else [field])
    return Message(tuple(headers), message.body).to_bytes()


def _retag(field: Header, tag: str, value: str) -> Header:
    pattern = re.compile(rb"(^|;)(\s*)" + tag.encode() + rb"\s*=[^;]*")
    replaced = pattern.sub(rb"\1\2" + tag.encode() + b"=" + value.encode(), field.value, count=1)
    return Header(field.name, replaced)


def missing_seal(sealed: bytes) -> bytes:
    """The AMS and AAR stay, the ARC-Seal is gone."""
    return _edit_seals(sealed, lambda field: [])


def unparseable_seal(sealed: bytes) -> bytes:
    """The ARC-Seal keeps its ``i=`` but is no tag list any more (a tag without ``=``)."""
    return _edit_seals(sealed, lambda field: [Header(field.name, field.value + b"; garbage")])


def duplicated_seal(sealed: bytes) -> bytes:
    """Two identical ARC-Seal fields for the same instance."""
    return _edit_seals(sealed, lambda field: [field, field])


def seal_without_instance(sealed: bytes) -> bytes:
    """The ARC-Seal's ``i=`` is not a number."""
    return _edit_seals(sealed, lambda field: [_retag(field, "i", "one")])


def seal_instance_zero(sealed: bytes) -> bytes:
    """The ARC-Seal says ``i=0`` (instances start at 1)."""
    return _edit_seals(sealed, lambda field: [_retag(field, "i", "0")])


def seal_instance_over_limit(sealed: bytes) -> bytes:
    """The ARC-Seal says ``i=51`` (at most 50 sets)."""
    return _edit_seals(sealed, lambda field: [_retag(field, "i", "51")])


def seal_says_fail(sealed: bytes) -> bytes:
    """The latest ARC-Seal says ``cv=fail``: the chain already failed (not a valid seal)."""
    return _edit_seals(sealed, lambda field: [_retag(field, "cv", "fail")])


#: The broken chains that get a new set sealed ``cv=fail``.
SEALED_AS_FAILED: dict[str, Callable[[bytes], bytes]] = {
    "missing-seal": missing_seal,
    "unparseable-seal": unparseable_seal,
    "duplicated-seal": duplicated_seal,
    "seal-without-instance": seal_without_instance,
    "seal-instance-zero": seal_instance_zero,
}
#: The chains that end here: nothing is sealed on them, and our results say arc=fail.
NOT_CONTINUED: dict[str, Callable[[bytes], bytes]] = {
    "seal-instance-over-limit": seal_instance_over_limit,
    "seal-says-fail": seal_says_fail,
}
