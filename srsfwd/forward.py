"""One forward of one message: from what arrived to what leaves.

``Forwarder`` is built once from the configuration (secrets, keys, resolver, limits
store) and then called per message. It verifies and reverses bounces that come back to
our SRS addresses, gathers the facts, judges the sending limits of whom they
authenticated (else of the client's address), takes the pool decision, rewrites the
envelope sender when the decision says so, and prepares the message: this hop's
Authentication-Results, our DKIM signature, and an ARC set last of all. Whatever cannot
be done now is a deferral with an SMTP reply; nothing is waved through and nothing is
dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from srsfwd import inline
from srsfwd.address import DomainSet, split_address, strip_brackets
from srsfwd.app import build_key_table, build_limits, build_resolver, build_rewriter
from srsfwd.authorrewrite import author_change, author_in
from srsfwd.authresults import ResultClause, header_clauses, results_field
from srsfwd.authservid import claims_authserv_id
from srsfwd.clock import Clock, SystemClock
from srsfwd.config import Config
from srsfwd.dkim.arc import ArcSealer
from srsfwd.dkim.canon import MAX_HEADER_BYTES, Header, Message, body_start
from srsfwd.dkim.settings import dkim_settings
from srsfwd.dkim.sign import DkimSigner, body_hash_in, wire_form
from srsfwd.dmarc import Prediction, discover, predict
from srsfwd.dns.resolver import Resolver
from srsfwd.errors import (
    AddressError,
    ConfigError,
    DKIMError,
    DNSTempError,
    KeyNotFoundError,
    SignatureError,
    SRSError,
    SrsfwdError,
    SRSLengthError,
    TemporaryError,
)
from srsfwd.facts import Envelope, FactGatherer, build_gatherer, with_limits
from srsfwd.forward_settings import DmarcMode
from srsfwd.keystore import KeyTable
from srsfwd.limits import LimitVerdict, SendingLimits
from srsfwd.limits_identity import LimitsIdentity, limits_identity
from srsfwd.message import (
    FieldChange,
    FieldRef,
    MessageChanges,
    ParsedMessage,
    header_from_line,
)
from srsfwd.orgdomain import aligned, preload
from srsfwd.pool import (
    SIGN_MODES,
    Action,
    Decision,
    Facts,
    Policy,
    Pool,
    PoolSettings,
    SignWith,
    decide,
)
from srsfwd.pool_settings import decide_settings, pools_from_config
from srsfwd.sizes import MAX_MESSAGE
from srsfwd.srs import SRSRewriter

log = logging.getLogger(__name__)

#: Most recipients one call takes; the limits' per-message rule usually refuses sooner.
MAX_RCPTS = 10_000
#: Domains whose signer (or lack of a key) is remembered.
MAX_CACHED_DOMAINS = 10_000


@dataclass(frozen=True, slots=True)
class DmarcOutcome:
    """What the DMARC step predicted for the copy and what it did.

    ``result`` is one of ``dmarc-pass-expected``, ``dmarc-no-policy``,
    ``dmarc-policy-none``, ``dmarc-failed-on-arrival``, ``dmarc-from-rewritten``,
    ``dmarc-kept``, ``dmarc-refused``, ``dmarc-temperror`` (the look-up failed: defer) or
    ``dmarc-unknown`` (it failed, but the answer would not change what leaves).
    """

    result: str
    policy_domain: str | None = None
    disposition: str | None = None
    author: str | None = None
    new_from: str | None = None
    note: str = ""

    @property
    def acted(self) -> bool:
        """The copy would fail an enforced policy, and the step did something about it."""
        return self.result in ("dmarc-from-rewritten", "dmarc-kept", "dmarc-refused")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "result": self.result,
            "policy_domain": self.policy_domain,
            "disposition": self.disposition,
            "author": self.author,
            "new_from": self.new_from,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class ForwardResult:
    """What to do with one message, and the message to send.

    ``action`` is ``forward``, ``reject`` or ``tempfail``; when not forwarded,
    ``smtp_reply`` is the reply to give and ``message`` is None. Only a forwarded result
    has been ``counted`` against the sender's limits.
    """

    action: Action
    pool: Pool | None
    srs: bool
    mail_from: str
    rcpts: tuple[str, ...]
    reasons: tuple[str, ...]
    transport: str | None = None
    source_address: str | None = None
    helo: str | None = None
    smtp_reply: str | None = None
    decision: Decision | None = None
    notes: tuple[str, ...] = field(default=())
    #: What this forward added to the sending limits: (key, internal, external), the
    #: key being ``limits.key``.
    counted: tuple[str, int, int] | None = None
    #: Whose sending limits the message weighs on, and why (None: a bounce, the null
    #: sender, no limits, or refused before the facts were gathered).
    limits: LimitsIdentity | None = None
    #: The DMARC step's prediction and action (None when it did not run).
    dmarc: DmarcOutcome | None = None
    #: The message as it arrived (parsed once) and what the forward changes in it: a
    #: milter applies ``changes`` as they are. Both None when not forwarded.
    original: ParsedMessage | None = None
    changes: MessageChanges | None = None

    @property
    def forwarded(self) -> bool:
        return self.action is Action.FORWARD

    @property
    def message(self) -> bytes | None:
        """The message to send, in wire form, or None when not forwarded (joined anew on
        each call: keep it rather than ask twice for a large message)."""
        if self.original is None or self.changes is None:
            return None
        return self.changes.apply(self.original)


def _refused(
    action: Action,
    reply: str,
    reason: str,
    *,
    mail_from: str = "",
    rcpts: Sequence[str] = (),
    decision: Decision | None = None,
    notes: tuple[str, ...] = (),
) -> ForwardResult:
    return ForwardResult(
        action,
        None,
        False,
        mail_from,
        tuple(rcpts),
        (reason,),
        smtp_reply=reply,
        decision=decision,
        notes=notes,
    )


def _temporary(reply_text: str, reason: str, **kwargs: Any) -> ForwardResult:
    return _refused(Action.TEMPFAIL, f"451 4.3.0 {reply_text}", reason, **kwargs)


class Forwarder:
    """The forwarding pipeline, built once and called once per message."""

    def __init__(
        self,
        *,
        rewriter: SRSRewriter,
        gatherer: FactGatherer,
        policy: Policy,
        pools: dict[Pool, PoolSettings],
        authserv_id: str,
        key_table: KeyTable | None = None,
        sign_with: SignWith = "auto",
        sealer: ArcSealer | None = None,
        limits: SendingLimits | None = None,
        clock: Clock | None = None,
        dmarc: DmarcMode = "rewrite-from",
    ) -> None:
        self.rewriter = rewriter
        self.gatherer = gatherer
        # The decision needs our SRS domain (no SRS aligned with a forged From).
        if not policy.srs_domain:
            policy = dataclasses.replace(policy, srs_domain=rewriter.domain.lower())
        self.policy = policy
        self.pools = pools
        self.authserv_id = authserv_id
        self.key_table = key_table
        self.sign_with: SignWith = sign_with
        self.sealer = sealer
        self.limits = limits
        self.dmarc: DmarcMode = dmarc
        self._clock: Clock = clock or SystemClock()
        self._signers: dict[str, _DomainSigner | None] = {}
        preload()  # the Public Suffix List, read once now rather than for the first message
        self._our_domains = DomainSet([rewriter.domain, *rewriter.local_domains.entries()])

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        resolver: Resolver | None = None,
        clock: Clock | None = None,
        spam_header: str | None = None,
        dry_run: bool = False,
    ) -> Forwarder:
        """Everything the pipeline needs, read once from ``config``.

        ``dry_run`` is for forwards with ``dry_run=True`` only (``srsfwd decide``): a
        limits store that does not exist yet is not created.

        Raises:
            ConfigError: a missing or wrong setting, key or secret.
            StoreError: the limits store cannot be opened.
        """
        table = config.file.forward
        sign_with, arc, dmarc = table.dkim_sign, table.arc, table.dmarc
        settings = decide_settings(config)
        resolver = resolver or build_resolver(config, timeout=settings.dns_timeout, clock=clock)
        rewriter = build_rewriter(config, clock=clock)
        authserv_id = (
            settings.authserv_id or dkim_settings(config).authserv_id or socket.gethostname()
        )
        key_table = build_key_table(config) if sign_with != "none" or arc else None
        sealer = None
        if key_table is not None and arc:
            now = (clock or SystemClock()).now()
            try:
                rsa = [
                    k
                    for k in key_table.signing_keys(rewriter.domain, now=now)
                    if k.key.key_type == "rsa"
                ]
            except DKIMError as exc:
                raise ConfigError(f"ARC needs an RSA key for {rewriter.domain}: {exc}") from None
            if not rsa:
                raise ConfigError(f"ARC needs an RSA key for {rewriter.domain}")
            sealer = ArcSealer(rsa[0], authserv_id, resolver, clock=clock)
        forwarder = cls(
            rewriter=rewriter,
            gatherer=build_gatherer(resolver, settings, clock=clock),
            policy=settings.policy,
            pools=pools_from_config(config),
            authserv_id=authserv_id,
            key_table=key_table,
            sign_with=sign_with,
            sealer=sealer,
            limits=build_limits(config, clock=clock, create=not dry_run),
            clock=clock,
            dmarc=dmarc,
        )
        if key_table is not None and sign_with != "none":
            # The SRS domain's key is read now, as the sealer's is: a key file removed or
            # spoiled later cannot make normal-pool mail leave unsigned or deferred.
            try:
                forwarder._signer(key_table, rewriter.domain)
            except DKIMError as exc:
                raise ConfigError(f"cannot sign for {rewriter.domain}: {exc}") from None
        return forwarder

    # -- one message --------------------------------------------------------------

    def forward(
        self,
        message: bytes | ParsedMessage,
        *,
        client_ip: str,
        helo: str,
        mail_from: str,
        rcpts: Sequence[str],
        spam: bool = False,
        sasl_user: str | None = None,
        dry_run: bool = False,
    ) -> ForwardResult:
        """Decide and prepare the forward of ``message`` received with this envelope.

        ``message`` is the raw message or one parsed already (the milter's). Never raises
        for a bad message or a failing dependency: those come back as a ``reject`` (5xx:
        sending again cannot help) or ``tempfail`` (4xx) result with the SMTP reply to
        give. A forwarded message is counted against the limits of whom it
        authenticated, else of the client's address (``ForwardResult.limits``); with
        ``dry_run`` nothing is counted or stored (``srsfwd decide``). ``sasl_user`` is
        the session's SMTP AUTH login (Postfix's ``{auth_authen}``), if any: it vouches
        for a sender, and a From, in our accepted domains.
        """
        sender = strip_brackets(mail_from.strip())
        targets = tuple(strip_brackets(r.strip()) for r in rcpts)
        size = message.size if isinstance(message, ParsedMessage) else len(message)
        refusal = _envelope_refusal(size, sender, targets)
        if refusal is not None:
            return refusal
        arrival = Envelope(client_ip=client_ip, helo=helo, mail_from=sender, rcpts=targets)
        try:
            return self._forward(message, arrival, spam, sasl_user, dry_run)
        except SrsfwdError as exc:
            return _failure(exc, sender, targets)

    def _forward(
        self,
        message: bytes | ParsedMessage,
        arrival: Envelope,
        spam: bool,
        sasl_user: str | None,
        dry_run: bool,
    ) -> ForwardResult:
        """validate → gather → limits (whose, peek) → decide → rewrite, sign, seal
        (``_outcome``) → record."""
        parsed = self._validate(message, arrival)
        if isinstance(parsed, ForwardResult):
            return parsed
        work = self._reverse_bounces(parsed, arrival, dry_run)
        if isinstance(work, ForwardResult):
            return work
        facts = self.gatherer.gather(parsed, work.envelope, spam=spam, sasl_user=sasl_user)
        identity = self._limits_identity(work, facts)
        if isinstance(identity, ForwardResult):
            return identity
        counting, verdict = self._peek_limits(work, identity)
        decision = decide(facts if verdict is None else with_limits(facts, verdict), self.policy)
        result = self._outcome(work, decision)
        if counting is not None and result.forwarded and not dry_run:
            result = self._record(work, facts, verdict, counting, result)
        return result if identity is None else dataclasses.replace(result, limits=identity)

    def _validate(
        self, message: bytes | ParsedMessage, arrival: Envelope
    ) -> ParsedMessage | ForwardResult:
        """The envelope's addresses checked and the message parsed, once; or the refusal
        of a message that can never be forwarded.

        Raises:
            AddressError: an address that is not one (refused, see ``forward``).
        """
        sender, targets = arrival.mail_from, arrival.rcpts
        for address in (sender, *targets) if sender else targets:
            split_address(address)
        parsed = read_message(message)
        if isinstance(parsed, ParsedMessage):
            return parsed
        reason, words = parsed
        return _refused(
            Action.REJECT, f"550 5.6.0 {words}", reason, mail_from=sender, rcpts=targets
        )

    def _reverse_bounces(
        self, parsed: ParsedMessage, arrival: Envelope, dry_run: bool
    ) -> _Work | ForwardResult:
        """Bounces to our SRS addresses turned back to the original senders; or the
        refusal of an SRS address of ours that does not verify (a forged bounce)."""
        notes: list[str] = []
        final: list[str] = []
        for rcpt in arrival.rcpts:
            if not self.is_our_srs(rcpt):
                final.append(rcpt)
                continue
            try:
                original = self.rewriter.reverse(rcpt)
            except SRSError as exc:
                return _refused(
                    Action.REJECT,
                    f"550 5.7.1 <{rcpt}>: not a valid bounce address here ({exc})",
                    "srs-bounce-invalid",
                    mail_from=arrival.mail_from,
                    rcpts=arrival.rcpts,
                )
            notes.append(f"{rcpt} reversed to {original}")
            final.append(original)
        envelope = dataclasses.replace(arrival, rcpts=tuple(final)) if notes else arrival
        extra = ("srs-bounce-verified",) if notes else ()
        return _Work(parsed, envelope, extra, tuple(notes), dry_run)

    def _limits_identity(self, work: _Work, facts: Facts) -> LimitsIdentity | ForwardResult | None:
        """Whose limits the message counts against (``srsfwd.limits_identity``): the
        MAIL FROM when it arrived vouched for, else the client's address. None for
        bounces, the null sender, or without limits; a deferral when nothing vouched for
        the sender and the client's address is not one (nobody to count it against)."""
        if self.limits is None or not work.envelope.mail_from or work.extra:
            return None
        client = self.gatherer.outside_client(work.parsed, work.envelope)
        try:
            return limits_identity(facts, self.policy.accepted, client=client)
        except ValueError as exc:
            log.warning("deferring message from <%s>: %s", work.envelope.mail_from, exc)
            return _temporary(  # the client's text stays out of the reply: it is not ours
                "cannot tell whose sending limits this counts against: the client address"
                " is not an IP address",
                "temporary-failure",
                mail_from=work.envelope.mail_from,
                rcpts=work.envelope.rcpts,
            )

    def _peek_limits(
        self, work: _Work, identity: LimitsIdentity | None
    ) -> tuple[tuple[str, int, int] | None, LimitVerdict | None]:
        """What this message would count against ``identity``'s limits, and the verdict
        (none without an identity). A limit this message passes blocks that identity
        now, unless it is a dry run."""
        if self.limits is None or identity is None:
            return None, None
        sender, rcpts = identity.key, work.envelope.rcpts  # the sender as the limits count it
        internal = sum(1 for r in rcpts if split_address(r)[1] in self.policy.accepted)
        counting = (sender, internal, len(rcpts) - internal)
        verdict = self.limits.peek(sender, internal=internal, external=counting[2])
        if not work.dry_run:
            if verdict.reason == "limit-block":  # once: a retry would find it blocked already
                inline.commit()
            self.limits.block(sender, verdict)
        return counting, verdict

    def _record(
        self,
        work: _Work,
        facts: Facts,
        verdict: LimitVerdict | None,
        counting: tuple[str, int, int],
        result: ForwardResult,
    ) -> ForwardResult:
        """Count a forwarded message, now that it leaves.

        The count may find a limit passed since the peek (concurrent messages): then the
        decision is taken again with that verdict, and a message it stops is left uncounted
        (a deferred one comes back and is counted then).
        """
        if self.limits is None:
            return result
        sender, internal, external = counting
        inline.commit()  # counted once: an inline attempt that missed an answer stops here
        recorded = self.limits.record(sender, internal=internal, external=external)
        if verdict is None or recorded.outcome != verdict.outcome:
            result = self._outcome(work, decide(with_limits(facts, recorded), self.policy))
        if not result.forwarded:
            if not recorded.refused:  # a count that refuses has given itself back
                self.limits.give_back(sender, internal=internal, external=external)
            return result
        return dataclasses.replace(result, counted=counting)

    def give_back(self, result: ForwardResult) -> None:
        """Uncount a forwarded ``result`` that could not be handed over after all.

        Raises:
            StoreError: the limits store could not answer.
        """
        if result.counted is not None and self.limits is not None:
            sender, internal, external = result.counted
            self.limits.give_back(sender, internal=internal, external=external)

    def _outcome(self, work: _Work, decision: Decision) -> ForwardResult:
        """The result of ``decision``: the refusal, or the envelope and changes to send."""
        reasons = [*decision.reasons, *work.extra]
        notes = list(work.notes)
        if decision.action is not Action.FORWARD:
            return _not_forwarded(
                work, decision, decision.action, decision.smtp_reply, reasons, notes
            )
        pool, srs, new_sender = self._rewrite_sender(work, decision, reasons, notes)
        dmarc = self._dmarc_step(work.parsed, decision, pool, new_sender, dry_run=work.dry_run)
        if dmarc.acted or dmarc.result == "dmarc-temperror":
            reasons.append(dmarc.result)
        refusal = _dmarc_refusal(dmarc)
        if refusal is not None:
            action, reply = refusal
            return _not_forwarded(work, decision, action, reply, reasons, notes, dmarc=dmarc)
        if dmarc.note:
            notes.append(dmarc.note)
        return self._forwarded(
            work, decision, pool, srs, new_sender, reasons=reasons, notes=notes, dmarc=dmarc
        )

    def _forwarded(
        self,
        work: _Work,
        decision: Decision,
        pool: Pool,
        srs: bool,
        new_sender: str,
        *,
        reasons: list[str],
        notes: list[str],
        dmarc: DmarcOutcome,
    ) -> ForwardResult:
        """The forward result: where it leaves from, the envelope and the changes."""
        sender_change = new_sender if new_sender != work.envelope.mail_from else None
        changes = self._changes(work.parsed, decision, pool, dmarc, sender_change)
        settings = self.pools[pool]
        return ForwardResult(
            Action.FORWARD,
            pool,
            srs,
            new_sender,
            work.envelope.rcpts,
            tuple(reasons),
            transport=settings.transport,
            source_address=settings.source_addresses[0] if settings.source_addresses else None,
            helo=settings.helo or None,
            decision=decision,
            notes=tuple(notes),
            dmarc=dmarc,
            original=work.parsed,
            changes=changes,
        )

    def _rewrite_sender(
        self, work: _Work, decision: Decision, reasons: list[str], notes: list[str]
    ) -> tuple[Pool, bool, str]:
        """The pool, whether SRS applies, and the envelope sender that leaves.

        A sender SRS cannot rewrite (too long) must not leave from the IPs in our SPF
        record as if we vouched for it: it goes as the relay pool would.
        """
        pool, srs, new_sender = decision.pool, decision.srs, work.envelope.mail_from
        if srs:
            try:
                new_sender = self.rewriter.forward(new_sender, dry_run=work.dry_run)
            except SRSLengthError as exc:
                pool, srs = (pool if pool is Pool.HIGH_RISK else Pool.RELAY), False
                reasons.append("srs-not-possible")
                notes.append(str(exc))
        if pool is None:  # decide() always names a pool when it forwards
            raise SrsfwdError("the decision forwards without a pool")
        return pool, srs, new_sender

    def is_our_srs(self, rcpt: str) -> bool:
        """Whether ``rcpt`` is an SRS address in our SRS or local domains (a bounce home)."""
        if not self.rewriter.is_srs(rcpt):
            return False
        return split_address(rcpt)[1] in self._our_domains

    # -- DMARC after forwarding -----------------------------------------------------

    def _dmarc_step(
        self,
        message: ParsedMessage,
        decision: Decision,
        pool: Pool,
        new_sender: str,
        *,
        dry_run: bool,
    ) -> DmarcOutcome:
        """Predict the receiver's DMARC verdict for the copy; apply ``[forward] dmarc``.

        Signatures that passed on arrival survive (we only prepend fields), and so does
        ours when it is aligned with From; SPF at the receiver passes only for a MAIL
        FROM in our domains leaving from the normal pool. Only a copy that would fail a
        quarantine or reject policy, from a From domain that arrived authenticated, is
        rewritten, kept or refused; the policy is looked up only when no aligned
        signature survives. A DNS failure is ``dmarc-temperror`` (the caller defers) when
        the answer could change what leaves, else ``dmarc-unknown``.
        """
        author = decision.facts.from_domain
        if not author:
            return DmarcOutcome("dmarc-no-policy", note="no From domain")
        dkim_domains = self._dkim_domains_after(decision, pool)
        spf_domain = self._spf_domain_after(new_sender, pool)
        exact = author.lower().rstrip(".")
        if exact in (d.lower() for d in dkim_domains) or spf_domain == exact:
            return DmarcOutcome("dmarc-pass-expected")  # aligned even under adkim=s
        vouched = self._from_vouched(decision)
        try:
            found = discover(self.gatherer.resolver, author)
        except DNSTempError as exc:
            could_act = vouched and self.dmarc != "keep"
            return DmarcOutcome("dmarc-temperror" if could_act else "dmarc-unknown", note=str(exc))
        if found is None:
            return DmarcOutcome("dmarc-no-policy")
        prediction = predict(found, author, dkim_domains=dkim_domains, spf_domain=spf_domain)
        outcome = DmarcOutcome(
            "dmarc-pass-expected", policy_domain=found.domain, disposition=prediction.disposition
        )
        settled = self._dmarc_settled(prediction, vouched=vouched)
        if settled is not None:
            return dataclasses.replace(outcome, result=settled)
        return self._rewrite_from(message, outcome, decision, pool, new_sender, dry_run=dry_run)

    def _dmarc_settled(self, prediction: Prediction, *, vouched: bool) -> str | None:
        """The DMARC step's result when the prediction settles it, or None: rewrite From."""
        if prediction.result == "pass":
            return "dmarc-pass-expected"
        if not prediction.enforced_failure:
            return "dmarc-policy-none"
        if not vouched:
            # It fails DMARC already as it arrived: forwarding changes nothing, and
            # rewriting it would make mail nobody authenticated pass in our name.
            return "dmarc-failed-on-arrival"
        if self.dmarc == "reject":
            return "dmarc-refused"
        if self.dmarc == "keep":
            return "dmarc-kept"
        return None

    def _dkim_domains_after(self, decision: Decision, pool: Pool) -> list[str]:
        """The ``d=`` domains of the signatures that will verify at the receiver: those
        that passed on arrival (we only prepend fields) and ours."""
        ours = self._chosen_signer(decision, pool)
        domains = [c.domain for c in decision.facts.dkim if c.result == "pass"]
        return domains + (list(ours.domains) if ours is not None else [])

    def _rewrite_from(
        self,
        message: ParsedMessage,
        outcome: DmarcOutcome,
        decision: Decision,
        pool: Pool,
        new_sender: str,
        *,
        dry_run: bool,
    ) -> DmarcOutcome:
        """``dmarc-from-rewritten`` with the new From, when the rewritten copy will pass;
        else ``dmarc-kept`` with the reason in ``note``."""
        kept = dataclasses.replace(outcome, result="dmarc-kept")
        ours = self._chosen_signer(decision, pool)
        signs = ours is not None and any(aligned(d, self.rewriter.domain) for d in ours.domains)
        spf = aligned(self._spf_domain_after(new_sender, pool), self.rewriter.domain)
        if not (signs or spf):
            return dataclasses.replace(
                kept, note="not rewritten: no signature or SPF of ours would align with it"
            )
        try:
            author = author_in([h.value for h in message.find("from")])[1]
            new_from = self.rewriter.forward(author, dry_run=dry_run)
        except (AddressError, SRSError) as exc:
            return dataclasses.replace(kept, note=f"From not rewritten: {exc}")
        if split_address(new_from)[1] not in self._our_domains:
            return dataclasses.replace(kept, note="From not rewritten: the author is local")
        return dataclasses.replace(
            outcome,
            result="dmarc-from-rewritten",
            author=author,
            new_from=new_from,
            note=f"From {author} rewritten to {new_from}",
        )

    def _spf_domain_after(self, new_sender: str, pool: Pool) -> str | None:
        """The MAIL FROM domain SPF passes for at the receiver, or None.

        Only our own domains list the normal pool's addresses; anyone else's SPF does
        not name us, and the relay and high-risk pools are not vouched for.
        """
        if pool is not Pool.NORMAL or not new_sender:
            return None
        domain = split_address(new_sender)[1].lower().rstrip(".")
        return domain if domain in self._our_domains else None

    # -- the message --------------------------------------------------------------

    def _changes(
        self,
        message: ParsedMessage,
        decision: Decision,
        pool: Pool,
        dmarc: DmarcOutcome,
        new_sender: str | None,
    ) -> MessageChanges:
        """What the forward changes: the envelope sender (``new_sender``, None when it
        stays) and the header section: forged results out, the From rewrite, then this
        hop's Authentication-Results, our DKIM signature and the ARC set on top (RFC 8617
        §5.1: sealed last)."""
        changes = MessageChanges(new_sender, deleted=_forged_results(message, self.authserv_id))
        if dmarc.new_from is not None:
            change = author_change(
                [h.value for h in message.find("from")],
                has_reply_to=bool(message.find("reply-to")),
                new_address=dmarc.new_from,
                via=self.rewriter.domain,
            )
            from_name = message.find("from")[0].name.rstrip(b" \t").decode("ascii")
            appended = (
                ()
                if change.reply_to_value is None
                else (Header(b"Reply-To", change.reply_to_value),)
            )
            changes = dataclasses.replace(
                changes,
                changed=(FieldChange(from_name, 1, change.from_value),),
                appended=appended,
            )
        leaving = tuple(changes.headers(message))
        inserted = self._signed_and_sealed(message, leaving, decision, pool)
        return MessageChanges(
            new_sender=changes.new_sender,
            deleted=changes.deleted,
            changed=changes.changed,
            appended=changes.appended,
            inserted=inserted,
        )

    def _signed_and_sealed(
        self, message: ParsedMessage, leaving: tuple[Header, ...], decision: Decision, pool: Pool
    ) -> tuple[Header, ...]:
        """The fields to put on top of ``leaving`` (the header fields after our other
        changes): Authentication-Results, DKIM-Signature, the ARC set, top first.

        The relaxed body is hashed once, for the DKIM signature and the ARC message
        signature alike.
        """
        results = _HopResults(self.authserv_id, decision.facts)
        signer = self._signer_for(decision, pool)
        if signer is None and self.sealer is None:
            return (results.header(None),)
        bh = body_hash_in(message.source, message.body_at)
        signatures: tuple[Header, ...] = ()
        if signer is not None:
            lines = signer.signature_lines(Message(leaving, b""), bh=bh)
            signatures = tuple(map(header_from_line, lines))
        if self.sealer is None:
            return (*signatures, results.header(None))
        return self._sealed(self.sealer, message, signatures, leaving, bh, results)

    def _sealed(
        self,
        sealer: ArcSealer,
        message: ParsedMessage,
        signatures: tuple[Header, ...],
        leaving: tuple[Header, ...],
        bh: bytes,
        results: _HopResults,
    ) -> tuple[Header, ...]:
        """The ARC set on top of our ``signatures``, sealing them and ``leaving``.

        The sealer writes this hop's Authentication-Results (they go into the ARC set
        too) from what arrived, not from our own fresh signature.
        """
        fields = (*signatures, *leaving)
        sealed = sealer.seal_headers(
            fields,
            bh=bh,
            whole=lambda: message.to_bytes(fields),
            results=results.field,
            clauses=results.clause_texts,
        )
        if not sealed.sealed:  # a chain that ended before us: not continued, arc=fail
            return (results.header(sealed.cv), *signatures)
        return (*map(header_from_line, sealed.lines), *signatures)

    def _signer_for(self, decision: Decision, pool: Pool) -> DkimSigner | None:
        """Our signer for a message leaving from ``pool`` (see ``_chosen_signer``)."""
        chosen = self._chosen_signer(decision, pool)
        return None if chosen is None else chosen.signer

    def _chosen_signer(self, decision: Decision, pool: Pool) -> _DomainSigner | None:
        """Our signer for a message leaving from ``pool``, within the signing policy.

        * The stricter of ``[forward] dkim_sign`` and the pool's ``dkim_sign`` applies
          (relay and high-risk mail is not signed unless its pool says "srs-domain").
        * "auto": the From domain's key when that domain is vouched for
          (``_from_vouched``); else, as with "srs-domain", the SRS domain's key.
        * Never a signature aligned with a From domain that is not vouched for: that
          would make mail anyone wrote pass DMARC for it.

        Keys are read from the store once per domain, then kept.
        """
        mode = min(self.sign_with, self.pools[pool].signs_with, key=SIGN_MODES.index)
        key_table = self.key_table
        if key_table is None or mode == "none":
            return None
        author = decision.facts.from_domain
        vouched = self._from_vouched(decision)
        domains = [self.rewriter.domain]
        if mode == "auto" and author and vouched:
            domains.insert(0, author.lower())
        for domain in domains:
            found = self._signer(key_table, domain)
            if found is None:
                continue
            if not vouched and any(aligned(d, author) for d in found.domains):
                return None
            return found
        return None

    def _from_vouched(self, decision: Decision) -> bool:
        """The From domain is one we may speak for: it arrived authenticated (aligned SPF
        or DKIM pass), the message is a trusted submission (a client in
        ``trusted_relays``, no hop from outside), or the session logged in with SMTP
        AUTH and the From domain is one of our accepted domains (as OpenDKIM signs
        authenticated submissions; never a foreign From, or any user of ours could make
        mail pass DMARC for it)."""
        facts = decision.facts
        if decision.from_authenticated or facts.trusted_submission:
            return True
        author = (facts.from_domain or "").lower().rstrip(".")
        return bool(facts.sasl_user and author and author in self.policy.accepted)

    def _signer(self, key_table: KeyTable, domain: str) -> _DomainSigner | None:
        if domain not in self._signers:
            try:
                keys = key_table.signing_keys(domain, now=self._clock.now())
            except KeyNotFoundError:
                # Remember a bounded number of domains without a key: senders choose them.
                if len(self._signers) < MAX_CACHED_DOMAINS:
                    self._signers[domain] = None
                return None
            else:
                domains = tuple(sorted({k.domain for k in keys}))
                self._signers[domain] = _DomainSigner(DkimSigner(keys, clock=self._clock), domains)
        return self._signers[domain]


