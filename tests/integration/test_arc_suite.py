"""The ValiMail ARC test suite's validation cases: srsfwd's sealer agrees with dkimpy.

The suite (``arc-draft-validation-tests.yml``) is read from ``../shared/external-vectors/``
next to the repository, never copied into it; without it these tests skip. Each scenario's
``txt-records`` are served by the project's DNS server on 127.0.0.1 and reached through the
production resolver. The suite's signatures carry ``t=`` around 12345 and no ``x=``: srsfwd
runs on a ``FrozenClock`` at that time, and dkimpy, which reads ``time.time()`` itself, has
it patched to the same.

For every case srsfwd can seal (a message with exactly one From): the chain state srsfwd
finds is the ``cv`` dkimpy's ``arc_verify`` gives, and the one the suite expects; the new
set says that ``cv=`` and so do our Authentication-Results; the set is byte-identical to
dkimpy's ``ARC.sign``; and the next hop sees ``pass`` only where the chain arrived good.
Where dkimpy says an earlier ``cv=fail`` terminated the chain (it answers None), srsfwd
adds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from unittest import mock

import dkim
import pytest
import yaml

from srsfwd.clock import FrozenClock
from srsfwd.dkim.arc import ArcSealer, SealResult, dkimpy_dnsfunc
from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import DkimKey, SigningKey
from srsfwd.dkim.tags import parse_tag_list
from srsfwd.errors import SignatureError
from tests.dkimhelp import dkimpy_arc_set, zone_for
from tests.dnsserver import ZoneServer

pytestmark = pytest.mark.integration

SUITE = (
    Path(__file__).parents[2]
    / ".."
    / "shared"
    / "external-vectors"
    / "arc_test_suite"
    / "arc-draft-validation-tests.yml"
)
#: After every t= in the suite (12345 to 12349), as the suite's own runners assume.
SUITE_TIME = 12_400
AUTHSERV_ID = "fwd.example"


def _sealable(message: bytes) -> bool:
    """Whether srsfwd can seal ``message``: it has header fields, exactly one of them From."""
    try:
        return len(parse_message(message).find("from")) == 1
    except SignatureError:
        return False


def _message(case: dict[str, Any]) -> bytes:
    return str(case["message"]).replace("\n", "\r\n").encode("utf-8")


def _cases(*, sealable: bool) -> list[Any]:
    """The validation cases srsfwd can (or cannot) seal, as (txt-records, case) params."""
    if not SUITE.is_file():
        return [pytest.param({}, {}, marks=pytest.mark.skip(reason=f"{SUITE} is absent"))]
    with SUITE.open(encoding="utf-8") as handle:
        scenarios = list(yaml.safe_load_all(handle))
    return [
        pytest.param(scenario["txt-records"], case, id=name)
        for scenario in scenarios
        for name, case in scenario["tests"].items()
        if _sealable(_message(case)) == sealable
    ]


SEALABLE = _cases(sealable=True)
UNSEALABLE = _cases(sealable=False)


def _zone(records: dict[str, str]) -> str:
    """Master-file text for the scenario's TXT records (split in strings of 200)."""
    lines = []
    for name, value in records.items():
        chunks = [value[i : i + 200] for i in range(0, len(value), 200)]
        strings = " ".join('"' + chunk.replace('"', '\\"') + '"' for chunk in chunks)
        lines.append(f"{name}. 300 IN TXT {strings}\n")
    return "".join(lines)


@pytest.fixture
def signing(dkim_keys: dict[str, DkimKey]) -> SigningKey:
    return SigningKey(AUTHSERV_ID, "arc", dkim_keys["rsa-2048"])


@pytest.fixture
def suite_dns(dns_server: ZoneServer, signing: SigningKey) -> ZoneServer:
    dns_server.load(zone_for([signing]))
    return dns_server


