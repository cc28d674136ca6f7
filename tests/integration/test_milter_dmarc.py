"""DMARC-safe forwarding inside a real Postfix: the milter rewrites From and adds Reply-To.

The rig of test_milter_postfix.py (private Postfix, ``srsfwd serve`` milter, sink). A
sender whose only aligned authentication is SPF, under ``p=reject``, reaches the sink
with From in our SRS domain, the author in Reply-To and in the display name, and our
DKIM signature aligned with the new From, which dkimpy verifies; its ARC set passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default

import dkim
import pytest

from srsfwd.dkim.arc import dkimpy_dnsfunc
from srsfwd.dns.resolver import Resolver
from srsfwd.orgdomain import aligned
from tests.dnsserver import ZoneServer
from tests.integration.test_milter_postfix import ZONE, Rig, running_rig

pytestmark = pytest.mark.integration
SENDERS = """
spfonly.example.        IN A   198.51.100.30
spfonly.example.        IN MX  10 mail.example.org.
spfonly.example.        IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
_dmarc.spfonly.example. IN TXT "v=DMARC1; p=reject"
nopolicy.example.       IN A   198.51.100.31
nopolicy.example.       IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
_dmarc.nopolicy.example. IN TXT "v=DMARC1; p=none"
"""
UNSIGNED = (
    b"From: Alice <alice@spfonly.example>\r\nTo: bob@example.net\r\nSubject: hi\r\n"
    b"Date: Wed, 25 Nov 2026 09:14:00 +0000\r\nMessage-ID: <1@spfonly.example>\r\n\r\nhello\r\n"
)


@pytest.fixture(scope="module")
def rig(_dns_server_process: ZoneServer) -> Iterator[Rig]:
    with running_rig(_dns_server_process) as running:
        running.dns.load(SENDERS)
        yield running


def test_the_milter_rewrites_from_signs_it_aligned_and_adds_reply_to(rig: Rig) -> None:
    rig.send("", "alice@spfonly.example", ["dm1@receiver.example"], message=UNSIGNED)
    got = rig.wait_for("dm1@receiver.example")
    parsed = message_from_bytes(got.data, policy=default)
    (author,) = parsed["From"].addresses
    assert author.display_name == "Alice via fwd.example.net"
    assert author.domain == "fwd.example.net"
    assert str(parsed["Reply-To"]) == "Alice <alice@spfonly.example>"
    dnsfunc = dkimpy_dnsfunc(Resolver.from_zone_text(ZONE + SENDERS))
    verifier = dkim.DKIM(got.data)
    assert verifier.verify(dnsfunc=dnsfunc)
    assert aligned(verifier.domain.decode(), author.domain)
    cv, _, reason = dkim.arc_verify(got.data, dnsfunc=dnsfunc)
    assert cv == b"pass", reason


def test_a_p_none_sender_passes_the_milter_with_its_from_untouched(rig: Rig) -> None:
    message = UNSIGNED.replace(b"spfonly.example", b"nopolicy.example")
    rig.send("", "alice@nopolicy.example", ["dm2@receiver.example"], message=message)
    got = rig.wait_for("dm2@receiver.example")
    parsed = message_from_bytes(got.data, policy=default)
    assert str(parsed["From"]) == "Alice <alice@nopolicy.example>"
    assert parsed["Reply-To"] is None
