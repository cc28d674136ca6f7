"""The MTA side, pure: encodes what Postfix sends and decodes what a filter answers.

It lets the unit tests talk to ``MilterCodec`` without sockets, and the integration
tests and benchmarks talk to ``srsfwd serve`` (or to any milter) without Postfix. It
follows Postfix's ``milter8.c``: the OPTNEG offer of version 6 with every action and
flag, macros before each event, body chunks of at most 65,535 bytes, an empty EOB.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter.commands import (
    COMMAND_OF,
    Abort,
    Body,
    Connect,
    Data,
    DefineMacros,
    EndOfHeaders,
    EndOfMessage,
    Event,
    Helo,
    Mail,
    MilterHeaderField,
    OptionNegotiation,
    Quit,
    QuitNewConnection,
    Rcpt,
    Unknown,
)
from srsfwd.protocols.milter.negotiation import Negotiated
from srsfwd.protocols.milter.replies import (
    Accept,
    AddHeader,
    AddRecipient,
    ChangeFrom,
    ChangeHeader,
    Continue,
    DeleteRecipient,
    Discard,
    InsertHeader,
    MilterReply,
    OptionsReply,
    Progress,
    Quarantine,
    Reject,
    ReplaceBody,
    Skip,
    SmtpReply,
    Tempfail,
)
from srsfwd.protocols.milter.wire import (
    ALL_ACTIONS,
    ALL_PROTOCOL_FLAGS,
    CHUNK_SIZE,
    MAX_PACKET,
    VERSION,
    ActionFlag,
    Command,
    Family,
    MacroStage,
    PacketDecoder,
    ProtocolFlag,
    ReplyCode,
    encode_packet,
    split_strings,
    text,
)

_U32 = struct.Struct("!I")
_OPTNEG = struct.Struct("!III")
_PORT = struct.Struct("!H")


def _cstr(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape") + b"\0"


def encode_command(event: Event) -> bytes:
    """The packet Postfix would send for ``event``."""
    match event:
        case OptionNegotiation(version, actions, protocol):
            return encode_packet(Command.OPTNEG, _OPTNEG.pack(version, actions, protocol))
        case DefineMacros(stage, macros):
            payload = bytes((stage,)) + b"".join(_cstr(n) + _cstr(v) for n, v in macros)
            return encode_packet(Command.MACRO, payload)
        case Connect(hostname, family, port, address):
            payload = _cstr(hostname) + family.value.encode("ascii")
            if family is not Family.UNKNOWN:
                payload += _PORT.pack(port or 0) + _cstr(address or "")
            return encode_packet(Command.CONNECT, payload)
        case Helo(name):
            return encode_packet(Command.HELO, _cstr(name))
        case Mail(sender, args):
            return encode_packet(Command.MAIL, b"".join(map(_cstr, (f"<{sender}>", *args))))
        case Rcpt(recipient, args):
            return encode_packet(Command.RCPT, b"".join(map(_cstr, (f"<{recipient}>", *args))))
        case Data():
            return encode_packet(Command.DATA)
        case MilterHeaderField(name, value):
            return encode_packet(Command.HEADER, _cstr(name) + value + b"\0")
        case EndOfHeaders():
            return encode_packet(Command.END_OF_HEADERS)
        case Body(chunk):
            return encode_packet(Command.BODY, chunk)
        case EndOfMessage(chunk):
            return encode_packet(Command.END_OF_MESSAGE, chunk)
        case Abort():
            return encode_packet(Command.ABORT)
        case Quit():
            return encode_packet(Command.QUIT)
        case QuitNewConnection():
            return encode_packet(Command.QUIT_NC)
        case Unknown(command):
            return encode_packet(Command.UNKNOWN, _cstr(command))
    raise TypeError(f"not a milter event: {event!r}")  # pragma: no cover


def _no_data(code: ReplyCode, payload: bytes) -> None:
    if payload:
        raise ProtocolError(f"milter reply {code.name}: {len(payload)} unexpected bytes")


def _smtp_reply(payload: bytes) -> SmtpReply:
    (raw,) = split_strings(payload, "REPLYCODE")[:1]
    line = text(raw, "REPLYCODE")
    # Postfix: "%%" means "%", a lone "%" is dropped (milter8_event).
    unescaped, i = [], 0
    while i < len(line):
        if line[i] == "%":
            i += 1
            if i < len(line):
                unescaped.append(line[i])
        else:
            unescaped.append(line[i])
        i += 1
    code, _, rest = "".join(unescaped).partition(" ")
    status, _, reply_text = rest.partition(" ")
    if not code.isdigit():
        raise ProtocolError(f"milter REPLYCODE: malformed {line[:60]!r}")
    return SmtpReply(int(code), status, reply_text)


def _options(payload: bytes) -> OptionsReply:
    if len(payload) < _OPTNEG.size:
        raise ProtocolError("milter OPTNEG reply too short")
    version, actions, protocol = _OPTNEG.unpack_from(payload)
    macros: dict[MacroStage, tuple[str, ...]] = {}
    rest = payload[_OPTNEG.size :]
    while rest:
        if len(rest) < _U32.size + 1:
            raise ProtocolError("milter OPTNEG reply: truncated symbol list")
        (stage,) = _U32.unpack_from(rest)
        end = rest.find(b"\0", _U32.size)
        if end < 0:
            raise ProtocolError("milter OPTNEG reply: symbol list not NUL-terminated")
        try:
            macros[MacroStage(stage)] = tuple(text(rest[_U32.size : end], "symlist").split())
        except ValueError:
            raise ProtocolError(f"milter OPTNEG reply: unknown macro stage {stage}") from None
        rest = rest[end + 1 :]
    return OptionsReply(ActionFlag(actions), ProtocolFlag(protocol), macros, version)


def _strings(code: ReplyCode, payload: bytes, count: int) -> list[bytes]:
    fields = split_strings(payload, f"reply {code.name}")
    if len(fields) != count:
        raise ProtocolError(f"milter reply {code.name}: {len(fields)} strings, not {count}")
    return fields


def _address_and_args(code: ReplyCode, payload: bytes) -> tuple[str, tuple[str, ...]]:
    fields = split_strings(payload, f"reply {code.name}")
    if len(fields) > 2:
        raise ProtocolError(f"milter reply {code.name}: too many strings")
    address = text(fields[0], code.name)
    args = tuple(text(fields[1], code.name).split()) if len(fields) == 2 else ()
    return address, args


def _indexed_header(code: ReplyCode, payload: bytes) -> tuple[int, str, bytes]:
    if len(payload) < _U32.size:
        raise ProtocolError(f"milter reply {code.name}: no index")
    (index,) = _U32.unpack_from(payload)
    name, value = _strings(code, payload[_U32.size :], 2)
    return index, text(name, code.name), value


def decode_reply(code: int, payload: bytes) -> MilterReply:
    """The reply value for one packet from a filter.

    Raises:
        ProtocolError: an unknown or unsupported reply, or a malformed payload.
    """
    try:
        reply = ReplyCode(code)
    except ValueError:
        raise ProtocolError(f"milter: unknown reply {bytes((code,))!r}") from None
    simple: dict[ReplyCode, MilterReply] = {
        ReplyCode.CONTINUE: Continue(),
        ReplyCode.ACCEPT: Accept(),
        ReplyCode.REJECT: Reject(),
        ReplyCode.TEMPFAIL: Tempfail(),
        ReplyCode.DISCARD: Discard(),
        ReplyCode.SKIP: Skip(),
        ReplyCode.PROGRESS: Progress(),
    }
    try:
        if reply in simple:
            _no_data(reply, payload)
            return simple[reply]
        if reply is ReplyCode.OPTNEG:
            return _options(payload)
        if reply is ReplyCode.REPLYCODE:
            return _smtp_reply(payload)
        if reply is ReplyCode.ADDHEADER:
            name, value = _strings(reply, payload, 2)
            return AddHeader(text(name, reply.name), value)
        if reply is ReplyCode.INSHEADER:
            return InsertHeader(*_indexed_header(reply, payload))
        if reply is ReplyCode.CHGHEADER:
            return ChangeHeader(*_indexed_header(reply, payload))
        if reply is ReplyCode.CHGFROM:
            return ChangeFrom(*_address_and_args(reply, payload))
        if reply in (ReplyCode.ADDRCPT, ReplyCode.ADDRCPT_PAR):
            return AddRecipient(*_address_and_args(reply, payload))
        if reply is ReplyCode.DELRCPT:
            (address,) = _strings(reply, payload, 1)
            return DeleteRecipient(text(address, reply.name))
        if reply is ReplyCode.REPLBODY:
            return ReplaceBody(payload)
        if reply is ReplyCode.QUARANTINE:
            (reason,) = _strings(reply, payload, 1)
            return Quarantine(text(reason, reply.name))
    except ValueError as exc:
        raise ProtocolError(f"milter reply {reply.name}: {exc}") from None
    raise ProtocolError(f"milter: reply {reply.name} is not supported")


class ReplyDecoder:
    """Splits a filter's byte stream into replies, whatever the chunking."""

    __slots__ = ("_packets",)

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._packets = PacketDecoder(max_packet)

    def feed(self, data: bytes) -> list[MilterReply]:
        """Every reply completed by ``data``.

        Raises:
            ProtocolError: the filter broke framing or sent a malformed reply.
        """
        return [decode_reply(code, payload) for code, payload in self._packets.feed(data)]


