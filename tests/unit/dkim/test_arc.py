"""ARC sealing: i= and cv= per RFC 8617, broken chains sealed cv=fail, no sealing of a failed
chain, clear errors."""

from __future__ import annotations

import dkim
import pytest

from srsfwd.clock import FrozenClock
from srsfwd.dkim.arc import ArcSealer, dkimpy_dnsfunc
from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import DkimKey, SigningKey
from srsfwd.dkim.sign import DkimSigner
from srsfwd.dkim.tags import parse_tag_list
from srsfwd.errors import DNSTempError, SignatureError
from tests.arcchains import NOT_CONTINUED, SEALED_AS_FAILED
from tests.dkimhelp import MESSAGE, zone_for
from tests.dnsserver import ZoneServer

NOW = 1_795_000_000


@pytest.fixture
def hops(dns_server: ZoneServer, dkim_keys: dict[str, DkimKey]) -> list[SigningKey]:
    keys = [
        SigningKey("example.com", "author", dkim_keys["ed25519"]),
        SigningKey("fwd1.example", "arc", dkim_keys["rsa-2048"]),
        SigningKey("fwd2.example", "arc", dkim_keys["rsa-3072"]),
    ]
    dns_server.load(zone_for(keys))
    return keys


def sealer(key: SigningKey, server: ZoneServer) -> ArcSealer:
    return ArcSealer(key, key.domain, server.resolver(), clock=FrozenClock(NOW))


def seal_tags(message: bytes) -> dict[str, bytes]:
    return parse_tag_list(parse_message(message).find("arc-seal")[0].value)


def test_first_seal_is_i1_cv_none(dns_server: ZoneServer, hops: list[SigningKey]) -> None:
    signed = DkimSigner([hops[0]], clock=FrozenClock(NOW)).sign(MESSAGE)
    result = sealer(hops[1], dns_server).seal(signed)
    assert (result.sealed, result.instance, result.cv) == (True, 1, "none")
    tags = seal_tags(result.message)
    assert (tags["i"], tags["cv"], tags["t"]) == (b"1", b"none", str(NOW).encode())
    assert b"Authentication-Results: fwd1.example;\r\n\tdkim=pass header.d=example.com" in (
        result.message
    )


