"""DMARC-safe forwarding in the mail lab: ``[forward] dmarc = "rewrite-from"`` at rspamd.

A lab of its own (the world of test_lab.py with the setting on). Skipped while srsfwd has
no ``[forward] dmarc`` setting.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Iterator
from email.utils import parseaddr
from pathlib import Path

import pytest

from tests.lab import scenarios
from tests.lab.scenarios import Outcome
from tests.lab.world import World, lab_world, missing_programs, remove, srsfwd_config

pytestmark = pytest.mark.integration
REWRITE_FROM = 'dmarc = "rewrite-from"\n'


def dmarc_setting_known() -> bool:
    """Whether this srsfwd accepts ``[forward] dmarc`` (``srsfwd serve --check``)."""
    root = Path(tempfile.mkdtemp(prefix="srsfwd-lab-check-"))
    try:
        config = srsfwd_config(root, arc=True, extra_forward=REWRITE_FROM)
        check = subprocess.run(
            [sys.executable, "-m", "srsfwd", "serve", "--config", str(config), "--check"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return "no setting 'dmarc'" not in check.stdout + check.stderr
    finally:
        remove(root)


@pytest.fixture(scope="module")
def lab() -> Iterator[World]:
    missing = missing_programs()
    if missing:
        pytest.skip(f"the mail lab needs {', '.join(missing)} (.ci/run installs them)")
    if not dmarc_setting_known():
        pytest.skip("srsfwd has no [forward] dmarc setting yet")
    root = Path(tempfile.mkdtemp(prefix="srsfwd-lab-"))
    try:
        with lab_world(root, arc=True, extra_forward=REWRITE_FROM) as world:
            yield world
    finally:
        remove(root)


def from_address(outcome: Outcome) -> str:
    return parseaddr(str(outcome.message["From"]))[1].lower()


@pytest.fixture(scope="module")
def spf_only(lab: World) -> Outcome:
    """An SPF-only sender with DMARC p=reject: fails DMARC once forwarded as it is."""
    return scenarios.forward(lab, "spf-only", "alice@spfonly.example")


def test_rewritten_from_passes_dmarc_at_the_receiver(spf_only: Outcome) -> None:
    assert spf_only.result("dmarc") == "pass"


def test_rewritten_from_is_ours_and_aligned_with_our_signature(spf_only: Outcome) -> None:
    domain = from_address(spf_only).rpartition("@")[2]
    assert domain != "spfonly.example"
    assert domain in spf_only.passing("dkim")


def test_rewritten_from_names_the_author_and_replies_go_to_them(spf_only: Outcome) -> None:
    assert "via fwd.example.net" in str(spf_only.message["From"])
    assert parseaddr(str(spf_only.message["Reply-To"]))[1] == "alice@spfonly.example"


def test_the_decision_reports_the_rewrite(lab: World, spf_only: Outcome) -> None:
    srsfwd_log = next(d for d in lab.daemons if d.name == "srsfwd").log()
    assert "dmarc-from-rewritten" in srsfwd_log


def test_sender_with_a_surviving_aligned_dkim_signature_is_never_rewritten(lab: World) -> None:
    outcome = scenarios.forward(lab, "aligned", "alice@sender.example")
    assert from_address(outcome) == "alice@sender.example"
    assert outcome.result("dmarc") == "pass"


def test_sender_with_dmarc_p_none_is_never_rewritten(lab: World) -> None:
    outcome = scenarios.forward(lab, "p-none", "alice@relaxed.example")
    assert from_address(outcome) == "alice@relaxed.example"
