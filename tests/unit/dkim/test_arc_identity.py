"""ARC sets signed through ``cryptography`` are byte-identical to dkimpy's ``ARC.sign``.

For the same key, message (this hop's Authentication-Results on top), header list and
``t=``, dkimpy builds the same set; RSA PKCS#1 v1.5 is deterministic, so every byte,
``b=`` included, must match. First hop (cv=none), second and third hops (cv=pass), a broken
chain (cv=fail, the AS covering only the new set), results given by the caller, fields
spelled or folded oddly, earlier results claiming our authserv-id (removed first), keys of
2048, 3072 and 4096 bits, and generated messages (hypothesis) with stray ARC fields: where
srsfwd refuses to seal, dkimpy refuses too.
"""

from __future__ import annotations

from collections.abc import Callable

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srsfwd.authservid import strip_our_results
from srsfwd.clock import FrozenClock
from srsfwd.dkim.arc import ArcSealer, SealResult, dkimpy_dnsfunc
from srsfwd.dkim.canon import body_start, parse_crlf, parse_message
from srsfwd.dkim.keys import DkimKey, SigningKey
from srsfwd.dkim.sign import DkimSigner, body_hash_in
from srsfwd.dkim.tags import parse_tag_list
from srsfwd.dns.resolver import MXRecord
from srsfwd.errors import SignatureError
from tests.arcchains import SEALED_AS_FAILED
from tests.dkimhelp import MESSAGE, dkimpy_arc_set, zone_for
from tests.dnsserver import ZoneServer
from tests.hypothesis_profiles import budget

NOW = 1_795_000_000

ODD_MESSAGE = (
    b'From: "Alice\tExample"  <alice@example.com> \r\n'
    b"To: Bob <bob@example.org>,\r\n"
    b"\tCarol <carol@example.org>\r\n"
    b"subject:   Lunch   at   noon\r\n"
    b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
    b"Message-ID: <lunch-2@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain;\r\n  charset=utf-8\r\n"
    b"Received: from mx.example.com by fwd.example.net; Thu, 26 Nov 2026 12:00:01 +0000\r\n"
    b"Authentication-Results: elsewhere.example; spf=pass smtp.mailfrom=example.com\r\n"
    b"\r\n"
    b"Shall we meet   at noon? \t\r\n"
    b"\r\n"
    b"Alice\r\n\r\n\r\n"
)


@pytest.fixture
def hops(dns_server: ZoneServer, dkim_keys: dict[str, DkimKey]) -> list[SigningKey]:
    keys = [
        SigningKey("example.com", "author", dkim_keys["ed25519"]),
        SigningKey("fwd1.example", "arc", dkim_keys["rsa-2048"]),
        SigningKey("fwd2.example", "arc", dkim_keys["rsa-3072"]),
        SigningKey("fwd3.example", "arc", dkim_keys["rsa-4096"]),
    ]
    dns_server.load(zone_for(keys))
    return keys


def split_set(sealed: bytes) -> tuple[bytes, bytes]:
    """The new ARC set (AS, AMS, AAR on top) and the message it was added to."""
    fields = parse_message(sealed).headers[:3]
    assert [f.key for f in fields] == [
        b"arc-seal",
        b"arc-message-signature",
        b"arc-authentication-results",
    ]
    size = sum(len(f.raw) + 2 for f in fields)
    return sealed[:size], sealed[size:]


def dkimpy_set(below: bytes, signing: SigningKey, authserv_id: str) -> bytes:
    """What ``dkim.ARC.sign`` adds to ``below`` (which carries this hop's results on top)."""
    return dkimpy_arc_set(below, signing, authserv_id, NOW)


def seal(message: bytes, signing: SigningKey, server: ZoneServer, **kwargs: object) -> SealResult:
    sealer = ArcSealer(signing, signing.domain, server.resolver(), clock=FrozenClock(NOW))
    return sealer.seal(message, **kwargs)  # type: ignore[arg-type]


def assert_identical(result: SealResult, signing: SigningKey) -> None:
    assert result.sealed
    ours, below = split_set(result.message)
    assert ours == dkimpy_set(below, signing, signing.domain)


def seal_tags(message: bytes) -> dict[str, bytes]:
    return parse_tag_list(parse_message(message).find("arc-seal")[0].value)


