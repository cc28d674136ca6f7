"""One message, parsed once per forward, and the edits the pipeline makes to it.

    parsed = ParsedMessage.parse(raw)                   # CRLF conversion and parse, once
    changes = MessageChanges(inserted=(...,), deleted=(...,))
    out = changes.apply(parsed)                         # the message that leaves, as bytes

Every step of the forward (validation, facts, DMARC, stripping forged results, DKIM
signing, ARC sealing) reads the same ``ParsedMessage``. What the pipeline changes is
returned as ``MessageChanges`` (header fields and the envelope sender; the body never
changes), so the milter hands them to the MTA as they are, and ``srsfwd forward`` joins
them with the message once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from srsfwd.dkim.canon import Header, Message, body_start, parse_crlf
from srsfwd.dkim.sign import wire_form
from srsfwd.errors import SignatureError

_CRLF = b"\r\n"
_NAME_DELETE = bytes(range(0x21, 0x7F)).replace(b":", b"")


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """A message's header fields (as on the wire) and its body, in CRLF form.

    The body is ``source[body_at:]``: a message parsed from bytes keeps them whole and
    the body is never copied out; the milter gives the body it received (``body_at`` 0).
    """

    headers: tuple[Header, ...]
    source: bytes
    body_at: int = 0

    @classmethod
    def parse(cls, message: bytes) -> ParsedMessage:
        """``message`` (CRLF or LF lines) in wire form (``srsfwd.dkim.sign.wire_form``),
        parsed.

        Raises:
            SignatureError: not a message, or a header section over ``MAX_HEADER_BYTES``.
        """
        return cls.parse_wire(wire_form(message))

    @classmethod
    def parse_wire(cls, data: bytes) -> ParsedMessage:
        """``parse`` for ``data`` in wire form already (``wire_form``: no second pass).

        Raises:
            SignatureError: not a message, or a header section over ``MAX_HEADER_BYTES``.
        """
        start = body_start(data)
        return cls(parse_crlf(data[:start]).headers, data, start)

    @classmethod
    def from_fields(cls, fields: Iterable[tuple[bytes, bytes]], body: bytes) -> ParsedMessage:
        """A message from fields already split (name, value after the colon, CRLF folds)
        and its body in CRLF form, as a milter receives them.

        The size of the header section is for the caller to check (``header_size``).

        Raises:
            SignatureError: a field name RFC 5322 does not allow, or no field at all.
        """
        headers = tuple(Header(name, value) for name, value in fields)
        for header in headers:
            name = header.name.rstrip(b" \t")
            if not name or name.translate(None, _NAME_DELETE):
                shown = header.name[:40].decode("ascii", "replace")
                raise SignatureError(f"not a mail message: {shown!r} is not a field name")
        if not headers:
            raise SignatureError("not a mail message: no header fields")
        if body and not body.endswith(_CRLF):
            body += _CRLF  # what goes on the wire is what was hashed
        return cls(headers, body, 0)

    @property
    def header_size(self) -> int:
        """Bytes of the header section, each field with its CRLF."""
        return sum(len(h.name) + len(h.value) + 3 for h in self.headers)

    @property
    def size(self) -> int:
        """Bytes of the body (the header section is bounded by ``MAX_HEADER_BYTES``)."""
        return len(self.source) - self.body_at

    def find(self, name: str) -> list[Header]:
        """Every field named ``name`` (any case), top first."""
        key = name.lower().encode("ascii")
        return [h for h in self.headers if h.key == key]

    def head(self) -> Message:
        """The header section as a ``srsfwd.dkim.canon.Message`` with an empty body."""
        return Message(self.headers, b"")

    def with_body(self) -> Message:
        """The whole message as a ``srsfwd.dkim.canon.Message`` (the body copied once)."""
        return Message(self.headers, self.source[self.body_at :])

    def to_bytes(self, headers: Iterable[Header] | None = None) -> bytes:
        """The message in wire form; with ``headers``, those instead of its own."""
        if headers is None and self.body_at:
            return self.source
        lines = [h.raw + _CRLF for h in (self.headers if headers is None else headers)]
        if self.body_at:
            # source[body_at - 2:] is the empty line and the body: sliced without a copy.
            return b"".join([*lines, memoryview(self.source)[self.body_at - 2 :]])
        return b"".join([*lines, _CRLF, self.source])


@dataclass(frozen=True, slots=True)
class FieldRef:
    """The ``index``-th field named ``name`` (from 1, top down, any case)."""

    name: str
    index: int


@dataclass(frozen=True, slots=True)
class FieldChange:
    """The ``index``-th field named ``name`` gets ``value`` (as after the colon)."""

    name: str
    index: int
    value: bytes


@dataclass(frozen=True, slots=True)
class MessageChanges:
    """What the pipeline changed: the envelope sender, and the header section in the
    order to apply it.

    * ``new_sender``: the new envelope sender (MAIL FROM), None when it stays;
    * ``deleted``: fields removed, counted in the message as it arrived, highest
      ``index`` first so that each deletion leaves the earlier indexes as they were;
    * ``changed``: fields whose value was replaced (counted after the deletions);
    * ``appended``: fields added at the bottom of the header section;
    * ``inserted``: fields added at the top, top first.

    Deletions come first: once a field is inserted on top, index 1 of its name is
    no longer the one that arrived.
    """

    new_sender: str | None = None
    deleted: tuple[FieldRef, ...] = ()
    changed: tuple[FieldChange, ...] = ()
    appended: tuple[Header, ...] = ()
    inserted: tuple[Header, ...] = field(default=())

    def headers(self, message: ParsedMessage) -> list[Header]:
        """``message``'s header fields with these changes made."""
        fields = list(message.headers)
        for edit in self.deleted:
            del fields[_position(fields, edit.name, edit.index)]
        for change in self.changed:
            at = _position(fields, change.name, change.index)
            fields[at] = Header(fields[at].name, change.value)
        return [*self.inserted, *fields, *self.appended]

    def apply(self, message: ParsedMessage) -> bytes:
        """``message`` with these changes, in wire form (the body copied once, or not at all
        when nothing changed)."""
        if not (self.deleted or self.changed or self.appended):
            lines = [h.raw + _CRLF for h in self.inserted]
            if message.body_at:
                return b"".join([*lines, message.source])
            return b"".join([*lines, message.to_bytes()])
        return message.to_bytes(self.headers(message))

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the inserted fields, top first."""
        return tuple(h.name.decode("ascii", "replace") for h in self.inserted)


def header_from_line(line: bytes) -> Header:
    """A ``Name: value`` line (CRLF-terminated, folds kept) as a ``Header``.

    Raises:
        SignatureError: a line without a colon.
    """
    name, colon, value = line.removesuffix(_CRLF).partition(b":")
    if not colon:
        raise SignatureError(f"not a header field: {line[:40]!r}")
    return Header(name, value)


def _position(fields: list[Header], name: str, index: int) -> int:
    """Where the ``index``-th field named ``name`` is in ``fields``.

    Raises:
        ValueError: there are fewer such fields.
    """
    key = name.lower().encode("ascii")
    seen = 0
    for position, header in enumerate(fields):
        if header.key == key:
            seen += 1
            if seen == index:
                return position
    raise ValueError(f"no {name} field number {index}")


__all__ = [
    "FieldChange",
    "FieldRef",
    "MessageChanges",
    "ParsedMessage",
    "header_from_line",
]