@dataclass(frozen=True, slots=True)
class _DomainSigner:
    """A signer and the ``d=`` domains of its keys."""

    signer: DkimSigner
    domains: tuple[str, ...]


def _dmarc_refusal(dmarc: DmarcOutcome) -> tuple[Action, str] | None:
    """The action and reply when the DMARC step stops the forward, else None."""
    if dmarc.result == "dmarc-refused":
        return Action.REJECT, (
            f"550 5.7.1 forwarding would fail the DMARC policy of {dmarc.policy_domain}"
            f" (p={dmarc.disposition}); not forwarded"
        )
    if dmarc.result == "dmarc-temperror":
        return Action.TEMPFAIL, f"451 4.7.0 DMARC policy look-up failed ({dmarc.note})"
    return None


@dataclass(frozen=True, slots=True)
class _HopResults:
    """This hop's Authentication-Results, written from the facts of what arrived."""

    authserv_id: str
    facts: Facts
    # The clauses made so far, per arc= verdict: the field and the sealer's texts share them.
    _made: dict[str | None, list[ResultClause]] = field(default_factory=dict, compare=False)

    def clauses(self, arc: str | None) -> list[ResultClause]:
        """The result clauses, with ``arc`` when the ARC verdict is known."""
        made = self._made.get(arc)
        if made is None:
            facts = self.facts
            made = self._made[arc] = header_clauses(
                spf=facts.spf,
                mail_from=facts.mail_from,
                helo=facts.helo or "",
                spf_reason=facts.spf_reason,
                dkim=facts.dkim,
                arc=arc,
            )
        return made

    def field(self, arc: str | None) -> str:
        """The whole field, folded."""
        return results_field(self.authserv_id, self.clauses(arc), folded=True)

    def clause_texts(self, arc: str) -> list[str]:
        """The clauses as authres writes them (a test checks it), so the sealer puts them
        into the AAR without parsing our own field again."""
        return [clause.as_authres_writes_it() for clause in self.clauses(arc)]

    def header(self, arc: str | None) -> Header:
        """The field as a header to insert."""
        return header_from_line(self.field(arc).encode("utf-8"))


