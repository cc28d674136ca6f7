"""Attacks on what we write in Authentication-Results, tried as someone on the Internet would.

1. Forged Authentication-Results claiming our authserv-id, spelled so that a naive reader
   misses the id (a comment before it, a folded line, upper case, a quoted-string, a
   version, junk after it): removed on arrival, never sealed into our
   ARC-Authentication-Results; the seal still verifies with dkimpy.
2. Attacker text inside our results: a signature tag echoed in a reason, a DNS error
   naming ``127.0.0.1@port``: our field and our AAR re-parse (authres) as exactly the
   results this hop computed, and mail that passed SPF still leaves.

Each attack goes through ``Forwarder`` with the shipped example configuration and as a
message through the milter inside the real Postfix of the integration tests, next to
controls that show a real forward still gets SRS, the normal pool and valid signatures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import authres
import dkim
import pytest

from srsfwd.authservid import claims_authserv_id
from srsfwd.config import load_config
from srsfwd.dkim.arc import dkimpy_dnsfunc
from srsfwd.dkim.canon import Message, parse_message, to_crlf
from srsfwd.dns.resolver import Resolver
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.pool import Action, Pool
from tests.dnsserver import ZoneServer
from tests.integration.test_milter_postfix import Rig, running_rig

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parent.parent.parent / "examples"
ZONE = (EXAMPLES / "example.zone").read_text()
OURS = "fwd.example.net"

#: Forged results claiming our authserv-id, as a naive "first word" reader misses them.
FORGED = {
    "comment-before-id": b"Authentication-Results: (x) fwd.example.net; dkim=pass"
    b" header.d=bank.example\r\n",
    "id-on-a-folded-line": b"Authentication-Results:\r\n fwd.example.net; dkim=pass"
    b" header.d=bank.example\r\n",
    "nested-comment-and-fold": b"Authentication-Results: (a (b)\r\n\tc)\r\n\tfwd.example.net;"
    b"\r\n\tdkim=pass header.d=bank.example\r\n",
    "upper-case": b"Authentication-Results: FWD.EXAMPLE.NET; dkim=pass header.d=bank.example\r\n",
    "lower-case-name": b"authentication-results: (x) fwd.example.net; dkim=pass"
    b" header.d=bank.example\r\n",
    "quoted-id": b'Authentication-Results: "fwd.example.net"; dkim=pass header.d=bank.example\r\n',
    "with-version": b"Authentication-Results: fwd.example.net 1; dkim=pass"
    b" header.d=bank.example\r\n",
    "junk-after-id": b"Authentication-Results: fwd.example.net/x; dkim=pass"
    b" header.d=bank.example\r\n",
    "arc-pass-claim": b"Authentication-Results: (x) fwd.example.net; arc=pass\r\n",
    "space-before-colon": b"Authentication-Results : fwd.example.net; dkim=pass"
    b" header.d=bank.example\r\n",
    "spaced-id": b"Authentication-Results: fwd (c) . example . net; dkim=pass"
    b" header.d=bank.example\r\n",
    "encoded-word": b"Authentication-Results: =?utf-8?b?ZndkLmV4YW1wbGUubmV0?=; dkim=pass"
    b" header.d=bank.example\r\n",
    "eight-bit-after-id": b"Authentication-Results: fwd.example.net\xc2\xa0; dkim=pass"
    b" header.d=bank.example\r\n",
    "nul-before-id": b"Authentication-Results: \x00fwd.example.net; dkim=pass"
    b" header.d=bank.example\r\n",
    "nul-inside-id": b"Authentication-Results: fwd.exa\x00mple.net; dkim=pass"
    b" header.d=bank.example\r\n",
}
#: A DKIM-Signature whose v= tag the verifier's reason text echoes.
TAG_IN_REASON = (
    b"DKIM-Signature: v=x@y spf=pass smtp.mailfrom=ceo@bank.example; a=rsa-sha256;\r\n"
    b" d=unsigned.example; s=sel; h=from; bh=AAAA; b=AAAA\r\n"
)
#: What arrives from another ADMD stays as it is.
THEIRS = b"Authentication-Results: mx.sender.example; spf=pass smtp.mailfrom=example.org\r\n"
#: (IP, HELO) of an unauthenticated client, and of example.org's outbound MTA (SPF pass).
RELAY = ("192.0.2.99", "mx.unsigned.example")
NORMAL = ("198.51.100.25", "mail.example.org")
#: The example.org signature's key (normal.eml is signed with it).
EXAMPLE_ORG_KEY = "mail2026._domainkey.example.org."


@pytest.fixture
def forwarder(example: Path, dns_server: ZoneServer) -> Forwarder:
    dns_server.load(ZONE)
    config = load_config(example / "srsfwd.toml")
    return Forwarder.from_config(config, resolver=dns_server.resolver())


def message(name: str, extra: bytes = b"") -> bytes:
    return extra + to_crlf((EXAMPLES / "messages" / f"{name}.eml").read_bytes())


def send(forwarder: Forwarder, data: bytes, sender: str, client: tuple[str, str]) -> ForwardResult:
    return forwarder.forward(
        data, client_ip=client[0], helo=client[1], mail_from=sender, rcpts=["b@receiver.example"]
    )


def forwarded(result: ForwardResult) -> bytes:
    assert result.action is Action.FORWARD, result.reasons
    assert result.message is not None
    return result.message


def results_of(value: bytes) -> list[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(method, result, properties) of an A-R or AAR value, as authres reads it."""
    text = value.replace(b"\r\n", b"").decode("ascii")
    if text.lstrip().startswith("i="):
        text = text.split(";", 1)[1]
    header = authres.AuthenticationResultsHeader.parse_value(text)
    assert header.authserv_id == OURS
    return [
        (
            r.method,
            r.result,
            tuple((f"{p.type}.{p.name}", str(p.value)) for p in r.properties),
        )
        for r in header.results
    ]