@pytest.mark.parametrize("message", [MESSAGE, ODD_MESSAGE], ids=["plain", "odd"])
def test_three_hops_are_identical_to_dkimpy(
    dns_server: ZoneServer, hops: list[SigningKey], message: bytes
) -> None:
    current = DkimSigner([hops[0]], clock=FrozenClock(NOW)).sign(message)
    for number, signing in enumerate(hops[1:], start=1):
        result = seal(current, signing, dns_server)
        assert (result.instance, result.cv) == (number, "none" if number == 1 else "pass")
        assert seal_tags(result.message)["cv"] == result.cv.encode()
        assert_identical(result, signing)
        current = result.message
    cv, _, reason = dkim.arc_verify(current, dnsfunc=dkimpy_dnsfunc(dns_server.resolver()))
    assert cv == b"pass", reason


@pytest.mark.parametrize("message", [MESSAGE, ODD_MESSAGE], ids=["plain", "odd"])
def test_lines_sealed_above_a_signature_are_those_of_the_signed_message(
    dns_server: ZoneServer, hops: list[SigningKey], message: bytes
) -> None:
    """The forwarder's path: one parse and one body hash shared by signer and sealer."""
    first = seal(DkimSigner([hops[0]], clock=FrozenClock(NOW)).sign(message), hops[1], dns_server)
    start = body_start(first.message)
    head = parse_crlf(first.message[:start])
    bh = body_hash_in(first.message, start)
    above = DkimSigner([hops[2]], clock=FrozenClock(NOW)).signature_lines(head, bh=bh)
    sealer = ArcSealer(hops[3], hops[3].domain, dns_server.resolver(), clock=FrozenClock(NOW))

    result = sealer.seal_lines(first.message, head, bh=bh, above=above)

    assert result.message is first.message
    whole = b"".join([*above, first.message])
    assert b"".join([*result.lines, *above, result.message]) == sealer.seal(whole).message


def test_unsigned_lf_message_is_identical(dns_server: ZoneServer, hops: list[SigningKey]) -> None:
    result = seal(MESSAGE.replace(b"\r\n", b"\n"), hops[1], dns_server)
    assert (result.instance, result.cv) == (1, "none")
    assert_identical(result, hops[1])


def test_failed_chain_is_identical(dns_server: ZoneServer, hops: list[SigningKey]) -> None:
    one = seal(MESSAGE, hops[1], dns_server)
    two = seal(one.message, hops[2], dns_server)
    broken = two.message.replace(b"noon", b"nine")
    three = seal(broken, hops[3], dns_server)
    assert (three.sealed, three.cv, three.instance) == (True, "fail", 3)
    assert seal_tags(three.message)["cv"] == b"fail"
    assert_identical(three, hops[3])


@pytest.mark.parametrize("broken", sorted(SEALED_AS_FAILED))
def test_present_but_broken_chain_is_identical(
    dns_server: ZoneServer, hops: list[SigningKey], broken: str
) -> None:
    one = seal(MESSAGE, hops[1], dns_server)
    two = seal(SEALED_AS_FAILED[broken](one.message), hops[2], dns_server)
    assert (two.sealed, two.cv, two.instance) == (True, "fail", 2)
    assert_identical(two, hops[2])


