"""Attack: a broken ARC chain read as "no chain", or continued as if it were good.

Someone on the Internet sends mail carrying an ARC chain that no honest sealer left: its
ARC-Seal removed, unparseable, duplicated, with a bad ``i=``, or saying the chain already
failed (tests/arcchains.py makes each from a good chain of a previous forwarder). RFC 8617
§5.2 makes any of them a failed chain: srsfwd seals it with ``cv=fail`` (its
Authentication-Results say ``arc=fail``), or adds no set at all to a chain that already
ended, and the next hop never sees ``pass``. Each attack runs through ``Forwarder`` with the
shipped example configuration (``[forward] arc = true``) and as a message through the milter
in a real Postfix. Controls: the mail itself is still forwarded as authenticated mail (SRS,
the normal pool, our signature), a good chain from a previous hop is continued with
``cv=pass``, and a message without a chain gets ``cv=none``; dkimpy verifies both.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path

import dkim
import pytest

from srsfwd.config import load_config
from srsfwd.dkim.arc import ArcSealer, dkimpy_dnsfunc
from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import DkimKey, SigningKey
from srsfwd.dkim.tags import parse_tag_list
from srsfwd.errors import TagListError
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.pool import Action, Pool
from tests.arcchains import NOT_CONTINUED, SEALED_AS_FAILED
from tests.dkimhelp import zone_for
from tests.dnsserver import ZoneServer
from tests.integration.test_milter_postfix import Rig, running_rig

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parent.parent.parent / "examples"
ZONE = (EXAMPLES / "example.zone").read_text()
#: The example's authserv-id and SRS/signing domain.
OURS = "fwd.example.net"
#: A forwarder before us that seals with ARC.
PREVIOUS = "lists.prev.example"
CLIENT = ("198.51.100.25", "mail.example.org")  # passes SPF for example.org
ALL_BROKEN: dict[str, Callable[[bytes], bytes]] = {**SEALED_AS_FAILED, **NOT_CONTINUED}
_senders = count()


@pytest.fixture(scope="module")
def previous(dkim_keys: dict[str, DkimKey]) -> SigningKey:
    return SigningKey(PREVIOUS, "arc", dkim_keys["rsa-2048"])


@pytest.fixture
def zone(_dns_server_process: ZoneServer, previous: SigningKey) -> ZoneServer:
    """The example's zone and the previous hop's key, on the session's DNS server."""
    _dns_server_process.clear()
    _dns_server_process.load(ZONE + zone_for([previous]))
    return _dns_server_process


@pytest.fixture
def forwarder(tmp_path: Path, zone: ZoneServer) -> Forwarder:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    for key in copy.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (copy / "srs.secret").chmod(0o600)
    return Forwarder.from_config(load_config(copy / "srsfwd.toml"), resolver=zone.resolver())


@pytest.fixture(scope="module")
def rig(_dns_server_process: ZoneServer) -> Iterator[Rig]:
    with running_rig(_dns_server_process) as running:
        yield running


def chained(zone: ZoneServer, previous: SigningKey) -> bytes:
    """The example's authenticated message, sealed by the previous hop (i=1, cv=none)."""
    message = (EXAMPLES / "messages" / "normal.eml").read_bytes()
    return ArcSealer(previous, PREVIOUS, zone.resolver()).seal(message).message


def forward(forwarder: Forwarder, message: bytes) -> ForwardResult:
    return forwarder.forward(
        message,
        client_ip=CLIENT[0],
        helo=CLIENT[1],
        mail_from="alice@example.org",
        rcpts=["bob@receiver.example"],
    )


def through_milter(rig: Rig, message: bytes) -> bytes:
    """``message`` sent through Postfix and the milter; what reached the next hop."""
    number = next(_senders)
    rcpt = f"arc{number}@receiver.example"
    rig.send("normal", f"arc{number}@example.org", [rcpt], client=CLIENT, message=message)
    got = rig.wait_for(rcpt)
    assert got.mail_from.startswith("SRS0=") and got.peer_ip == "127.0.0.2"
    return got.data


def our_seal(message: bytes) -> dict[str, bytes]:
    """The tags of the one ARC-Seal we added (``d=`` our domain)."""
    ours = []
    for field in parse_message(message).find("arc-seal"):
        try:
            tags = parse_tag_list(field.value)
        except TagListError:
            continue  # the attacker's unparseable seal
        if tags.get("d") == OURS.encode():
            ours.append(tags)
    assert len(ours) == 1
    return ours[0]


def our_results(message: bytes) -> bytes:
    """The value of the one Authentication-Results field of our authserv-id."""
    fields = parse_message(message).find("authentication-results")
    ours = [f.value for f in fields if f.value.strip().lower().startswith(OURS.encode())]
    assert len(ours) == 1
    return ours[0]


def chain_verdict(zone: ZoneServer, message: bytes) -> bytes | None:
    """What dkimpy's ``arc_verify`` at the next hop says of ``message``'s chain."""
    cv: bytes | None = dkim.arc_verify(message, dnsfunc=dkimpy_dnsfunc(zone.resolver()))[0]
    return cv


# -- through Forwarder -------------------------------------------------------------


