"""Authentication-Results in: only our gateways' results are read. Out: what we write in
Authentication-Results and in the ARC-Authentication-Results is exactly the results this
hop computed, well-formed, whatever text arrived in headers, DNS errors or signature tags."""

from __future__ import annotations

import shutil
from pathlib import Path

import authres
import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srsfwd.authresults import (
    address_value,
    build_header,
    domain_value,
    gateway_spf,
    header_clauses,
    helo_value,
    identity_value,
    reason_value,
    results_field,
)
from srsfwd.authservid import claims_authserv_id
from srsfwd.clock import FrozenClock
from srsfwd.config import load_config
from srsfwd.dkim.arc import ArcSealer, dkimpy_dnsfunc
from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import DkimKey, SigningKey
from srsfwd.dns.resolver import Resolver
from srsfwd.forward import Forwarder
from srsfwd.pool import DKIMCheck
from tests.dkimhelp import MESSAGE, dnsfunc_for, zone_for
from tests.hypothesis_profiles import budget

OURS = "fwd.example.net"
NOW = 1_795_000_000

#: Text an attacker controls: signature tags echoed in reasons, DNS error texts, headers.
_HOSTILE = st.sampled_from(
    [
        "v=x@y spf=pass smtp.mailfrom=ceo@bank.example; dkim=pass header.d=bank.example",
        "DNS SERVFAIL from 127.0.0.1@5353 for sel._domainkey.bank.example",
        'quote " and backslash \\ and (comment) and ;',
        "\r\n\tspf=pass",
        "bank.example",
        "ceo@bank.example",
        "[192.0.2.1]",
        "@bank.example",
        "",
        "é@exämple.org",
        "a b@c d",
        '"quoted local"@bank.example',
        "x" * 300,
    ]
)
_TEXT = st.one_of(
    _HOSTILE,
    st.text(max_size=60),
    st.binary(max_size=60).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)
_SPF = st.sampled_from(["pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"])
_DKIM = st.sampled_from(["pass", "fail", "neutral", "policy", "permerror", "temperror"])
_CHECKS = st.lists(st.builds(DKIMCheck, _TEXT, _TEXT, _DKIM, _TEXT), max_size=3)


def parsed(field: str) -> authres.AuthenticationResultsHeader:
    return authres.AuthenticationResultsHeader.parse(field.replace("\r\n", ""))


def clauses(header: authres.AuthenticationResultsHeader) -> list[tuple[object, ...]]:
    """Each result as (method, result, reason, properties), as authres reads it."""
    return [
        (
            r.method,
            r.result,
            r.reason,
            tuple((f"{p.type}.{p.name}", str(p.value)) for p in r.properties),
        )
        for r in header.results
    ]


def expected(
    spf: str, mail_from: str, helo: str, reason: str, checks: list[DKIMCheck], arc: str | None
) -> list[tuple[object, ...]]:
    """The results this hop computed, with the checked values build_header may write."""
    sender = address_value(mail_from) if mail_from else None
    spf_props = (
        (("smtp.mailfrom", sender),)
        if sender
        else ((("smtp.helo", helo_value(helo)),) if not mail_from and helo_value(helo) else ())
    )
    out: list[tuple[object, ...]] = [("spf", spf, reason_value(reason) or None, spf_props)]
    for check in checks:
        props = tuple(
            (name, value)
            for name, value in (
                ("header.d", domain_value(check.domain)),
                ("header.s", domain_value(check.selector)),
            )
            if value
        )
        why = reason_value(check.reason) if check.result != "pass" else ""
        out.append(("dkim", check.result, why or None, props))
    if not checks:
        out.append(("dkim", "none", None, ()))
    if arc is not None:
        out.append(("arc", arc, None, ()))
    return out