def ours_and_aar(data: bytes) -> tuple[list[tuple[str, str, tuple[tuple[str, str], ...]]], ...]:
    """This hop's results and the sealed AAR's: asserted to be the only ones, and equal."""
    parsed: Message = parse_message(data)
    claiming = [
        f for f in parsed.find("authentication-results") if claims_authserv_id(f.value, OURS)
    ]
    assert len(claiming) == 1, "one field claims our authserv-id: this hop's"
    (aar,) = parsed.find("arc-authentication-results")
    ours, sealed = results_of(claiming[0].value), results_of(aar.value)
    assert sealed == ours
    return ours, sealed


def seal_verifies(data: bytes) -> None:
    cv, _, reason = dkim.arc_verify(data, dnsfunc=dkimpy_dnsfunc(Resolver.from_zone_text(ZONE)))
    assert cv == b"pass", reason


def methods(results: list[tuple[str, str, tuple[tuple[str, str], ...]]]) -> list[str]:
    return [method for method, _, _ in results]


# -- through Forwarder -------------------------------------------------------------------


@pytest.mark.parametrize("forged", list(FORGED.values()), ids=list(FORGED))
def test_forged_results_for_our_id_are_not_sealed(forwarder: Forwarder, forged: bytes) -> None:
    result = send(forwarder, message("relay", forged), "carol@unsigned.example", RELAY)
    out = forwarded(result)
    assert (result.pool, result.srs) == (Pool.RELAY, False)
    assert b"bank.example" not in out
    ours, _ = ours_and_aar(out)
    assert ("arc", "none", ()) in ours and methods(ours) == ["spf", "dkim", "arc"]
    seal_verifies(out)


def test_results_of_another_admd_are_kept_as_they_arrived(forwarder: Forwarder) -> None:
    result = send(forwarder, message("normal", THEIRS), "alice@example.org", NORMAL)
    assert THEIRS in forwarded(result)


def test_a_signature_tag_echoed_in_a_reason_adds_nothing_to_our_results(
    forwarder: Forwarder,
) -> None:
    result = send(forwarder, message("relay", TAG_IN_REASON), "carol@unsigned.example", RELAY)
    out = forwarded(result)
    ours, _ = ours_and_aar(out)
    assert methods(ours) == ["spf", "dkim", "arc"]
    spf, signature, _ = ours
    assert spf[2] == (("smtp.mailfrom", "carol@unsigned.example"),)
    assert signature[1] != "pass"
    assert signature[2] == (("header.d", "unsigned.example"), ("header.s", "sel"))
    head = out.partition(b"\r\n\r\n")[0]
    assert head.count(b"ceo@bank.example") == 1  # only in the signature that arrived
    seal_verifies(out)


def test_a_dns_failure_on_a_dkim_key_still_forwards_spf_pass_mail(
    forwarder: Forwarder, dns_server: ZoneServer
) -> None:
    dns_server.failing = {EXAMPLE_ORG_KEY}
    result = send(forwarder, message("normal"), "alice@example.org", NORMAL)
    out = forwarded(result)
    assert (result.pool, result.srs) == (Pool.NORMAL, True)
    ours, _ = ours_and_aar(out)
    assert ours[0][:2] == ("spf", "pass")
    assert ours[1] == ("dkim", "temperror", (("header.d", "example.org"), ("header.s", "mail2026")))
    dns_server.failing = set()
    seal_verifies(out)


