"""What the filter sends: one frozen value per reply or action, each with ``encode()``.

Values are checked when they are made (``ValueError``), so a reply that Postfix would
refuse or misread never reaches the wire. The checks follow Postfix's reader,
``milter8_event()`` in ``src/milter/milter8.c``, which is stricter than libmilter.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from srsfwd.protocols.milter.wire import (
    VERSION,
    ActionFlag,
    MacroStage,
    ProtocolFlag,
    ReplyCode,
    encode_packet,
)

_U32 = struct.Struct("!I")
_OPTNEG = struct.Struct("!III")
#: RFC 5322 §2.2 field name: printable ASCII except colon.
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
#: RFC 3463 enhanced status code; Postfix insists that its class matches the reply code.
_STATUS = re.compile(r"[45]\.[0-9]{1,3}\.[0-9]{1,3}")
#: Macro names as Postfix lists them: a letter, or ``{name}``.
_MACRO_NAME = re.compile(r"[A-Za-z_]|\{[A-Za-z0-9_]+\}")


def _header_name(name: str) -> bytes:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"not a header field name: {name!r}")
    return name.encode("ascii")


def _header_value(value: str | bytes) -> bytes:
    # Postfix writes the value as is; a line break must be a fold ("\n" then SP or TAB),
    # as OpenDKIM sends its signatures, or the header would end early (RFC 5322 §2.2.3).
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if b"\0" in raw or b"\r" in raw:
        raise ValueError("header value with NUL or CR")
    if re.search(rb"\n(?![ \t])", raw):
        raise ValueError("header value with a line break that is not a fold")
    return raw


def _header(name: str, value: str | bytes) -> bytes:
    """``name`` NUL ``value`` NUL, both checked."""
    return _header_name(name) + b"\0" + _header_value(value) + b"\0"


def _cstring(value: str, what: str) -> bytes:
    raw = value.encode("utf-8")
    if b"\0" in raw or b"\r" in raw or b"\n" in raw:
        raise ValueError(f"{what} with NUL, CR or LF: {value!r}")
    return raw + b"\0"


def _bare(address: str) -> str:
    if address.startswith("<") and address.endswith(">") and len(address) >= 2:
        return address[1:-1]
    return address


def _address(address: str, what: str) -> bytes:
    # Postfix parses the RFC 822 external form and strips the angle brackets
    # (cleanup_chg_from, cleanup_add_rcpt): send "<local@domain>", quoted if needed.
    address = _bare(address)
    if any(c in address for c in "<>"):
        raise ValueError(f"{what} with angle brackets inside: {address!r}")
    return _cstring(f"<{address}>", what)


def _args(args: tuple[str, ...], what: str) -> bytes:
    if not args:
        return b""
    if any(not arg or " " in arg for arg in args):
        raise ValueError(f"{what}: empty ESMTP parameter or one with a space")
    return _cstring(" ".join(args), what)


class _BareReply:
    """A reply that is its code alone, with no payload."""

    __slots__ = ()
    reply_code: ClassVar[ReplyCode]

    def encode(self) -> bytes:
        """The packet."""
        return encode_packet(self.reply_code)


@dataclass(frozen=True, slots=True)
class Continue(_BareReply):
    """SMFIR_CONTINUE: go on with the next event."""

    reply_code = ReplyCode.CONTINUE


@dataclass(frozen=True, slots=True)
class Accept(_BareReply):
    """SMFIR_ACCEPT: accept the message (or at CONNECT/HELO, the whole connection) unchanged;
    Postfix sends no more events for it."""

    reply_code = ReplyCode.ACCEPT


@dataclass(frozen=True, slots=True)
class Reject(_BareReply):
    """SMFIR_REJECT: Postfix answers ``550 5.7.1 Command rejected``; at RCPT only that
    recipient is refused."""

    reply_code = ReplyCode.REJECT


@dataclass(frozen=True, slots=True)
class Tempfail(_BareReply):
    """SMFIR_TEMPFAIL: Postfix answers ``451 4.7.1 Service unavailable - try again later``."""

    reply_code = ReplyCode.TEMPFAIL


@dataclass(frozen=True, slots=True)
class Discard(_BareReply):
    """SMFIR_DISCARD: accept and drop the message (Postfix ignores it at CONNECT/HELO)."""

    reply_code = ReplyCode.DISCARD


@dataclass(frozen=True, slots=True)
class Skip(_BareReply):
    """SMFIR_SKIP: send no more events of this kind (e.g. body chunks); needs SMFIP_SKIP."""

    reply_code = ReplyCode.SKIP


@dataclass(frozen=True, slots=True)
class Progress(_BareReply):
    """SMFIR_PROGRESS: still working; resets the MTA's timeout. Not a final reply."""

    reply_code = ReplyCode.PROGRESS


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """SMFIR_REPLYCODE: refuse or defer with our own SMTP reply, ``550 5.7.1 text``.

    ``code`` is 4xx or 5xx; ``status`` is the RFC 3463 enhanced code, whose class must
    match the code (Postfix calls the reply malformed otherwise and applies
    ``milter_default_action``); ``text`` is one line. ``%`` is doubled on the wire,
    because libmilter treats the text as a format string and Postfix undoes the doubling.
    """

    code: int
    status: str
    text: str = ""

    def __post_init__(self) -> None:
        if not 400 <= self.code <= 599:
            raise ValueError(f"SMTP reply code must be 4xx or 5xx, not {self.code}")
        if not _STATUS.fullmatch(self.status) or self.status[0] != str(self.code)[0]:
            raise ValueError(f"enhanced status {self.status!r} does not fit code {self.code}")
        if any(c in self.text for c in "\0\r\n"):
            raise ValueError("SMTP reply text with NUL, CR or LF")
        if not (self.text.isascii() and self.text.isprintable()):
            raise ValueError("SMTP reply text must be printable ASCII")

    @property
    def line(self) -> str:
        """The reply as the SMTP client will see it."""
        return f"{self.code} {self.status} {self.text}".rstrip(" ")

    def encode(self) -> bytes:
        """The packet."""
        return encode_packet(
            ReplyCode.REPLYCODE, _cstring(self.line.replace("%", "%%"), "SMTP reply")
        )


