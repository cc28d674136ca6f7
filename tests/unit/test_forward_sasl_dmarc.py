"""The DMARC step for SMTP AUTH senders: a login vouches only for our own From domains.

A logged-in user's mail with a From in our accepted domains is signed with that domain's
key, so the copy passes its DMARC policy as it is: nothing to rewrite, keep or refuse.
Without the login, or with a From in someone else's domain, the From is not vouched for:
under any ``[forward] dmarc`` mode the step leaves it failing as it arrived
(``dmarc-failed-on-arrival``) and nothing of ours is aligned with it. Through the shipped
example configuration, with a key for the users' domain in the key store, both domains
publishing ``p=reject``, and the project's DNS server on loopback; dkimpy checks the
signature.
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
from tests.dnsserver import ZoneServer

EXAMPLES = Path(__file__).parents[2] / "examples"
ROAMING_USER = "203.0.113.200"  # in nobody's SPF: SPF fails for the client
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


@pytest.fixture
def dns(dns_server: ZoneServer, dkim_keys: dict[str, DkimKey]) -> ZoneServer:
    """The example zone, the users' domain key, and reject policies for both domains."""
    zone = (EXAMPLES / "example.zone").read_text() + REJECT_POLICIES
    users = dkim_keys["rsa-2048"]
    dns_server.load(zone + zone_line("users", "example.net", key_record_text(users)))
    return dns_server


@pytest.fixture(params=DMARC_MODES)
def forwarder(
    request: pytest.FixtureRequest, example: Path, dns: ZoneServer, dkim_keys: dict[str, DkimKey]
) -> Forwarder:
    """The example forwarder, under each ``[forward] dmarc`` mode, with a key of the
    users' domain example.net in its store."""
    users = dkim_keys["rsa-2048"]
    KeyStore(example / "keys").create(
        "example.net", "users", users, pem=private_key_pem(users), now=KEY_CREATED
    )
    config = example / "srsfwd.toml"
    mode = f'[forward]\ndmarc = "{request.param}"\n'
    config.write_text(config.read_text().replace("[forward]\n", mode))
    return Forwarder.from_config(load_config(config), resolver=dns.resolver())


def send(forwarder: Forwarder, author: str, *, sasl_user: str | None) -> ForwardResult:
    return forwarder.forward(
        letter(author),
        client_ip=ROAMING_USER,
        helo="laptop",
        mail_from="frank@example.net",
        rcpts=["bob@receiver.example"],
        sasl_user=sasl_user,
    )


def dmarc_result(result: ForwardResult) -> str:
    assert result.dmarc is not None
    return result.dmarc.result


def signers(result: ForwardResult) -> list[str]:
    """The ``d=`` domains of the signatures we added."""
    assert result.changes is not None
    inserted = result.changes.inserted
    return [parse_tag_list(h.value)["d"].decode() for h in inserted if h.key == b"dkim-signature"]


def from_header(result: ForwardResult) -> str:
    assert result.message is not None
    return str(message_from_bytes(result.message, policy=default)["From"])


def test_a_login_with_our_from_under_reject_passes_dmarc_through_our_aligned_signature(
    forwarder: Forwarder, dns: ZoneServer
) -> None:
    result = send(forwarder, OURS, sasl_user="frank")
    assert result.forwarded
    assert dmarc_result(result) == "dmarc-pass-expected"
    assert from_header(result) == OURS  # not rewritten
    assert signers(result) == ["example.net"]
    assert result.message is not None
    assert dkim.DKIM(result.message).verify(idx=0, dnsfunc=dkimpy_dnsfunc(dns.resolver()))


def test_without_a_login_our_from_is_not_vouched_and_never_signed_with_its_key(
    forwarder: Forwarder,
) -> None:
    result = send(forwarder, OURS, sasl_user=None)
    assert result.forwarded
    assert dmarc_result(result) == "dmarc-failed-on-arrival"
    assert from_header(result) == OURS
    assert not any(aligned(d, "example.net") for d in signers(result))


def test_a_login_with_a_foreign_from_is_not_vouched_and_gets_no_signature_aligned_with_it(
    forwarder: Forwarder,
) -> None:
    result = send(forwarder, FOREIGN, sasl_user="frank")
    assert result.forwarded
    assert dmarc_result(result) == "dmarc-failed-on-arrival"
    assert from_header(result) == FOREIGN
    assert not any(aligned(d, "example.org") for d in signers(result))