def test_control_an_spf_pass_forward_gets_srs_the_normal_pool_and_valid_signatures(
    forwarder: Forwarder,
) -> None:
    result = send(forwarder, message("normal"), "alice@example.org", NORMAL)
    out = forwarded(result)
    assert (result.pool, result.srs) == (Pool.NORMAL, True)
    assert forwarder.rewriter.reverse(result.mail_from) == "alice@example.org"
    ours, _ = ours_and_aar(out)
    assert ours[0] == ("spf", "pass", (("smtp.mailfrom", "alice@example.org"),))
    assert ours[1] == ("dkim", "pass", (("header.d", "example.org"), ("header.s", "mail2026")))
    assert dkim.verify(out, dnsfunc=dkimpy_dnsfunc(Resolver.from_zone_text(ZONE)))
    seal_verifies(out)


# -- through the milter in Postfix ----------------------------------------------------------


@pytest.fixture(scope="module")
def rig(_dns_server_process: ZoneServer) -> Iterator[Rig]:
    with running_rig(_dns_server_process) as running:
        yield running


@pytest.mark.parametrize(
    "name",
    [
        "comment-before-id",
        "id-on-a-folded-line",
        "nested-comment-and-fold",
        "quoted-id",
        "lower-case-name",
        "space-before-colon",
        "spaced-id",
        "encoded-word",
        "eight-bit-after-id",
        "nul-before-id",
        "nul-inside-id",
    ],
)
def test_milter_deletes_forged_results_and_seals_only_ours(rig: Rig, name: str) -> None:
    rcpt = f"forged-{name}@receiver.example"
    rig.send(
        "relay",
        f"{name}@unsigned.example",
        [rcpt],
        # a client each: unauthenticated mail counts against its client, 6 a day in the rig
        client=(f"192.0.2.{100 + list(FORGED).index(name)}", RELAY[1]),
        extra=FORGED[name],
    )
    got = rig.wait_for(rcpt)
    assert got.peer_ip == "127.0.0.3"
    assert b"bank.example" not in got.data
    ours, _ = ours_and_aar(to_crlf(got.data))
    assert ("arc", "none", ()) in ours
    seal_verifies(to_crlf(got.data))


def test_milter_deletes_each_forged_field_and_keeps_another_admds_between_them(
    rig: Rig,
) -> None:
    rcpt = "forged-twice@receiver.example"
    extra = FORGED["upper-case"] + THEIRS + FORGED["space-before-colon"]
    rig.send(
        "relay", "twice@unsigned.example", [rcpt], client=("192.0.2.150", RELAY[1]), extra=extra
    )
    got = rig.wait_for(rcpt)
    assert b"bank.example" not in got.data
    assert THEIRS in to_crlf(got.data)
    ours, _ = ours_and_aar(to_crlf(got.data))
    assert ("arc", "none", ()) in ours
    seal_verifies(to_crlf(got.data))


def test_milter_keeps_a_signature_tag_out_of_our_results(rig: Rig) -> None:
    rcpt = "tag@receiver.example"
    rig.send(
        "relay",
        "carol@unsigned.example",
        [rcpt],
        client=RELAY,
        extra=TAG_IN_REASON,
    )
    data = to_crlf(rig.wait_for(rcpt).data)
    ours, _ = ours_and_aar(data)
    assert methods(ours) == ["spf", "dkim", "arc"]
    assert ours[1][2] == (("header.d", "unsigned.example"), ("header.s", "sel"))
    seal_verifies(data)


def test_milter_forwards_spf_pass_mail_when_a_dkim_key_lookup_fails(rig: Rig) -> None:
    rcpt = "servfail@receiver.example"
    rig.dns.failing = {EXAMPLE_ORG_KEY}
    try:
        rig.send("normal", "sally@example.org", [rcpt], client=NORMAL)
        got = rig.wait_for(rcpt)
    finally:
        rig.dns.failing = set()
    assert got.mail_from.startswith("SRS0=") and got.peer_ip == "127.0.0.2"
    ours, _ = ours_and_aar(to_crlf(got.data))
    assert ours[1][:2] == ("dkim", "temperror")
    seal_verifies(to_crlf(got.data))


def test_milter_control_a_real_forward_gets_srs_the_normal_pool_and_valid_signatures(
    rig: Rig,
) -> None:
    rcpt = "control@receiver.example"
    rig.send("normal", "alice@example.org", [rcpt], extra=THEIRS)
    got = rig.wait_for(rcpt)
    assert got.mail_from.startswith("SRS0=") and got.peer_ip == "127.0.0.2"
    data = to_crlf(got.data)
    assert THEIRS in data
    ours, _ = ours_and_aar(data)
    assert ours[1][:2] == ("dkim", "pass")
    assert dkim.verify(data, dnsfunc=dkimpy_dnsfunc(Resolver.from_zone_text(ZONE)))
    seal_verifies(data)
