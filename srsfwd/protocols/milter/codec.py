"""One milter connection, filter side: bytes in, events out; replies in, bytes out.

Rule 1: this module owns the order of commands. A command out of place (BODY before MAIL,
a second CONNECT, anything after QUIT) is a ``ProtocolError``; the server logs it and
closes the socket, and Postfix applies ``milter_default_action``. Like libmilter, HELO,
MAIL and UNKNOWN inside an open transaction end it (an implicit ABORT): Postfix sends HELO
mid-transaction when a client repeats EHLO, and ABORT follows.

Rule 2: this module owns which replies may be sent when. Misuse by our own code (a reply
when none is awaited, an action that was not negotiated, an action before end of
message) is a ``RuntimeError``, not a ``ProtocolError``: the peer did nothing wrong.

Rule 3: no I/O, no clock. The asyncio server reads bytes, calls ``feed``, answers the
events that ``needs_reply``, writes what ``send`` returns, and owns timeouts.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter.commands import (
    COMMAND_OF,
    Body,
    Connect,
    DefineMacros,
    EndOfMessage,
    Event,
    Helo,
    Mail,
    MilterHeaderField,
    OptionNegotiation,
    QuitNewConnection,
    Rcpt,
    decode_command,
)
from srsfwd.protocols.milter.negotiation import Negotiated, Negotiation
from srsfwd.protocols.milter.replies import (
    FINAL_REPLIES,
    MODIFICATIONS,
    AddRecipient,
    Discard,
    MilterReply,
    OptionsReply,
    Progress,
    Skip,
)
from srsfwd.protocols.milter.wire import (
    MAX_PACKET,
    ActionFlag,
    Command,
    PacketDecoder,
    ProtocolFlag,
)
from srsfwd.sizes import MAX_MESSAGE as MAX_MESSAGE_SIZE

#: Default cap on the header, body and recipient bytes kept per message; beyond it the
#: message is still followed but no longer stored, and ``MilterMessage.truncated`` is set.
MAX_MESSAGE = MAX_MESSAGE_SIZE
#: Header fields and recipients kept per message; more also set ``MilterMessage.truncated``.
#: Postfix's ``smtpd_recipient_limit`` is 1,000 by default.
MAX_HEADERS = 10_000
MAX_RECIPIENTS = 10_000
#: Bytes of one MAIL or RCPT payload: an address is at most 256 octets (RFC 5321), and
#: Postfix's command lines at most 2,048 (``line_length_limit``); longer is an attack.
MAX_ENVELOPE_FIELD = 4096
#: Bytes of macro names and values held per connection; Postfix sends a few hundred.
MAX_MACROS = 64 * 1024


def _check_size(code: int, length: int) -> None:
    """Refuse, before decoding it, a payload larger than any MTA sends.

    Raises:
        ProtocolError: a MACRO over ``MAX_MACROS``, a MAIL or RCPT over
            ``MAX_ENVELOPE_FIELD`` bytes.
    """
    if code == Command.MACRO and length > MAX_MACROS:
        raise ProtocolError(f"milter MACRO: {length} bytes, over {MAX_MACROS} bytes of macros")
    if code in (Command.MAIL, Command.RCPT) and length > MAX_ENVELOPE_FIELD:
        name = Command(code).name
        raise ProtocolError(f"milter {name}: {length} bytes, over {MAX_ENVELOPE_FIELD}")


class Stage(enum.IntEnum):
    """Where a connection is, in protocol order."""

    OPTIONS = 0  # waiting for OPTNEG
    CONNECT = 1  # negotiated, waiting for CONNECT
    SESSION = 2  # connected, no mail transaction open
    MAIL = 3
    RCPT = 4
    DATA = 5
    HEADERS = 6
    END_OF_HEADERS = 7
    BODY = 8
    CLOSED = 9  # after QUIT


#: The stage each transaction command moves to, and whether it may repeat.
_TRANSACTION: dict[Command, tuple[Stage, bool]] = {
    Command.RCPT: (Stage.RCPT, True),
    Command.DATA: (Stage.DATA, False),
    Command.HEADER: (Stage.HEADERS, True),
    Command.END_OF_HEADERS: (Stage.END_OF_HEADERS, False),
    Command.BODY: (Stage.BODY, True),
    Command.END_OF_MESSAGE: (Stage.SESSION, False),
}

#: Macros that belong to the connection rather than to one message.
_CONNECTION_MACRO_STAGES = frozenset({Command.CONNECT, Command.HELO})


def macro_name(name: str) -> str:
    """A macro name without its braces: ``{client_addr}`` -> ``client_addr``, ``i`` -> ``i``."""
    if len(name) >= 2 and name[0] == "{" and name[-1] == "}":
        return name[1:-1]
    return name


@dataclass(frozen=True, slots=True)
class MilterMessage:
    """Everything the MTA told us about one message, handed to the pipeline at end of message.

    ``headers`` are in arrival order with raw values (see ``MilterHeaderField``); ``body`` is the
    body in SMTP form (CRLF); ``size`` counts every header and body byte seen, ``truncated``
    says whether some were dropped to respect the cap. ``macros`` merges the connection's
    and this message's macros, names without braces (``client_addr``, ``i``).
    """

    client: Connect | None
    helo: str | None
    sender: str | None
    sender_args: tuple[str, ...]
    recipients: tuple[Rcpt, ...]
    headers: tuple[MilterHeaderField, ...]
    body: bytes
    size: int
    truncated: bool
    macros: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def queue_id(self) -> str | None:
        """Postfix's queue id (macro ``i``), if it was sent."""
        return self.macros.get("i")


