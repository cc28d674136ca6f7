"""The verifier: every signature, reasons, and the RFC rules dkimpy does not apply."""

from __future__ import annotations

import base64
from collections.abc import Callable
from unittest import mock

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srsfwd.clock import FrozenClock
from srsfwd.dkim import verify
from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import (
    DkimKey,
    SigningKey,
    key_record_text,
    load_private_key,
    load_public_key,
)
from srsfwd.dkim.sign import DkimSigner, signature_header
from srsfwd.dkim.verify import DkimVerifier, Result
from srsfwd.dns.resolver import Resolver
from srsfwd.errors import SignatureError
from tests.dkimhelp import DATA, MESSAGE, RFC8463, RFC8463_TIME, dkimpy_private, zone_for
from tests.dnsserver import ZoneServer
from tests.hypothesis_profiles import budget

NOW = 1_795_000_000


@pytest.fixture
def rsa(dkim_keys: dict[str, DkimKey]) -> SigningKey:
    return SigningKey("example.com", "rsa", dkim_keys["rsa-2048"])


@pytest.fixture
def ed(dkim_keys: dict[str, DkimKey]) -> SigningKey:
    return SigningKey("example.com", "ed", dkim_keys["ed25519"])


def verifier(server: ZoneServer, now: int = NOW) -> DkimVerifier:
    return DkimVerifier(server.resolver(), clock=FrozenClock(now))


def sign(*keys: SigningKey, now: int = NOW, **options: object) -> bytes:
    return DkimSigner(list(keys), clock=FrozenClock(now), **options).sign(MESSAGE)  # type: ignore[arg-type]


def test_rfc8463_example_verifies_both_signatures(dns_server: ZoneServer) -> None:
    dns_server.load((RFC8463 / "football.zone").read_text())
    results = verifier(dns_server, RFC8463_TIME).verify((RFC8463 / "signed.eml").read_bytes())
    assert [(r.result, r.algorithm, r.key_bits) for r in results] == [
        (Result.PASS, "ed25519-sha256", 256),
        (Result.PASS, "rsa-sha256", 1024),
    ]


def test_every_signature_gets_a_result(
    dns_server: ZoneServer, rsa: SigningKey, ed: SigningKey
) -> None:
    dns_server.load(zone_for([rsa, ed]))
    results = verifier(dns_server).verify(sign(rsa, ed))
    assert [(r.selector, r.result) for r in results] == [("rsa", Result.PASS), ("ed", Result.PASS)]
    assert results[0].domain == "example.com"
    assert results[0].key_bits == 2048


def test_no_signature_gives_no_result(dns_server: ZoneServer) -> None:
    assert verifier(dns_server).verify(MESSAGE) == []


def test_changed_body_byte_fails_with_body_hash(dns_server: ZoneServer, ed: SigningKey) -> None:
    dns_server.load(zone_for([ed]))
    signed = sign(ed).replace(b"noon", b"noom")
    (result,) = verifier(dns_server).verify(signed)
    assert result.result is Result.FAIL
    assert "body hash" in result.reason


def test_added_subject_fails(dns_server: ZoneServer, ed: SigningKey) -> None:
    dns_server.load(zone_for([ed]))
    (result,) = verifier(dns_server).verify(b"Subject: other\r\n" + sign(ed))
    assert result.result is Result.FAIL
    assert "headers changed" in result.reason


def test_missing_key_is_permerror(dns_server: ZoneServer, ed: SigningKey) -> None:
    (result,) = verifier(dns_server).verify(sign(ed))
    assert result.result is Result.PERMERROR
    assert "no key record" in result.reason


def test_dns_failure_is_temperror(dns_server: ZoneServer, ed: SigningKey) -> None:
    dns_server.mode = "servfail"
    (result,) = verifier(dns_server).verify(sign(ed))
    assert result.result is Result.TEMPERROR


def test_dns_timeout_is_temperror(dns_server: ZoneServer, ed: SigningKey) -> None:
    dns_server.mode = "silent"
    resolver = dns_server.resolver(timeout=0.3)
    (result,) = DkimVerifier(resolver, clock=FrozenClock(NOW)).verify(sign(ed))
    assert result.result is Result.TEMPERROR
    assert "timeout" in result.reason


