"""srsfwd's verdicts equal dkimpy's on a corpus of dkimpy-signed, lightly mangled messages.

Every canonicalisation pair, with and without ``l=``, RSA and Ed25519, then changes that
one canonicalisation forgives and the other does not. Where the RFCs demand a stricter
answer the corpus does not go (those cases are in test_verify.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from unittest import mock

import dkim
import pytest

from srsfwd.clock import FrozenClock
from srsfwd.dkim.keys import DkimKey, SigningKey, key_record_text
from srsfwd.dkim.verify import DkimVerifier, Result
from tests.dkimhelp import MESSAGE, dkimpy_private, zone_for
from tests.dnsserver import ZoneServer

NOW = 1_795_000_000

CHANGES: dict[str, Callable[[bytes], bytes]] = {
    "unchanged": lambda m: m,
    "body-trailing-space": lambda m: m.replace(b"noon?\r\n", b"noon?  \r\n"),
    "body-inner-spaces": lambda m: m.replace(b"meet at", b"meet \t at"),
    "body-extra-blank-lines": lambda m: m + b"\r\n\r\n",
    "body-appended-text": lambda m: m + b"P.S. appended\r\n",
    "header-refolded": lambda m: m.replace(b"Subject: Lunch", b"Subject:\r\n   Lunch"),
    "header-name-case": lambda m: m.replace(b"Subject:", b"SUBJECT:"),
    "header-changed": lambda m: m.replace(b"Subject: Lunch", b"Subject: Dinner"),
    "body-changed": lambda m: m.replace(b"Alice\r\n", b"Alicf\r\n"),
    "lf-line-ends": lambda m: m.replace(b"\r\n", b"\n"),
}

#: Changes that leave text outside an ``l=`` length: dkimpy passes them, srsfwd answers
#: ``policy`` (stricter on purpose, see test_verify.py).
OUTSIDE_LENGTH = {"body-appended-text"}

CASES = list(
    itertools.product(
        ["rsa-2048", "ed25519"],
        [b"simple/simple", b"simple/relaxed", b"relaxed/simple", b"relaxed/relaxed"],
        [False, True],
    )
)


@pytest.mark.parametrize(("spec", "canon", "length"), CASES)
def test_verdicts_match_dkimpy(
    dns_server: ZoneServer,
    dkim_keys: dict[str, DkimKey],
    spec: str,
    canon: bytes,
    length: bool,
) -> None:
    key = dkim_keys[spec]
    signing = SigningKey("example.com", "corpus", key)
    dns_server.load(zone_for([signing]))
    record = key_record_text(key).encode()

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return record

    with mock.patch("time.time", return_value=NOW):
        header = dkim.sign(
            MESSAGE,
            b"corpus",
            b"example.com",
            dkimpy_private(key),
            canonicalize=tuple(canon.split(b"/")),
            include_headers=[b"from", b"to", b"subject", b"date", b"from", b"subject"],
            signature_algorithm=key.algorithm.encode(),
            length=length,
        )
    verifier = DkimVerifier(dns_server.resolver(), clock=FrozenClock(NOW))
    for name, change in CHANGES.items():
        message = change(header + MESSAGE)
        with mock.patch("time.time", return_value=NOW):
            theirs = bool(dkim.verify(message, dnsfunc=dnsfunc))
        (ours,) = verifier.verify(message)
        if length and name in OUTSIDE_LENGTH:
            assert theirs
            assert ours.result is Result.POLICY, (name, ours.reason)
            continue
        assert ours.passed == theirs, (name, ours.reason)