def _run(
    server: ZoneServer, records: dict[str, str], message: bytes, signing: SigningKey
) -> tuple[bytes | None, SealResult]:
    """dkimpy's verdict on ``message`` and what srsfwd's sealer made of it, at suite time."""
    server.load(_zone(records))
    resolver = server.resolver()
    sealer = ArcSealer(signing, AUTHSERV_ID, resolver, clock=FrozenClock(SUITE_TIME))
    with mock.patch("time.time", return_value=SUITE_TIME):
        cv, _, _ = dkim.arc_verify(message, dnsfunc=dkimpy_dnsfunc(resolver))
        return cv, sealer.seal(message)


def _split_set(sealed: bytes) -> tuple[bytes, bytes]:
    fields = parse_message(sealed).headers[:3]
    size = sum(len(f.raw) + 2 for f in fields)
    return sealed[:size], sealed[size:]


@pytest.mark.parametrize(("records", "case"), SEALABLE)
def test_sealer_finds_the_cv_dkimpy_finds(
    suite_dns: ZoneServer, signing: SigningKey, records: dict[str, str], case: dict[str, Any]
) -> None:
    message = _message(case)
    expected, result = _run(suite_dns, records, message, signing)
    if expected is None:  # an earlier seal says cv=fail: the chain is terminated
        assert (result.sealed, result.cv) == (False, "fail")
        return
    assert (result.sealed, result.cv) == (True, expected.decode())


@pytest.mark.parametrize(("records", "case"), SEALABLE)
def test_sealer_finds_the_cv_the_suite_expects(
    suite_dns: ZoneServer, signing: SigningKey, records: dict[str, str], case: dict[str, Any]
) -> None:
    # The suite's cv: None, Pass, Fail, or empty for a chain terminated by an earlier cv=fail.
    expected = str(case["cv"]).strip().lower()
    _, result = _run(suite_dns, records, _message(case), signing)
    if not expected:
        assert (result.sealed, result.cv) == (False, "fail")
    else:
        assert (result.sealed, result.cv) == (True, expected)


@pytest.mark.parametrize(("records", "case"), SEALABLE)
def test_new_set_and_results_say_that_cv(
    suite_dns: ZoneServer, signing: SigningKey, records: dict[str, str], case: dict[str, Any]
) -> None:
    message = _message(case)
    _, result = _run(suite_dns, records, message, signing)
    if not result.sealed:
        pytest.skip("the chain was terminated before us: nothing sealed")
    parsed = parse_message(result.message)
    seal = parse_tag_list(parsed.find("arc-seal")[0].value)
    assert seal["cv"] == result.cv.encode()
    ours = parsed.find("authentication-results")[0].value
    assert f"arc={result.cv}".encode() in ours


@pytest.mark.parametrize(("records", "case"), SEALABLE)
def test_new_set_is_identical_to_dkimpy(
    suite_dns: ZoneServer, signing: SigningKey, records: dict[str, str], case: dict[str, Any]
) -> None:
    message = _message(case)
    _, result = _run(suite_dns, records, message, signing)
    if not result.sealed:
        pytest.skip("the chain was terminated before us: nothing sealed")
    ours, below = _split_set(result.message)
    assert ours == dkimpy_arc_set(below, signing, AUTHSERV_ID, SUITE_TIME)


@pytest.mark.parametrize(("records", "case"), SEALABLE)
def test_next_hop_sees_pass_only_for_a_good_chain(
    suite_dns: ZoneServer, signing: SigningKey, records: dict[str, str], case: dict[str, Any]
) -> None:
    message = _message(case)
    _, result = _run(suite_dns, records, message, signing)
    with mock.patch("time.time", return_value=SUITE_TIME):
        cv, _, reason = dkim.arc_verify(
            result.message, dnsfunc=dkimpy_dnsfunc(suite_dns.resolver())
        )
    if result.sealed and result.cv in ("none", "pass"):
        assert cv == b"pass", reason
    else:
        assert cv != b"pass"


@pytest.mark.parametrize(("records", "case"), UNSEALABLE)
def test_unsealable_message_is_refused_with_a_clear_error(
    suite_dns: ZoneServer, signing: SigningKey, records: dict[str, str], case: dict[str, Any]
) -> None:
    message = _message(case)
    with pytest.raises(SignatureError, match=r"From|header"):
        _run(suite_dns, records, message, signing)