def test_expired_signature_fails(dns_server: ZoneServer, ed: SigningKey) -> None:
    dns_server.load(zone_for([ed]))
    signed = sign(ed, expire_after=3600)
    assert verifier(dns_server, NOW + 3599).verify(signed)[0].passed
    (late,) = verifier(dns_server, NOW + 3601).verify(signed)
    assert late.result is Result.FAIL
    assert "expired" in late.reason


def test_revoked_key_is_permerror(dns_server: ZoneServer, ed: SigningKey) -> None:
    dns_server.load('ed._domainkey.example.com. IN TXT "v=DKIM1; k=ed25519; p="')
    (result,) = verifier(dns_server).verify(sign(ed))
    assert result.result is Result.PERMERROR
    assert "revoked" in result.reason


def test_testing_flag_is_reported(dns_server: ZoneServer, ed: SigningKey) -> None:
    dns_server.load(zone_for([ed], testing=True))
    (result,) = verifier(dns_server).verify(sign(ed))
    assert result.passed
    assert result.testing


def _dkimpy_signed(
    key: DkimKey,
    names: list[bytes],
    algorithm: bytes = b"rsa-sha256",
    identity: bytes | None = None,
    length: bool = False,
) -> bytes:
    with mock.patch("time.time", return_value=NOW):
        header: bytes = dkim.sign(
            MESSAGE,
            b"rsa",
            b"example.com",
            dkimpy_private(key),
            identity=identity,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=names,
            signature_algorithm=algorithm,
            length=length,
        )
    return header + MESSAGE


def _dkimpy_verdict(message: bytes, record: bytes) -> bool:
    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return record

    with mock.patch("time.time", return_value=NOW):
        return bool(dkim.verify(message, dnsfunc=lookup))


def test_white_space_before_a_colon_does_not_change_a_relaxed_signature(
    dns_server: ZoneServer, rsa: SigningKey
) -> None:
    dns_server.load(zone_for([rsa]))
    signed = _dkimpy_signed(rsa.key, [b"from", b"subject"])  # dkimpy refuses to sign obs syntax
    (result,) = verifier(dns_server).verify(signed.replace(b"Subject:", b"Subject \t:"))
    assert result.result is Result.PASS


def test_rsa_sha1_fails_where_dkimpy_passes(dns_server: ZoneServer, rsa: SigningKey) -> None:
    dns_server.load(zone_for([rsa]))
    signed = _dkimpy_signed(rsa.key, [b"from", b"subject"], algorithm=b"rsa-sha1")
    assert _dkimpy_verdict(signed, key_record_text(rsa.key).encode())
    (result,) = verifier(dns_server).verify(signed)
    assert result.result is Result.FAIL
    assert "RFC 8301" in result.reason


def test_signature_without_from_in_h_fails_where_dkimpy_passes(
    dns_server: ZoneServer, rsa: SigningKey
) -> None:
    # dkimpy's signer refuses an h= without From, so build one with our signing function.
    header = signature_header(
        parse_message(MESSAGE), rsa, now=NOW, header_names=[b"subject", b"date"]
    )
    signed = header + MESSAGE
    assert _dkimpy_verdict(signed, key_record_text(rsa.key).encode())
    dns_server.load(zone_for([rsa]))
    (result,) = verifier(dns_server).verify(signed)
    assert result.result is Result.FAIL
    assert "From" in result.reason


def test_text_appended_after_l_is_policy_where_dkimpy_passes(
    dns_server: ZoneServer, rsa: SigningKey
) -> None:
    signed = _dkimpy_signed(rsa.key, [b"from", b"subject"], length=True)
    appended = signed + b"\r\nClick https://phish.example/ now\r\n"
    assert _dkimpy_verdict(appended, key_record_text(rsa.key).encode())
    dns_server.load(zone_for([rsa]))
    (result,) = verifier(dns_server).verify(appended)
    assert result.result is Result.POLICY
    assert "l= leaves" in result.reason


def test_l_covering_the_whole_body_passes(dns_server: ZoneServer, rsa: SigningKey) -> None:
    dns_server.load(zone_for([rsa]))
    (result,) = verifier(dns_server).verify(_dkimpy_signed(rsa.key, [b"from"], length=True))
    assert result.passed


def test_changed_signed_part_under_l_is_still_fail(dns_server: ZoneServer, rsa: SigningKey) -> None:
    signed = _dkimpy_signed(rsa.key, [b"from"], length=True).replace(b"noon", b"noom")
    dns_server.load(zone_for([rsa]))
    (result,) = verifier(dns_server).verify(signed + b"more\r\n")
    assert result.result is Result.FAIL


