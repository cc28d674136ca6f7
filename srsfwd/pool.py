"""The outbound pool decision: already-gathered facts in, a ``Decision`` out.

Pure: no DNS, no message parsing, no clock. ``srsfwd.facts`` gathers the ``Facts`` (SPF,
DKIM, the sender domain's A/AAAA/MX, the recipients); the sending limits and our spam
filter's verdict arrive as facts too. First matching rule wins (the table is in
docs/decide.md):

    1. limits block the sender                      → reject, no pool
    2. bounce (null sender, or a DSN/MDN report)    → high-risk, never SRS
       (then: a DNS failure that matters            → tempfail, never a guessed pool)
    3. sender domain has no A/AAAA and no MX        → high-risk
    4. our spam filter said spam                    → high-risk
    5. over a limit whose action is "alert"         → high-risk
    6. forwarded, foreign sender, envelope not authenticated → relay, no SRS
    7. forwarded, foreign sender, envelope authenticated     → normal, SRS
       (but a From aligned with our SRS domain and not authenticated → relay, no SRS)
    8. forwarded, accepted sender domain: authenticated, a trusted submission or a
       SASL login → normal, no SRS; otherwise → relay, no SRS
    9. not forwarded                                          → normal, no SRS

Rules 3 to 5 choose the pool only; SRS there follows rules 6 and 7.

The envelope (MAIL FROM domain) is authenticated when SPF passes for it, or a passing
DKIM signature's ``d=`` has the same organizational domain (relaxed alignment, RFC 7489
§3.1). A signature that only authenticates an unrelated header From domain says nothing
about the envelope: relay, no SRS (``envelope-not-authenticated``).

SRS puts our SRS domain in MAIL FROM, and the receiver's SPF check then passes for it.
When the header From is in the SRS domain's organizational domain (relaxed alignment),
that SPF pass is a DMARC pass for the From domain: so SRS (and the normal pool) is only
given when the From domain itself arrived authenticated or the message is a trusted
submission (``from-aligned-with-srs-domain``). Likewise an envelope in our accepted
domains would leave from the addresses in their own SPF record: it needs SPF or aligned
DKIM, a trusted submission, or a SASL login (``accepted-domain-unauthenticated``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from srsfwd.address import DomainSet
from srsfwd.orgdomain import aligned


class Pool(StrEnum):
    """The outbound pools."""

    NORMAL = "normal"
    RELAY = "relay"
    HIGH_RISK = "high-risk"


class Action(StrEnum):
    """What the MTA does with the message."""

    FORWARD = "forward"
    REJECT = "reject"
    TEMPFAIL = "tempfail"


#: RFC 8601 / RFC 7208 result words for SPF.
SPFResult = Literal["pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"]
SPF_RESULTS: tuple[str, ...] = (
    "pass",
    "fail",
    "softfail",
    "neutral",
    "none",
    "permerror",
    "temperror",
)

#: Per-signature DKIM result words (RFC 8601 §2.7.1).
DKIMResultWord = Literal["pass", "fail", "neutral", "policy", "permerror", "temperror"]

#: How the sending limits weigh on the decision (the pool-side level of a limits verdict).
LimitLevel = Literal["alert", "block"]

#: Whose key signs a forwarded message: the From domain's when allowed, else the SRS
#: domain's ("auto"); the SRS domain's only ("srs-domain"); nobody's ("none").
SignWith = Literal["auto", "srs-domain", "none"]
SIGN_MODES: tuple[SignWith, ...] = ("none", "srs-domain", "auto")  # least to most


class Reason(StrEnum):
    """Reason codes, stable strings for logs and ``--json``."""

    SENDER_RESTRICTED = "sender-restricted"
    NDR = "ndr"
    NO_A_NO_MX = "no-a-no-mx"
    SPAM = "spam"
    LIMIT_ALERT = "limit-alert"
    RELAY_UNAUTHENTICATED = "relay-unauthenticated"
    ENVELOPE_NOT_AUTHENTICATED = "envelope-not-authenticated"
    FORWARD_AUTHENTICATED = "forward-authenticated"
    ACCEPTED_DOMAIN = "accepted-domain"
    ACCEPTED_UNAUTHENTICATED = "accepted-domain-unauthenticated"
    FROM_ALIGNED_WITH_SRS = "from-aligned-with-srs-domain"
    TRUSTED_SUBMISSION = "trusted-submission"
    SASL_AUTHENTICATED = "sasl-authenticated"
    ORIGINATED = "originated"
    SPF_OK = "spf-pass"
    DKIM_OK_SENDER = "dkim-pass-mail-from"
    DKIM_OK_FROM = "dkim-pass-header-from"
    DKIM_POLICY = "dkim-policy"
    SENDER_ALREADY_SRS = "sender-already-srs"
    DNS_TEMPERROR = "dns-temperror"


@dataclass(frozen=True, slots=True)
class DKIMCheck:
    """One DKIM signature's outcome, as the verifier reported it."""

    domain: str
    selector: str
    result: str
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        """Plain JSON form."""
        return {
            "domain": self.domain,
            "selector": self.selector,
            "result": self.result,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class SenderDNS:
    """What DNS says about the envelope sender's domain (rule 3).

    ``temperror`` holds the failure text when a look-up failed; the booleans are then
    meaningless. A null MX (RFC 7505 ``MX 0 .``) is ``null_mx`` with ``mx`` false.
    """

    a: bool = False
    aaaa: bool = False
    mx: bool = False
    null_mx: bool = False
    temperror: str | None = None


@dataclass(frozen=True, slots=True)
class Facts:
    """Everything the decision depends on, already gathered.

    ``mail_from`` is the envelope sender without brackets ("" for the null sender);
    ``sender_domain`` its domain (None for the null sender or an address without one);
    ``from_domain`` the header From's domain. ``forwarded`` is true when at least one
    recipient is outside the accepted domains. ``spf`` is the SPF result at the first
    untrusted hop and ``spf_source`` where it came from (``checked``, ``gateway``).
    ``trusted_submission``: the client is one of ``[decide] trusted_relays`` and so is every
    hop in Received: the message was written on our own hosts, not relayed from outside.
    ``sasl_user``: the SMTP session logged in with SMTP AUTH as this user (Postfix's
    ``{auth_authen}``), None when it did not.
    ``limit_verdict`` comes from the sending limits with ``limit_name``, and
    optionally their own reason code (``too-many-recipients``, ``limit-block``...) and
    detail; ``srsfwd.facts.with_limits`` fills them from a ``srsfwd.limits.LimitVerdict``.
    """

    mail_from: str
    sender_domain: str | None
    from_domain: str | None = None
    is_report: bool = False
    forwarded: bool = True
    sender_dns: SenderDNS = field(default_factory=SenderDNS)
    spam: bool = False
    limit_verdict: LimitLevel | None = None
    limit_name: str | None = None
    limit_reason: str | None = None
    limit_detail: str = ""
    spf: str = "none"
    spf_domain: str | None = None
    spf_source: str = "checked"
    spf_reason: str = ""
    dkim: tuple[DKIMCheck, ...] = ()
    sender_is_srs: bool = False
    rcpts: tuple[str, ...] = ()
    client_ip: str | None = None
    helo: str | None = None
    trusted_submission: bool = False
    sasl_user: str | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "mail_from": self.mail_from,
            "sender_domain": self.sender_domain,
            "from_domain": self.from_domain,
            "is_report": self.is_report,
            "forwarded": self.forwarded,
            "sender_dns": {
                "a": self.sender_dns.a,
                "aaaa": self.sender_dns.aaaa,
                "mx": self.sender_dns.mx,
                "null_mx": self.sender_dns.null_mx,
                "temperror": self.sender_dns.temperror,
            },
            "spam": self.spam,
            "limit_verdict": self.limit_verdict,
            "limit_name": self.limit_name,
            "limit_reason": self.limit_reason,
            "limit_detail": self.limit_detail,
            "spf": {
                "result": self.spf,
                "domain": self.spf_domain,
                "source": self.spf_source,
                "reason": self.spf_reason,
            },
            "dkim": [d.as_dict() for d in self.dkim],
            "sender_is_srs": self.sender_is_srs,
            "rcpts": list(self.rcpts),
            "client_ip": self.client_ip,
            "helo": self.helo,
            "trusted_submission": self.trusted_submission,
            "sasl_user": self.sasl_user,
            "notes": list(self.notes),
        }