def _envelope_refusal(size: int, sender: str, targets: tuple[str, ...]) -> ForwardResult | None:
    """The refusal of a message too big or with no or too many recipients, else None."""
    if size > MAX_MESSAGE:
        return _refused(
            Action.REJECT,
            f"552 5.3.4 message larger than {MAX_MESSAGE} bytes",
            "message-too-big",
            mail_from=sender,
            rcpts=targets,
        )
    if not targets:
        return _refused(Action.REJECT, "554 5.5.1 no recipients", "no-recipients", mail_from=sender)
    if len(targets) > MAX_RCPTS:
        return _refused(
            Action.REJECT,
            "452 4.5.3 too many recipients",
            "too-many-recipients",
            mail_from=sender,
            rcpts=targets[:10],
        )
    return None


def _failure(exc: SrsfwdError, sender: str, targets: tuple[str, ...]) -> ForwardResult:
    """The result for an error a forward raised: a bad address is refused, the rest
    deferred. What failed inside (a store's address, a key file's path) is logged and
    kept in the notes, never told to the SMTP client."""
    if isinstance(exc, TemporaryError):
        log.warning("deferring message from <%s>: %s", sender, exc)
        words = str(exc) if isinstance(exc, DNSTempError) else "temporary failure"
        return _temporary(
            f"{words}; try again later",
            "temporary-failure",
            mail_from=sender,
            rcpts=targets,
            notes=(str(exc),),
        )
    if isinstance(exc, AddressError):
        return _refused(
            Action.REJECT,
            f"501 5.1.3 bad address: {exc}",
            "bad-address",
            mail_from=sender,
            rcpts=targets,
        )
    # A message we were meant to change but cannot: defer, never send it unchanged.
    log.error("deferring message from <%s>: %s", sender, exc)
    return _temporary(
        "cannot forward now; try again later",
        "internal-error",
        mail_from=sender,
        rcpts=targets,
        notes=(str(exc),),
    )