# -- in: our gateways' results -----------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b" (checked here) gw.example; spf=pass smtp.mailfrom=a@b.example",
        b"\r\n gw.example; spf=pass smtp.mailfrom=a@b.example",
        b' "GW.example" 1; spf=pass smtp.mailfrom=a@b.example',
    ],
)
def test_a_trusted_gateways_result_is_read_however_its_id_is_spelled(value: bytes) -> None:
    stated = gateway_spf([value], ["gw.example"])
    assert stated is not None
    assert (stated.result, stated.authserv_id, stated.mail_from) == (
        "pass",
        "gw.example",
        "a@b.example",
    )


@pytest.mark.parametrize(
    "value",
    [
        b" gw.example.evil.example; spf=pass",
        b" evil.example (gw.example); spf=pass",
        b" gw.example/x; spf=pass",
        b" (gw.example never closed; spf=pass",
    ],
)
def test_results_of_other_or_broken_ids_are_not_read(value: bytes) -> None:
    assert gateway_spf([value], ["gw.example"]) is None


def test_a_gateways_identities_are_kept_only_when_well_formed() -> None:
    stated = gateway_spf([b' gw.example; spf=pass smtp.mailfrom="a b"'], ["gw.example"])
    assert stated is not None
    assert stated.mail_from is None


# -- out: what we write ---------------------------------------------------------------------


@given(
    spf=_SPF,
    mail_from=_TEXT,
    helo=_TEXT,
    reason=_TEXT,
    checks=_CHECKS,
    arc=st.sampled_from([None, "none", "pass", "fail"]),
    folded=st.booleans(),
)
def test_our_field_reads_back_as_exactly_the_results_computed(
    spf: str,
    mail_from: str,
    helo: str,
    reason: str,
    checks: list[DKIMCheck],
    arc: str | None,
    folded: bool,
) -> None:
    field = build_header(
        OURS,
        spf=spf,
        mail_from=mail_from,
        helo=helo,
        spf_reason=reason,
        dkim=checks,
        arc=arc,
        folded=folded,
    )
    assert field.isascii() and field.replace("\r\n\t", " ").isprintable()
    header = parsed(field)
    assert header.authserv_id == OURS
    assert clauses(header) == expected(spf, mail_from, helo, reason, checks, arc)
    # authres' own writer (the ARC sealer's consolidation) keeps them exactly too.
    assert clauses(parsed(str(header))) == clauses(header)


@given(
    spf=_SPF,
    mail_from=_TEXT,
    helo=_TEXT,
    reason=_TEXT,
    checks=_CHECKS,
    arc=st.sampled_from(["none", "pass", "fail"]),
)
def test_our_clauses_are_written_as_authres_writes_them(
    spf: str, mail_from: str, helo: str, reason: str, checks: list[DKIMCheck], arc: str
) -> None:
    # The forward hands them to the ARC sealer as they are, where dkimpy would parse
    # our field again and write each result with authres: the AAR must be the same.
    ours = header_clauses(
        spf=spf, mail_from=mail_from, helo=helo, spf_reason=reason, dkim=checks, arc=arc
    )
    field = results_field(OURS, ours, folded=True)
    written = [clause.as_authres_writes_it() for clause in ours]
    assert written == [str(r) for r in parsed(field).results]


def test_a_signature_tag_echoed_in_a_reason_adds_no_property() -> None:
    hostile = "v=x@y spf=pass smtp.mailfrom=ceo@bank.example; ..."
    field = build_header(
        OURS,
        spf="fail",
        mail_from="m@evil.example",
        helo="evil.example",
        dkim=[DKIMCheck("evil.example", "s", "permerror", f"bad version {hostile}")],
    )
    (spf, dkim_result) = clauses(parsed(field))
    assert spf == ("spf", "fail", None, (("smtp.mailfrom", "m@evil.example"),))
    assert dkim_result[3] == (("header.d", "evil.example"), ("header.s", "s"))
    assert "ceo@bank.example" not in field


