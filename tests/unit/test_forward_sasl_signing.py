"""An SMTP AUTH login signs with the From domain's key only when that domain is ours.

As OpenDKIM signs authenticated submissions: a logged-in user's mail with a From in our
accepted domains gets that domain's signature; a From in anyone else's domain never gets
one aligned with it (or any user of ours could make mail pass DMARC for gmail.com).
Through the shipped example configuration, with a key for the users' domain in the key
store, and the project's DNS server on loopback; dkimpy checks the signature.
"""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest

from srsfwd.config import load_config
from srsfwd.dkim.arc import dkimpy_dnsfunc
from srsfwd.dkim.keys import DkimKey, key_record_text, private_key_pem, zone_line
from srsfwd.dkim.tags import parse_tag_list
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.keystore import KeyStore
from srsfwd.orgdomain import aligned
from srsfwd.pool import Pool
from tests.dnsserver import ZoneServer

EXAMPLES = Path(__file__).parents[2] / "examples"
ROAMING_USER = "203.0.113.200"  # in nobody's SPF: a user of ours on the road
KEY_CREATED = 1_790_000_000  # an earlier date, so the key is active


def letter(author: str) -> bytes:
    return (
        f"From: {author}\r\nTo: bob@receiver.example\r\nSubject: Agenda\r\n"
        "Date: Wed, 25 Nov 2026 09:14:00 +0000\r\nMessage-ID: <agenda-1@example.net>\r\n"
        "\r\nThe agenda for Friday.\r\n"
    ).encode()


@pytest.fixture
def forwarder(example: Path, dns_server: ZoneServer, dkim_keys: dict[str, DkimKey]) -> Forwarder:
    """The example forwarder with a key of the users' domain example.net in its store."""
    users = dkim_keys["rsa-2048"]
    KeyStore(example / "keys").create(
        "example.net", "users", users, pem=private_key_pem(users), now=KEY_CREATED
    )
    zone = (EXAMPLES / "example.zone").read_text()
    dns_server.load(zone + zone_line("users", "example.net", key_record_text(users)))
    config = load_config(example / "srsfwd.toml")
    return Forwarder.from_config(config, resolver=dns_server.resolver())


def send(forwarder: Forwarder, message: bytes, *, sasl_user: str | None) -> ForwardResult:
    return forwarder.forward(
        message,
        client_ip=ROAMING_USER,
        helo="laptop",
        mail_from="frank@example.net",
        rcpts=["bob@receiver.example"],
        sasl_user=sasl_user,
    )


def our_signatures(result: ForwardResult) -> list[dict[str, bytes]]:
    assert result.changes is not None
    return [parse_tag_list(h.value) for h in result.changes.inserted if h.key == b"dkim-signature"]


def test_a_sasl_login_signs_an_accepted_from_with_its_domains_key(
    forwarder: Forwarder, dns_server: ZoneServer
) -> None:
    result = send(forwarder, letter("Frank <frank@example.net>"), sasl_user="frank")
    assert result.pool is Pool.NORMAL
    assert [s["d"] for s in our_signatures(result)] == [b"example.net"]
    assert result.message is not None
    dnsfunc = dkimpy_dnsfunc(dns_server.resolver())
    assert dkim.DKIM(result.message).verify(idx=0, dnsfunc=dnsfunc)  # the one signature


def test_a_sasl_login_never_signs_aligned_with_a_foreign_from(forwarder: Forwarder) -> None:
    result = send(forwarder, letter("Alice <alice@example.org>"), sasl_user="frank")
    assert result.forwarded
    signers = [s["d"].decode() for s in our_signatures(result)]
    assert not any(aligned(d, "example.org") for d in signers)


def test_without_a_login_an_accepted_from_is_not_signed_with_its_key(
    forwarder: Forwarder,
) -> None:
    result = send(forwarder, letter("Frank <frank@example.net>"), sasl_user=None)
    assert result.forwarded
    assert b"example.net" not in [s["d"] for s in our_signatures(result)]
