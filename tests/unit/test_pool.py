"""The pure decision engine: one row per rule and per edge case, then properties."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.address import DomainSet
from srsfwd.orgdomain import aligned
from srsfwd.pool import (
    SPF_RESULTS,
    Action,
    DKIMCheck,
    Facts,
    Policy,
    Pool,
    SenderDNS,
    decide,
)

POLICY = Policy(accepted=DomainSet(["fwd.example", "*.corp.example"]), srs_domain="srs.fwd.example")
HAS_A = SenderDNS(a=True, mx=True)


def facts(**changes: Any) -> Facts:
    """A forwarded message from a foreign sender with A and MX, nothing passed."""
    base = Facts(
        mail_from="alice@sender.example",
        sender_domain="sender.example",
        from_domain="sender.example",
        sender_dns=HAS_A,
        spf="none",
        rcpts=("bob@gmail.example",),
    )
    return dataclasses.replace(base, **changes)


def sig(domain: str, result: str = "pass") -> DKIMCheck:
    return DKIMCheck(domain=domain, selector="s1", result=result)


# (id, facts, expected action, pool, srs, first reason)
TABLE: list[tuple[str, Facts, Action, Pool | None, bool, str]] = [
    (
        "1 limit block",
        facts(limit_verdict="block", limit_name="per-hour", spf="pass"),
        Action.REJECT,
        None,
        False,
        "sender-restricted",
    ),
    (
        "1 block beats bounce",
        facts(mail_from="", sender_domain=None, limit_verdict="block"),
        Action.REJECT,
        None,
        False,
        "sender-restricted",
    ),
    (
        "2 null sender",
        facts(mail_from="", sender_domain=None, spf="pass"),
        Action.FORWARD,
        Pool.HIGH_RISK,
        False,
        "ndr",
    ),
    (
        "2 DSN with a sender",
        facts(is_report=True, spf="pass"),
        Action.FORWARD,
        Pool.HIGH_RISK,
        False,
        "ndr",
    ),
    (
        "2 bounce ignores DNS failure",
        facts(mail_from="", sender_domain=None, sender_dns=SenderDNS(temperror="timeout")),
        Action.FORWARD,
        Pool.HIGH_RISK,
        False,
        "ndr",
    ),
    (
        "3 no A no MX, authenticated",
        facts(sender_dns=SenderDNS(), spf="pass"),
        Action.FORWARD,
        Pool.HIGH_RISK,
        True,
        "no-a-no-mx",
    ),
    (
        "3 no A no MX, unauthenticated",
        facts(sender_dns=SenderDNS()),
        Action.FORWARD,
        Pool.HIGH_RISK,
        False,
        "no-a-no-mx",
    ),
    (
        "3 null MX and no A",
        facts(sender_dns=SenderDNS(null_mx=True), spf="pass"),
        Action.FORWARD,
        Pool.HIGH_RISK,
        True,
        "no-a-no-mx",
    ),
    (
        "3 null MX but an A",
        facts(sender_dns=SenderDNS(a=True, null_mx=True), spf="pass"),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "3 AAAA only counts",
        facts(sender_dns=SenderDNS(aaaa=True), spf="pass"),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "3 MX only",
        facts(sender_dns=SenderDNS(mx=True), spf="pass"),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "3 accepted sender without DNS",
        facts(mail_from="a@fwd.example", sender_domain="fwd.example", sender_dns=SenderDNS()),
        Action.FORWARD,
        Pool.HIGH_RISK,
        False,
        "no-a-no-mx",
    ),
    (
        "4 spam, authenticated",
        facts(spam=True, spf="pass"),
        Action.FORWARD,
        Pool.HIGH_RISK,
        True,
        "spam",
    ),
    ("4 spam, unauthenticated", facts(spam=True), Action.FORWARD, Pool.HIGH_RISK, False, "spam"),
    (
        "5 limit alert",
        facts(limit_verdict="alert", spf="pass"),
        Action.FORWARD,
        Pool.HIGH_RISK,
        True,
        "limit-alert",
    ),
    ("6 spf none", facts(spf="none"), Action.FORWARD, Pool.RELAY, False, "relay-unauthenticated"),
    (
        "6 spf softfail",
        facts(spf="softfail"),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "6 spf neutral",
        facts(spf="neutral"),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    ("6 spf fail", facts(spf="fail"), Action.FORWARD, Pool.RELAY, False, "relay-unauthenticated"),
    (
        "6 spf permerror",
        facts(spf="permerror"),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "6 unrelated DKIM",
        facts(dkim=(sig("other.example"),)),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "6 DKIM of a public suffix does not authenticate its domains",
        facts(
            mail_from="a@x.co.uk",
            sender_domain="x.co.uk",
            from_domain="x.co.uk",
            dkim=(sig("co.uk"),),
        ),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "6 DKIM of another private-suffix site",
        facts(
            mail_from="a@alice.github.io",
            sender_domain="alice.github.io",
            from_domain="alice.github.io",
            dkim=(sig("mallory.github.io"),),
        ),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "6 DKIM refused by policy (l=, extra From)",
        facts(dkim=(sig("sender.example", "policy"),)),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "6 SPF fail, DKIM of an unrelated From",
        facts(spf="fail", from_domain="evil.example", dkim=(sig("evil.example"),)),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "envelope-not-authenticated",
    ),
    (
        "6 DKIM of header From only",
        facts(from_domain="brand.example", dkim=(sig("brand.example"),)),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "envelope-not-authenticated",
    ),
    (
        "6 unrelated From DKIM does not cover the envelope's spf temperror",
        facts(spf="temperror", from_domain="brand.example", dkim=(sig("brand.example"),)),
        Action.TEMPFAIL,
        None,
        False,
        "dns-temperror",
    ),
    (
        "6 failed DKIM of sender",
        facts(dkim=(sig("sender.example", "fail"),)),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "6 look-alike domain",
        facts(dkim=(sig("er.example"),)),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "6 unrelated DKIM temperror does not defer",
        facts(dkim=(sig("other.example", "temperror"),)),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    ("7 spf pass", facts(spf="pass"), Action.FORWARD, Pool.NORMAL, True, "forward-authenticated"),
    (
        "7 DKIM of sender domain",
        facts(dkim=(sig("sender.example"),)),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 DKIM of parent domain",
        facts(
            mail_from="a@mail.sender.example",
            sender_domain="mail.sender.example",
            from_domain="x.example",
            dkim=(sig("sender.example"),),
        ),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 DKIM of a sibling subdomain (relaxed alignment)",
        facts(dkim=(sig("mail.sender.example"),)),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 SPF fail, DKIM aligned with MAIL FROM",
        facts(spf="fail", from_domain="sender.example", dkim=(sig("sender.example"),)),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 SPF fail, DKIM of the From aligned with MAIL FROM",
        facts(
            spf="fail",
            mail_from="bounce@lists.sender.example",
            sender_domain="lists.sender.example",
            from_domain="sender.example",
            dkim=(sig("sender.example"),),
        ),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 SPF pass, DKIM of an unrelated From",
        facts(spf="pass", from_domain="brand.example", dkim=(sig("brand.example"),)),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 spf pass beats SPF-irrelevant DKIM temperror",
        facts(spf="pass", dkim=(sig("sender.example", "temperror"),)),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 DKIM pass beats spf temperror",
        facts(spf="temperror", dkim=(sig("sender.example"),)),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "8 accepted sender, nothing passed",
        facts(mail_from="a@fwd.example", sender_domain="fwd.example"),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "accepted-domain-unauthenticated",
    ),
    (
        "8 accepted sender, SPF fail and an unrelated signature",
        facts(
            mail_from="a@fwd.example",
            sender_domain="fwd.example",
            spf="fail",
            from_domain="evil.example",
            dkim=(sig("evil.example"),),
        ),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "accepted-domain-unauthenticated",
    ),
    (
        "8 accepted sender, aligned DKIM",
        facts(
            mail_from="a@fwd.example",
            sender_domain="fwd.example",
            spf="fail",
            dkim=(sig("fwd.example"),),
        ),
        Action.FORWARD,
        Pool.NORMAL,
        False,
        "accepted-domain",
    ),
    (
        "8 accepted sender, trusted submission",
        facts(mail_from="a@fwd.example", sender_domain="fwd.example", trusted_submission=True),
        Action.FORWARD,
        Pool.NORMAL,
        False,
        "accepted-domain",
    ),
    (
        "8 accepted sender, SASL login",
        facts(
            mail_from="a@fwd.example", sender_domain="fwd.example", spf="fail", sasl_user="alice"
        ),
        Action.FORWARD,
        Pool.NORMAL,
        False,
        "accepted-domain",
    ),
    (
        "8 accepted sender authenticated",
        facts(mail_from="a@fwd.example", sender_domain="fwd.example", spf="pass"),
        Action.FORWARD,
        Pool.NORMAL,
        False,
        "accepted-domain",
    ),
    (
        "8 accepted subdomain",
        facts(mail_from="a@x.corp.example", sender_domain="x.corp.example", spf="pass"),
        Action.FORWARD,
        Pool.NORMAL,
        False,
        "accepted-domain",
    ),
    (
        "8 *.corp.example does not accept corp.example itself",
        facts(mail_from="a@corp.example", sender_domain="corp.example"),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "relay-unauthenticated",
    ),
    (
        "8 accepted sender with spf temperror defers",
        facts(mail_from="a@fwd.example", sender_domain="fwd.example", spf="temperror"),
        Action.TEMPFAIL,
        None,
        False,
        "dns-temperror",
    ),
    (
        "8 trusted submission ignores spf temperror",
        facts(
            mail_from="a@fwd.example",
            sender_domain="fwd.example",
            spf="temperror",
            trusted_submission=True,
        ),
        Action.FORWARD,
        Pool.NORMAL,
        False,
        "accepted-domain",
    ),
    ("9 not forwarded", facts(forwarded=False), Action.FORWARD, Pool.NORMAL, False, "originated"),
    (
        "9 accepted sender not forwarded",
        facts(mail_from="a@fwd.example", sender_domain="fwd.example", forwarded=False),
        Action.FORWARD,
        Pool.NORMAL,
        False,
        "accepted-domain",
    ),
    (
        "7 From in the SRS domain's organizational domain, not authenticated",
        facts(spf="pass", from_domain="fwd.example"),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "from-aligned-with-srs-domain",
    ),
    (
        "7 From in the SRS domain itself, not authenticated",
        facts(spf="pass", from_domain="srs.fwd.example"),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "from-aligned-with-srs-domain",
    ),
    (
        "7 From aligned with the SRS domain, sender's DKIM passes",
        facts(spf="fail", from_domain="users.fwd.example", dkim=(sig("sender.example"),)),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "from-aligned-with-srs-domain",
    ),
    (
        "7 From aligned with the SRS domain and authenticated by DKIM",
        facts(spf="pass", from_domain="users.fwd.example", dkim=(sig("fwd.example"),)),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 From aligned with the SRS domain, trusted submission",
        facts(spf="pass", from_domain="fwd.example", trusted_submission=True),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "7 From aligned with the SRS domain, SASL login is not enough",
        facts(spf="pass", from_domain="fwd.example", sasl_user="alice"),
        Action.FORWARD,
        Pool.RELAY,
        False,
        "from-aligned-with-srs-domain",
    ),
    (
        "7 From aligned with the SRS domain, its DKIM key timed out",
        facts(spf="pass", from_domain="fwd.example", dkim=(sig("fwd.example", "temperror"),)),
        Action.TEMPFAIL,
        None,
        False,
        "dns-temperror",
    ),
    (
        "4 spam with a From aligned with the SRS domain: high-risk, no SRS",
        facts(spf="pass", from_domain="fwd.example", spam=True),
        Action.FORWARD,
        Pool.HIGH_RISK,
        False,
        "spam",
    ),
    (
        "7 a look-alike of the SRS domain is not aligned",
        facts(spf="pass", from_domain="fwd-example.example"),
        Action.FORWARD,
        Pool.NORMAL,
        True,
        "forward-authenticated",
    ),
    (
        "temp: sender domain DNS",
        facts(sender_dns=SenderDNS(temperror="SERVFAIL"), spf="pass"),
        Action.TEMPFAIL,
        None,
        False,
        "dns-temperror",
    ),
    ("temp: spf temperror", facts(spf="temperror"), Action.TEMPFAIL, None, False, "dns-temperror"),
    (
        "temp: spf temperror even when spam",
        facts(spf="temperror", spam=True),
        Action.TEMPFAIL,
        None,
        False,
        "dns-temperror",
    ),
    (
        "temp: sender DKIM key timeout",
        facts(dkim=(sig("sender.example", "temperror"),)),
        Action.TEMPFAIL,
        None,
        False,
        "dns-temperror",
    ),
]


@pytest.mark.parametrize(
    ("facts_in", "action", "pool", "srs", "reason"),
    [pytest.param(*row[1:], id=row[0]) for row in TABLE],
)
def test_decision_table(
    facts_in: Facts, action: Action, pool: Pool | None, srs: bool, reason: str
) -> None:
    decision = decide(facts_in, POLICY)
    assert (decision.action, decision.pool, decision.srs) == (action, pool, srs)
    assert decision.reasons[0] == reason
    if action is Action.FORWARD:
        assert decision.smtp_reply is None
    else:
        assert decision.smtp_reply is not None
        assert decision.smtp_reply[0] == ("5" if action is Action.REJECT else "4")


def test_high_risk_keeps_the_authentication_reasons() -> None:
    decision = decide(facts(spam=True, dkim=(sig("sender.example"),)), POLICY)
    assert decision.reasons == ("spam", "forward-authenticated", "dkim-pass-mail-from")
    assert decision.dkim_match is not None
    assert decision.dkim_match.identity == "mail-from"


def test_says_which_identity_dkim_matched() -> None:
    decision = decide(facts(from_domain="brand.example", dkim=(sig("brand.example"),)), POLICY)
    assert "dkim-pass-header-from" in decision.reasons
    assert decision.as_dict()["dkim_match"]["identity"] == "header-from"


def test_unrelated_from_signature_is_reported_but_gives_no_srs() -> None:
    decision = decide(
        facts(spf="fail", from_domain="evil.example", dkim=(sig("evil.example"),)), POLICY
    )
    assert decision.reasons == ("envelope-not-authenticated", "dkim-pass-header-from")
    assert decision.from_authenticated


def test_policy_refused_signature_is_named_in_the_reasons() -> None:
    decision = decide(facts(dkim=(sig("sender.example", "policy"),)), POLICY)
    assert decision.reasons == ("relay-unauthenticated", "dkim-policy")


def test_spf_pass_authenticates_an_aligned_from_domain() -> None:
    decision = decide(facts(spf="pass", from_domain="news.sender.example"), POLICY)
    assert decision.from_authenticated


def test_spf_pass_does_not_authenticate_an_unaligned_from_domain() -> None:
    decision = decide(facts(spf="pass", from_domain="bank.example"), POLICY)
    assert decision.srs
    assert not decision.from_authenticated


def test_spf_pass_for_another_domain_than_mail_from_does_not_count() -> None:
    decision = decide(facts(spf="pass", spf_domain="helo.example"), POLICY)
    assert decision.pool is Pool.RELAY


def test_dkim_aligned_with_from_authenticates_it() -> None:
    decision = decide(facts(from_domain="sender.example", dkim=(sig("sender.example"),)), POLICY)
    assert decision.from_authenticated


def test_nothing_passed_authenticates_no_from_domain() -> None:
    assert not decide(facts(spf="fail"), POLICY).from_authenticated


def test_accepted_requires_auth_names_an_unrelated_from_signature() -> None:
    strict = dataclasses.replace(POLICY, accepted_requires_auth=True)
    own = facts(
        mail_from="a@fwd.example",
        sender_domain="fwd.example",
        from_domain="evil.example",
        dkim=(sig("evil.example"),),
    )
    decision = decide(own, strict)
    assert (decision.pool, decision.reasons[0]) == (Pool.RELAY, "envelope-not-authenticated")


def test_accepted_requires_auth_sends_trusted_submissions_and_sasl_logins_to_relay() -> None:
    strict = dataclasses.replace(POLICY, accepted_requires_auth=True)
    for vouched in ({"trusted_submission": True}, {"sasl_user": "alice"}):
        own = facts(mail_from="a@fwd.example", sender_domain="fwd.example", **vouched)
        decision = decide(own, strict)
        assert (decision.pool, decision.reasons[0]) == (Pool.RELAY, "relay-unauthenticated")


def test_trusted_submission_of_an_accepted_sender_is_named_in_the_reasons() -> None:
    own = facts(mail_from="a@fwd.example", sender_domain="fwd.example", trusted_submission=True)
    assert decide(own, POLICY).reasons == ("accepted-domain", "trusted-submission")


def test_sasl_login_of_an_accepted_sender_is_named_in_the_reasons() -> None:
    own = facts(mail_from="a@fwd.example", sender_domain="fwd.example", sasl_user="alice")
    assert decide(own, POLICY).reasons == ("accepted-domain", "sasl-authenticated")


def test_forged_srs_alignment_keeps_the_authentication_reasons() -> None:
    decision = decide(facts(spf="pass", from_domain="fwd.example"), POLICY)
    assert decision.reasons == ("from-aligned-with-srs-domain", "spf-pass")
    assert not decision.from_authenticated


def test_without_an_srs_domain_a_from_is_never_aligned_with_it() -> None:
    no_srs = dataclasses.replace(POLICY, srs_domain=None)
    decision = decide(facts(spf="pass", from_domain="fwd.example"), no_srs)
    assert (decision.pool, decision.srs) == (Pool.NORMAL, True)


def test_already_srs_sender_is_noted() -> None:
    decision = decide(facts(sender_is_srs=True, spf="pass"), POLICY)
    assert decision.srs
    assert "sender-already-srs" in decision.reasons


def test_accepted_requires_auth_sends_unauthenticated_own_mail_to_relay() -> None:
    strict = dataclasses.replace(POLICY, accepted_requires_auth=True)
    own = facts(mail_from="a@fwd.example", sender_domain="fwd.example")
    assert decide(own, strict).pool is Pool.RELAY
    assert decide(dataclasses.replace(own, spf="pass"), strict).pool is Pool.NORMAL
    assert not decide(dataclasses.replace(own, spf="pass"), strict).srs


def test_aaaa_literal_reading() -> None:
    literal = dataclasses.replace(POLICY, aaaa_counts_as_a=False)
    decision = decide(facts(sender_dns=SenderDNS(aaaa=True), spf="pass"), literal)
    assert decision.pool is Pool.HIGH_RISK


def test_json_form_has_the_required_keys() -> None:
    data = decide(facts(spf="pass", dkim=(sig("sender.example"),)), POLICY).as_dict()
    assert {"pool", "srs", "action", "reasons", "spf", "dkim", "checked"} <= data.keys()
    assert data["checked"]["dkim_identities"] == ["sender.example", "sender.example"]
    assert data["dkim"] == [
        {"domain": "sender.example", "selector": "s1", "result": "pass", "reason": ""}
    ]


_domains = st.sampled_from(["sender.example", "fwd.example", "x.corp.example", "other.example"])
_facts = st.builds(
    Facts,
    mail_from=st.sampled_from(["", "a@sender.example", "b@fwd.example"]),
    sender_domain=st.one_of(st.none(), _domains),
    from_domain=st.one_of(st.none(), _domains),
    is_report=st.booleans(),
    forwarded=st.booleans(),
    sender_dns=st.builds(
        SenderDNS,
        a=st.booleans(),
        aaaa=st.booleans(),
        mx=st.booleans(),
        null_mx=st.booleans(),
        temperror=st.one_of(st.none(), st.just("timeout")),
    ),
    spam=st.booleans(),
    limit_verdict=st.sampled_from([None, "alert", "block"]),
    spf=st.sampled_from(SPF_RESULTS),
    dkim=st.lists(
        st.builds(
            DKIMCheck,
            domain=_domains,
            selector=st.just("s"),
            result=st.sampled_from(["pass", "fail", "temperror", "permerror"]),
        ),
        max_size=3,
    ).map(tuple),
    sender_is_srs=st.booleans(),
    trusted_submission=st.booleans(),
    sasl_user=st.sampled_from([None, "alice"]),
)


@given(_facts)
def test_invariants(f: Facts) -> None:
    d = decide(f, POLICY)
    assert d.reasons
    if d.action is not Action.FORWARD:
        assert d.pool is None
        assert not d.srs
    else:
        assert d.pool is not None
    if d.pool is Pool.RELAY or not f.mail_from or f.is_report:
        assert not d.srs
    if d.srs:
        assert f.spf == "pass" or (
            d.dkim_match is not None and d.dkim_match.identity == "mail-from"
        )
    if f.limit_verdict == "block":
        assert d.action is Action.REJECT
    elif f.spam and d.action is Action.FORWARD:
        assert d.pool is Pool.HIGH_RISK


@given(_facts)
def test_srs_never_aligns_with_a_from_domain_nobody_authenticated(f: Facts) -> None:
    d = decide(f, POLICY)
    if d.srs and aligned(f.from_domain, POLICY.srs_domain):
        assert d.from_authenticated or f.trusted_submission


@given(_facts)
def test_an_accepted_sender_leaves_from_the_normal_pool_only_when_vouched_for(f: Facts) -> None:
    d = decide(f, POLICY)
    accepted = f.sender_domain is not None and f.sender_domain in POLICY.accepted
    if d.pool is Pool.NORMAL and accepted and f.forwarded and f.mail_from and not f.is_report:
        assert (
            (f.spf == "pass" and f.spf_domain is None)
            or any(c.result == "pass" and aligned(c.domain, f.sender_domain) for c in f.dkim)
            or f.trusted_submission
            or f.sasl_user
        )


def test_limits_verdicts_wire_in() -> None:
    from srsfwd.facts import with_limits
    from srsfwd.limits import OK, LimitVerdict

    base = facts(spf="pass")
    assert with_limits(base, OK) is base
    alert = with_limits(base, LimitVerdict("alert", "limit-alert", "per-day", "1001 > 1000"))
    decision = decide(alert, POLICY)
    assert (decision.pool, decision.srs, decision.reasons[0]) == (
        Pool.HIGH_RISK,
        True,
        "limit-alert",
    )
    many = with_limits(base, LimitVerdict("refuse", "too-many-recipients", "per-message"))
    decision = decide(many, POLICY)
    assert decision.action is Action.REJECT
    assert decision.reasons == ("too-many-recipients",)
    assert decision.smtp_reply is not None and decision.smtp_reply.startswith("550 5.5.3")
    assert decide(
        with_limits(base, LimitVerdict("refuse", "limit-block", "per-day")), POLICY
    ).reasons == ("limit-block",)