class _Transaction:
    """The message being received; mutable, private to the connection."""

    __slots__ = (
        "body",
        "headers",
        "held",
        "macros",
        "recipients",
        "seen",
        "sender",
        "size",
        "truncated",
    )

    def __init__(self) -> None:
        self.sender: Mail | None = None
        self.recipients: list[Rcpt] = []
        self.headers: list[MilterHeaderField] = []
        self.body = bytearray()
        self.size = 0  # header and body bytes seen
        self.held = 0  # header, body and recipient bytes kept
        self.truncated = False
        self.seen: set[Command] = set()
        self.macros: dict[Command, dict[str, str]] = {}


class MilterCodec:
    """The protocol state of one milter connection, filter side: a sans-IO codec.

    What it holds is bounded (``held``): header, body and recipient bytes by
    ``max_message``, header fields and recipients by ``MAX_HEADERS`` and
    ``MAX_RECIPIENTS`` (beyond them the message is ``truncated``, which the server
    refuses as too big), and what no MTA sends is a ``ProtocolError``: more than
    ``MAX_MACROS`` bytes of macros, a MAIL or RCPT over ``MAX_ENVELOPE_FIELD`` bytes.

    Args:
        negotiation: what we ask the MTA for.
        max_packet: largest packet accepted (a bigger length is refused unbuffered).
        max_message: header, body and recipient bytes kept per message.
    """

    def __init__(
        self,
        negotiation: Negotiation | None = None,
        *,
        max_packet: int = MAX_PACKET,
        max_message: int = MAX_MESSAGE,
    ) -> None:
        self._negotiation = negotiation if negotiation is not None else Negotiation()
        self._decoder = PacketDecoder(max_packet)
        self._max_message = max_message
        self._awaiting: deque[Command] = deque()
        self._connection_macros: dict[Command, dict[str, str]] = {}
        self._transaction: _Transaction | None = None
        self._error: ProtocolError | None = None
        # MAIL's macros arrive just before MAIL opens the transaction.
        self._pending_macros: dict[Command, dict[str, str]] = {}
        self.stage = Stage.OPTIONS
        #: The agreement, once OPTNEG was answered.
        self.negotiated: Negotiated | None = None
        #: Our answer to the MTA's OPTNEG, to pass to ``send``.
        self.options_reply: OptionsReply | None = None
        #: The client, from CONNECT.
        self.client: Connect | None = None
        #: The last HELO name.
        self.helo: str | None = None
        #: The message completed by the last END_OF_MESSAGE, until the next one starts.
        self.message: MilterMessage | None = None

    # -- input -----------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Every event completed by ``data``, in order. ``b""`` is allowed and does nothing.

        Raises:
            ProtocolError: the MTA broke framing, a payload, or the command order. The
                connection is unusable afterwards.
        """
        if self._error is not None:
            raise self._error
        if self.stage is Stage.CLOSED and data:
            raise ProtocolError("milter: data after QUIT")
        events = []
        try:
            for code, payload in self._decoder.feed(data):
                _check_size(code, len(payload))
                event = decode_command(code, payload)
                self._advance(event)
                events.append(event)
        except ProtocolError as exc:
            self._error = exc
            raise
        return events

    def needs_reply(self, event: Event) -> bool:
        """Whether the MTA waits for a reply to ``event`` (OPTNEG and EOM always)."""
        if isinstance(event, OptionNegotiation):
            return True
        if self.negotiated is None:
            return False
        return self.negotiated.replies_to(COMMAND_OF[type(event)])

    @property
    def awaiting(self) -> Command | None:
        """The command whose reply is due, if any."""
        return self._awaiting[0] if self._awaiting else None

    @property
    def held(self) -> int:
        """Bytes this connection holds: an incomplete packet, the macros, and the header,
        body and recipient bytes of the open message."""
        transaction = self._transaction
        held = transaction.held if transaction is not None else 0
        return self._decoder.pending + self._macro_bytes() + held

    @property
    def macros(self) -> Mapping[str, str]:
        """Connection and current-message macros, names without braces; later stages win."""
        merged: dict[str, str] = {}
        for stage_macros in self._connection_macros.values():
            merged.update(stage_macros)
        if self._transaction is not None:
            for stage_macros in self._transaction.macros.values():
                merged.update(stage_macros)
        return MappingProxyType(merged)

    # -- output ----------------------------------------------------------------------

    def send(self, reply: MilterReply) -> bytes:
        """The bytes of ``reply``, after checking that it may be sent now.

        Raises:
            RuntimeError: no reply is awaited, or this one does not fit the event or the
                negotiated actions (our bug, not the MTA's).
        """
        if not self._awaiting:
            raise RuntimeError(f"milter: no event awaits a reply, cannot send {reply!r}")
        due = self._awaiting[0]
        if isinstance(reply, OptionsReply):
            if due is not Command.OPTNEG:
                raise RuntimeError("milter: options reply outside negotiation")
            self._awaiting.popleft()
            return reply.encode()
        if due is Command.OPTNEG:
            raise RuntimeError(f"milter: {reply!r} sent in answer to OPTNEG")
        negotiated = self._agreed()
        if isinstance(reply, Progress):
            return reply.encode()
        needed = MODIFICATIONS.get(type(reply))
        if needed is not None:
            if due is not Command.END_OF_MESSAGE:
                raise RuntimeError(f"milter: {type(reply).__name__} before end of message")
            if isinstance(reply, AddRecipient) and reply.args:
                needed = ActionFlag.ADDRCPT_PAR
            if not negotiated.actions & needed:
                raise RuntimeError(f"milter: action {needed!r} was not negotiated")
            return reply.encode()
        if not isinstance(reply, FINAL_REPLIES):  # pragma: no cover - the union is closed
            raise RuntimeError(f"milter: unknown reply {reply!r}")
        if isinstance(reply, Skip) and not negotiated.protocol & ProtocolFlag.SKIP:
            raise RuntimeError("milter: SKIP was not negotiated")
        if isinstance(reply, Discard) and due in (Command.CONNECT, Command.HELO):
            raise RuntimeError("milter: DISCARD is meaningless at CONNECT or HELO")
        self._awaiting.popleft()
        return reply.encode()

    # -- state machine ---------------------------------------------------------------

    def _advance(self, event: Event) -> None:
        command = COMMAND_OF[type(event)]
        stage = self.stage
        if stage is Stage.CLOSED:
            raise ProtocolError(f"milter: {command.name} after QUIT")
        if stage is Stage.OPTIONS:
            if not isinstance(event, OptionNegotiation):
                raise ProtocolError(f"milter: {command.name} before option negotiation")
            self._negotiate(event)
            return
        negotiated = self._agreed()
        if isinstance(event, OptionNegotiation):
            raise ProtocolError("milter: second option negotiation")
        if isinstance(event, DefineMacros):
            self._define(event)
        elif command is Command.QUIT:
            self._end_transaction()
            self.stage = Stage.CLOSED
        elif command is Command.ABORT:
            self._end_transaction()
            self._pending_macros = {}
            if stage > Stage.SESSION:
                self.stage = Stage.SESSION
        elif isinstance(event, QuitNewConnection):
            self._end_transaction()
            self._connection_macros.clear()
            self._pending_macros = {}
            self.client = None
            self.helo = None
            self.stage = Stage.CONNECT
            if not negotiated.sends(Command.CONNECT):
                self.stage = Stage.SESSION
        elif isinstance(event, Connect):
            if stage is not Stage.CONNECT:
                raise ProtocolError("milter: CONNECT twice on one connection")
            self.client = event
            self.stage = Stage.SESSION
        elif stage is Stage.CONNECT:
            raise ProtocolError(f"milter: {command.name} before CONNECT")
        elif isinstance(event, Helo):
            self._implicit_abort()
            self.helo = event.name
        elif command is Command.UNKNOWN:
            if self.stage > Stage.RCPT:
                self._implicit_abort()
        elif isinstance(event, Mail):
            self._implicit_abort()
            transaction = self._start_transaction()
            transaction.sender = event
            transaction.seen.add(Command.MAIL)
            self.stage = Stage.MAIL
        else:
            self._transaction_step(command, event)
        if negotiated.replies_to(command):
            self._awaiting.append(command)

    def _agreed(self) -> Negotiated:
        if self.negotiated is None:  # pragma: no cover - OPTNEG always comes first
            raise RuntimeError("milter: not negotiated yet")
        return self.negotiated

    def _negotiate(self, offer: OptionNegotiation) -> None:
        reply, negotiated = self._negotiation.answer(offer)
        self.options_reply = reply
        self.negotiated = negotiated
        self._awaiting.append(Command.OPTNEG)
        self.stage = Stage.CONNECT if negotiated.sends(Command.CONNECT) else Stage.SESSION

    def _transaction_step(self, command: Command, event: Event) -> None:
        target, repeats = _TRANSACTION[command]
        negotiated = self._agreed()
        stage = self.stage
        rank = Stage.BODY + 1 if command is Command.END_OF_MESSAGE else target
        if stage < Stage.SESSION or stage > rank or (stage == rank and not repeats):
            raise ProtocolError(f"milter: {command.name} out of order (in {stage.name})")
        transaction = self._transaction
        if transaction is None:
            if negotiated.sends(Command.MAIL):
                raise ProtocolError(f"milter: {command.name} before MAIL")
            transaction = self._start_transaction()
        wanted = [Command.MAIL, Command.RCPT] if command is not Command.RCPT else [Command.MAIL]
        for before in wanted:
            if negotiated.sends(before) and before not in transaction.seen:
                raise ProtocolError(f"milter: {command.name} before {before.name}")
        transaction.seen.add(command)
        if isinstance(event, Rcpt):
            self._keep_recipient(transaction, event)
        elif isinstance(event, MilterHeaderField):
            self._store(transaction, len(event.name) + len(event.value) + 3, event, b"")
        elif isinstance(event, Body | EndOfMessage):
            self._store(transaction, len(event.chunk), None, event.chunk)
        self.stage = target
        if command is Command.END_OF_MESSAGE:
            self.message = self._snapshot(transaction)
            self._end_transaction()

    def _store(
        self, transaction: _Transaction, size: int, header: MilterHeaderField | None, chunk: bytes
    ) -> None:
        transaction.size += size
        if (
            transaction.truncated
            or transaction.held + size > self._max_message
            or (header is not None and len(transaction.headers) >= MAX_HEADERS)
        ):
            transaction.truncated = True
            return
        transaction.held += size
        if header is not None:
            transaction.headers.append(header)
        transaction.body += chunk

    def _keep_recipient(self, transaction: _Transaction, rcpt: Rcpt) -> None:
        size = len(rcpt.recipient) + sum(len(arg) + 1 for arg in rcpt.args)
        if (
            transaction.truncated
            or transaction.held + size > self._max_message
            or len(transaction.recipients) >= MAX_RECIPIENTS
        ):
            transaction.truncated = True
            return
        transaction.held += size
        transaction.recipients.append(rcpt)

    def _start_transaction(self) -> _Transaction:
        self._transaction = _Transaction()
        self.message = None
        self._transaction.macros.update(self._pending_macros)
        self._pending_macros = {}
        return self._transaction

    def _implicit_abort(self) -> None:
        if self.stage > Stage.SESSION or self._transaction is not None:
            self._end_transaction()
            self.stage = Stage.SESSION

    def _end_transaction(self) -> None:
        self._transaction = None

    def _define(self, event: DefineMacros) -> None:
        values = {macro_name(name): value for name, value in event.macros}
        if event.stage in _CONNECTION_MACRO_STAGES:
            self._connection_macros[event.stage] = values
        elif self._transaction is not None and event.stage is not Command.MAIL:
            self._transaction.macros.setdefault(event.stage, {}).update(values)
        else:
            self._pending_macros[event.stage] = values
        if self._macro_bytes() > MAX_MACROS:
            raise ProtocolError(f"milter: over {MAX_MACROS} bytes of macros")

    def _macro_bytes(self) -> int:
        """Bytes of macro names and values held (at most ``MAX_MACROS``: cheap to count)."""
        stages = [*self._connection_macros.values(), *self._pending_macros.values()]
        if self._transaction is not None:
            stages += self._transaction.macros.values()
        return sum(len(name) + len(value) for macros in stages for name, value in macros.items())

    def _snapshot(self, transaction: _Transaction) -> MilterMessage:
        macros: dict[str, str] = {}
        for stage_macros in self._connection_macros.values():
            macros.update(stage_macros)
        for stage_macros in transaction.macros.values():
            macros.update(stage_macros)
        sender = transaction.sender
        return MilterMessage(
            client=self.client,
            helo=self.helo,
            sender=sender.sender if sender is not None else None,
            sender_args=sender.args if sender is not None else (),
            recipients=tuple(transaction.recipients),
            headers=tuple(transaction.headers),
            body=bytes(transaction.body),
            size=transaction.size,
            truncated=transaction.truncated,
            macros=MappingProxyType(macros),
        )
