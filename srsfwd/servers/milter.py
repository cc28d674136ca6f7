"""The milter of ``srsfwd serve``: the forwarding pipeline inside Postfix.

A thin asyncio shell around the pure codec (``srsfwd.protocols.milter``). Per message it
gathers the envelope and the message, runs ``Forwarder.forward`` in a worker thread (DNS
and crypto never block the event loop), and turns the result into milter actions:

* CHGFROM to the SRS sender when SRS applies; DELRCPT/ADDRCPT for bounces reversed home;
* CHGHEADER to delete every arriving Authentication-Results that claims our authserv-id
  (``srsfwd.authservid``), then INSHEADER at the top for what the pipeline prepended
  (Authentication-Results, our DKIM-Signature, the ARC set);
* CHGHEADER From and ADDHEADER Reply-To when DMARC-safe forwarding rewrote the From;
* ADDHEADER ``X-Srsfwd-Pool: <pool>``, which ``milter_header_checks`` turns into
  ``FILTER <pool transport>:``;
* REPLYCODE with the pipeline's reply when it refuses or defers.

Mail for local recipients only is left as it is, but for the deletion of
Authentication-Results that claim our authserv-id. An internal error is a temporary
failure (or, if configured, the message passes unchanged); a message larger than we keep
is refused, never signed truncated. The pure part (``MilterService.decide``) is what the
worker threads run; ``MilterConnection`` only moves bytes and waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from srsfwd.address import DomainSet, split_address, strip_brackets
from srsfwd.authservid import claims_authserv_id
from srsfwd.dkim.canon import Header
from srsfwd.errors import AddressError, ProtocolError, SignatureError, SRSError
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.message import MessageChanges, ParsedMessage
from srsfwd.pool import Action
from srsfwd.protocols.milter import (
    ActionFlag,
    AddHeader,
    AddRecipient,
    ChangeFrom,
    ChangeHeader,
    Continue,
    DeleteRecipient,
    EndOfMessage,
    Event,
    InsertHeader,
    Message,
    MilterReply,
    Negotiation,
    OptionNegotiation,
    Progress,
    ProtocolFlag,
    Quit,
    Rcpt,
    Reject,
    SmtpReply,
    Tempfail,
)
from srsfwd.protocols.milter import (
    MilterConnection as MilterCodec,
)
from srsfwd.protocols.milter.connection import MAX_HEADERS, MAX_RECIPIENTS
from srsfwd.servers.connection import Connection, ServerContext
from srsfwd.sizes import MAX_MESSAGE

if TYPE_CHECKING:
    from srsfwd.servers.metrics import Metrics
    from srsfwd.servers.settings import ServeSettings

log = logging.getLogger(__name__)

#: Seconds between PROGRESS replies while the pipeline runs: keeps Postfix's
#: ``milter_content_timeout`` (300 s) and our idle sweep from ending the connection.
PROGRESS_EVERY = 10.0
_REPLY = re.compile(r"([45][0-9][0-9]) ([45]\.[0-9]{1,3}\.[0-9]{1,3}) ?(.*)", re.DOTALL)
TEMPFAIL_REPLY = SmtpReply(451, "4.3.0", "srsfwd: internal error; try again later")
TOO_BIG_REPLY = SmtpReply(
    552,
    "5.3.4",
    f"message too big: over {MAX_MESSAGE} bytes, {MAX_HEADERS} header fields"
    f" or {MAX_RECIPIENTS} recipients",
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the milter answers for one message, and what it logs.

    ``outcome`` is the pipeline's action (``forward``, ``reject``, ``tempfail``) or the
    milter's own (``local``: left as it is; ``error``: internal error; ``too-big``).
    """

    outcome: str
    final: MilterReply
    actions: tuple[MilterReply, ...] = ()
    pool: str | None = None
    srs: bool = False
    reasons: tuple[str, ...] = ()
    mail_from: str = ""
    rcpts: tuple[str, ...] = ()
    signatures: tuple[str, ...] = ()  # "dkim", "arc" for each signature added

    def log_line(self, message: Message, seconds: float) -> str:
        """The one structured line logged per message."""
        reply = self.final.line if isinstance(self.final, SmtpReply) else ""
        client = message.macros.get("client_addr") or (
            message.client.address if message.client else None
        )
        fields = {
            "queue_id": message.queue_id or "-",
            "action": self.outcome,
            "pool": self.pool or "-",
            "srs": "yes" if self.srs else "no",
            "reasons": ",".join(self.reasons) or "-",
            "from": f"<{message.sender or ''}>",
            "new_from": f"<{self.mail_from}>" if self.srs else "-",
            "rcpts": str(len(message.recipients)),
            "client": client or "-",
            "size": str(message.size),
            "signed": ",".join(self.signatures) or "-",
            "reply": f'"{reply}"' if reply else "-",
            "ms": f"{seconds * 1000:.1f}",
        }
        return "milter: " + " ".join(f"{k}={v}" for k, v in fields.items())