@pytest.mark.parametrize("broken", sorted(SEALED_AS_FAILED))
def test_forwarder_seals_a_broken_chain_cv_fail(
    forwarder: Forwarder, zone: ZoneServer, previous: SigningKey, broken: str
) -> None:
    result = forward(forwarder, SEALED_AS_FAILED[broken](chained(zone, previous)))
    assert result.message is not None
    seal = our_seal(result.message)
    assert (seal["i"], seal["cv"], seal["d"]) == (b"2", b"fail", OURS.encode())


@pytest.mark.parametrize("broken", sorted(ALL_BROKEN))
def test_forwarder_results_say_arc_fail_for_a_broken_chain(
    forwarder: Forwarder, zone: ZoneServer, previous: SigningKey, broken: str
) -> None:
    result = forward(forwarder, ALL_BROKEN[broken](chained(zone, previous)))
    assert result.message is not None
    assert b"arc=fail" in our_results(result.message)


@pytest.mark.parametrize("broken", sorted(ALL_BROKEN))
def test_forwarder_output_of_a_broken_chain_never_verifies_as_pass(
    forwarder: Forwarder, zone: ZoneServer, previous: SigningKey, broken: str
) -> None:
    result = forward(forwarder, ALL_BROKEN[broken](chained(zone, previous)))
    assert result.message is not None
    assert chain_verdict(zone, result.message) != b"pass"


@pytest.mark.parametrize("ended", sorted(NOT_CONTINUED))
def test_forwarder_does_not_continue_a_chain_that_ended(
    forwarder: Forwarder, zone: ZoneServer, previous: SigningKey, ended: str
) -> None:
    arrived = NOT_CONTINUED[ended](chained(zone, previous))
    result = forward(forwarder, arrived)
    assert result.message is not None
    seals = parse_message(result.message).find("arc-seal")
    assert seals == parse_message(arrived).find("arc-seal")


@pytest.mark.parametrize("broken", sorted(ALL_BROKEN))
def test_broken_chain_does_not_stop_authenticated_mail(
    forwarder: Forwarder, zone: ZoneServer, previous: SigningKey, broken: str
) -> None:
    # Control: SPF passes for the sender, so SRS, the normal pool and our valid signature.
    result = forward(forwarder, ALL_BROKEN[broken](chained(zone, previous)))
    assert (result.action, result.pool, result.srs) == (Action.FORWARD, Pool.NORMAL, True)
    assert result.message is not None
    assert dkim.verify(result.message, dnsfunc=dkimpy_dnsfunc(zone.resolver()))


def test_forwarder_continues_a_good_chain_with_cv_pass(
    forwarder: Forwarder, zone: ZoneServer, previous: SigningKey
) -> None:
    result = forward(forwarder, chained(zone, previous))
    assert result.message is not None
    seal = our_seal(result.message)
    assert (seal["i"], seal["cv"]) == (b"2", b"pass")
    assert b"arc=pass" in our_results(result.message)
    assert chain_verdict(zone, result.message) == b"pass"


def test_forwarder_seals_a_message_without_chain_cv_none(
    forwarder: Forwarder, zone: ZoneServer
) -> None:
    result = forward(forwarder, (EXAMPLES / "messages" / "normal.eml").read_bytes())
    assert result.message is not None
    seal = our_seal(result.message)
    assert (seal["i"], seal["cv"]) == (b"1", b"none")
    assert chain_verdict(zone, result.message) == b"pass"
    assert dkim.verify(result.message, dnsfunc=dkimpy_dnsfunc(zone.resolver()))


# -- through the milter in Postfix -------------------------------------------------


@pytest.mark.parametrize("broken", sorted(SEALED_AS_FAILED))
def test_milter_seals_a_broken_chain_cv_fail(
    rig: Rig, zone: ZoneServer, previous: SigningKey, broken: str
) -> None:
    data = through_milter(rig, SEALED_AS_FAILED[broken](chained(zone, previous)))
    seal = our_seal(data)
    assert (seal["i"], seal["cv"], seal["d"]) == (b"2", b"fail", OURS.encode())
    assert b"arc=fail" in our_results(data)
    assert chain_verdict(zone, data) != b"pass"


@pytest.mark.parametrize("ended", sorted(NOT_CONTINUED))
def test_milter_does_not_continue_a_chain_that_ended(
    rig: Rig, zone: ZoneServer, previous: SigningKey, ended: str
) -> None:
    arrived = NOT_CONTINUED[ended](chained(zone, previous))
    data = through_milter(rig, arrived)
    assert parse_message(data).find("arc-seal") == parse_message(arrived).find("arc-seal")
    assert b"arc=fail" in our_results(data)
    assert chain_verdict(zone, data) != b"pass"


def test_milter_continues_a_good_chain_with_cv_pass(
    rig: Rig, zone: ZoneServer, previous: SigningKey
) -> None:
    data = through_milter(rig, chained(zone, previous))
    seal = our_seal(data)
    assert (seal["i"], seal["cv"]) == (b"2", b"pass")
    assert chain_verdict(zone, data) == b"pass"
    assert dkim.verify(data, dnsfunc=dkimpy_dnsfunc(zone.resolver()))


def test_milter_seals_a_message_without_chain_cv_none(rig: Rig, zone: ZoneServer) -> None:
    data = through_milter(rig, (EXAMPLES / "messages" / "normal.eml").read_bytes())
    seal = our_seal(data)
    assert (seal["i"], seal["cv"]) == (b"1", b"none")
    assert chain_verdict(zone, data) == b"pass"
    assert dkim.verify(data, dnsfunc=dkimpy_dnsfunc(zone.resolver()))