def _not_forwarded(
    work: _Work,
    decision: Decision,
    action: Action,
    reply: str | None,
    reasons: list[str],
    notes: list[str],
    *,
    dmarc: DmarcOutcome | None = None,
) -> ForwardResult:
    """The result of a decision or a DMARC step that stops the forward."""
    return ForwardResult(
        action,
        None,
        False,
        work.envelope.mail_from,
        work.envelope.rcpts,
        tuple(reasons),
        smtp_reply=reply,
        decision=decision,
        notes=tuple(notes),
        dmarc=dmarc,
    )


def read_message(message: bytes | ParsedMessage) -> ParsedMessage | tuple[str, str]:
    """``message`` parsed (once), or why it can never be forwarded as (reason, words).

    Not a message, a header section over the limit, or not exactly one From field
    (RFC 5322 §3.6): sending it again cannot help, so these are refused with 5xx.
    """
    too_big = "header-too-big", f"header section larger than {MAX_HEADER_BYTES} bytes"
    if not isinstance(message, ParsedMessage):
        data = wire_form(message)  # the one conversion to CRLF
        if body_start(data) - 4 > MAX_HEADER_BYTES:
            return too_big
        try:
            message = ParsedMessage.parse_wire(data)
        except SignatureError as exc:
            return "not-a-message", str(exc)
    elif message.header_size > MAX_HEADER_BYTES:
        return too_big
    froms = len(message.find("from"))
    if froms == 0:
        return "no-from", "message has no From field (RFC 5322 3.6)"
    if froms > 1:
        return "several-from", f"message has {froms} From fields (RFC 5322 3.6)"
    return message


def message_problem(message: bytes | ParsedMessage) -> tuple[str, str] | None:
    """Why ``message`` can never be forwarded, as (reason code, words), or None."""
    read = read_message(message)
    return None if isinstance(read, ParsedMessage) else read


def _forged_results(message: ParsedMessage, authserv_id: str) -> tuple[FieldRef, ...]:
    """The arriving Authentication-Results fields that claim ``authserv_id``, highest
    index first: RFC 8601 §5, or anyone could forge our verdicts."""
    found: list[FieldRef] = []
    index = 0
    for header in message.headers:
        if header.key != b"authentication-results":
            continue
        index += 1
        if claims_authserv_id(header.value, authserv_id):
            found.append(FieldRef(header.name.rstrip(b" \t").decode("ascii"), index))
    found.reverse()
    return tuple(found)


@dataclass(frozen=True, slots=True)
class _Work:
    """One message on its way through the steps of a forward."""

    parsed: ParsedMessage
    envelope: Envelope  # with bounces to our SRS addresses reversed
    extra: tuple[str, ...]  # reasons found before the decision
    notes: tuple[str, ...]
    dry_run: bool
