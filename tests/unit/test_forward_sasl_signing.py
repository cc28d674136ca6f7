"""An SMTP AUTH login signs with the From domain's key only when that domain is ours.

As OpenDKIM signs authenticated submissions: a logged-in user's mail with a From in our
accepted domains gets that domain's signature; a From in anyone else's domain never gets
one aligned with it (or any user of ours could make mail pass DMARC for gmail.com).
The DMARC step follows the same rule: under ``p=reject`` and any ``[forward] dmarc`` mode,
a login's own From passes through our aligned signature (nothing to rewrite, keep or
refuse); without the login, or with a From in someone else's domain, the From stays
failing as it arrived (``dmarc-failed-on-arrival``) and nothing of ours aligns with it.
Through the shipped example configuration, with a key for the users' domain in the key
store, and the project's DNS server on loopback; dkimpy checks the signature.
"""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
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
# example.net is ours (an accepted domain), example.org is not; both say reject.
REJECT_POLICIES = """
_dmarc.example.net.  IN TXT "v=DMARC1; p=reject"
_dmarc.example.org.  IN TXT "v=DMARC1; p=reject"
"""
DMARC_MODES = ["rewrite-from", "keep", "reject"]
OURS = "Frank <frank@example.net>"
FOREIGN = "Alice <alice@example.org>"


def letter(author: str) -> bytes:
    return (
        f"From: {author}\r\nTo: bob@receiver.example\r\nSubject: Agenda\r\n"
        "Date: Wed, 25 Nov 2026 09:14:00 +0000\r\nMessage-ID: <agenda-1@example.net>\r\n"
        "\r\nThe agenda for Friday.\r\n"
    ).encode()


def with_users_key(example: Path, dns_server: ZoneServer, users: DkimKey, zone: str = "") -> None:
    """A key of the users' domain example.net in the store, published with ``zone``."""
    KeyStore(example / "keys").create(
        "example.net", "users", users, pem=private_key_pem(users), now=KEY_CREATED
    )
    zone = (EXAMPLES / "example.zone").read_text() + zone
    dns_server.load(zone + zone_line("users", "example.net", key_record_text(users)))


@pytest.fixture
def forwarder(example: Path, dns_server: ZoneServer, dkim_keys: dict[str, DkimKey]) -> Forwarder:
    """The example forwarder with a key of the users' domain example.net in its store."""
    with_users_key(example, dns_server, dkim_keys["rsa-2048"])
    config = load_config(example / "srsfwd.toml")
    return Forwarder.from_config(config, resolver=dns_server.resolver())


@pytest.fixture(params=DMARC_MODES)
def dmarc_forwarder(
    request: pytest.FixtureRequest,
    example: Path,
    dns_server: ZoneServer,
    dkim_keys: dict[str, DkimKey],
) -> Forwarder:
    """The same, under each ``[forward] dmarc`` mode, both domains saying reject."""
    with_users_key(example, dns_server, dkim_keys["rsa-2048"], REJECT_POLICIES)
    config = example / "srsfwd.toml"
    mode = f'[forward]\ndmarc = "{request.param}"\n'
    config.write_text(config.read_text().replace("[forward]\n", mode))
    return Forwarder.from_config(load_config(config), resolver=dns_server.resolver())


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


def signers(result: ForwardResult) -> list[str]:
    """The ``d=`` domains of the signatures we added."""
    return [s["d"].decode() for s in our_signatures(result)]


def dmarc_result(result: ForwardResult) -> str:
    assert result.dmarc is not None
    return result.dmarc.result


def from_header(result: ForwardResult) -> str:
    assert result.message is not None
    return str(message_from_bytes(result.message, policy=default)["From"])


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


def test_a_login_with_our_from_under_reject_passes_dmarc_through_our_aligned_signature(
    dmarc_forwarder: Forwarder, dns_server: ZoneServer
) -> None:
    result = send(dmarc_forwarder, letter(OURS), sasl_user="frank")
    assert result.forwarded
    assert dmarc_result(result) == "dmarc-pass-expected"
    assert from_header(result) == OURS  # not rewritten
    assert signers(result) == ["example.net"]
    assert result.message is not None
    assert dkim.DKIM(result.message).verify(idx=0, dnsfunc=dkimpy_dnsfunc(dns_server.resolver()))


def test_without_a_login_our_from_is_not_vouched_and_never_signed_with_its_key(
    dmarc_forwarder: Forwarder,
) -> None:
    result = send(dmarc_forwarder, letter(OURS), sasl_user=None)
    assert result.forwarded
    assert dmarc_result(result) == "dmarc-failed-on-arrival"
    assert from_header(result) == OURS
    assert not any(aligned(d, "example.net") for d in signers(result))


def test_a_login_with_a_foreign_from_is_not_vouched_and_gets_no_signature_aligned_with_it(
    dmarc_forwarder: Forwarder,
) -> None:
    result = send(dmarc_forwarder, letter(FOREIGN), sasl_user="frank")
    assert result.forwarded
    assert dmarc_result(result) == "dmarc-failed-on-arrival"
    assert from_header(result) == FOREIGN
    assert not any(aligned(d, "example.org") for d in signers(result))
