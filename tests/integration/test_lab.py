"""The mail lab: what a real receiver (Postfix with rspamd) decides about forwarded mail.

One world for the module (tests/lab/world.py): Knot DNS serving every zone, the senders'
Postfix with OpenDKIM, the forwarder (Postfix and ``srsfwd serve`` set up as
docs/postfix.md, "Local copies untouched", says), the receiving Postfix with rspamd.
Each test reads the verdicts in the delivered copy: rspamd's Authentication-Results.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import addresses as at
from tests.lab import scenarios
from tests.lab.scenarios import Outcome
from tests.lab.world import World, lab_world, missing_programs, remove

pytestmark = pytest.mark.integration
ALIAS = f"alias@{at.USERS_DOMAIN}"
CAROL = f"carol@{at.USERS_DOMAIN}"


@pytest.fixture(scope="module")
def lab() -> Iterator[World]:
    missing = missing_programs()
    if missing:
        pytest.skip(f"the mail lab needs {', '.join(missing)} (.ci/run installs them)")
    root = Path(tempfile.mkdtemp(prefix="srsfwd-lab-"))
    try:
        with lab_world(root, arc=True) as world:
            yield world
    finally:
        remove(root)


@pytest.fixture(scope="module")
def forwarded(lab: World) -> Outcome:
    """alice@sender.example (SPF and DKIM, DMARC reject) writes to an alias forwarding out."""
    return scenarios.forward(lab, "forwarded", "alice@sender.example")


@pytest.fixture(scope="module")
def relayed(lab: World) -> Outcome:
    """A sender whose SPF does not list its server and who does not sign: the relay pool."""
    return scenarios.forward(lab, "relayed", "alice@nospf.example")


@pytest.fixture(scope="module")
def split(lab: World) -> tuple[Outcome, Outcome]:
    """One message to carol's mailbox and to the alias: (carol's copy, bob's copy)."""
    return scenarios.local_and_forwarded(lab, "split", [CAROL, ALIAS])


def test_forwarded_mail_passes_spf_for_the_srs_sender_from_the_normal_pool(
    forwarded: Outcome,
) -> None:
    assert forwarded.return_path.startswith("SRS0=")
    assert forwarded.return_path.endswith(f"@{at.SRS_DOMAIN}")
    assert forwarded.client == at.NORMAL_POOL
    assert forwarded.result("spf") == "pass"
    assert "R_SPF_ALLOW" in forwarded.symbols


def test_forwarded_mail_keeps_the_original_dkim_signature_and_gets_ours(
    forwarded: Outcome,
) -> None:
    assert sorted(forwarded.passing("dkim")) == [at.SRS_DOMAIN, "sender.example"]


def test_forwarded_mail_passes_dmarc(forwarded: Outcome) -> None:
    assert forwarded.result("dmarc") == "pass"
    assert "DMARC_POLICY_ALLOW" in forwarded.symbols


def test_forwarded_mail_passes_arc_with_sealing_on(forwarded: Outcome) -> None:
    assert forwarded.result("arc") == "pass"
    assert "ARC_ALLOW" in forwarded.symbols


def test_relay_pool_mail_leaves_from_the_relay_pool_unrewritten(relayed: Outcome) -> None:
    assert relayed.client == at.RELAY_POOL
    assert relayed.return_path == "alice@nospf.example"


def test_relay_pool_mail_gets_no_spf_pass_for_the_srs_domain(relayed: Outcome) -> None:
    assert relayed.result("spf") != "pass"
    assert "R_SPF_ALLOW" not in relayed.symbols


def test_relay_pool_mail_carries_no_signature_of_ours(relayed: Outcome) -> None:
    assert at.SRS_DOMAIN not in relayed.signers()
    assert relayed.passing("dkim") == []


def test_local_copy_keeps_the_original_return_path(split: tuple[Outcome, Outcome]) -> None:
    local, _ = split
    assert local.return_path == "alice@sender.example"


def test_local_copy_keeps_the_headers_as_sent(split: tuple[Outcome, Outcome]) -> None:
    local, _ = split
    delivery = {"return-path", "x-original-to", "delivered-to", "received"}
    sent = {"from", "to", "subject", "date", "message-id", "mime-version", "content-type"}
    assert {name.lower() for name in local.message} - delivery == sent | {"dkim-signature"}
    assert local.original_signature_verifies()


def test_local_copy_gets_no_header_from_srsfwd(split: tuple[Outcome, Outcome]) -> None:
    local, _ = split
    added = {"arc-seal", "arc-message-signature", "arc-authentication-results"}
    added |= {"authentication-results", "x-srsfwd-pool"}
    assert not added & {name.lower() for name in local.message}
    assert local.signers() == ["sender.example"]


def test_alias_copy_leaves_with_srs_our_signature_and_the_normal_pool(
    split: tuple[Outcome, Outcome],
) -> None:
    _, remote = split
    assert remote.return_path.startswith("SRS0=")
    assert at.SRS_DOMAIN in remote.passing("dkim")
    assert remote.client == at.NORMAL_POOL
    assert remote.result("dmarc") == "pass"


def test_alias_expanding_to_a_local_mailbox_and_outside_is_split(lab: World) -> None:
    local, remote = scenarios.local_and_forwarded(lab, "team", [f"team@{at.USERS_DOMAIN}"])
    assert local.return_path == "alice@sender.example"
    assert local.signers() == ["sender.example"]
    assert remote.return_path.startswith("SRS0=")
    assert remote.result("spf") == "pass"


@pytest.mark.parametrize(
    "alias",
    ["to-refuser", "to-data-refuser", "to-late-bouncer"],
    ids=["refused-at-rcpt", "refused-at-data", "accepted-then-bounced"],
)
def test_bounce_comes_home_through_the_high_risk_pool(lab: World, alias: str) -> None:
    notice = scenarios.bounce(lab, alias, f"{alias}@{at.USERS_DOMAIN}")
    assert notice.return_path == ""
    assert notice.client == at.HIGH_RISK_POOL
    assert notice.message["Delivered-To"] == "alice@sender.example"
    # The failed copy's sender, as the notice reports it: our SRS address, reversed on the way.
    assert "X-Postfix-Sender: rfc822; SRS0=" in str(notice.message)


def test_forged_bounce_to_a_made_up_srs_address_is_refused(lab: World) -> None:
    code, _ = scenarios.forged_bounce()
    assert code == 550