@dataclass(frozen=True, slots=True)
class AddHeader:
    """SMFIR_ADDHEADER: append a header at the end of the header block (needs ADDHDRS)."""

    name: str
    value: str | bytes

    def __post_init__(self) -> None:
        _header_name(self.name)
        _header_value(self.value)

    def encode(self) -> bytes:
        """The packet."""
        return encode_packet(ReplyCode.ADDHEADER, _header(self.name, self.value))


@dataclass(frozen=True, slots=True)
class _IndexedHeaderReply:
    """A header reply with a position: ``index``, ``name``, ``value``."""

    reply_code: ClassVar[ReplyCode]
    #: The lowest index the reply accepts.
    first_index: ClassVar[int]

    index: int
    name: str
    value: str | bytes

    def __post_init__(self) -> None:
        if not self.first_index <= self.index < 2**31:
            raise ValueError(
                f"header index out of range ({self.first_index} or more): {self.index}"
            )
        _header_name(self.name)
        _header_value(self.value)

    def encode(self) -> bytes:
        """The packet."""
        return encode_packet(
            self.reply_code, _U32.pack(self.index) + _header(self.name, self.value)
        )


@dataclass(frozen=True, slots=True)
class InsertHeader(_IndexedHeaderReply):
    """SMFIR_INSHEADER: insert a header before header number ``index`` (0 = the very top,
    which is where Authentication-Results, ARC and DKIM-Signature go). Needs ADDHDRS.

    Postfix counts insert positions in the message as delivered, including its own
    Received: header, which the filter never sees; index 0 goes above it.
    """

    reply_code = ReplyCode.INSHEADER
    first_index = 0


@dataclass(frozen=True, slots=True)
class ChangeHeader(_IndexedHeaderReply):
    """SMFIR_CHGHEADER: replace the ``index``-th (1-based) header called ``name``; an empty
    value deletes it. Needs CHGHDRS. Postfix applies actions in order and counts the fields
    as they stand then, a milter's inserted ones included: delete before inserting."""

    reply_code = ReplyCode.CHGHEADER
    first_index = 1


@dataclass(frozen=True, slots=True)
class ChangeFrom:
    """SMFIR_CHGFROM: replace the envelope sender (needs CHGFROM). ``sender`` is an address
    in external form, angle brackets optional; Postfix ignores ``args`` (it logs a warning)."""

    sender: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sender", _bare(self.sender))
        _address(self.sender, "sender")
        _args(self.args, "CHGFROM")

    def encode(self) -> bytes:
        """The packet."""
        payload = _address(self.sender, "sender") + _args(self.args, "CHGFROM")
        return encode_packet(ReplyCode.CHGFROM, payload)


