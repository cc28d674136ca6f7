"""Sending limits count whom the message authenticated, never whom a forger names.

The MAIL FROM is counted when SPF, a DKIM signature of its domain, an SMTP AUTH login
(MAIL FROM in our accepted domains) or a trusted submission vouched for it; otherwise the
client's address is, so forged mail costs the forger, not the victim. Through the shipped
example configuration and the project's DNS server on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srsfwd.config import load_config
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.limits import LimitVerdict, SendingLimits
from srsfwd.limits_identity import LimitsIdentity
from srsfwd.pool import Action
from tests.dnsserver import ZoneServer
from tests.hypothesis_profiles import budget

EXAMPLES = Path(__file__).parents[2] / "examples"
VICTIM = "alice@example.org"
VICTIM_HOST = "198.51.100.25"  # in example.org's SPF
ATTACKER = "198.18.0.66"  # in nobody's SPF
ROAMING_USER = "203.0.113.200"  # in nobody's SPF: a user of ours on the road
GATEWAY = "10.1.2.3"  # one of trusted_relays in with_gateway()
SIGNED = (EXAMPLES / "messages" / "normal.eml").read_bytes()  # DKIM d=example.org, From alice
FORGED = (
    b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Invoice\r\n"
    b"Date: Wed, 25 Nov 2026 09:14:00 +0000\r\nMessage-ID: <forged-1@example.org>\r\n"
    b"\r\nPlease pay the attached invoice today.\r\n"
)
OURS = FORGED.replace(b"alice@example.org", b"frank@example.net")


@pytest.fixture
def dns(dns_server: ZoneServer) -> ZoneServer:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    return dns_server


def build(example: Path, dns: ZoneServer, **replace: str) -> Forwarder:
    config = example / "srsfwd.toml"
    text = config.read_text().replace("per_day = 1000", "per_day = 2")
    for old, new in replace.items():
        text = text.replace(old, new)
    config.write_text(text)
    return Forwarder.from_config(load_config(config), resolver=dns.resolver())


@pytest.fixture
def forwarder(example: Path, dns: ZoneServer) -> Forwarder:
    """The example forwarder with a limit of two recipients a day."""
    return build(example, dns)


def send(
    forwarder: Forwarder,
    message: bytes,
    client: str,
    mail_from: str,
    *,
    sasl_user: str | None = None,
    dry_run: bool = False,
) -> ForwardResult:
    return forwarder.forward(
        message,
        client_ip=client,
        helo="mx.sender.example",
        mail_from=mail_from,
        rcpts=["bob@receiver.example"],
        sasl_user=sasl_user,
        dry_run=dry_run,
    )


def limits(forwarder: Forwarder) -> SendingLimits:
    assert forwarder.limits is not None
    return forwarder.limits


def today(forwarder: Forwarder, key: str) -> int:
    return limits(forwarder).status(key)[0].today


def blocked(forwarder: Forwarder, key: str) -> bool:
    return limits(forwarder).status(key)[1] is not None


def test_forged_mail_past_the_limit_blocks_the_client_not_the_victim(
    forwarder: Forwarder,
) -> None:
    results = [send(forwarder, FORGED, ATTACKER, VICTIM) for _ in range(4)]
    assert [r.action for r in results] == [Action.FORWARD] * 2 + [Action.REJECT] * 2
    assert results[2].reasons == ("limit-block",)
    assert (today(forwarder, VICTIM), blocked(forwarder, VICTIM)) == (0, False)
    assert (today(forwarder, f"[{ATTACKER}]"), blocked(forwarder, f"[{ATTACKER}]")) == (2, True)


def test_the_victims_authenticated_mail_after_a_forged_flood_is_forwarded(
    forwarder: Forwarder,
) -> None:
    for _ in range(4):
        send(forwarder, FORGED, ATTACKER, VICTIM)
    result = send(forwarder, SIGNED, VICTIM_HOST, VICTIM)
    assert result.forwarded
    assert result.counted == (VICTIM, 0, 1)


def test_a_message_the_count_refuses_after_its_peek_is_uncounted(
    forwarder: Forwarder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another message counted between this one's peek and its count (concurrent copies).
    send(forwarder, SIGNED, VICTIM_HOST, VICTIM)
    peek_before_the_other = limits(forwarder).peek(VICTIM, internal=0, external=1)
    send(forwarder, SIGNED, VICTIM_HOST, VICTIM)
    monkeypatch.setattr(limits(forwarder), "peek", lambda *_, **__: peek_before_the_other)
    result = send(forwarder, SIGNED, VICTIM_HOST, VICTIM)
    assert (result.action, result.reasons) == (Action.REJECT, ("limit-block",))
    assert result.counted is None
    assert today(forwarder, VICTIM) == 2


def test_a_message_deferred_by_the_decision_after_its_count_is_given_back(
    forwarder: Forwarder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The count finds a limit passed with action "alert" since the peek, and the decision
    # taken again defers the message: it will come back and be counted then.
    monkeypatch.setattr(
        limits(forwarder),
        "record",
        lambda *_, **__: LimitVerdict("alert", "limit-alert", "per-day", "over"),
    )
    decided = forwarder._outcome
    deferral = ForwardResult(
        Action.TEMPFAIL, None, False, VICTIM, ("bob@receiver.example",), ("dmarc-temperror",)
    )

    def deferred_on_the_second_look(work: Any, decision: Any) -> ForwardResult:
        monkeypatch.setattr(forwarder, "_outcome", lambda *_: deferral)
        return decided(work, decision)

    monkeypatch.setattr(forwarder, "_outcome", deferred_on_the_second_look)
    given_back: list[tuple[str, int, int]] = []
    monkeypatch.setattr(
        limits(forwarder),
        "give_back",
        lambda sender, *, internal, external: given_back.append((sender, internal, external)),
    )
    result = send(forwarder, SIGNED, VICTIM_HOST, VICTIM)
    assert result.action is Action.TEMPFAIL
    assert given_back == [(VICTIM, 0, 1)]


def test_spf_pass_counts_the_mail_from(forwarder: Forwarder) -> None:
    result = send(forwarder, FORGED, VICTIM_HOST, VICTIM)
    assert result.limits == LimitsIdentity(VICTIM, "spf-pass")
    assert today(forwarder, VICTIM) == 1


def test_dkim_pass_for_the_mail_from_domain_counts_the_mail_from(forwarder: Forwarder) -> None:
    result = send(forwarder, SIGNED, ATTACKER, VICTIM)  # SPF fails, d=example.org passes
    assert result.limits == LimitsIdentity(VICTIM, "dkim-pass")
    assert today(forwarder, VICTIM) == 1


def test_dkim_pass_for_the_header_from_only_counts_the_client(forwarder: Forwarder) -> None:
    result = send(forwarder, SIGNED, ATTACKER, "carol@unsigned.example")
    assert result.limits == LimitsIdentity(f"[{ATTACKER}]", "client-address")
    assert today(forwarder, "carol@unsigned.example") == 0
    assert today(forwarder, f"[{ATTACKER}]") == 1


def test_sasl_login_with_an_accepted_mail_from_counts_the_mail_from(forwarder: Forwarder) -> None:
    result = send(forwarder, OURS, ROAMING_USER, "frank@example.net", sasl_user="frank")
    assert result.limits == LimitsIdentity("frank@example.net", "sasl-login")
    assert today(forwarder, "frank@example.net") == 1


def test_sasl_login_with_a_foreign_mail_from_counts_the_client(forwarder: Forwarder) -> None:
    result = send(forwarder, FORGED, ROAMING_USER, "carol@unsigned.example", sasl_user="frank")
    assert result.limits == LimitsIdentity(f"[{ROAMING_USER}]", "client-address")
    assert today(forwarder, "carol@unsigned.example") == 0


def test_ipv6_clients_of_one_slash_64_share_their_counts(forwarder: Forwarder) -> None:
    for client in ("2001:db8:1:2::a", "2001:db8:1:2:ffff::b"):
        assert send(forwarder, FORGED, client, VICTIM).forwarded
    third = send(forwarder, FORGED, "2001:db8:1:2::c", VICTIM)
    assert third.action is Action.REJECT
    assert third.limits == LimitsIdentity("[2001:db8:1:2::/64]", "client-address")
    assert today(forwarder, "[2001:db8:1:2::/64]") == 2


def test_a_client_in_another_slash_64_is_counted_apart(forwarder: Forwarder) -> None:
    for _ in range(3):
        send(forwarder, FORGED, "2001:db8:1:2::a", VICTIM)
    assert send(forwarder, FORGED, "2001:db8:1:3::a", VICTIM).forwarded


def test_a_dry_run_names_the_key_and_counts_nothing(forwarder: Forwarder) -> None:
    result = send(forwarder, FORGED, ATTACKER, VICTIM, dry_run=True)
    assert result.limits == LimitsIdentity(f"[{ATTACKER}]", "client-address")
    assert result.counted is None
    assert today(forwarder, f"[{ATTACKER}]") == today(forwarder, VICTIM) == 0


def test_a_dry_run_past_the_limit_blocks_nobody(forwarder: Forwarder) -> None:
    for _ in range(2):
        send(forwarder, FORGED, ATTACKER, VICTIM)
    assert send(forwarder, FORGED, ATTACKER, VICTIM, dry_run=True).action is Action.REJECT
    assert not blocked(forwarder, f"[{ATTACKER}]")


def test_giving_back_a_forged_forward_uncounts_the_client(forwarder: Forwarder) -> None:
    result = send(forwarder, FORGED, ATTACKER, VICTIM)
    assert result.counted == (f"[{ATTACKER}]", 0, 1)
    forwarder.give_back(result)
    assert today(forwarder, f"[{ATTACKER}]") == 0


def test_a_bounce_counts_nobody(forwarder: Forwarder) -> None:
    result = send(forwarder, FORGED, ATTACKER, "")
    assert result.forwarded
    assert (result.limits, result.counted) == (None, None)


def test_an_unvouched_sender_from_a_client_that_is_no_address_is_deferred(
    forwarder: Forwarder,
) -> None:
    result = send(forwarder, FORGED, "not-an-address", VICTIM)
    assert result.action is Action.TEMPFAIL
    assert result.smtp_reply is not None and result.smtp_reply.startswith("451 4.3.0 ")
    assert today(forwarder, VICTIM) == 0


def test_a_vouched_sender_needs_no_client_address(forwarder: Forwarder) -> None:
    result = send(forwarder, SIGNED, "not-an-address", VICTIM)
    assert result.limits == LimitsIdentity(VICTIM, "dkim-pass")


def with_gateway(example: Path, dns: ZoneServer) -> Forwarder:
    return build(
        example,
        dns,
        **{
            'authserv_id = "fwd.example.net"\n\n# The outbound': 'authserv_id = "fwd.example.net"'
            '\ntrusted_relays = ["10.0.0.0/8"]\n\n# The outbound'
        },
    )


def test_behind_our_gateway_the_first_hop_from_outside_is_counted(
    example: Path, dns: ZoneServer
) -> None:
    forwarder = with_gateway(example, dns)
    received = f"Received: from mx.evil.example (mx [{ATTACKER}]) by gw.example.net; now\r\n"
    result = send(forwarder, received.encode() + FORGED, GATEWAY, VICTIM)
    assert result.limits == LimitsIdentity(f"[{ATTACKER}]", "client-address")


def test_a_trusted_submission_counts_the_mail_from(example: Path, dns: ZoneServer) -> None:
    forwarder = with_gateway(example, dns)
    received = b"Received: from app1 (app1.example.net [10.1.2.4]) by submit.example.net; now\r\n"
    result = send(forwarder, received + OURS, GATEWAY, "frank@example.net")
    assert result.limits == LimitsIdentity("frank@example.net", "trusted-submission")


@settings(
    max_examples=budget(60),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.one_of(st.ip_addresses().map(str), st.text(max_size=40)))
def test_any_client_text_is_counted_by_its_key_or_deferred_in_one_printable_line(
    forwarder: Forwarder, client: str
) -> None:
    result = send(forwarder, FORGED, client, VICTIM, dry_run=True)
    if result.limits is not None:
        assert result.limits.because in ("client-address", "spf-pass")
        assert result.limits.key == VICTIM or result.limits.key.startswith("[")
    else:
        assert result.action is Action.TEMPFAIL
        reply = result.smtp_reply or ""
        assert reply.startswith("451 4.3.0 ") and reply.isascii() and reply.isprintable()