class MtaClient:
    """A pure stand-in for Postfix's milter client: events to bytes, bytes to replies.

    Args:
        actions: actions offered in OPTNEG (Postfix offers all).
        protocol: protocol flags offered (Postfix offers all of version 6).
    """

    def __init__(
        self,
        *,
        actions: ActionFlag = ALL_ACTIONS,
        protocol: ProtocolFlag = ALL_PROTOCOL_FLAGS,
        version: int = VERSION,
        max_packet: int = MAX_PACKET,
    ) -> None:
        self.offer = OptionNegotiation(version, actions, protocol)
        self._replies = ReplyDecoder(max_packet)
        #: The filter's answer to OPTNEG, once received.
        self.agreed: Negotiated | None = None

    def encode(self, *events: Event) -> bytes:
        """The packets for ``events``, in order."""
        return b"".join(encode_command(event) for event in events)

    def receive(self, data: bytes) -> list[MilterReply]:
        """Replies completed by ``data``; remembers the OPTNEG answer."""
        replies = self._replies.feed(data)
        for reply in replies:
            if isinstance(reply, OptionsReply):
                self.agreed = Negotiated(reply.version, reply.actions, reply.protocol, reply.macros)
        return replies

    def expects_reply(self, event: Event) -> bool:
        """Whether Postfix would wait for a reply after sending ``event``."""
        if isinstance(event, OptionNegotiation):
            return True
        if self.agreed is None:
            raise RuntimeError("no OPTNEG answer received yet")
        return self.agreed.replies_to(_command(event))

    def sends(self, event: Event) -> bool:
        """Whether Postfix would send ``event`` at all, given the agreed ``NO*`` flags."""
        if self.agreed is None or isinstance(event, DefineMacros):
            return True
        return self.agreed.sends(_command(event))

    def message(
        self,
        sender: str,
        recipients: Sequence[str],
        headers: Iterable[tuple[str, bytes]],
        body: bytes,
        *,
        macros: Mapping[Command, Sequence[tuple[str, str]]] | None = None,
    ) -> list[Event]:
        """The events of one mail transaction as Postfix sends them: MAIL, RCPTs, DATA,
        headers, EOH, body in chunks of 65,535 bytes, EOB; with the given macros before
        their event, and without the events the filter declined."""
        macros = macros or {}
        events: list[Event] = []

        def add(event: Event) -> None:
            command = _command(event)
            if command in macros:
                events.append(DefineMacros(command, tuple(macros[command])))
            if self.sends(event):
                events.append(event)

        add(Mail(sender))
        for recipient in recipients:
            add(Rcpt(recipient))
        add(Data())
        for name, value in headers:
            add(MilterHeaderField(name, value))
        add(EndOfHeaders())
        for start in range(0, len(body), CHUNK_SIZE):
            add(Body(body[start : start + CHUNK_SIZE]))
        add(EndOfMessage())
        return events


def _command(event: Event) -> Command:
    return COMMAND_OF[type(event)]