@dataclass(frozen=True, slots=True)
class AddRecipient:
    """SMFIR_ADDRCPT (or SMFIR_ADDRCPT_PAR with ``args``): add an envelope recipient."""

    recipient: str
    args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipient", _bare(self.recipient))
        _address(self.recipient, "recipient")
        _args(self.args, "ADDRCPT")
        if not self.recipient:
            raise ValueError("empty recipient")

    def encode(self) -> bytes:
        """The packet."""
        code = ReplyCode.ADDRCPT_PAR if self.args else ReplyCode.ADDRCPT
        payload = _address(self.recipient, "recipient") + _args(self.args, "ADDRCPT")
        return encode_packet(code, payload)


@dataclass(frozen=True, slots=True)
class DeleteRecipient:
    """SMFIR_DELRCPT: remove a recipient as the MTA reported it at RCPT (needs DELRCPT)."""

    recipient: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipient", _bare(self.recipient))
        _address(self.recipient, "recipient")

    def encode(self) -> bytes:
        """The packet."""
        return encode_packet(ReplyCode.DELRCPT, _address(self.recipient, "recipient"))


@dataclass(frozen=True, slots=True)
class ReplaceBody:
    """SMFIR_REPLBODY: one chunk of a new body (needs CHGBODY); send them in order, and
    no other action between them (Postfix refuses interleaving)."""

    chunk: bytes

    def __post_init__(self) -> None:
        if len(self.chunk) > 65_535:
            raise ValueError("body replacement chunk over 65,535 bytes")

    def encode(self) -> bytes:
        """The packet."""
        return encode_packet(ReplyCode.REPLBODY, self.chunk)


@dataclass(frozen=True, slots=True)
class Quarantine:
    """SMFIR_QUARANTINE: put the message on hold (needs QUARANTINE); Postfix ignores the
    reason and uses its HOLD queue."""

    reason: str

    def __post_init__(self) -> None:
        _cstring(self.reason, "quarantine reason")

    def encode(self) -> bytes:
        """The packet."""
        return encode_packet(ReplyCode.QUARANTINE, _cstring(self.reason, "quarantine reason"))


@dataclass(frozen=True, slots=True)
class OptionsReply:
    """The filter's SMFIC_OPTNEG answer: version, the actions and protocol flags it chose,
    and the macros it wants per stage (the SETSYMLIST part of the packet)."""

    actions: ActionFlag
    protocol: ProtocolFlag
    macros: Mapping[MacroStage, tuple[str, ...]] = field(default_factory=dict)
    version: int = VERSION

    def __post_init__(self) -> None:
        for names in self.macros.values():
            for name in names:
                if not _MACRO_NAME.fullmatch(name):
                    raise ValueError(f"not a macro name: {name!r}")

    def encode(self) -> bytes:
        """The packet."""
        actions = self.actions | (ActionFlag.SETSYMLIST if self.macros else ActionFlag.NONE)
        payload = bytearray(_OPTNEG.pack(self.version, actions, self.protocol))
        for stage in sorted(self.macros):
            payload += _U32.pack(stage) + " ".join(self.macros[stage]).encode("ascii") + b"\0"
        return encode_packet(ReplyCode.OPTNEG, bytes(payload))


MilterReply = (
    Continue
    | Accept
    | Reject
    | Tempfail
    | Discard
    | Skip
    | Progress
    | SmtpReply
    | AddHeader
    | InsertHeader
    | ChangeHeader
    | ChangeFrom
    | AddRecipient
    | DeleteRecipient
    | ReplaceBody
    | Quarantine
    | OptionsReply
)

#: Replies that end the MTA's wait for an answer to one event.
FINAL_REPLIES = (Continue, Accept, Reject, Tempfail, Discard, Skip, SmtpReply)

#: End-of-message actions and the negotiated action each one needs.
MODIFICATIONS: dict[type[MilterReply], ActionFlag] = {
    AddHeader: ActionFlag.ADDHDRS,
    InsertHeader: ActionFlag.ADDHDRS,
    ChangeHeader: ActionFlag.CHGHDRS,
    ChangeFrom: ActionFlag.CHGFROM,
    AddRecipient: ActionFlag.ADDRCPT,
    DeleteRecipient: ActionFlag.DELRCPT,
    ReplaceBody: ActionFlag.CHGBODY,
    Quarantine: ActionFlag.QUARANTINE,
}