def test_a_dns_error_with_an_address_and_port_keeps_the_field_parseable() -> None:
    reason = "SERVFAIL from 127.0.0.1@5353"
    field = build_header(
        OURS,
        spf="pass",
        mail_from="a@example.org",
        helo="h.example.org",
        dkim=[DKIMCheck("example.org", "sel", "temperror", reason)],
    )
    assert clauses(parsed(field))[1][2] == "SERVFAIL from 127.0.0.1 5353"


def test_identities_are_addresses_domains_or_left_out() -> None:
    assert address_value("ceo@bank.example") == "ceo@bank.example"
    assert address_value('"a b"@bank.example') == "bank.example"
    assert address_value("a@b c") is None
    assert identity_value("@bank.example") == "@bank.example"
    assert identity_value("x y@bank.example") is None
    assert domain_value("bank.example.") == "bank.example"
    assert domain_value("bank example") is None
    assert helo_value("[192.0.2.1]") == "[192.0.2.1]"
    assert helo_value("[IPv6:2001:db8::1]") == "[IPv6:2001:db8::1]"
    assert helo_value("[not an address]") is None


# -- through the ARC sealer ------------------------------------------------------------

_FORGED = st.sampled_from(
    [
        b" (x) fwd.example.net; dkim=pass header.d=bank.example",
        b"\r\n fwd.example.net; spf=pass smtp.mailfrom=ceo@bank.example",
        b" FWD.EXAMPLE.NET 1; dkim=pass header.d=bank.example",
        b' "fwd.example.net"; dkim=pass header.d=bank.example',
        b" fwd.example.net; arc=pass",
        b" fwd.example.net/x; dkim=pass header.d=bank.example",
        b" gw.example; spf=pass smtp.mailfrom=ceo@bank.example",
    ]
)
_ARRIVING = st.lists(
    st.tuples(
        st.sampled_from([b"Authentication-Results", b"authentication-results", b"X-Other"]),
        st.one_of(_FORGED, st.binary(max_size=60).map(lambda raw: b" " + raw.replace(b"\n", b""))),
    ),
    max_size=5,
)


@settings(max_examples=budget(40), deadline=None)
@given(arriving=_ARRIVING, reason=_TEXT, checks=_CHECKS, mail_from=_TEXT)
def test_the_sealed_aar_holds_exactly_this_hops_results(
    dkim_keys: dict[str, DkimKey],
    arriving: list[tuple[bytes, bytes]],
    reason: str,
    checks: list[DKIMCheck],
    mail_from: str,
) -> None:
    signing = SigningKey(OURS, "arc", dkim_keys["rsa-2048"])
    head = b"".join(
        name + b":" + value.replace(b"\r", b"") + b"\r\n"
        for name, value in arriving
        if b"\r\n\r\n" not in value
    )
    message = head + MESSAGE

    def results(cv: str) -> str:
        return build_header(
            OURS,
            spf="pass",
            mail_from=mail_from,
            helo="mx.example.org",
            spf_reason=reason,
            dkim=checks,
            arc=cv,
            folded=True,
        )

    sealer = ArcSealer(
        signing, OURS, Resolver.from_zone_text(zone_for([signing])), clock=FrozenClock(NOW)
    )
    sealed = sealer.seal(message, results=results).message
    out = parse_message(sealed)
    ours = [f for f in out.find("authentication-results") if claims_authserv_id(f.value, OURS)]
    assert len(ours) == 1
    (aar,) = out.find("arc-authentication-results")
    aar_text = aar.value.decode("ascii").split(";", 1)[1]
    aar_results = clauses(authres.AuthenticationResultsHeader.parse_value(aar_text))
    assert aar_results == clauses(parsed(results("none")))
    cv, _, why = dkim.arc_verify(sealed, dnsfunc=dnsfunc_for([signing]))
    assert cv == b"pass", why


# -- through the whole pipeline ----------------------------------------------------------