def test_second_from_above_a_signature_covering_one_is_policy(
    dns_server: ZoneServer, rsa: SigningKey
) -> None:
    header = signature_header(
        parse_message(MESSAGE), rsa, now=NOW, header_names=[b"from", b"subject"]
    )
    forged = b"From: CEO <ceo@bank.example>\r\n" + header + MESSAGE
    assert not _dkimpy_verdict(forged, key_record_text(rsa.key).encode())
    dns_server.load(zone_for([rsa]))
    assert verifier(dns_server).verify(header + MESSAGE)[0].passed
    (result,) = verifier(dns_server).verify(forged)
    assert result.result is Result.POLICY
    assert "2 From fields" in result.reason


def test_oversigned_from_on_a_one_from_message_passes(
    dns_server: ZoneServer, rsa: SigningKey
) -> None:
    dns_server.load(zone_for([rsa]))
    (result,) = verifier(dns_server).verify(sign(rsa))
    assert result.passed


def test_key_record_h_tag_is_honoured(dns_server: ZoneServer, rsa: SigningKey) -> None:
    record = key_record_text(rsa.key).replace("k=rsa;", "k=rsa; h=sha1;")
    dns_server.load(f'rsa._domainkey.example.com. IN TXT ( "{record[:200]}" "{record[200:]}" )')
    (result,) = verifier(dns_server).verify(sign(rsa))
    assert result.result is Result.FAIL
    assert "h=" in result.reason


def test_strict_key_refuses_subdomain_identity(dns_server: ZoneServer, rsa: SigningKey) -> None:
    dns_server.load(zone_for([rsa], strict=True))
    signed = _dkimpy_signed(rsa.key, [b"from"], identity=b"@mail.example.com")
    (result,) = verifier(dns_server).verify(signed)
    assert result.result is Result.FAIL
    assert "t=s" in result.reason


def test_key_under_1024_bits_fails(dns_server: ZoneServer) -> None:
    weak = load_private_key((DATA / "rsa-768.key").read_bytes())
    signing = SigningKey("example.com", "weak", weak)
    dns_server.load(zone_for([signing]))
    signed = DkimSigner([signing], clock=FrozenClock(NOW), allow_weak_keys=True).sign(MESSAGE)
    (result,) = verifier(dns_server).verify(signed)
    assert result.result is Result.FAIL
    assert "768-bit" in result.reason


def test_rfc8463_rsa_1024_passes_by_default(dns_server: ZoneServer) -> None:
    key = load_private_key((RFC8463 / "rsa.key").read_bytes())
    signing = SigningKey("example.com", "k1024", key)
    dns_server.load(zone_for([signing]))
    signed = DkimSigner([signing], clock=FrozenClock(NOW), allow_weak_keys=True).sign(MESSAGE)
    assert verifier(dns_server).verify(signed)[0].passed


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ('"v=DKIM1; k=ed25519; p=@@@"', "not base64"),
        ('"v=DKIM1; k=ed25519; p=AAAA"', "32 bytes"),
        ('"k=ed25519; k=rsa; p=AAAA"', "twice"),
        ('"v=DKIM1; k=dsa; p=AAAA"', "k=dsa"),
        (
            '"v=DKIM1; k=ed25519; s=tlsrpt; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="',
            "s= is not for email",
        ),
    ],
)
def test_key_records_with_bad_tags_are_permerror(
    dns_server: ZoneServer, ed: SigningKey, record: str, reason: str
) -> None:
    dns_server.load(f"ed._domainkey.example.com. IN TXT {record}")
    (result,) = verifier(dns_server).verify(sign(ed))
    assert result.result is Result.PERMERROR
    assert reason in result.reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda s: s.replace(b"v=1;", b"v=2;", 1), "version"),
        (lambda s: s.replace(b"a=ed25519-sha256", b"a=rsa-md5", 1), "unknown algorithm"),
        (lambda s: s.replace(b"c=relaxed/relaxed", b"c=fuzzy", 1), "canonicalisation"),
        (lambda s: s.replace(b"i=@example.com", b"i=@evil.example", 1), "i= is not"),
        (lambda s: s.replace(b" bh=", b" xx=", 1), "lacks bh="),
        (lambda s: s.replace(b"t=", b"t=1;t=", 1), "twice"),
        (lambda s: s.replace(b"d=example.com", b"d=exa$mple.com", 1), "DNS name"),
    ],
)
def test_malformed_signatures_are_permerror(
    dns_server: ZoneServer, ed: SigningKey, change: Callable[[bytes], bytes], reason: str
) -> None:
    dns_server.load(zone_for([ed]))
    (result,) = verifier(dns_server).verify(change(sign(ed)))
    assert result.result is Result.PERMERROR
    assert reason in result.reason


