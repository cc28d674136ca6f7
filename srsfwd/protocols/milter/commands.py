"""What the MTA sends: one frozen event per milter command, and the payload decoder.

Text policy (each field says which applies):

* strict UTF-8, ``ProtocolError`` otherwise: what Postfix produces or validates itself:
  macro names, the client host name (``valid_hostname`` or ``[address]``), address, port,
  header names (ASCII, Postfix's ``is_header``), MAIL and RCPT arguments (Postfix refuses
  malformed UTF-8 in envelope addresses when ``smtputf8_enable = yes``, its default);
* ``surrogateescape`` UTF-8 (never fails, exact bytes recoverable): what an SMTP client
  typed and Postfix passes on unchecked: the HELO name, an unknown command, macro values;
* bytes: header values and body chunks, which may carry 8-bit data, and which DKIM and
  ARC must see byte for byte.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter.wire import (
    ActionFlag,
    Command,
    Family,
    ProtocolFlag,
    client_text,
    split_strings,
    text,
)


@dataclass(frozen=True, slots=True)
class OptionNegotiation:
    """SMFIC_OPTNEG: the MTA's version and the actions and protocol flags it offers."""

    version: int
    actions: ActionFlag
    protocol: ProtocolFlag


@dataclass(frozen=True, slots=True)
class DefineMacros:
    """SMFIC_MACRO: macro values for the command ``stage`` that follows (or was skipped).

    Names are kept as sent (``{client_addr}``, ``i``). Postfix sends the macros of an
    event even when the filter asked not to get the event itself, and sends an empty
    list when none of the wanted macros has a value.
    """

    stage: Command
    macros: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Connect:
    """SMFIC_CONNECT: the SMTP client.

    ``hostname`` is Postfix's verified name, or ``[address]`` when it has none. ``port``
    and ``address`` are ``None`` for ``Family.UNKNOWN``; for ``Family.UNIX`` the port is 0
    and the address a socket path.
    """

    hostname: str
    family: Family
    port: int | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Helo:
    """SMFIC_HELO: the HELO/EHLO argument, as the client typed it (surrogateescape)."""

    name: str


@dataclass(frozen=True, slots=True)
class Mail:
    """SMFIC_MAIL: the envelope sender without its angle brackets ("" for ``<>``), and
    the ESMTP parameters (``SIZE=123``, ``BODY=8BITMIME``)."""

    sender: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Rcpt:
    """SMFIC_RCPT: one recipient without its angle brackets, and its ESMTP parameters."""

    recipient: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Data:
    """SMFIC_DATA: the client sent DATA."""


@dataclass(frozen=True, slots=True)
class MilterHeaderField:
    """SMFIC_HEADER: one header. ``value`` is raw bytes; a folded header has its lines
    joined by ``\\n``. Unless HDR_LEADSPC was negotiated, Postfix drops the one space after
    the colon (as sendmail does)."""

    name: str
    value: bytes


@dataclass(frozen=True, slots=True)
class EndOfHeaders:
    """SMFIC_EOH: the last header was sent."""


@dataclass(frozen=True, slots=True)
class Body:
    """SMFIC_BODY: a body chunk (at most 65,535 bytes from Postfix), CRLF line ends."""

    chunk: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """SMFIC_BODYEOB: the message is complete; the filter now answers with its actions.

    Postfix sends the last body bytes as a BODY first and an empty EOB; libmilter also
    accepts a final chunk here, so ``chunk`` may be non-empty from other MTAs.
    """

    chunk: bytes = b""


@dataclass(frozen=True, slots=True)
class Abort:
    """SMFIC_ABORT: forget the current message; the connection stays."""


@dataclass(frozen=True, slots=True)
class Quit:
    """SMFIC_QUIT: the MTA is done with this connection."""


@dataclass(frozen=True, slots=True)
class QuitNewConnection:
    """SMFIC_QUIT_NC: the SMTP session ended; a new one (CONNECT) follows on this socket."""


@dataclass(frozen=True, slots=True)
class Unknown:
    """SMFIC_UNKNOWN: an SMTP command the MTA did not recognise (surrogateescape)."""

    command: str


Event = (
    OptionNegotiation
    | DefineMacros
    | Connect
    | Helo
    | Mail
    | Rcpt
    | Data
    | MilterHeaderField
    | EndOfHeaders
    | Body
    | EndOfMessage
    | Abort
    | Quit
    | QuitNewConnection
    | Unknown
)

_OPTNEG = struct.Struct("!III")
_PORT = struct.Struct("!H")
#: RFC 5322 §2.2 field name: printable ASCII except colon (and space, which Postfix trims).
_HEADER_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")


def _empty(code: Command, payload: bytes) -> None:
    if payload:
        raise ProtocolError(f"milter {code.name}: {len(payload)} unexpected payload bytes")


def _optneg(payload: bytes) -> OptionNegotiation:
    # libmilter reads the first 12 bytes and ignores the rest; so do we.
    if len(payload) < _OPTNEG.size:
        raise ProtocolError(f"milter OPTNEG: {len(payload)} bytes, need {_OPTNEG.size}")
    version, actions, protocol = _OPTNEG.unpack_from(payload)
    return OptionNegotiation(version, ActionFlag(actions), ProtocolFlag(protocol))


def _macros(payload: bytes) -> DefineMacros:
    if not payload:
        raise ProtocolError("milter MACRO: no command code")
    try:
        stage = Command(payload[0])
    except ValueError:
        raise ProtocolError(f"milter MACRO: unknown command code {payload[:1]!r}") from None
    rest = payload[1:]
    if not rest:
        return DefineMacros(stage, ())
    fields = split_strings(rest, "MACRO")
    if len(fields) % 2:
        raise ProtocolError("milter MACRO: a name without a value")
    pairs = []
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        if not name:
            raise ProtocolError("milter MACRO: empty macro name")
        pairs.append((text(name, "MACRO name"), client_text(value)))
    return DefineMacros(stage, tuple(pairs))