def test_results_from_the_caller_are_identical(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    def results_for(authserv_id: str) -> Callable[[str], str]:
        def results(cv: str) -> str:
            return (
                f"Authentication-Results: {authserv_id};\r\n"
                "\tspf=pass smtp.mailfrom=example.com;\r\n"
                f"\tdkim=none; arc={cv}"
            )

        return results

    one = seal(MESSAGE, hops[1], dns_server, results=results_for("fwd1.example"))
    assert_identical(one, hops[1])
    two = seal(one.message, hops[2], dns_server, results=results_for("fwd2.example"))
    assert (two.instance, two.cv) == (2, "pass")
    assert seal_tags(two.message)["cv"] == b"pass"
    assert_identical(two, hops[2])


def test_same_forwarder_twice_seals_what_it_found(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    # Coming back through the same forwarder, the first hop's results for our authserv-id
    # are removed (RFC 8601 §5): only this hop's arc=pass is consolidated, so cv=pass.
    one = seal(MESSAGE, hops[1], dns_server)
    two = seal(one.message, hops[1], dns_server)
    assert (two.sealed, two.instance, two.cv) == (True, 2, "pass")
    assert seal_tags(two.message)["cv"] == b"pass"
    assert two.message.count(b"\r\nAuthentication-Results: fwd1.example;") == 1
    assert_identical(two, hops[1])


def test_earlier_results_for_our_id_are_removed_not_consolidated(
    dns_server: ZoneServer, hops: list[SigningKey]
) -> None:
    earlier = b"Authentication-Results: fwd1.example; spf=pass smtp.mailfrom=example.com\r\n"
    result = seal(earlier + MESSAGE, hops[1], dns_server)
    aar = parse_message(result.message).find("arc-authentication-results")[0]
    assert b"spf=pass" not in aar.value
    assert earlier not in result.message
    assert_identical(result, hops[1])


class _NoDns:
    """A resolver with no records: any chain that arrived fails to verify."""

    def txt(self, name: str) -> list[bytes]:
        return []

    def mx(self, name: str) -> list[MXRecord]:
        return []

    def addresses(self, name: str) -> list[str]:
        return []


_VALUE = st.lists(
    st.sampled_from([b"a", b"Bc d", b" ", b"\t", b"  ", b"\r\n ", b"\r\n\t", b";", b"i=2", b"x"]),
    min_size=1,
    max_size=12,
).map(lambda parts: b" " + b"".join(parts) + b"v")
_NAMES = [
    b"To",
    b"cc",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"Received",
    b"Reply-To",
    b"X-Other",
    b"DKIM-Signature",
    b"Authentication-Results",
    b"ARC-Authentication-Results",
    b"ARC-Message-Signature",
    b"arc-seal",
]
_FIELDS = st.lists(st.tuples(st.sampled_from(_NAMES), _VALUE), max_size=10)
_BODY = st.lists(st.sampled_from([b"x", b" ", b"\t", b"\r\n", b"yz"]), max_size=20).map(b"".join)


@settings(max_examples=budget(60), deadline=None)
@given(fields=_FIELDS, body=_BODY, ours_too=st.booleans())
def test_generated_messages_are_identical_or_refused_alike(
    dkim_keys: dict[str, DkimKey],
    fields: list[tuple[bytes, bytes]],
    body: bytes,
    ours_too: bool,
) -> None:
    signing = SigningKey("fwd1.example", "arc", dkim_keys["rsa-2048"])
    head = b"From: Alice <alice@example.com>\r\n"
    head += b"".join(name + b":" + value + b"\r\n" for name, value in fields)
    if ours_too:  # an earlier field for our authserv-id: removed before sealing
        head += b"Authentication-Results: fwd1.example; spf=pass smtp.mailfrom=a.example\r\n"
    message = head + b"\r\n" + body
    written: list[bytes] = []

    def results(cv: str) -> str:
        text = f"Authentication-Results: fwd1.example; dkim=none; arc={cv}"
        written.append(text.encode() + b"\r\n")
        return text

    sealer = ArcSealer(signing, "fwd1.example", _NoDns(), clock=FrozenClock(NOW))
    try:
        result = sealer.seal(message, results=results)
    except SignatureError:
        if not written:
            return  # refused before building a set (e.g. an ARC-Seal i= over 50)
        kept = strip_our_results(message, "fwd1.example")
        below = written[0] + kept + (b"" if kept.endswith(b"\r\n") else b"\r\n")
        try:
            assert dkimpy_set(below, signing, "fwd1.example") == b""
        except dkim.DKIMException:
            pass
        return
    if not result.sealed:
        return  # the latest seal says cv=fail, or i= reached 50: nothing is added
    if result.instance == 1 and result.cv == "fail":
        # ARC fields, none numbered: a broken chain, sealed i=1 cv=fail, which dkimpy
        # refuses to build (it wants cv=none at i=1).
        assert seal_tags(result.message)["cv"] == b"fail"
        _, below = split_set(result.message)
        with pytest.raises(dkim.ParameterError, match="cv should be none"):
            dkimpy_set(below, signing, "fwd1.example")
        return
    assert_identical(result, signing)