def test_second_seal_is_i2_cv_pass_and_chain_verifies(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    one = sealer(hops[1], dns_server).seal(MESSAGE)
    two = sealer(hops[2], dns_server).seal(one.message)
    assert (two.instance, two.cv) == (2, "pass")
    cv, _, reason = dkim.arc_verify(two.message, dnsfunc=dkimpy_dnsfunc(dns_server.resolver()))
    assert cv == b"pass", reason


def test_ams_covers_dkim_signature(dns_server: ZoneServer, hops: list[SigningKey]) -> None:
    signed = DkimSigner([hops[0]], clock=FrozenClock(NOW)).sign(MESSAGE)
    sealed = sealer(hops[1], dns_server).seal(signed).message
    ams = parse_message(sealed).find("arc-message-signature")[0]
    assert b"dkim-signature" in parse_tag_list(ams.value)["h"]


def test_broken_chain_is_sealed_with_cv_fail_then_never_again(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    one = sealer(hops[1], dns_server).seal(MESSAGE)
    broken = one.message.replace(b"noon", b"nine")
    two = sealer(hops[2], dns_server).seal(broken)
    assert (two.sealed, two.cv, two.instance) == (True, "fail", 2)
    assert seal_tags(two.message)["cv"] == b"fail"
    three = sealer(hops[1], dns_server).seal(two.message)
    assert not three.sealed
    assert three.message == two.message
    assert "cv=fail" in three.reason


def our_results(message: bytes) -> bytes:
    """The value of the Authentication-Results field the sealer wrote (the first one)."""
    return parse_message(message).find("authentication-results")[0].value


@pytest.mark.parametrize("broken", sorted(SEALED_AS_FAILED))
def test_present_but_broken_chain_is_sealed_cv_fail(
    dns_server: ZoneServer, hops: list[SigningKey], broken: str
) -> None:
    one = sealer(hops[1], dns_server).seal(MESSAGE)
    two = sealer(hops[2], dns_server).seal(SEALED_AS_FAILED[broken](one.message))
    assert (two.sealed, two.cv, two.instance) == (True, "fail", 2)
    assert seal_tags(two.message)["cv"] == b"fail"
    assert b"arc=fail" in our_results(two.message)


@pytest.mark.parametrize("broken", sorted(SEALED_AS_FAILED))
def test_chain_sealed_cv_fail_never_verifies_as_pass(
    dns_server: ZoneServer, hops: list[SigningKey], broken: str
) -> None:
    one = sealer(hops[1], dns_server).seal(MESSAGE)
    two = sealer(hops[2], dns_server).seal(SEALED_AS_FAILED[broken](one.message))
    cv, _, _ = dkim.arc_verify(two.message, dnsfunc=dkimpy_dnsfunc(dns_server.resolver()))
    assert cv != b"pass"


@pytest.mark.parametrize("ended", sorted(NOT_CONTINUED))
def test_chain_that_ended_is_not_continued(
    dns_server: ZoneServer, hops: list[SigningKey], ended: str
) -> None:
    one = sealer(hops[1], dns_server).seal(MESSAGE)
    arrived = NOT_CONTINUED[ended](one.message)
    two = sealer(hops[2], dns_server).seal(arrived)
    assert (two.sealed, two.cv) == (False, "fail")
    assert two.message == arrived


def test_arc_fields_without_any_instance_are_sealed_i1_cv_fail(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    stray = b"ARC-Seal: cv=pass; d=fwd1.example; s=arc\r\nARC-Message-Signature: d=x\r\n"
    result = sealer(hops[1], dns_server).seal(stray + MESSAGE)
    assert (result.sealed, result.cv, result.instance) == (True, "fail", 1)
    assert seal_tags(result.message)["cv"] == b"fail"


def test_good_chain_with_an_unnumbered_arc_field_is_fail(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    # dkimpy skips ARC fields without i= and would say pass; a chain carrying a field
    # that belongs to no set is not one an honest sealer left.
    one = sealer(hops[1], dns_server).seal(MESSAGE)
    two = sealer(hops[2], dns_server).seal(b"ARC-Seal: cv=pass\r\n" + one.message)
    assert (two.sealed, two.cv, two.instance) == (True, "fail", 2)
    assert "without a usable i=" in two.reason


def test_a_chain_dkimpy_cannot_read_is_sealed_as_failed(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    one = sealer(hops[1], dns_server).seal(MESSAGE)
    obsolete = one.message.replace(b"ARC-Seal:", b"ARC-Seal :")  # RFC 5322 obsolete syntax
    two = sealer(hops[2], dns_server).seal(obsolete)
    assert (two.sealed, two.cv, two.instance) == (True, "fail", 2)


def test_only_rsa_keys_can_seal(dns_server: ZoneServer, hops: list[SigningKey]) -> None:
    with pytest.raises(SignatureError, match="rsa-sha256"):
        sealer(hops[0], dns_server)


def test_bad_authserv_id_is_refused(dns_server: ZoneServer, hops: list[SigningKey]) -> None:
    with pytest.raises(SignatureError, match="authserv-id"):
        ArcSealer(hops[1], "a b;c", dns_server.resolver())


def test_message_without_from_is_refused(dns_server: ZoneServer, hops: list[SigningKey]) -> None:
    with pytest.raises(SignatureError, match="From"):
        sealer(hops[1], dns_server).seal(b"Subject: x\r\n\r\nhi\r\n")


def test_dns_failure_while_checking_the_chain_is_temporary(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    one = sealer(hops[1], dns_server).seal(MESSAGE)
    dns_server.mode = "servfail"
    with pytest.raises(DNSTempError):
        sealer(hops[2], dns_server).seal(one.message)