def _connect(payload: bytes) -> Connect:
    host_end = payload.find(b"\0")
    if host_end < 0:
        raise ProtocolError("milter CONNECT: host name not NUL-terminated")
    hostname = text(payload[:host_end], "CONNECT host name")
    rest = payload[host_end + 1 :]
    if not rest:
        raise ProtocolError("milter CONNECT: no address family")
    try:
        family = Family(chr(rest[0]))
    except ValueError:
        raise ProtocolError(f"milter CONNECT: bad address family {rest[:1]!r}") from None
    if family is Family.UNKNOWN:
        # Postfix sends no port and no address for an unknown family (milter8_conn_event).
        if len(rest) != 1:
            raise ProtocolError("milter CONNECT: data after the unknown address family")
        return Connect(hostname, family)
    if len(rest) < 1 + _PORT.size + 1:
        raise ProtocolError("milter CONNECT: port or address missing")
    (port,) = _PORT.unpack_from(rest, 1)
    fields = split_strings(rest[1 + _PORT.size :], "CONNECT address")
    if len(fields) != 1:
        raise ProtocolError("milter CONNECT: data after the address")
    address = text(fields[0], "CONNECT address")
    if not address:
        raise ProtocolError("milter CONNECT: empty address")
    return Connect(hostname, family, port, address)


def _one_string(code: Command, payload: bytes) -> bytes:
    fields = split_strings(payload, code.name)
    if len(fields) != 1:
        raise ProtocolError(f"milter {code.name}: expected one string, got {len(fields)}")
    return fields[0]


def _envelope(code: Command, payload: bytes) -> tuple[str, tuple[str, ...]]:
    fields = [text(field, code.name) for field in split_strings(payload, code.name)]
    first, args = fields[0], tuple(fields[1:])
    if first.startswith("<") and first.endswith(">") and len(first) >= 2:
        first = first[1:-1]
    if not first and code is Command.RCPT:
        raise ProtocolError("milter RCPT: empty recipient")
    if any(not arg for arg in args):
        raise ProtocolError(f"milter {code.name}: empty ESMTP parameter")
    return first, args


def _mail(payload: bytes) -> Mail:
    return Mail(*_envelope(Command.MAIL, payload))


def _rcpt(payload: bytes) -> Rcpt:
    return Rcpt(*_envelope(Command.RCPT, payload))


def _helo(payload: bytes) -> Helo:
    return Helo(client_text(_one_string(Command.HELO, payload)))


def _header(payload: bytes) -> MilterHeaderField:
    fields = split_strings(payload, "HEADER")
    if len(fields) != 2:
        raise ProtocolError(f"milter HEADER: expected name and value, got {len(fields)} strings")
    raw_name, value = fields
    if not _HEADER_NAME.fullmatch(raw_name):
        raise ProtocolError(f"milter HEADER: bad header name {raw_name[:40]!r}")
    return MilterHeaderField(raw_name.decode("ascii"), value)


def _unknown(payload: bytes) -> Unknown:
    return Unknown(client_text(_one_string(Command.UNKNOWN, payload)))


def _no_payload(event: Event) -> Callable[[Command, bytes], Event]:
    def decode(code: Command, payload: bytes) -> Event:
        _empty(code, payload)
        return event

    return decode


_DECODERS: dict[Command, Callable[[Command, bytes], Event]] = {
    Command.OPTNEG: lambda _, p: _optneg(p),
    Command.MACRO: lambda _, p: _macros(p),
    Command.CONNECT: lambda _, p: _connect(p),
    Command.HELO: lambda _, p: _helo(p),
    Command.MAIL: lambda _, p: _mail(p),
    Command.RCPT: lambda _, p: _rcpt(p),
    Command.DATA: _no_payload(Data()),
    Command.HEADER: lambda _, p: _header(p),
    Command.END_OF_HEADERS: _no_payload(EndOfHeaders()),
    Command.BODY: lambda _, p: Body(p),
    Command.END_OF_MESSAGE: lambda _, p: EndOfMessage(p),
    Command.ABORT: _no_payload(Abort()),
    Command.QUIT: _no_payload(Quit()),
    Command.QUIT_NC: _no_payload(QuitNewConnection()),
    Command.UNKNOWN: lambda _, p: _unknown(p),
}


def decode_command(code: int, payload: bytes) -> Event:
    """The event for one packet from the MTA.

    Raises:
        ProtocolError: an unknown command byte or a malformed payload.
    """
    try:
        command = Command(code)
    except ValueError:
        raise ProtocolError(f"milter: unknown command {bytes((code,))!r}") from None
    return _DECODERS[command](command, payload)


#: The command byte of each event type, for encoders and for the state machine.
COMMAND_OF: dict[type[Event], Command] = {
    OptionNegotiation: Command.OPTNEG,
    DefineMacros: Command.MACRO,
    Connect: Command.CONNECT,
    Helo: Command.HELO,
    Mail: Command.MAIL,
    Rcpt: Command.RCPT,
    Data: Command.DATA,
    MilterHeaderField: Command.HEADER,
    EndOfHeaders: Command.END_OF_HEADERS,
    Body: Command.BODY,
    EndOfMessage: Command.END_OF_MESSAGE,
    Abort: Command.ABORT,
    Quit: Command.QUIT,
    QuitNewConnection: Command.QUIT_NC,
    Unknown: Command.UNKNOWN,
}