def test_garbage_message_is_a_signature_error(dns_server: ZoneServer) -> None:
    with pytest.raises(SignatureError):
        verifier(dns_server).verify(b"\x00garbage")


def test_too_many_signatures_are_not_all_looked_up(dns_server: ZoneServer, ed: SigningKey) -> None:
    signed = sign(ed)
    header = signed[: signed.index(b"From:")]
    results = DkimVerifier(dns_server.resolver(), clock=FrozenClock(NOW), max_signatures=2).verify(
        header * 3 + MESSAGE
    )
    assert results[2].result is Result.PERMERROR
    assert len(dns_server.queries) <= 2


def test_lf_only_signed_message_verifies(dns_server: ZoneServer, ed: SigningKey) -> None:
    dns_server.load(zone_for([ed]))
    signed = sign(ed).replace(b"\r\n", b"\n")
    assert verifier(dns_server).verify(signed)[0].passed


def test_rsa_record_that_is_no_rsa_key_is_permerror(
    dns_server: ZoneServer, rsa: SigningKey
) -> None:
    junk = base64.b64encode(b"x" * 40).decode()
    dns_server.load(f'rsa._domainkey.example.com. IN TXT "v=DKIM1; k=rsa; p={junk}"')
    (result,) = verifier(dns_server).verify(sign(rsa))
    assert result.result is Result.PERMERROR
    assert "not an RSA" in result.reason


def test_key_type_mismatch_is_permerror(
    dns_server: ZoneServer, rsa: SigningKey, ed: SigningKey
) -> None:
    dns_server.load(zone_for([SigningKey("example.com", "rsa", ed.key)]))
    (result,) = verifier(dns_server).verify(sign(rsa))
    assert result.result is Result.PERMERROR
    assert "k=ed25519" in result.reason


@settings(max_examples=budget(150))
@given(st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")))
def test_any_signature_value_gives_a_result_never_a_crash(value: bytes) -> None:
    resolver = Resolver.from_zone_file(RFC8463 / "football.zone")
    message = b"DKIM-Signature: " + value + b"\r\n" + MESSAGE
    (result,) = DkimVerifier(resolver, clock=FrozenClock(NOW)).verify(message)
    assert result.result in (Result.PERMERROR, Result.FAIL)


@settings(max_examples=budget(60), deadline=None)
@given(
    appended=st.binary(min_size=1, max_size=200).filter(bytes.strip),
    extra_froms=st.integers(min_value=0, max_value=2),
)
def test_content_outside_a_signature_never_passes(
    dkim_keys: dict[str, DkimKey], appended: bytes, extra_froms: int
) -> None:
    key = SigningKey("example.com", "rsa", dkim_keys["rsa-2048"])
    signed = _dkimpy_signed(key.key, [b"from", b"subject"], length=True)
    message = b"From: x@y.example\r\n" * extra_froms + signed + b"\r\n" + appended + b"\r\n"
    resolver = Resolver.from_zone_text(zone_for([key]))
    (result,) = DkimVerifier(resolver, clock=FrozenClock(NOW)).verify(message)
    assert not result.passed


def test_a_key_record_is_loaded_once_for_many_messages(
    dns_server: ZoneServer, rsa: SigningKey
) -> None:
    dns_server.load(zone_for([rsa]))
    verify._public_key.cache_clear()
    with mock.patch.object(verify, "load_public_key", wraps=load_public_key) as loaded:
        checker = verifier(dns_server)
        assert all(checker.verify(sign(rsa, now=NOW + n))[0].passed for n in range(3))
    assert loaded.call_count == 1


def test_a_replaced_key_record_is_parsed_afresh(
    dns_server: ZoneServer, rsa: SigningKey, dkim_keys: dict[str, DkimKey]
) -> None:
    dns_server.load(zone_for([rsa]))
    assert verifier(dns_server).verify(sign(rsa))[0].passed
    dns_server.clear()
    dns_server.load(zone_for([SigningKey("example.com", "rsa", dkim_keys["rsa-3072"])]))
    (result,) = verifier(dns_server).verify(sign(rsa))
    assert result.result is Result.FAIL
    assert result.key_bits == 3072
