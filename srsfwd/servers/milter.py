"""The milter of ``srsfwd serve``: the forwarding pipeline inside Postfix.

A thin asyncio shell around the pure codec (``srsfwd.protocols.milter``). Per message it
gathers the envelope and the message, runs ``Forwarder.forward`` and turns the result
into milter actions. The forward runs first on the event loop with DNS answered from the
cache only (``srsfwd.inline``): a sender seen lately costs no hand-off between threads.
When an answer is not cached the attempt stops before anything is counted and the
message goes to a worker thread, which asks the network (DNS never blocks the loop):

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
worker threads run; ``MilterConnection`` (``milter_connection.py``) only moves bytes and
waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from srsfwd import inline
from srsfwd.address import DomainSet, split_address, strip_brackets
from srsfwd.authservid import claims_authserv_id
from srsfwd.dkim.canon import Header
from srsfwd.errors import (
    AddressError,
    SignatureError,
    SRSError,
    SrsfwdError,
    StoreError,
    TemporaryError,
)
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.message import MessageChanges, ParsedMessage
from srsfwd.pool import Action
from srsfwd.protocols.milter import (
    AddHeader,
    AddRecipient,
    ChangeFrom,
    ChangeHeader,
    Continue,
    DeleteRecipient,
    InsertHeader,
    MilterMessage,
    MilterReply,
    Rcpt,
    Reject,
    SmtpReply,
    Tempfail,
)
from srsfwd.protocols.milter.codec import MAX_HEADERS, MAX_RECIPIENTS
from srsfwd.sizes import MAX_MESSAGE

if TYPE_CHECKING:
    from srsfwd.servers.settings import ServeSettings

log = logging.getLogger(__name__)

#: Largest message run on the event loop (``MilterService.decide_inline``): the loop holds
#: every other connection while it hashes a body, so a larger message goes to a worker.
INLINE_MAX_SIZE = 1 << 20
_REPLY = re.compile(r"([45][0-9][0-9]) ([45]\.[0-9]{1,3}\.[0-9]{1,3}) ?(.*)", re.DOTALL)
TEMPFAIL_REPLY = SmtpReply(451, "4.3.0", "srsfwd: internal error; try again later")
RCPT_TEMPFAIL_REPLY = SmtpReply(451, "4.3.0", "temporary failure; try again later")
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
    #: The pipeline's result of a forward, counted against its sender's limits: given
    #: back (``MilterService.give_back``) if the MTA never gets the verdict.
    result: ForwardResult | None = field(default=None, compare=False, repr=False)

    def log_line(self, message: MilterMessage, seconds: float) -> str:
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


@dataclass(frozen=True, slots=True)
class RecipientVerdict:
    """What the milter answers at RCPT: ``continue``, or ``reject``, ``tempfail`` or
    ``error`` (internal error) with the reason the recipients counter shows."""

    outcome: str
    reply: MilterReply
    reason: str = "-"


#: The recipient check's answer for every address it lets through.
RECIPIENT_CONTINUE = RecipientVerdict("continue", Continue())
#: The recipient check's answer when it failed (a bug, or the milter gone by a reload).
RECIPIENT_ERROR = RecipientVerdict("error", TEMPFAIL_REPLY, "internal-error")


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


def received_message(message: MilterMessage, *, leading_space: bool) -> ParsedMessage:
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


def forged_results_deletions(message: MilterMessage, authserv_id: str) -> tuple[MilterReply, ...]:
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


def arriving_field_deletions(message: MilterMessage, name: str) -> tuple[MilterReply, ...]:
    """CHGHEADER deletions of every arriving field called ``name`` (any case), highest
    index first: a pool header the client wrote never leaves beside ours."""
    wanted = name.lower()
    count = sum(1 for header in message.headers if header.name.strip().lower() == wanted)
    return tuple(ChangeHeader(nth, name, b"") for nth in range(count, 0, -1))


def envelope_changes(message: MilterMessage, result: ForwardResult) -> list[MilterReply]:
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
        inline: try each message on the event loop first, with DNS from the cache only.
        workers: messages in the pipeline at once.
    """

    forwarders: ForwarderPool
    local_domains: DomainSet
    default_action: str = "tempfail"
    spam_header: str = ""
    pool_header: str = "X-Srsfwd-Pool"
    idle_timeout: float = 600.0
    inline: bool = True
    workers: int = 16
    max_message: int = MAX_MESSAGE
    #: Our authserv-id: forged results in our name go even from a message passed as is.
    authserv_id: str = ""
    _executor: ThreadPoolExecutor = field(init=False)
    #: Recipient checks and messages handed to a worker thread so far.
    handed_off: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="srsfwd-milter")

    @classmethod
    def from_settings(
        cls,
        settings: ServeSettings,
        factory: Callable[[], Forwarder],
        *,
        accepted: DomainSet,
        local_stores: bool = True,
    ) -> MilterService:
        """The service ``[serve]`` asks for; builds one forwarder now to check the config.

        ``local_stores``: the limits and SRS alias stores are SQLite files, not a Redis
        server, which the event loop must not wait for: without them, every message
        goes to a worker thread whatever ``milter-inline`` says.

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
            inline=settings.milter_inline and local_stores,
            workers=settings.milter_workers,
            authserv_id=first.authserv_id,
        )

    def close(self) -> None:
        """Stop taking work; messages in the pipeline finish."""
        self._executor.shutdown(wait=False)

    async def run(
        self, function: Callable[[], Verdict | RecipientVerdict]
    ) -> Verdict | RecipientVerdict:
        """``function`` in a worker thread."""
        self.handed_off += 1
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    # -- on the event loop ----------------------------------------------------------

    def decide_inline(self, message: MilterMessage, *, leading_space: bool) -> Verdict | None:
        """``decide`` on this thread with every DNS answer from the cache, or None: a
        worker must decide (turned off, a large message, or an answer not cached). An
        attempt that missed an answer has counted, logged and cached nothing, so the
        worker's verdict is the one it would give with no attempt. Never raises."""
        if not self.inline or message.size > INLINE_MAX_SIZE:
            return None
        with inline.attempt() as attempt:
            try:
                verdict = self.decide(message, leading_space=leading_space)
            except inline.NotInline:  # not an Exception: decide lets it through
                return None
            # A miss swallowed on the way (pyspf catches everything around some look-ups)
            # may have made the verdict, an internal error too: never answer with it.
            return None if attempt.missed else verdict

    # -- in the worker threads (recipient checks also on the event loop) -------------

    def check_recipient(self, rcpt: Rcpt) -> RecipientVerdict:
        """RCPT: refuse an SRS address of ours that does not verify (a forged bounce).

        No DNS: with ``inline`` on it runs on the event loop."""
        address = strip_brackets(rcpt.recipient)
        with self.forwarders.borrow() as forwarder:
            try:
                if not forwarder.is_our_srs(address):
                    return RECIPIENT_CONTINUE
                forwarder.rewriter.reverse(address)
            except (SRSError, AddressError) as exc:
                reply = smtp_reply(
                    f"550 5.7.1 <{address}>: not a valid bounce address here ({exc})",
                    temporary=False,
                )
                return RecipientVerdict("reject", reply, "srs-bounce-invalid")
            except TemporaryError as exc:  # the alias store: say nothing of it to the client
                log.warning("milter: RCPT <%s>: deferred: %s", address, exc)
                reason = "store-unavailable" if isinstance(exc, StoreError) else "temporary-failure"
                return RecipientVerdict("tempfail", RCPT_TEMPFAIL_REPLY, reason)
        return RECIPIENT_CONTINUE

    def decide(self, message: MilterMessage, *, leading_space: bool) -> Verdict:
        """The verdict for one whole message. Never raises: errors become the default action."""
        try:
            return self._decide(message, leading_space)
        except Exception as exc:
            queue_id = message.queue_id or "-"
            if isinstance(exc, SrsfwdError):  # a known failure (a forwarder not built): one line
                log.error("milter: cannot process message %s: %s", queue_id, exc)
            else:
                log.exception("milter: internal error on message %s", queue_id)
            if self.default_action == "accept":
                deletions = (
                    forged_results_deletions(message, self.authserv_id) if self.authserv_id else ()
                )
                return Verdict("error", Continue(), deletions, reasons=("internal-error",))
            return Verdict("error", TEMPFAIL_REPLY, reasons=("internal-error",))

    def _decide(self, message: MilterMessage, leading_space: bool) -> Verdict:
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
            temporary = result.action is not Action.REJECT  # only a refusal is final
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
            actions = [
                *envelope_changes(message, result),
                *header_actions(result.changes, leading_space=leading_space),
            ]
            value = f" {result.pool}" if leading_space else str(result.pool)
            actions += arriving_field_deletions(message, self.pool_header)
            actions.append(AddHeader(self.pool_header, value))
        except Exception:
            # Counted as forwarded, but the answer will be a deferral: uncount it.
            with self.forwarders.borrow() as forwarder:
                forwarder.give_back(result)
            raise
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
            result=result,
        )

    def give_back(self, verdict: Verdict) -> None:
        """Uncount a forward ``verdict`` the MTA never got (it vanished, or refused our
        actions): the message will come again, and must not count twice. A store that
        cannot answer is logged; the count then stays (never raises)."""
        result = verdict.result
        if result is None or result.counted is None:
            return
        try:
            with self.forwarders.borrow() as forwarder:
                forwarder.give_back(result)
        except Exception as exc:  # noqa: BLE001 - a store outage, a forwarder not built
            sender = result.counted[0]
            log.warning("milter: could not uncount the message from <%s>: %s", sender, exc)

    def _local(self, forwarder: Forwarder, rcpt: str) -> bool:
        try:
            domain = split_address(rcpt)[1].lower()
        except AddressError:
            return False
        return domain in self.local_domains and not forwarder.is_our_srs(rcpt)

    def _spam(self, message: MilterMessage) -> bool:
        if not self.spam_header:
            return False
        wanted = self.spam_header.lower()
        return any(
            h.name.lower() == wanted and h.value.strip().lower().startswith(b"yes")
            for h in message.headers
        )
