"""pyspf's RFC 7208 test suite (YAML) run through srsfwd's own DNS layer.

The suite ships in pyspf's sdist (``test/rfc7208-tests.yml``); it is fetched with
``pip download`` at test time and never copied into this repository. Every scenario's zone
is served by a real dnslib server on 127.0.0.1 that follows CNAMEs as a recursive server
would and stays silent for the suite's TIMEOUT names; ``srsfwd.dns.spf.check_host``
asks it through ``Resolver``, and must get the suite's result for every case.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSLabel, DNSRecord
from dnslib.dns import DNSError
from dnslib.server import BaseResolver

from srsfwd.dns.spf import check_host
from tests.dnsserver import ZoneServer

pytestmark = pytest.mark.integration

PYSPF_VERSION = "2.0.14"


def _fetch_suite(tmp: Path) -> list[dict[str, Any]]:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"pyspf=={PYSPF_VERSION}",
            "-d",
            str(tmp),
        ],
        check=True,
        capture_output=True,
    )
    sdist = next(tmp.glob("pyspf-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/rfc7208-tests.yml"))
        handle = archive.extractfile(member)
        assert handle is not None
        return list(yaml.safe_load_all(handle.read()))


def _key(name: str) -> str:
    """One spelling per name: dnslib's escaped text, lower case, no final dot."""
    return str(DNSLabel(name)).lower().rstrip(".")


class _SuiteResolver(BaseResolver):  # type: ignore[misc]
    """Answers one scenario's zone; chases CNAMEs; never answers TIMEOUT names/types."""

    def __init__(self) -> None:
        self.records: dict[str, list[RR]] = {}
        self.timeouts: set[tuple[str, str | None]] = set()
        self.answering: dict[str, set[str]] = {}

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = request.reply()
        name = _key(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        seen = {name}
        first = True
        while True:
            timed_out = (name, None) in self.timeouts and qtype not in self.answering[name]
            if timed_out or (name, qtype) in self.timeouts:
                raise DNSError("suite TIMEOUT")
            rrs = self.records.get(name)
            if rrs is None:
                if first:
                    reply.header.rcode = RCODE.NXDOMAIN
                return reply
            first = False
            alias = [rr for rr in rrs if rr.rtype == QTYPE.CNAME]
            wanted = [rr for rr in rrs if QTYPE[rr.rtype] == qtype]
            if wanted:
                for rr in wanted:
                    reply.add_answer(rr)
                return reply
            if not alias:
                return reply
            target = _key(str(alias[0].rdata.label))
            if target in seen or len(seen) > 8:
                return reply  # a loop: give the chain up to it, as BIND does
            reply.add_answer(alias[0])
            seen.add(target)
            name = target


def _rr(name: str, rtype: str, value: Any) -> RR | None:
    label = DNSLabel(name)
    if rtype in ("TXT", "SPF"):
        parts = [value] if isinstance(value, str) else list(value)
        if not parts:
            return None  # a TXT record with no string cannot be put on the wire
        data = [p.encode("utf-8") for p in parts]
        return RR(label, QTYPE.TXT, rdata=TXT(data), ttl=60)
    makers: dict[str, Any] = {
        "A": lambda v: (QTYPE.A, A(v)),
        "AAAA": lambda v: (QTYPE.AAAA, AAAA(v)),
        "MX": lambda v: (QTYPE.MX, MX(str(v[1]), int(v[0]))),
        "PTR": lambda v: (QTYPE.PTR, PTR(str(v))),
        "CNAME": lambda v: (QTYPE.CNAME, CNAME(str(v))),
    }
    if rtype not in makers:
        return None
    qtype, rdata = makers[rtype](value)
    return RR(label, qtype, rdata=rdata, ttl=60)


def _load(resolver: _SuiteResolver, zonedata: dict[str, list[Any]]) -> None:
    """The suite driver's rules: SPF records double as TXT unless the name has TXT."""
    resolver.records = {}
    resolver.timeouts = set()
    resolver.answering = {}
    for raw_name, entries in zonedata.items():
        name = _key(raw_name)
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        rrs: list[RR] = []
        for entry in entries:
            if entry == "TIMEOUT":
                # As the suite's driver: types listed before TIMEOUT answer, others hang.
                resolver.timeouts.add((name, None))
                resolver.answering[name] = {QTYPE[rr.rtype] for rr in rrs}
                continue
            for rtype, value in entry.items():
                if value == "TIMEOUT":
                    if rtype != "SPF":  # type 99 is never asked (RFC 7208 §3.1)
                        resolver.timeouts.add((name, rtype))
                    continue
                if value == "NONE" or (rtype == "SPF" and has_txt):
                    continue
                rr = _rr(name, rtype, value)
                if rr is not None:
                    rrs.append(rr)
        resolver.records[name] = rrs


def _cases() -> Iterator[Any]:
    tmp = Path(sys.prefix) / "spf-suite-cache"
    tmp.mkdir(exist_ok=True)
    try:
        scenarios = _fetch_suite(tmp)
    except subprocess.CalledProcessError as exc:
        reason = f"pip download pyspf=={PYSPF_VERSION} failed: {exc.stderr!r}"
        yield pytest.param({}, {"error": reason}, id="suite-download")
        return
    for scenario in scenarios:
        for test_id, test in scenario["tests"].items():
            yield pytest.param(scenario["zonedata"], test, id=test_id)


@pytest.fixture(scope="module")
def suite_server() -> Iterator[tuple[ZoneServer, _SuiteResolver]]:
    server = ZoneServer()
    resolver = _SuiteResolver()
    for dns_server in server._servers:
        dns_server.server.resolver = resolver
    server.start()
    try:
        yield server, resolver
    finally:
        server.stop()


@pytest.mark.parametrize(("zonedata", "test"), list(_cases()))
def test_rfc7208_case(
    suite_server: tuple[ZoneServer, _SuiteResolver],
    zonedata: dict[str, list[Any]],
    test: dict[str, Any],
) -> None:
    if "error" in test:
        pytest.fail(test["error"])
    server, resolver = suite_server
    _load(resolver, zonedata)
    outcome = check_host(
        # Long enough for a busy machine to answer; a TIMEOUT name costs this much.
        server.resolver(timeout=1.0),
        client_ip=test["host"],
        mail_from=test.get("mailfrom", ""),
        helo=test.get("helo", ""),
        default_explanation="DEFAULT",
    )
    expected = test["result"]
    allowed = [expected] if isinstance(expected, str) else list(expected)
    assert outcome.result in allowed, (outcome, test.get("description"))
    if "explanation" in test and outcome.result == "fail":
        assert outcome.reason == test["explanation"]
