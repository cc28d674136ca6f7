"""Decisions end to end: real DKIM signatures, real SPF, a real DNS server on 127.0.0.1.

Signatures come from srsfwd's signer and from dkimpy (a second, independent signer); SPF is
pyspf over srsfwd's Resolver; the zone is served by dnslib (tests/dnsserver.py).
"""

from __future__ import annotations

import dataclasses

import dkim
import pytest

from srsfwd.address import DomainSet
from srsfwd.authresults import build_header, gateway_spf
from srsfwd.dkim.keys import (
    DkimKey,
    SigningKey,
    generate_key,
    key_record_text,
    private_key_pem,
    zone_line,
)
from srsfwd.dkim.sign import DkimSigner
from srsfwd.facts import Envelope, FactGatherer
from srsfwd.pool import Action, Policy, Pool, decide
from tests.dnsserver import ZoneServer

ACCEPTED = DomainSet(["fwd.example", "*.corp.example"])
POLICY = Policy(accepted=ACCEPTED)
GOOD_IP = "192.0.2.10"  # in sender.example's SPF include chain
OTHER_IP = "198.51.100.7"  # in nobody's SPF

ZONE = """
$TTL 300
sender.example.            IN A     203.0.113.1
sender.example.            IN MX    10 mx.sender.example.
sender.example.            IN TXT   "v=spf1 include:_spf.sender.example -all"
_spf.sender.example. IN TXT "v=spf1 a:nothere.sender.example include:_net.sender.example ~all"
_net.sender.example.       IN TXT   "v=spf1 ip4:192.0.2.0/24 -all"
mx.sender.example.         IN A     203.0.113.2
lists.sender.example.      IN MX    10 mx.sender.example.
soft.example.              IN A     203.0.113.3
soft.example.              IN TXT   "v=spf1 ~all"
neutral.example.           IN A     203.0.113.4
neutral.example.           IN TXT   "v=spf1 ?all"
none.example.              IN A     203.0.113.5
perm.example.              IN A     203.0.113.6
perm.example.              IN TXT   "v=spf1 include:none.example -all"
mail.parent.example.       IN MX    10 mx.sender.example.
parent.example.            IN A     203.0.113.7
unrelated.example.         IN A     203.0.113.8
aaaa.example.              IN AAAA  2001:db8::25
aaaa.example.              IN TXT   "v=spf1 ip4:192.0.2.10 -all"
nullmx.example.            IN MX    0 .
nullmx.example.            IN TXT   "v=spf1 ip4:192.0.2.10 -all"
x.corp.example.            IN A     203.0.113.9
fwd.example.               IN A     203.0.113.10
fwd.example.               IN MX    10 mx.fwd.example.
"""


@pytest.fixture(scope="module")
def keys() -> dict[str, DkimKey]:
    rsa = generate_key("rsa-2048")
    return {
        "sender.example": rsa,
        "parent.example": generate_key("ed25519"),
        "unrelated.example": rsa,
    }


@pytest.fixture
def zone(dns_server: ZoneServer, keys: dict[str, DkimKey]) -> ZoneServer:
    text = ZONE + "".join(
        zone_line("sel", domain, key_record_text(key)) for domain, key in keys.items()
    )
    dns_server.load(text)
    return dns_server


def message(
    mail_from: str = "alice@sender.example",
    body: str = "Hello Bob,\r\n\r\nsee you at noon.\r\n",
    extra: str = "",
) -> bytes:
    return (
        f"From: Alice <{mail_from}>\r\n"
        "To: bob@fwd.example\r\n"
        "Subject: lunch\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"
        "Message-ID: <1@sender.example>\r\n"
        f"{extra}\r\n{body}"
    ).encode()


def signed(data: bytes, domain: str, keys: dict[str, DkimKey], *, dkimpy: bool = False) -> bytes:
    key = keys[domain]
    if dkimpy:
        signature: bytes = dkim.sign(
            data,
            b"sel",
            domain.encode(),
            private_key_pem(key),
            include_headers=[b"from", b"to", b"subject", b"date"],
        )
        return signature + data
    return DkimSigner([SigningKey(domain, "sel", key)]).sign(data)


DSN = (
    b"From: MAILER-DAEMON@mx.sender.example\r\n"
    b"To: alice@fwd.example\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
    b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nIt bounced.\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.sender.example\r\n\r\n"
    b"Final-Recipient: rfc822; nobody@else.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"--b--\r\n"
)


