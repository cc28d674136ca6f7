"""A trusted submission: the client is one of trusted_relays and no hop came from outside."""

from __future__ import annotations

import pytest

from srsfwd.address import DomainSet
from srsfwd.dns.resolver import Resolver
from srsfwd.facts import Envelope, FactGatherer

ZONE = """
$TTL 300
example.net.  IN A   192.0.2.2
example.net.  IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
"""
GATHERER = FactGatherer(
    Resolver.from_zone_text(ZONE),
    accepted=DomainSet(["example.net"]),
    trusted_relays=["10.0.0.0/8"],
)
BODY = b"From: Frank <frank@example.net>\r\nSubject: report\r\n\r\nnumbers\r\n"
INSIDE = b"Received: from app1 (app1.example.net [10.1.2.4]) by submit.example.net; now\r\n"
OUTSIDE = b"Received: from mx.evil.example (mx [198.18.0.66]) by gw.example.net; now\r\n"
PICKUP = b"Received: by app1.example.net (Postfix, from userid 33); now\r\n"
UNREADABLE = b"Received: from somewhere by gw.example.net; now\r\n"


def submitted(received: bytes, client: str = "10.1.2.3") -> bool:
    envelope = Envelope(client, "submit", "frank@example.net", ("bob@receiver.example",))
    return GATHERER.gather(received + BODY, envelope).trusted_submission


def test_trusted_client_with_only_trusted_hops_is_a_submission() -> None:
    assert submitted(INSIDE)


def test_local_pickup_counts_as_inside() -> None:
    assert submitted(INSIDE + PICKUP)


def test_no_received_at_all_from_a_trusted_client_is_a_submission() -> None:
    assert submitted(b"")


@pytest.mark.parametrize(
    "received",
    [OUTSIDE, OUTSIDE + INSIDE, INSIDE + OUTSIDE, UNREADABLE, INSIDE + UNREADABLE],
    ids=[
        "outside",
        "outside-above-forged-inside",
        "relayed-from-outside",
        "unreadable",
        "unreadable-below",
    ],
)
def test_a_hop_from_outside_is_not_a_submission(received: bytes) -> None:
    assert not submitted(received)


def test_an_untrusted_client_is_never_a_submission() -> None:
    assert not submitted(INSIDE, client="192.0.2.99")
