"""One milter connection from Postfix: bytes to the milter codec, messages to the service.

The asyncio half of the milter: it moves bytes, asks the context's ``MilterService``
(``milter.py``) for each verdict, on the event loop when every DNS answer it needs is
cached, else by waiting for a worker thread, and writes the verdicts back. The service
is asked for at each recipient check and each message, so after a reload the next
message runs on the new configuration while the one in the pipeline finishes on the old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Coroutine

from srsfwd.errors import ProtocolError, SrsfwdError
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
    MilterCodec,
    MilterReply,
    Negotiation,
    OptionNegotiation,
    Progress,
    ProtocolFlag,
    Quit,
    Rcpt,
    SmtpReply,
)
from srsfwd.servers.connection import Connection, ServerContext
from srsfwd.servers.milter import (
    RECIPIENT_ERROR,
    TEMPFAIL_REPLY,
    MilterService,
    RecipientVerdict,
    Verdict,
)
from srsfwd.srs import looks_like_srs

log = logging.getLogger(__name__)

#: Seconds between PROGRESS replies while the pipeline runs: keeps Postfix's
#: ``milter_content_timeout`` (300 s) and our idle sweep from ending the connection.
PROGRESS_EVERY = 10.0


class MilterConnection(Connection):
    """One milter connection from Postfix (one per SMTP session).

    Events are handled in order; while the pipeline works on a message (or a recipient
    check runs) reading stops, and PROGRESS goes out every ``PROGRESS_EVERY`` seconds.
    """

    service = "milter"
    group = "milter"

    def __init__(self, context: ServerContext) -> None:
        super().__init__(context)
        self._codec = MilterCodec(
            Negotiation(required=ActionFlag.CHGFROM | ActionFlag.ADDHDRS),
            max_message=self.milter.max_message + 1,
        )
        self._events: deque[Event] = deque()
        self._busy: asyncio.Task[None] | None = None
        self._closing: str | None = None  # close once the message in the pipeline is answered
        self._tcp: socket.socket | None = None  # set when the peer is on TCP

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if (
            self.transport is not None
            and sock is not None
            and sock.family in (socket.AF_INET, socket.AF_INET6)
            and hasattr(socket, "TCP_QUICKACK")
        ):
            self._tcp = sock
            self._ack_at_once()

    def _ack_at_once(self) -> None:
        """Acknowledge what arrives next at once (Linux ``TCP_QUICKACK``, which the
        kernel clears again as the connection goes on, so it is set after each exchange).

        Postfix sends a stage's macros alone before the headers (the DATA macros with
        DATA declined), and Nagle's algorithm holds its next packets until that one is
        acknowledged: with the acknowledgement delayed (40 ms), every message waited.
        """
        if self._tcp is not None:
            with contextlib.suppress(OSError):
                self._tcp.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)

    @property
    def milter(self) -> MilterService:
        """The context's milter service now: a reload may have put in another.

        Raises:
            RuntimeError: a reload turned the milter off (the message is deferred).
        """
        milter = self.context.milter
        if milter is None:
            raise RuntimeError("the milter is no longer configured")
        return milter

    def expired(self, now: float) -> bool:
        if self._busy is not None:
            return False
        milter = self.context.milter
        timeout = milter.idle_timeout if milter is not None else self.context.keep_alive
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
        self._ack_at_once()

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
                milter = self.context.milter
                if milter is not None and milter.inline and looks_like_srs(event.recipient):
                    self._recipient_here(milter, event)
                elif looks_like_srs(event.recipient) or milter is None:
                    self._start(self._recipient(event))
                else:  # not a bounce to check: no hand-off to a worker thread
                    log.debug("milter: RCPT <%s>: CONTINUE", event.recipient)
                    self._write(Continue())
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

    def _recipient_here(self, milter: MilterService, event: Rcpt) -> None:
        """The recipient check on the event loop: HMAC work, no DNS."""
        try:
            verdict = milter.check_recipient(event)
        except Exception as exc:  # noqa: BLE001 - logged (with its traceback) and counted there
            verdict = self._recipient_check_failed(exc)
        self._answer_recipient(event, verdict)

    async def _recipient(self, event: Rcpt) -> None:
        try:
            milter = self.milter
            verdict = await self._waiting(milter.run(lambda: milter.check_recipient(event)))
        except Exception as exc:  # noqa: BLE001 - logged (with its traceback) and counted there
            verdict = self._recipient_check_failed(exc)
        assert isinstance(verdict, RecipientVerdict)  # noqa: S101 - what check_recipient gives
        self._answer_recipient(event, verdict)

    def _recipient_check_failed(self, exc: Exception) -> RecipientVerdict:
        """Log and count a recipient check that raised; the answer is a deferral."""
        if isinstance(exc, SrsfwdError):  # a known failure (a forwarder not built)
            log.error("milter: recipient check failed: %s", exc)
        else:
            log.error("milter: recipient check failed", exc_info=exc)
        self._count_error()
        return RECIPIENT_ERROR

    def _answer_recipient(self, event: Rcpt, verdict: RecipientVerdict) -> None:
        """Count a recipient refused or deferred, and send the answer."""
        metrics = self.context.metrics
        if metrics is not None and verdict.outcome != "continue":
            metrics.milter_recipients.labels(verdict.outcome, verdict.reason).inc()
        log.debug("milter: RCPT <%s>: %s", event.recipient, describe(verdict.reply))
        self._write(verdict.reply)

    async def _end_of_message(self) -> None:
        message = self._codec.message
        started = time.perf_counter()
        negotiated = self._codec.negotiated
        leading = bool(negotiated and negotiated.protocol & ProtocolFlag.HDR_LEADSPC)
        if message is None:  # pragma: no cover - EOM always completes a message
            self._write(TEMPFAIL_REPLY)
            return
        milter: MilterService | None = None
        try:
            milter = self.milter
            # On the event loop when every DNS answer is cached, else in a worker thread.
            verdict = milter.decide_inline(message, leading_space=leading) or await self._waiting(
                milter.run(lambda: milter.decide(message, leading_space=leading))
            )
        except Exception:  # the executor or the milter is gone (reload, shutdown): defer
            log.exception("milter: could not run the pipeline")
            verdict = Verdict("error", TEMPFAIL_REPLY, reasons=("internal-error",))
        assert isinstance(verdict, Verdict)  # noqa: S101 - decide gives a Verdict
        try:
            # One write for all of the message's packets: one send() instead of one each.
            replies = b"".join(
                self._codec.send(reply) for reply in (*verdict.actions, verdict.final)
            )
        except (RuntimeError, ValueError) as exc:
            # An action Postfix did not allow (not negotiated): defer the message.
            log.error("milter: cannot send the actions, deferring: %s", exc)
            await _give_back(milter, verdict)
            verdict = Verdict("error", TEMPFAIL_REPLY, reasons=("internal-error",))
            replies = self._codec.send(TEMPFAIL_REPLY)
        gone = self._peer_gone()
        if not gone and self.transport is not None:
            self.transport.write(replies)
            self._ack_at_once()
            gone = self._peer_gone(peek=False)  # the write failed
        if gone:
            # The MTA is gone and applies its own default action: the message was not
            # handed over, and will come again.
            await _give_back(milter, verdict)
            verdict = Verdict("abandoned", verdict.final, reasons=("mta-gone",))
        seconds = time.perf_counter() - started
        if log.isEnabledFor(logging.INFO):  # the line is not built when nobody reads it
            log.info("%s", verdict.log_line(message, seconds))
        if log.isEnabledFor(logging.DEBUG):
            done = [describe(a) for a in (*verdict.actions, verdict.final)]
            log.debug("milter: queue_id=%s replied %s", message.queue_id or "-", "; ".join(done))
        self._count(verdict, seconds)

    def _peer_gone(self, *, peek: bool = True) -> bool:
        """Whether the MTA has closed the connection. Reading stops while the pipeline
        runs, so asyncio has not seen a close yet: with ``peek``, look at the socket."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return True
        sock = transport.get_extra_info("socket")
        if not peek or sock is None:
            return False
        try:
            copy = sock.dup()  # the transport's socket offers no recv()
        except OSError:  # out of descriptors: answer as usual
            return False
        with copy:
            try:
                data: bytes = copy.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except ConnectionError:
                return True  # reset
            except OSError:  # BlockingIOError: open, nothing sent since
                return False
        return data == b""

    async def _waiting(
        self, work: Coroutine[object, object, Verdict | RecipientVerdict]
    ) -> Verdict | RecipientVerdict:
        """``work``'s result, sending PROGRESS while it takes long."""
        future = asyncio.ensure_future(work)
        while True:
            done, _ = await asyncio.wait({future}, timeout=PROGRESS_EVERY)
            if done:
                return future.result()
            self.last_request = self._loop.time()
            self._write(Progress())

    def _count(self, verdict: Verdict, seconds: float) -> None:
        metrics = self.context.metrics
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


async def _give_back(milter: MilterService | None, verdict: Verdict) -> None:
    """Uncount a forward the MTA never got, in a thread (the store may be slow)."""
    if milter is not None and verdict.result is not None:
        await asyncio.to_thread(milter.give_back, verdict)


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