@dataclasses.dataclass
class Case:
    mail_from: str
    pool: Pool | None
    srs: bool
    reason: str
    spf: str
    client_ip: str = OTHER_IP
    sign: str | None = None
    dkimpy: bool = False
    tamper: bool = False
    spam: bool = False
    raw: bytes | None = None
    from_header: str | None = None
    dkim: tuple[str, ...] = ()


CASES: dict[str, Case] = {
    "spf pass through an include chain": Case(
        "alice@sender.example",
        Pool.NORMAL,
        True,
        "forward-authenticated",
        "pass",
        client_ip=GOOD_IP,
    ),
    "spf fail, no signature": Case(
        "alice@sender.example", Pool.RELAY, False, "relay-unauthenticated", "fail"
    ),
    "spf softfail": Case("a@soft.example", Pool.RELAY, False, "relay-unauthenticated", "softfail"),
    "spf neutral": Case("a@neutral.example", Pool.RELAY, False, "relay-unauthenticated", "neutral"),
    "spf none": Case("a@none.example", Pool.RELAY, False, "relay-unauthenticated", "none"),
    "spf permerror": Case(
        "a@perm.example", Pool.RELAY, False, "relay-unauthenticated", "permerror"
    ),
    "DKIM on the sender domain": Case(
        "alice@sender.example",
        Pool.NORMAL,
        True,
        "forward-authenticated",
        "fail",
        sign="sender.example",
        dkim=("pass",),
    ),
    "DKIM on the sender domain, dkimpy signer": Case(
        "alice@sender.example",
        Pool.NORMAL,
        True,
        "forward-authenticated",
        "fail",
        sign="sender.example",
        dkimpy=True,
        dkim=("pass",),
    ),
    "DKIM on a parent domain (Ed25519)": Case(
        "a@mail.parent.example",
        Pool.NORMAL,
        True,
        "forward-authenticated",
        "none",
        sign="parent.example",
        dkim=("pass",),
    ),
    "DKIM on an unrelated domain": Case(
        "a@soft.example",
        Pool.RELAY,
        False,
        "relay-unauthenticated",
        "softfail",
        sign="unrelated.example",
        dkim=("pass",),
    ),
    "DKIM with a tampered body": Case(
        "alice@sender.example",
        Pool.RELAY,
        False,
        "relay-unauthenticated",
        "fail",
        sign="sender.example",
        tamper=True,
        dkim=("fail",),
    ),
    "AAAA-only sender domain": Case(
        "a@aaaa.example", Pool.NORMAL, True, "forward-authenticated", "pass", client_ip=GOOD_IP
    ),
    "null MX sender domain": Case(
        "a@nullmx.example", Pool.HIGH_RISK, True, "no-a-no-mx", "pass", client_ip=GOOD_IP
    ),
    "sender domain does not exist": Case(
        "a@ghost.example", Pool.HIGH_RISK, False, "no-a-no-mx", "none"
    ),
    "accepted subdomain, not authenticated": Case(
        "a@x.corp.example", Pool.RELAY, False, "accepted-domain-unauthenticated", "none"
    ),
    "accepted domain, not authenticated": Case(
        "a@fwd.example", Pool.RELAY, False, "accepted-domain-unauthenticated", "none"
    ),
    "null sender with a DSN": Case("", Pool.HIGH_RISK, False, "ndr", "none", raw=DSN),
    "DSN with a sender": Case(
        "alice@sender.example", Pool.HIGH_RISK, False, "ndr", "pass", client_ip=GOOD_IP, raw=DSN
    ),
    "spam from an authenticated sender": Case(
        "alice@sender.example", Pool.HIGH_RISK, True, "spam", "pass", client_ip=GOOD_IP, spam=True
    ),
    "spam from an unauthenticated sender": Case(
        "a@soft.example", Pool.HIGH_RISK, False, "spam", "softfail", spam=True
    ),
    "already SRS'd sender from another forwarder": Case(
        "SRS0=HHH=TT=orig.example=alice@sender.example",
        Pool.NORMAL,
        True,
        "forward-authenticated",
        "pass",
        client_ip=GOOD_IP,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_decision(zone: ZoneServer, keys: dict[str, DkimKey], case: Case) -> None:
    data = case.raw if case.raw is not None else message(case.from_header or case.mail_from)
    if case.sign:
        data = signed(data, case.sign, keys, dkimpy=case.dkimpy)
    if case.tamper:
        data = data.replace(b"noon", b"one")
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    envelope = Envelope(case.client_ip, "mx.sender.example", case.mail_from, ("bob@gmail.example",))
    facts = gatherer.gather(data, envelope, spam=case.spam)
    decision = decide(facts, POLICY)
    assert decision.action is Action.FORWARD
    assert (decision.pool, decision.srs) == (case.pool, case.srs), decision.reasons
    assert decision.reasons[0] == case.reason
    assert facts.spf == case.spf, facts.spf_reason
    assert tuple(d.result for d in facts.dkim) == case.dkim
    if case.sign and case.pool is Pool.NORMAL and case.spf != "pass":
        assert decision.dkim_match is not None
        assert decision.dkim_match.check.domain == case.sign


def test_dns_timeout_defers(zone: ZoneServer) -> None:
    zone.mode = "silent"
    gatherer = FactGatherer(zone.resolver(timeout=0.3), accepted=ACCEPTED)
    envelope = Envelope(GOOD_IP, "mx", "alice@sender.example", ("bob@gmail.example",))
    decision = decide(gatherer.gather(message(), envelope), POLICY)
    assert decision.action is Action.TEMPFAIL
    assert decision.pool is None
    assert decision.smtp_reply is not None and decision.smtp_reply.startswith("451 4.4.3")


def test_servfail_defers(zone: ZoneServer) -> None:
    zone.mode = "servfail"
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    envelope = Envelope(GOOD_IP, "mx", "alice@sender.example", ("bob@gmail.example",))
    assert decide(gatherer.gather(message(), envelope), POLICY).action is Action.TEMPFAIL


def test_local_delivery_is_not_forwarded(zone: ZoneServer) -> None:
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    envelope = Envelope(OTHER_IP, "mx", "a@soft.example", ("bob@fwd.example",))
    decision = decide(gatherer.gather(message(), envelope), POLICY)
    assert (decision.pool, decision.srs, decision.reasons[0]) == (Pool.NORMAL, False, "originated")


def test_dkim_of_an_unrelated_header_from_domain_authenticates_no_envelope(
    zone: ZoneServer, keys: dict[str, DkimKey]
) -> None:
    data = signed(message("ceo@sender.example"), "sender.example", keys)
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    envelope = Envelope(OTHER_IP, "mx", "bounces@soft.example", ("bob@gmail.example",))
    decision = decide(gatherer.gather(data, envelope), POLICY)
    assert (decision.pool, decision.srs) == (Pool.RELAY, False)
    assert decision.reasons == ("envelope-not-authenticated", "dkim-pass-header-from")
    assert decision.from_authenticated


def test_dkim_of_the_header_from_aligned_with_the_envelope(
    zone: ZoneServer, keys: dict[str, DkimKey]
) -> None:
    data = signed(message("ceo@sender.example"), "sender.example", keys)
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    envelope = Envelope(OTHER_IP, "mx", "bounces@lists.sender.example", ("bob@gmail.example",))
    decision = decide(gatherer.gather(data, envelope), POLICY)
    assert (decision.pool, decision.srs) == (Pool.NORMAL, True)
    assert "dkim-pass-mail-from" in decision.reasons


BEHIND_GATEWAY = "10.1.1.1"


def gateway(zone: ZoneServer, ids: tuple[str, ...] = ("gw.fwd.example",)) -> FactGatherer:
    return FactGatherer(
        zone.resolver(),
        accepted=ACCEPTED,
        trusted_relays=["10.0.0.0/8"],
        trusted_authserv_ids=ids,
    )


def test_gateway_authentication_results_are_believed(zone: ZoneServer) -> None:
    data = message(
        extra="Authentication-Results: gw.fwd.example; spf=pass"
        " smtp.mailfrom=alice@sender.example\r\n"
    )
    envelope = Envelope(BEHIND_GATEWAY, "gw", "alice@sender.example", ("b@gmail.example",))
    facts = gateway(zone).gather(data, envelope)
    assert (facts.spf, facts.spf_source) == ("pass", "gateway")
    assert decide(facts, POLICY).pool is Pool.NORMAL


def test_untrusted_authentication_results_are_ignored(zone: ZoneServer) -> None:
    data = message(
        extra=(
            "Authentication-Results: evil.example; spf=pass smtp.mailfrom=alice@sender.example\r\n"
            "Received: from mx.evil.example (mx.evil.example [198.51.100.9])\r\n"
            "\tby gw.fwd.example (Postfix) with ESMTP id 1; Thu, 26 Nov 2026 10:00:00 +0000\r\n"
        )
    )
    envelope = Envelope(BEHIND_GATEWAY, "gw", "alice@sender.example", ("b@gmail.example",))
    facts = gateway(zone).gather(data, envelope)
    assert (facts.spf, facts.spf_source) == ("fail", "received")
    assert decide(facts, POLICY).pool is Pool.RELAY


def test_first_untrusted_received_hop_is_checked(zone: ZoneServer) -> None:
    data = message(
        extra=(
            "Received: from gw.fwd.example (gw.fwd.example [10.0.0.2])\r\n"
            "\tby mx.fwd.example (Postfix) with ESMTP id 2; Thu, 26 Nov 2026 10:00:01 +0000\r\n"
            "Received: from mx.sender.example (mx.sender.example [192.0.2.10])\r\n"
            "\tby gw.fwd.example (Postfix) with ESMTP id 1; Thu, 26 Nov 2026 10:00:00 +0000\r\n"
        )
    )
    envelope = Envelope(BEHIND_GATEWAY, "gw", "alice@sender.example", ("b@gmail.example",))
    facts = gateway(zone, ids=()).gather(data, envelope)
    assert (facts.spf, facts.spf_source) == ("pass", "received")
    assert decide(facts, POLICY).srs


def test_authentication_results_header_for_the_hop(
    zone: ZoneServer, keys: dict[str, DkimKey]
) -> None:
    data = signed(message(), "sender.example", keys)
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    envelope = Envelope(GOOD_IP, "mx.sender.example", "alice@sender.example", ("b@g.example",))
    facts = gatherer.gather(data, envelope)
    header = build_header(
        "fwd.example",
        spf=facts.spf,
        mail_from=facts.mail_from,
        helo="mx.sender.example",
        dkim=facts.dkim,
    )
    assert header.startswith("Authentication-Results: fwd.example; spf=pass")
    assert "dkim=pass header.d=sender.example header.s=sel" in header
    # And it reads back as a gateway's header would.
    value = header.partition(":")[2]
    stated = gateway_spf([value.encode()], ["fwd.example"])
    assert stated is not None and stated.result == "pass"


def test_dkim_verifies_against_dkimpy(zone: ZoneServer, keys: dict[str, DkimKey]) -> None:
    """Our verifier and dkimpy agree on a signature made by dkimpy, through the same zone."""
    data = signed(message(), "sender.example", keys, dkimpy=True)

    def txt(name: bytes, timeout: int = 5) -> bytes:
        records = zone.resolver().txt(name.decode())
        return records[0] if records else b""

    assert dkim.verify(data, dnsfunc=txt)
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    facts = gatherer.gather(data, Envelope(OTHER_IP, "h", "a@sender.example", ("b@g.example",)))
    assert [d.result for d in facts.dkim] == ["pass"]


def test_huge_message_is_decided(zone: ZoneServer, keys: dict[str, DkimKey]) -> None:
    huge = signed(message(body="x" * 998 + "\r\n"), "sender.example", keys) + b"y" * (20 << 20)
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    envelope = Envelope(GOOD_IP, "mx", "alice@sender.example", ("bob@gmail.example",))
    assert decide(gatherer.gather(huge, envelope), POLICY).pool is Pool.NORMAL


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\xff garbage",
        b"no colon here\r\n\r\nbody",
        b" starts with space\r\n",
        b"From: \r\n\r\n",
        b"Subject: no from\r\n\r\nbody",
    ],
)
def test_malformed_messages_are_decided_on_the_envelope(zone: ZoneServer, data: bytes) -> None:
    gatherer = FactGatherer(zone.resolver(), accepted=ACCEPTED)
    envelope = Envelope(GOOD_IP, "mx", "alice@sender.example", ("bob@gmail.example",))
    facts = gatherer.gather(data, envelope)
    decision = decide(facts, POLICY)
    assert decision.pool is Pool.NORMAL and decision.srs  # SPF passed
    assert facts.dkim == ()