def smtp_reply(line: str | None, *, temporary: bool) -> MilterReply:
    """The REPLYCODE for the pipeline's reply ``550 5.7.1 text``; a plain reject or
    tempfail if it does not fit what Postfix accepts."""
    match = _REPLY.fullmatch(line or "")
    if match is not None:
        code, status, text = match.groups()
        text = "".join(c if c.isascii() and c.isprintable() else "?" for c in text)
        with contextlib.suppress(ValueError):
            return SmtpReply(int(code), status, text)
    return Tempfail() if temporary else Reject()


def received_message(message: Message, *, leading_space: bool) -> ParsedMessage:
    """The message the milter received as the pipeline's one parse of it: its fields as
    the MTA sent them (CRLF folds) and its body, nothing joined or parsed again.

    Raises:
        SignatureError: a field name that is not one, or no field at all.
    """
    space = b"" if leading_space else b" "
    fields = [
        (
            header.name.encode("utf-8", "surrogateescape"),  # checked by from_fields
            space + header.value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
        )
        for header in message.headers
    ]
    return ParsedMessage.from_fields(fields, message.body)


def header_actions(changes: MessageChanges, *, leading_space: bool) -> list[MilterReply]:
    """The milter actions that make the pipeline's header ``changes``, in their order.

    Deletions first, highest index first (CHGHEADER with an empty value): the MTA
    applies edits in order and counts the fields of a name as they are then, and once
    ours is inserted on top, index 1 would be this hop's own Authentication-Results.
    Then the changed fields (CHGHEADER), the appended ones (ADDHEADER) and the ones on
    top (INSHEADER at 0, the lowest first).
    """
    actions: list[MilterReply] = [ChangeHeader(ref.index, ref.name, b"") for ref in changes.deleted]
    actions += [
        ChangeHeader(change.index, change.name, _wire_value(change.value, leading_space))
        for change in changes.changed
    ]
    actions += [
        AddHeader(_name(header), _wire_value(header.value, leading_space))
        for header in changes.appended
    ]
    actions += [
        InsertHeader(0, _name(header), _wire_value(header.value, leading_space))
        for header in reversed(changes.inserted)
    ]
    return actions


def _name(header: Header) -> str:
    return header.name.rstrip(b" \t").decode("ascii")


def _wire_value(value: bytes, leading_space: bool) -> bytes:
    """A field's value as the milter protocol carries it (LF line ends)."""
    value = value.replace(b"\r\n", b"\n")
    if not leading_space and value.startswith(b" "):
        value = value[1:]
    return value


def forged_results_deletions(message: Message, authserv_id: str) -> tuple[MilterReply, ...]:
    """CHGHEADER deletions of the arriving Authentication-Results claiming ``authserv_id``.

    For mail that is not forwarded (local recipients only): nothing else changes, but
    nobody may write our verdicts into a local mailbox either (RFC 8601 §5).
    """
    deletions: list[MilterReply] = []
    nth = 0
    for header in message.headers:
        if header.name.strip().lower() != "authentication-results":
            continue
        nth += 1
        if claims_authserv_id(header.value, authserv_id):
            deletions.append(ChangeHeader(nth, header.name.strip(), b""))
    return tuple(reversed(deletions))  # highest index first, so earlier indexes stay valid


def envelope_changes(message: Message, result: ForwardResult) -> list[MilterReply]:
    """CHGFROM for the SRS sender, DELRCPT/ADDRCPT for recipients the pipeline changed."""
    actions: list[MilterReply] = []
    if result.changes is not None and result.changes.new_sender is not None:
        actions.append(ChangeFrom(f"<{result.changes.new_sender}>"))
    before = [strip_brackets(r.recipient) for r in message.recipients]
    after = list(result.rcpts)
    for rcpt in before:
        if rcpt not in after:
            actions.append(DeleteRecipient(f"<{rcpt}>"))
    for rcpt in after:
        if rcpt not in before:
            actions.append(AddRecipient(f"<{rcpt}>"))
    return actions