@dataclass(frozen=True, slots=True)
class Policy:
    """The decision's settings (``[decide]`` in the configuration).

    ``aaaa_counts_as_a``: an AAAA-only domain has an address (RFC 5321 implicit MX);
    ``accepted_requires_auth``: an accepted sender must pass SPF or aligned DKIM to stay
    off the relay pool, even from a trusted submission host or after a SASL login (off
    by default: then either of those is enough too). ``srs_domain``: our SRS domain, whose
    organizational domain a forged From must not share when we give SRS.
    """

    accepted: DomainSet = field(default_factory=DomainSet)
    aaaa_counts_as_a: bool = True
    accepted_requires_auth: bool = False
    srs_domain: str | None = None


@dataclass(frozen=True, slots=True)
class DKIMMatch:
    """A passing signature aligned with the envelope sender's or the From domain, and which."""

    check: DKIMCheck
    identity: Literal["mail-from", "header-from"]
    domain: str


@dataclass(frozen=True, slots=True)
class Decision:
    """The pool, whether to rewrite with SRS, and why."""

    action: Action
    pool: Pool | None
    srs: bool
    reasons: tuple[str, ...]
    facts: Facts
    dkim_match: DKIMMatch | None = None
    smtp_reply: str | None = None
    from_authenticated: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form (the ``--json`` output's core)."""
        match = self.dkim_match
        return {
            "action": str(self.action),
            "pool": None if self.pool is None else str(self.pool),
            "srs": self.srs,
            "reasons": list(self.reasons),
            "from_authenticated": self.from_authenticated,
            "smtp_reply": self.smtp_reply,
            "spf": self.facts.spf,
            "dkim": [d.as_dict() for d in self.facts.dkim],
            "dkim_match": None
            if match is None
            else {
                "domain": match.check.domain,
                "selector": match.check.selector,
                "identity": match.identity,
                "identity_domain": match.domain,
            },
            "checked": {
                "spf": self.facts.spf_domain,
                "dkim_identities": [
                    d for d in (self.facts.sender_domain, self.facts.from_domain) if d
                ],
                "a_aaaa_mx": self.facts.sender_domain,
            },
            "facts": self.facts.as_dict(),
        }


@dataclass(frozen=True, slots=True)
class Authentication:
    """What arrived authenticated: the envelope sender's domain and the header From domain.

    ``spf``: SPF passed for the MAIL FROM domain. ``mail_from``: a passing signature
    aligned with the MAIL FROM domain. ``header_from``: a passing signature aligned with
    the From domain. ``from_spf``: SPF passed for a MAIL FROM domain aligned with the
    From domain. ``policy``: signatures of either domain refused by our policy.
    """

    spf: bool = False
    mail_from: DKIMMatch | None = None
    header_from: DKIMMatch | None = None
    from_spf: bool = False
    policy: tuple[DKIMCheck, ...] = ()

    @property
    def envelope(self) -> bool:
        """The MAIL FROM domain is authenticated: SRS and the normal pool may vouch for it.

        An authenticated From domain aligned with the MAIL FROM domain would do too, but
        alignment is transitive, so its signature is then aligned with MAIL FROM already.
        """
        return self.spf or self.mail_from is not None

    @property
    def from_domain(self) -> bool:
        """The header From domain is authenticated (aligned SPF or DKIM pass)."""
        return self.from_spf or self.header_from is not None


def authentication(facts: Facts) -> Authentication:
    """Which of the envelope sender's domain and the From domain arrived authenticated."""
    sender, author = facts.sender_domain, facts.from_domain
    spf = (
        facts.spf == "pass"
        and bool(sender)
        and (facts.spf_domain is None or facts.spf_domain.lower().rstrip(".") == sender)
    )
    mail_from = header_from = None
    policy: list[DKIMCheck] = []
    for check in facts.dkim:
        if check.result == "policy" and (
            aligned(check.domain, sender) or aligned(check.domain, author)
        ):
            policy.append(check)
        if check.result != "pass":
            continue
        if mail_from is None and sender and aligned(check.domain, sender):
            mail_from = DKIMMatch(check, "mail-from", sender)
        if header_from is None and author and aligned(check.domain, author):
            header_from = DKIMMatch(check, "header-from", author)
    return Authentication(
        spf=spf,
        mail_from=mail_from,
        header_from=header_from,
        from_spf=spf and aligned(sender, author),
        policy=tuple(policy),
    )


def dkim_match(facts: Facts) -> DKIMMatch | None:
    """The first passing signature aligned with the envelope sender's domain, else with
    the header From domain's."""
    auth = authentication(facts)
    return auth.mail_from or auth.header_from


def _dkim_temperror(facts: Facts, domain: str | None) -> DKIMCheck | None:
    """A signature that could have authenticated ``domain`` but could not be checked now."""
    for check in facts.dkim:
        if check.result == "temperror" and aligned(check.domain, domain):
            return check
    return None


def _vouched_without_auth(facts: Facts, policy: Policy) -> Reason | None:
    """Why an accepted sender counts as ours without SPF or DKIM: a trusted submission or
    a SASL login (never with ``accepted_requires_auth``)."""
    if policy.accepted_requires_auth:
        return None
    if facts.trusted_submission:
        return Reason.TRUSTED_SUBMISSION
    if facts.sasl_user:
        return Reason.SASL_AUTHENTICATED
    return None


def _forges_srs_alignment(facts: Facts, policy: Policy, auth: Authentication) -> bool:
    """SRS would make the receiver's SPF pass aligned with a From domain nobody authenticated.

    Our SRS domain goes into MAIL FROM; a From in its organizational domain would then
    pass DMARC (relaxed SPF alignment, RFC 7489 §3.1) on our word alone.
    """
    return (
        aligned(facts.from_domain, policy.srs_domain)
        and not auth.from_domain
        and not facts.trusted_submission
    )


def _tempfail(facts: Facts, why: str) -> Decision:
    return Decision(
        action=Action.TEMPFAIL,
        pool=None,
        srs=False,
        reasons=(Reason.DNS_TEMPERROR.value,),
        facts=facts,
        smtp_reply=f"451 4.4.3 {why}; try again later",
    )


def decide(facts: Facts, policy: Policy) -> Decision:
    """Apply the rules to ``facts``: the first matching one wins (see the module doc)."""
    # 1. Blocked by the sending limits.
    if facts.limit_verdict == "block":
        name = f" ({facts.limit_name})" if facts.limit_name else ""
        detail = f": {facts.limit_detail}" if facts.limit_detail else ""
        reason = facts.limit_reason or Reason.SENDER_RESTRICTED.value
        code = "5.5.3" if reason == "too-many-recipients" else "5.7.1"
        return Decision(
            action=Action.REJECT,
            pool=None,
            srs=False,
            reasons=(reason,),
            facts=facts,
            smtp_reply=f"550 {code} sender is over a sending limit{name}{detail}",
        )
    # 2. Bounces: high-risk, never SRS, whatever DNS says.
    if not facts.mail_from or facts.is_report:
        return Decision(Action.FORWARD, Pool.HIGH_RISK, False, (Reason.NDR.value,), facts)

    accepted = facts.sender_domain is not None and facts.sender_domain in policy.accepted
    auth = authentication(facts)
    authenticated = auth.envelope
    foreign_forward = facts.forwarded and not accepted
    own_forward = facts.forwarded and accepted
    vouched = _vouched_without_auth(facts, policy) if own_forward else None
    needs_auth = foreign_forward or (own_forward and vouched is None)
    forged_alignment = foreign_forward and _forges_srs_alignment(facts, policy, auth)

    # A DNS failure that could change the outcome never picks a pool.
    if facts.sender_dns.temperror is not None:
        return _tempfail(facts, f"DNS failure for the sender domain: {facts.sender_dns.temperror}")
    if needs_auth and not authenticated:
        if facts.spf == "temperror":
            return _tempfail(facts, f"SPF temporary error: {facts.spf_reason or 'DNS'}")
        pending = _dkim_temperror(facts, facts.sender_domain)
        if pending is not None:
            return _tempfail(facts, f"DKIM key for {pending.domain} could not be fetched")
    if forged_alignment and authenticated:
        pending = _dkim_temperror(facts, facts.from_domain)
        if pending is not None:
            return _tempfail(facts, f"DKIM key for {pending.domain} could not be fetched")

    auth_reasons: list[str] = []
    if auth.spf:
        auth_reasons.append(Reason.SPF_OK.value)
    if auth.mail_from is not None:
        auth_reasons.append(Reason.DKIM_OK_SENDER.value)
    elif auth.header_from is not None:
        auth_reasons.append(Reason.DKIM_OK_FROM.value)
    if auth.policy:
        auth_reasons.append(Reason.DKIM_POLICY.value)
    if vouched is not None:
        auth_reasons.append(vouched.value)

    # Rules 6-9 give the pool when no high-risk rule matches, and the SRS flag always.
    unauthenticated = (
        Reason.ENVELOPE_NOT_AUTHENTICATED if auth.from_domain else Reason.RELAY_UNAUTHENTICATED
    )
    if foreign_forward and not authenticated:
        base_pool, srs, base_reason = Pool.RELAY, False, unauthenticated
    elif forged_alignment:
        base_pool, srs, base_reason = Pool.RELAY, False, Reason.FROM_ALIGNED_WITH_SRS
    elif foreign_forward:
        base_pool, srs, base_reason = Pool.NORMAL, True, Reason.FORWARD_AUTHENTICATED
    elif own_forward and not authenticated and vouched is None:
        strict = policy.accepted_requires_auth  # the reasons of rule 6, as before
        base_reason = unauthenticated if strict else Reason.ACCEPTED_UNAUTHENTICATED
        base_pool, srs = Pool.RELAY, False
    elif accepted:
        base_pool, srs, base_reason = Pool.NORMAL, False, Reason.ACCEPTED_DOMAIN
    else:
        base_pool, srs, base_reason = Pool.NORMAL, False, Reason.ORIGINATED

    high_risk: list[str] = []
    dns = facts.sender_dns
    has_address = dns.a or (dns.aaaa and policy.aaaa_counts_as_a)
    if not has_address and not dns.mx:
        high_risk.append(Reason.NO_A_NO_MX.value)  # 3
    if facts.spam:
        high_risk.append(Reason.SPAM.value)  # 4
    if facts.limit_verdict == "alert":
        high_risk.append(Reason.LIMIT_ALERT.value)  # 5

    reasons: list[str] = [high_risk[0]] if high_risk else []
    reasons.append(base_reason.value)
    reasons += auth_reasons
    if srs and facts.sender_is_srs:
        reasons.append(Reason.SENDER_ALREADY_SRS.value)
    pool = Pool.HIGH_RISK if high_risk else base_pool
    return Decision(
        Action.FORWARD,
        pool,
        srs,
        tuple(reasons),
        facts,
        dkim_match=auth.mail_from or auth.header_from,
        from_authenticated=auth.from_domain,
    )


@dataclass(frozen=True, slots=True)
class DecideSettings:
    """The whole ``[decide]`` table: the ``Policy`` and what fact gathering needs."""

    policy: Policy
    trusted_relays: tuple[str, ...] = ()
    trusted_authserv_ids: tuple[str, ...] = ()
    authserv_id: str | None = None
    dns_timeout: float | None = None


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """One outbound pool (``[pools.<name>]``): the MTA transport that carries it, its source
    addresses, its HELO name (by convention the relay pool's contains ``rly``) and whose
    DKIM key may sign its mail (``dkim_sign``; see ``default_dkim_sign``)."""

    name: Pool
    transport: str
    source_addresses: tuple[str, ...] = ()
    helo: str = ""
    dkim_sign: SignWith | None = None

    @property
    def signs_with(self) -> SignWith:
        """``dkim_sign``, or the pool's default when it is not set."""
        return self.dkim_sign if self.dkim_sign is not None else default_dkim_sign(self.name)


def default_dkim_sign(pool: Pool) -> SignWith:
    """Normal-pool mail may be signed ("auto"); relay and high-risk mail is not ("none")."""
    return "auto" if pool is Pool.NORMAL else "none"
