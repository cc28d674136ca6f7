"""A sender domain whose look-ups time out is unknown (temperror), never "no A/AAAA/MX"."""

from __future__ import annotations

import pytest

from srsfwd.address import DomainSet
from srsfwd.facts import FactGatherer
from tests.dnsserver import ZoneServer

ZONE = "sender.example. IN A 192.0.2.1\nsender.example. IN MX 10 mx.sender.example.\n"


@pytest.mark.parametrize("mode", ["silent", "servfail"])
def test_a_failed_lookup_is_temperror_not_absence(dns_server: ZoneServer, mode: str) -> None:
    dns_server.load(ZONE)
    dns_server.mode = mode  # type: ignore[assignment]
    gatherer = FactGatherer(dns_server.resolver(timeout=0.3), accepted=DomainSet([]))
    found = gatherer.sender_dns("sender.example")
    assert found.temperror is not None
    assert not (found.a or found.aaaa or found.mx or found.null_mx)


def test_an_answering_server_gives_the_records(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    # The default timeout: an answer slowed by a busy machine is still an answer.
    gatherer = FactGatherer(dns_server.resolver(), accepted=DomainSet([]))
    found = gatherer.sender_dns("sender.example")
    assert (found.a, found.mx, found.temperror) == (True, True, None)
