"""Whose limits a message counts against, from the facts alone (srsfwd.limits_identity)."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.address import DomainSet
from srsfwd.limits_identity import (
    LimitsIdentity,
    client_key,
    limits_identity,
    operator_key,
    signs_for,
)
from srsfwd.pool import DKIMCheck, Facts

ACCEPTED = DomainSet(["example.net", "*.example.net"])
CLIENT = "198.18.0.66"
KEY_SHAPES = re.compile(r"^\[(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]+/64)\]$")


def facts(mail_from: str = "alice@mail.example.org", **given: object) -> Facts:
    domain = mail_from.partition("@")[2] or None
    return Facts(mail_from=mail_from, sender_domain=domain, **given)  # type: ignore[arg-type]


def identity(found: Facts, client: str = CLIENT) -> LimitsIdentity | None:
    return limits_identity(found, ACCEPTED, client=client)


def passing(domain: str) -> tuple[DKIMCheck, ...]:
    return (DKIMCheck(domain, "sel", "pass"),)


def test_spf_pass_vouches_for_the_mail_from() -> None:
    found = identity(facts(spf="pass", spf_domain="mail.example.org"))
    assert found == LimitsIdentity("alice@mail.example.org", "spf-pass")


def test_spf_fail_counts_the_client() -> None:
    assert identity(facts(spf="fail")) == LimitsIdentity(f"[{CLIENT}]", "client-address")


def test_spf_pass_for_the_helo_name_counts_the_client() -> None:
    found = identity(facts(spf="pass", spf_domain="mx.evil.example"))
    assert found is not None and found.because == "client-address"


@pytest.mark.parametrize("signer", ["mail.example.org", "example.org", "EXAMPLE.ORG."])
def test_a_signature_of_the_mail_from_domain_or_a_parent_vouches(signer: str) -> None:
    assert identity(facts(dkim=passing(signer))) == LimitsIdentity(
        "alice@mail.example.org", "dkim-pass"
    )


@pytest.mark.parametrize(
    "signer", ["news.example.org", "sub.mail.example.org", "org", "evil.example"]
)
def test_a_signature_of_a_sibling_child_suffix_or_stranger_does_not_vouch(signer: str) -> None:
    found = identity(facts(dkim=passing(signer)))
    assert found is not None and found.because == "client-address"


def test_a_failing_signature_does_not_vouch() -> None:
    found = identity(facts(dkim=(DKIMCheck("example.org", "sel", "fail"),)))
    assert found is not None and found.because == "client-address"


def test_a_signature_of_the_header_from_only_does_not_vouch() -> None:
    found = identity(
        facts("carol@unsigned.example", from_domain="example.org", dkim=passing("example.org"))
    )
    assert found is not None and found.because == "client-address"


def test_a_sasl_login_vouches_for_an_accepted_mail_from() -> None:
    found = identity(facts("frank@sales.example.net", sasl_user="frank"))
    assert found == LimitsIdentity("frank@sales.example.net", "sasl-login")


def test_a_sasl_login_does_not_vouch_for_a_foreign_mail_from() -> None:
    found = identity(facts(sasl_user="frank"))
    assert found is not None and found.because == "client-address"


def test_a_trusted_submission_vouches_for_the_mail_from() -> None:
    found = identity(facts(trusted_submission=True))
    assert found == LimitsIdentity("alice@mail.example.org", "trusted-submission")


def test_the_null_sender_counts_nobody() -> None:
    assert identity(Facts(mail_from="", sender_domain=None)) is None


@pytest.mark.parametrize(
    ("client", "key"),
    [
        ("203.0.113.5", "[203.0.113.5]"),
        ("[203.0.113.5]", "[203.0.113.5]"),
        (" 203.0.113.5 ", "[203.0.113.5]"),
        ("2001:db8:1:2:3:4:5:6", "[2001:db8:1:2::/64]"),
        ("[IPv6:2001:DB8:1:2::99]", "[2001:db8:1:2::/64]"),
        ("::ffff:203.0.113.5", "[203.0.113.5]"),
        ("fe80::1%eth0", "[fe80::/64]"),
    ],
)
def test_client_keys(client: str, key: str) -> None:
    assert client_key(client) == key


@given(st.ip_addresses())
def test_every_ip_address_has_a_key_of_one_of_the_two_shapes(address: object) -> None:
    key = client_key(str(address))
    assert KEY_SHAPES.match(key), key
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        assert ipaddress.IPv6Network(key[1:-1]).prefixlen == 64


@given(st.text(max_size=60))
def test_any_client_text_is_a_key_or_a_clear_error(text: str) -> None:
    try:
        key = client_key(text)
    except ValueError as exc:
        error = str(exc)
        assert "is not an IP address" in error
    else:
        assert KEY_SHAPES.match(key), key


@given(st.text(max_size=60))
def test_an_unvouched_sender_from_any_client_text_gets_a_key_or_a_clear_error(
    text: str,
) -> None:
    try:
        found = identity(facts(spf="fail"), client=text)
    except ValueError as exc:
        error = str(exc)
        assert "is not an IP address" in error
    else:
        assert found is not None and KEY_SHAPES.match(found.key)


def test_a_key_can_never_be_mistaken_for_a_mailbox() -> None:
    assert "@" not in client_key("203.0.113.5")
    assert "@" not in client_key("2001:db8::1")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("alice@example.org", "alice@example.org"),
        ("203.0.113.5", "[203.0.113.5]"),
        ("[203.0.113.5]", "[203.0.113.5]"),
        ("2001:db8:1:2::77", "[2001:db8:1:2::/64]"),
        ("[2001:db8:1:2::/64]", "[2001:db8:1:2::/64]"),
    ],
)
def test_what_an_operator_types_names_the_key(text: str, key: str) -> None:
    assert operator_key(text) == key


@pytest.mark.parametrize("text", ["alice", "[10.0.0.0/8]", "2001:db8::/48", ""])
def test_what_names_no_key_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"limits key|neither"):
        operator_key(text)


def test_signs_for_is_no_higher_than_the_organizational_domain() -> None:
    assert signs_for("example.org", "a.b.example.org")
    assert not signs_for("org", "example.org")
    assert not signs_for("", "example.org")
