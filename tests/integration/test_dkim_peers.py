"""What srsfwd signs, dkimpy, Mail::DKIM and OpenDKIM accept; tampering makes all of them fail."""

from __future__ import annotations

from pathlib import Path

import pytest

from srsfwd.clock import FrozenClock, SystemClock
from srsfwd.dkim.keys import DkimKey, SigningKey
from srsfwd.dkim.sign import DkimSigner
from srsfwd.dkim.verify import DkimVerifier, Result
from tests.dkimhelp import MESSAGE, RFC8463, RFC8463_TIME, zone_for
from tests.dnsserver import ZoneServer
from tests.integration.dkimpeers import (
    dkimpy_results,
    maildkim_results,
    maildkim_supports_ed25519,
    opendkim_results,
)

pytestmark = pytest.mark.integration

SPECS = ["rsa-2048", "rsa-3072", "rsa-4096", "ed25519"]

VARIANTS: dict[str, bytes] = {
    "plain": MESSAGE,
    "8bit-body": MESSAGE.replace(b"Shall we meet", "Zażółć gęślą jaźń, café \u2603".encode()),
    "empty-body": MESSAGE[: MESSAGE.index(b"\r\n\r\n") + 4],
    "no-final-crlf": MESSAGE + b"PS: no line end  ",
    "folded-and-repeated": (
        b"From: Alice\r\n  Example <alice@example.com>\r\n"
        b"To: a@example.org,\r\n\tb@example.org\r\n"
        b"To: c@example.org\r\n"
        b"Subject:\r\n   a long subject that was\r\n   folded  twice\r\n"
        b"Comments: one\r\nComments: two\r\n"
        b"\r\nbody  with   spaces \t\r\n\r\n\r\n"
    ),
    "lf-only": MESSAGE.replace(b"\r\n", b"\n"),
}


def _all_results(
    signed: bytes,
    keys: list[SigningKey],
    server: ZoneServer,
    folder: Path,
    *,
    with_dkimpy: bool = True,  # dkimpy refuses the obsolete "Name :" syntax outright
) -> dict[str, list[str]]:
    now = SystemClock().now()
    ours = DkimVerifier(server.resolver(), clock=FrozenClock(now)).verify(signed)
    results = {
        "srsfwd": [str(r.result) for r in ours],
        "opendkim": opendkim_results(signed, keys, folder),
        "maildkim": maildkim_results(signed, server.port),
    }
    if with_dkimpy:
        results["dkimpy"] = ["pass" if ok else "fail" for ok in dkimpy_results(signed, keys, now)]
    return results


def _expect(results: dict[str, list[str]], verdict: str, algorithms: list[str]) -> None:
    ed_ok = maildkim_supports_ed25519()
    for peer, found in results.items():
        assert len(found) == len(algorithms), (peer, found)
        for algorithm, result in zip(algorithms, found, strict=True):
            if peer == "maildkim" and algorithm == "ed25519" and not ed_ok:
                assert result == "invalid", (peer, found)  # this Mail::DKIM lacks Ed25519
                continue
            assert result == verdict, (peer, algorithm, results)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("spec", SPECS)
def test_peers_accept_what_we_sign(
    dns_server: ZoneServer, dkim_keys: dict[str, DkimKey], tmp_path: Path, spec: str, variant: str
) -> None:
    signing = SigningKey("example.com", "sel", dkim_keys[spec])
    dns_server.load(zone_for([signing]))
    signed = DkimSigner([signing]).sign(VARIANTS[variant])
    _expect(_all_results(signed, [signing], dns_server, tmp_path), "pass", [spec])


def _dual(dkim_keys: dict[str, DkimKey]) -> list[SigningKey]:
    return [
        SigningKey("example.com", "rsa", dkim_keys["rsa-2048"]),
        SigningKey("example.com", "ed", dkim_keys["ed25519"]),
    ]


def test_peers_accept_dual_signatures(
    dns_server: ZoneServer, dkim_keys: dict[str, DkimKey], tmp_path: Path
) -> None:
    keys = _dual(dkim_keys)
    dns_server.load(zone_for(keys))
    signed = DkimSigner(keys).sign(MESSAGE)
    _expect(_all_results(signed, keys, dns_server, tmp_path), "pass", ["rsa", "ed25519"])


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda m: m.replace(b"noon", b"noom"), id="changed-body-byte"),
        pytest.param(lambda m: b"Subject: Urgent\r\n" + m, id="added-subject"),
    ],
)
def test_tampering_makes_every_peer_fail(
    dns_server: ZoneServer, dkim_keys: dict[str, DkimKey], tmp_path: Path, tamper: object
) -> None:
    keys = _dual(dkim_keys)
    dns_server.load(zone_for(keys))
    signed = tamper(DkimSigner(keys).sign(MESSAGE))  # type: ignore[operator]
    _expect(_all_results(signed, keys, dns_server, tmp_path), "fail", ["rsa", "ed25519"])


def test_white_space_before_a_colon_passes_relaxed_as_with_maildkim_and_opendkim(
    dns_server: ZoneServer, dkim_keys: dict[str, DkimKey], tmp_path: Path
) -> None:
    signing = SigningKey("example.com", "sel", dkim_keys["rsa-2048"])
    dns_server.load(zone_for([signing]))
    signed = DkimSigner([signing]).sign(MESSAGE).replace(b"Subject:", b"Subject :")
    results = _all_results(signed, [signing], dns_server, tmp_path, with_dkimpy=False)
    assert results == {"srsfwd": ["pass"], "opendkim": ["pass"], "maildkim": ["pass"]}


def test_peers_verify_the_rfc8463_example(dns_server: ZoneServer, tmp_path: Path) -> None:
    dns_server.load((RFC8463 / "football.zone").read_text())
    message = (RFC8463 / "signed.eml").read_bytes()
    ours = DkimVerifier(dns_server.resolver(), clock=FrozenClock(RFC8463_TIME)).verify(message)
    assert [r.result for r in ours] == [Result.PASS, Result.PASS]
    mail_dkim = maildkim_results(message, dns_server.port)
    assert mail_dkim[1] == "pass"
