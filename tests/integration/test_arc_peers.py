"""dkimpy and Mail::DKIM's ARC verifier accept the chains srsfwd seals, and reject tampering."""

from __future__ import annotations

import subprocess

import dkim
import pytest

from srsfwd.dkim.arc import ArcSealer, dkimpy_dnsfunc
from srsfwd.dkim.keys import DkimKey, SigningKey
from srsfwd.dkim.sign import DkimSigner
from tests.dkimhelp import MESSAGE, zone_for
from tests.dnsserver import ZoneServer
from tests.integration.dkimpeers import PEERS

pytestmark = pytest.mark.integration


def maildkim_arc(message: bytes, port: int) -> str:
    run = subprocess.run(
        ["perl", str(PEERS / "arc_verify.pl"), str(port)],
        input=message,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return run.stdout.decode().split(" ", 1)[0]


@pytest.fixture
def chain(dns_server: ZoneServer, dkim_keys: dict[str, DkimKey]) -> list[bytes]:
    """The message signed by its author, then sealed by two forwarders."""
    author = SigningKey("example.com", "author", dkim_keys["ed25519"])
    hop1 = SigningKey("fwd1.example", "arc", dkim_keys["rsa-2048"])
    hop2 = SigningKey("fwd2.example", "arc", dkim_keys["rsa-4096"])
    dns_server.load(zone_for([author, hop1, hop2]))
    resolver = dns_server.resolver()
    signed = DkimSigner([author]).sign(MESSAGE)
    one = ArcSealer(hop1, "fwd1.example", resolver).seal(signed).message
    two = ArcSealer(hop2, "fwd2.example", resolver).seal(one).message
    return [one, two]


@pytest.mark.parametrize("hops", [1, 2])
def test_peers_accept_our_seals(dns_server: ZoneServer, chain: list[bytes], hops: int) -> None:
    message = chain[hops - 1]
    cv, _, reason = dkim.arc_verify(message, dnsfunc=dkimpy_dnsfunc(dns_server.resolver()))
    assert cv == b"pass", reason
    assert maildkim_arc(message, dns_server.port) == "pass"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda m: m.replace(b"noon", b"noom"), id="changed-body-byte"),
        pytest.param(lambda m: b"Subject: Urgent\r\n" + m, id="added-subject"),
    ],
)
def test_tampering_fails_every_peer(
    dns_server: ZoneServer, chain: list[bytes], tamper: object
) -> None:
    message = tamper(chain[1])  # type: ignore[operator]
    cv, _, _ = dkim.arc_verify(message, dnsfunc=dkimpy_dnsfunc(dns_server.resolver()))
    assert cv == b"fail"
    assert maildkim_arc(message, dns_server.port) == "fail"