class ForwarderPool:
    """Forwarders for the worker threads: one per message at a time.

    ``Forwarder`` keeps per-instance state (the limits store connection, signer cache)
    that is not safe to share between threads; each message borrows one, and new ones
    are built on demand, at most one per worker.
    """

    def __init__(self, factory: Callable[[], Forwarder], first: Forwarder | None = None) -> None:
        self._factory = factory
        self._idle: list[Forwarder] = [first] if first is not None else []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self) -> Iterator[Forwarder]:
        with self._lock:
            forwarder = self._idle.pop() if self._idle else None
        if forwarder is None:
            forwarder = self._factory()
        try:
            yield forwarder
        finally:
            with self._lock:
                self._idle.append(forwarder)


@dataclass(eq=False)
class MilterService:
    """What every milter connection shares: the pipeline, the settings, the workers.

    Args:
        forwarders: builds (and keeps) forwarders for the worker threads.
        local_domains: recipients delivered here; a message for them only is untouched.
        default_action: ``tempfail`` or ``accept`` on an internal error.
        spam_header: our spam filter's header (``YES`` means spam); "" for none.
        pool_header: the header naming the pool.
        idle_timeout: seconds a milter connection may be idle.
        workers: messages in the pipeline at once.
    """

    forwarders: ForwarderPool
    local_domains: DomainSet
    default_action: str = "tempfail"
    spam_header: str = ""
    pool_header: str = "X-Srsfwd-Pool"
    idle_timeout: float = 600.0
    workers: int = 16
    max_message: int = MAX_MESSAGE
    _executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="srsfwd-milter")

    @classmethod
    def from_settings(
        cls,
        settings: ServeSettings,
        factory: Callable[[], Forwarder],
        *,
        accepted: DomainSet,
    ) -> MilterService:
        """The service ``[serve]`` asks for; builds one forwarder now to check the config.

        Raises:
            ConfigError: the pipeline's configuration is wrong.
        """
        first = factory()
        local = (
            DomainSet(settings.milter_local_domains)
            if settings.milter_local_domains is not None
            else accepted
        )
        return cls(
            ForwarderPool(factory, first),
            local,
            default_action=settings.milter_default_action,
            spam_header=settings.milter_spam_header,
            pool_header=settings.milter_pool_header,
            idle_timeout=settings.milter_timeout,
            workers=settings.milter_workers,
        )

    def close(self) -> None:
        """Stop taking work; messages in the pipeline finish."""
        self._executor.shutdown(wait=False)

    async def run(self, function: Callable[[], Verdict | MilterReply]) -> Verdict | MilterReply:
        """``function`` in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    # -- in the worker threads ------------------------------------------------------

    def check_recipient(self, rcpt: Rcpt) -> MilterReply:
        """RCPT: refuse an SRS address of ours that does not verify (a forged bounce)."""
        address = strip_brackets(rcpt.recipient)
        with self.forwarders.borrow() as forwarder:
            try:
                if not forwarder.is_our_srs(address):
                    return Continue()
                forwarder.rewriter.reverse(address)
            except (SRSError, AddressError) as exc:
                return smtp_reply(
                    f"550 5.7.1 <{address}>: not a valid bounce address here ({exc})",
                    temporary=False,
                )
        return Continue()

    def decide(self, message: Message, *, leading_space: bool) -> Verdict:
        """The verdict for one whole message. Never raises: errors become the default action."""
        try:
            return self._decide(message, leading_space)
        except Exception:
            log.exception("milter: internal error on message %s", message.queue_id or "-")
            if self.default_action == "accept":
                return Verdict("error", Continue(), reasons=("internal-error",))
            return Verdict("error", TEMPFAIL_REPLY, reasons=("internal-error",))

    def _decide(self, message: Message, leading_space: bool) -> Verdict:
        rcpts = tuple(strip_brackets(r.recipient) for r in message.recipients)
        sender = strip_brackets(message.sender or "")
        if message.truncated:
            return Verdict("too-big", TOO_BIG_REPLY, reasons=("message-too-big",))
        with self.forwarders.borrow() as forwarder:
            if rcpts and all(self._local(forwarder, r) for r in rcpts):
                deletions = forged_results_deletions(message, forwarder.authserv_id)
                return Verdict("local", Continue(), deletions, reasons=("local-recipients",))
            try:
                parsed = received_message(message, leading_space=leading_space)
            except SignatureError as exc:
                return Verdict(
                    "reject",
                    smtp_reply(f"550 5.6.0 {exc}", temporary=False),
                    reasons=("not-a-message",),
                    mail_from=sender,
                    rcpts=rcpts,
                )
            client = message.client
            result = forwarder.forward(
                parsed,
                client_ip=message.macros.get("client_addr")
                or (client.address if client and client.address else None)
                or "127.0.0.1",
                helo=message.helo or (client.hostname if client else "") or "",
                mail_from=sender,
                rcpts=rcpts,
                spam=self._spam(message),
                sasl_user=message.macros.get("auth_authen") or None,
            )
        pool = None if result.pool is None else str(result.pool)
        if result.action is not Action.FORWARD or result.changes is None:
            temporary = result.action is Action.TEMPFAIL
            final = smtp_reply(result.smtp_reply, temporary=temporary)
            return Verdict(
                str(result.action),
                final,
                pool=pool,
                reasons=result.reasons,
                mail_from=sender,
                rcpts=rcpts,
            )
        try:
            headers = header_actions(result.changes, leading_space=leading_space)
        except Exception:
            # Counted as forwarded, but the answer will be a deferral: uncount it.
            with self.forwarders.borrow() as forwarder:
                forwarder.give_back(result)
            raise
        actions = [*envelope_changes(message, result), *headers]
        value = f" {result.pool}" if leading_space else str(result.pool)
        actions.append(AddHeader(self.pool_header, value))
        signatures = tuple(
            "dkim" if h.key == b"dkim-signature" else "arc"
            for h in result.changes.inserted
            if h.key in (b"dkim-signature", b"arc-seal")
        )
        return Verdict(
            "forward",
            Continue(),
            tuple(actions),
            pool=pool,
            srs=result.srs,
            reasons=result.reasons,
            mail_from=result.mail_from,
            rcpts=result.rcpts,
            signatures=signatures,
        )

    def _local(self, forwarder: Forwarder, rcpt: str) -> bool:
        try:
            domain = split_address(rcpt)[1].lower()
        except AddressError:
            return False
        return domain in self.local_domains and not forwarder.is_our_srs(rcpt)

    def _spam(self, message: Message) -> bool:
        if not self.spam_header:
            return False
        wanted = self.spam_header.lower()
        return any(
            h.name.lower() == wanted and h.value.strip().lower().startswith(b"yes")
            for h in message.headers
        )


class MilterConnection(Connection):
    """One milter connection from Postfix (one per SMTP session).

    Events are handled in order; while the pipeline works on a message (or a recipient
    check runs) reading stops, and PROGRESS goes out every ``PROGRESS_EVERY`` seconds.
    """

    service = "milter"
    group = "milter"

    def __init__(self, context: ServerContext) -> None:
        super().__init__(context)
        milter = context.milter
        if milter is None:  # pragma: no cover - the daemon listens only when configured
            raise RuntimeError("no milter service configured")
        self.milter = milter
        self._codec = MilterCodec(
            Negotiation(required=ActionFlag.CHGFROM | ActionFlag.ADDHDRS),
            max_message=milter.max_message + 1,
        )
        self._events: deque[Event] = deque()
        self._busy: asyncio.Task[None] | None = None
        self._closing: str | None = None  # close once the message in the pipeline is answered

    def expired(self, now: float) -> bool:
        if self._busy is not None:
            return False
        timeout = self.milter.idle_timeout
        if not self.started:  # until the options are negotiated
            return self.opened < now - min(self.context.first_request_timeout, timeout)
        return self.last_request < now - timeout

    def buffer_updated(self, nbytes: int) -> None:
        self.last_request = self._loop.time()
        try:
            self._events.extend(self._codec.feed(bytes(self._read_view[:nbytes])))
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        self.started = self._codec.negotiated is not None
        self._pump()

    def close(self, reason: str) -> None:
        """Close, but answer the message in the pipeline first (shutdown, reload)."""
        if self._busy is not None:
            self._closing = reason
            return
        super().close(reason)

    def eof_received(self) -> bool:
        return False  # Postfix never half-closes; a client that does is done

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self.transport.is_closing() and self._busy is None:
            self.transport.resume_reading()

    def _invalid(self) -> bytes:
        return b""  # nothing to say to a peer that broke the protocol: just close

    def _write(self, reply: MilterReply) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self._codec.send(reply))

    def _pump(self) -> None:
        codec = self._codec
        while self._events and self._busy is None and self.transport is not None:
            event = self._events.popleft()
            if isinstance(event, OptionNegotiation):
                if codec.options_reply is not None:
                    self._write(codec.options_reply)
            elif isinstance(event, Quit):
                self.close("quit")
                return
            elif isinstance(event, EndOfMessage):
                self._start(self._end_of_message())
            elif isinstance(event, Rcpt) and codec.needs_reply(event):
                self._start(self._recipient(event))
            elif codec.needs_reply(event):
                self._write(Continue())
        transport = self.transport
        if (
            self._busy is None
            and transport is not None
            and not transport.is_closing()
            and not self._write_paused
        ):
            transport.resume_reading()

    def _start(self, work: object) -> None:
        assert asyncio.iscoroutine(work)  # noqa: S101 - our own call sites
        if self.transport is not None:
            self.transport.pause_reading()
        self._busy = self._loop.create_task(work)
        self._busy.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._busy = None
        if not task.cancelled() and task.exception() is not None:
            log.error("milter: connection task failed", exc_info=task.exception())
            self.abort()
            return
        self.last_request = self._loop.time()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._closing is not None:
            super().close(self._closing)
            return
        self._pump()

    async def _recipient(self, event: Rcpt) -> None:
        try:
            reply = await self._waiting(self.milter.run(lambda: self.milter.check_recipient(event)))
        except Exception:
            log.exception("milter: recipient check failed")
            self._count_error()
            reply = TEMPFAIL_REPLY
        assert not isinstance(reply, Verdict)  # noqa: S101 - check_recipient gives a MilterReply
        log.debug("milter: RCPT <%s>: %s", event.recipient, describe(reply))
        self._write(reply)

    async def _end_of_message(self) -> None:
        message = self._codec.message
        started = time.perf_counter()
        negotiated = self._codec.negotiated
        leading = bool(negotiated and negotiated.protocol & ProtocolFlag.HDR_LEADSPC)
        if message is None:  # pragma: no cover - EOM always completes a message
            self._write(TEMPFAIL_REPLY)
            return
        try:
            verdict = await self._waiting(
                self.milter.run(lambda: self.milter.decide(message, leading_space=leading))
            )
        except Exception:  # the executor is gone (reload, shutdown): defer
            log.exception("milter: could not run the pipeline")
            verdict = Verdict("error", TEMPFAIL_REPLY, reasons=("internal-error",))
        assert isinstance(verdict, Verdict)  # noqa: S101 - decide gives a Verdict
        try:
            for action in verdict.actions:
                self._write(action)
            self._write(verdict.final)
        except (RuntimeError, ValueError):
            # An action Postfix did not allow (not negotiated): defer the message.
            log.exception("milter: cannot send the actions")
            verdict = Verdict("error", TEMPFAIL_REPLY, reasons=("internal-error",))
            self._write(TEMPFAIL_REPLY)
        seconds = time.perf_counter() - started
        log.info("%s", verdict.log_line(message, seconds))
        if log.isEnabledFor(logging.DEBUG):
            done = [describe(a) for a in (*verdict.actions, verdict.final)]
            log.debug("milter: queue_id=%s replied %s", message.queue_id or "-", "; ".join(done))
        self._count(verdict, seconds)

    async def _waiting(
        self, work: Coroutine[object, object, Verdict | MilterReply]
    ) -> Verdict | MilterReply:
        """``work``'s result, sending PROGRESS while it takes long."""
        future = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({future}, timeout=PROGRESS_EVERY)
            if done:
                return future.result()
            self.last_request = self._loop.time()
            self._write(Progress())

    def _count(self, verdict: Verdict, seconds: float) -> None:
        metrics: Metrics | None = self.context.metrics
        if metrics is None:
            return
        reason = verdict.reasons[0] if verdict.reasons else "-"
        metrics.milter_messages.labels(verdict.outcome, verdict.pool or "-", reason).inc()
        for kind in verdict.signatures:
            metrics.milter_signatures.labels(kind).inc()
        metrics.milter_latency.observe(seconds)
        if verdict.outcome == "error":
            metrics.errors.labels("milter-internal").inc()

    def _count_error(self) -> None:
        if self.context.metrics is not None:
            self.context.metrics.errors.labels("milter-internal").inc()


def describe(reply: MilterReply) -> str:
    """A milter reply in a debug line: what it does; of the headers it adds, only the
    names (but for ours, the pool)."""
    if isinstance(reply, ChangeFrom):
        return f"CHGFROM {reply.sender}"
    if isinstance(reply, AddRecipient | DeleteRecipient):
        return f"{'ADDRCPT' if isinstance(reply, AddRecipient) else 'DELRCPT'} {reply.recipient}"
    if isinstance(reply, InsertHeader):
        return f"INSHEADER {reply.name}"
    if isinstance(reply, ChangeHeader):
        return f"CHGHEADER {reply.name} #{reply.index}"
    if isinstance(reply, AddHeader):
        value = reply.value
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        return f"ADDHEADER {reply.name}:{text}"
    if isinstance(reply, SmtpReply):
        return f"REPLYCODE {reply.line}"
    return type(reply).__name__.upper()