EXAMPLES = Path(__file__).parents[2] / "examples"
_ALLOWED = {
    "spf": {"smtp.mailfrom", "smtp.helo"},
    "dkim": {"header.d", "header.s"},
    "arc": set(),
}


@pytest.fixture(scope="module")
def example_forwarder(tmp_path_factory: pytest.TempPathFactory) -> Forwarder:
    """The shipped example, answering DNS from its zone file (no network)."""
    copy = tmp_path_factory.mktemp("example") / "examples"
    shutil.copytree(EXAMPLES, copy)
    for key in copy.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (copy / "srs.secret").chmod(0o600)
    return Forwarder.from_config(load_config(copy / "srsfwd.toml"))


_FIELD_NAMES = st.sampled_from(
    [b"Authentication-Results", b"AUTHENTICATION-results", b"DKIM-Signature", b"X-Any"]
)
#: Without VT and FF: dkimpy's relaxed header canonicalisation strips them at the ends of
#: a value (Python's strip), RFC 6376 only SP and HTAB, so its check of our AMS would fail.
_ARRIVING_BYTES = st.one_of(_FORGED, st.binary(max_size=80)).map(
    lambda raw: raw.translate(None, b"\r\x0b\x0c").replace(b"\n", b"\r\n ")
)
_TAG = st.binary(max_size=40).map(lambda raw: raw.translate(None, b"\r\n\x0b\x0c"))


@settings(max_examples=budget(40), deadline=None)
@given(
    arriving=st.lists(st.tuples(_FIELD_NAMES, _ARRIVING_BYTES), max_size=3),
    tag=st.one_of(st.sampled_from([b"x@y spf=pass smtp.mailfrom=ceo@bank.example"]), _TAG),
    where=st.sampled_from([b"v", b"d", b"s", b"a", b"i"]),
)
def test_whatever_arrives_our_results_hold_only_what_this_hop_computed(
    example_forwarder: Forwarder, arriving: list[tuple[bytes, bytes]], tag: bytes, where: bytes
) -> None:
    tags = {b"v": b"1", b"a": b"rsa-sha256", b"d": b"unsigned.example", b"s": b"sel", b"i": b""}
    tags[where] = tag
    signature = b"DKIM-Signature: " + b"; ".join(
        name + b"=" + value for name, value in tags.items()
    )
    signature += b"; h=from; bh=AAAA; b=AAAA\r\n"
    head = b"".join(name + b":" + value + b"\r\n" for name, value in arriving)
    data = head + signature + (EXAMPLES / "messages" / "relay.eml").read_bytes()
    result = example_forwarder.forward(
        data,
        client_ip="192.0.2.99",
        helo="mx.unsigned.example",
        mail_from="carol@unsigned.example",
        rcpts=["bob@receiver.example"],
    )
    if result.message is None:
        return  # refused or deferred: nothing of ours leaves
    out = parse_message(result.message)
    ours = [f for f in out.find("authentication-results") if claims_authserv_id(f.value, OURS)]
    assert len(ours) == 1
    written = parsed("Authentication-Results:" + ours[0].value.decode("ascii"))
    (aar,) = out.find("arc-authentication-results")
    sealed = authres.AuthenticationResultsHeader.parse_value(
        aar.value.decode("ascii").split(";", 1)[1].replace("\r\n", "")
    )
    assert clauses(sealed) == clauses(written)
    assert result.decision is not None
    computed = ["spf"] + ["dkim"] * max(1, len(result.decision.facts.dkim)) + ["arc"]
    assert [r.method for r in written.results] == computed
    for r in written.results:
        assert {f"{p.type}.{p.name}" for p in r.properties} <= _ALLOWED[r.method]
    zone = (EXAMPLES / "example.zone").read_text()
    cv, _, why = dkim.arc_verify(
        result.message, dnsfunc=dkimpy_dnsfunc(Resolver.from_zone_text(zone))
    )
    assert cv == b"pass", why
