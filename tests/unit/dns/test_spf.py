"""The pyspf adapter: DNS through the bound Resolver only, per thread, pyspf's own otherwise."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import spf

import srsfwd.dns.spf as adapter
from srsfwd.clock import FrozenClock
from srsfwd.dns.resolver import Resolver
from srsfwd.dns.spf import check_host
from tests.dnsserver import ZoneServer


def zone(tmp_path: Path, name: str, policy: str) -> Resolver:
    path = tmp_path / name
    path.write_text(
        f'sender.example. 300 IN TXT "{policy}"\n'
        "sender.example. 300 IN MX 10 mx.sender.example.\n"
        "mx.sender.example. 300 IN A 192.0.2.25\n"
        "mx.sender.example. 300 IN AAAA 2001:db8::25\n"
        "25.2.0.192.in-addr.arpa. 300 IN PTR mx.sender.example.\n"
    )
    return Resolver.from_zone_file(path)


@pytest.mark.parametrize(
    ("policy", "ip", "result"),
    [
        ("v=spf1 mx -all", "192.0.2.25", "pass"),
        ("v=spf1 mx -all", "2001:db8::25", "pass"),
        ("v=spf1 mx -all", "192.0.2.26", "fail"),
        ("v=spf1 ptr -all", "192.0.2.25", "pass"),
        ("v=spf1 a:%{p} -all", "192.0.2.25", "pass"),  # %{p}: the validated PTR name
        ("v=spf1 exists:%{i}.nowhere.example ?all", "192.0.2.25", "neutral"),
        ("v=spf1 include:nowhere.example -all", "192.0.2.25", "permerror"),
    ],
)
def test_mechanisms_over_a_zone(tmp_path: Path, policy: str, ip: str, result: str) -> None:
    outcome = check_host(
        zone(tmp_path, "z", policy),
        client_ip=ip,
        mail_from="a@sender.example",
        helo="mx.sender.example",
    )
    assert outcome.result == result, outcome


@pytest.mark.parametrize("ip", ["", "garbage", "999.1.1.1", "192.0.2.1.5", "::zz"])
def test_garbage_ip_is_permerror(tmp_path: Path, ip: str) -> None:
    outcome = check_host(
        zone(tmp_path, "z", "v=spf1 -all"), client_ip=ip, mail_from="a@sender.example", helo="h"
    )
    assert outcome.result == "permerror"
    assert "not an IP address" in outcome.reason


def test_null_sender_checks_helo(tmp_path: Path) -> None:
    outcome = check_host(
        zone(tmp_path, "z", "v=spf1 mx -all"),
        client_ip="192.0.2.25",
        mail_from="",
        helo="sender.example",
    )
    assert (outcome.result, outcome.identity) == ("pass", "postmaster@sender.example")


def test_each_thread_asks_its_own_resolver(tmp_path: Path) -> None:
    passing = zone(tmp_path, "a", "v=spf1 +all")
    failing = zone(tmp_path, "b", "v=spf1 -all")
    results: dict[str, list[str]] = {"pass": [], "fail": []}

    def run(resolver: Resolver, key: str) -> None:
        for _ in range(50):
            results[key].append(
                check_host(
                    resolver, client_ip="192.0.2.1", mail_from="a@sender.example", helo="h"
                ).result
            )

    threads = [
        threading.Thread(target=run, args=(passing, "pass")),
        threading.Thread(target=run, args=(failing, "fail")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results["pass"]) == {"pass"}
    assert set(results["fail"]) == {"fail"}


def test_direct_pyspf_users_keep_pyspf_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    def fake(name: str, qtype: str, *args: Any, **kwargs: Any) -> list[Any]:
        asked.append((name, qtype))
        return [((name, "TXT"), (b"v=spf1 +all",))]

    monkeypatch.setattr(adapter, "_pyspf_lookup", fake)
    assert spf.query(i="192.0.2.1", s="a@direct.example", h="h").check()[0] == "pass"
    assert asked == [("direct.example", "TXT")]


KEPT_ZONE = """\
$ORIGIN sender.example.
@          60 IN TXT "v=spf1 include:_spf.sender.example -all"
_spf      300 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
"""


def kept_check(
    resolver: Resolver, *, ip: str = "192.0.2.1", mail_from: str = "a@sender.example"
) -> str:
    return check_host(resolver, client_ip=ip, mail_from=mail_from, helo="h").result


@pytest.fixture
def evaluations(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """One entry per pyspf evaluation (``spf.query.check`` call)."""
    calls: list[object] = []
    check = spf.query.check

    def counted(self: spf.query, *args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return check(self, *args, **kwargs)

    monkeypatch.setattr(spf.query, "check", counted)
    return calls


def test_outcome_is_kept_while_its_answers_are_cached(
    dns_server: ZoneServer, evaluations: list[object]
) -> None:
    dns_server.load(KEPT_ZONE)
    resolver = dns_server.resolver(clock=FrozenClock(1_000_000))
    assert [kept_check(resolver) for _ in range(3)] == ["pass"] * 3
    assert len(evaluations) == 1


def test_outcome_expires_with_the_first_answer_it_read(dns_server: ZoneServer) -> None:
    dns_server.load(KEPT_ZONE)
    clock = FrozenClock(1_000_000)
    resolver = dns_server.resolver(clock=clock)
    assert kept_check(resolver) == "pass"
    dns_server.clear()
    dns_server.load(KEPT_ZONE.replace("include:_spf.sender.example -all", "?all"))
    clock.advance(59)
    assert kept_check(resolver) == "pass"
    clock.advance(2)  # the top record's TTL (60) is over, the include's (300) is not
    assert kept_check(resolver) == "neutral"


def test_outcome_is_kept_per_client_and_sender(dns_server: ZoneServer) -> None:
    dns_server.load(KEPT_ZONE.replace("include:_spf.sender.example", "exists:%{l}.sender.example"))
    dns_server.load("$ORIGIN sender.example.\nb 300 IN A 127.0.0.2\n")
    resolver = dns_server.resolver(clock=FrozenClock(1_000_000))
    assert kept_check(resolver, mail_from="a@sender.example") == "fail"
    assert kept_check(resolver, mail_from="b@sender.example") == "pass"
    assert kept_check(resolver, mail_from="b@sender.example", ip="198.51.100.1") == "pass"
    assert kept_check(resolver, mail_from="a@sender.example") == "fail"


def test_fail_is_evaluated_again_each_time(
    dns_server: ZoneServer, evaluations: list[object]
) -> None:
    dns_server.load(KEPT_ZONE)
    resolver = dns_server.resolver(clock=FrozenClock(1_000_000))
    assert [kept_check(resolver, ip="198.51.100.1") for _ in range(2)] == ["fail"] * 2
    assert len(evaluations) == 2


def test_temperror_is_not_kept(dns_server: ZoneServer) -> None:
    dns_server.load(KEPT_ZONE)
    resolver = dns_server.resolver(clock=FrozenClock(1_000_000))
    dns_server.mode = "servfail"
    assert kept_check(resolver) == "temperror"
    dns_server.mode = "answer"
    assert kept_check(resolver) == "pass"


def test_outcome_that_met_a_dns_failure_is_not_kept(
    dns_server: ZoneServer, evaluations: list[object]
) -> None:
    # pyspf ignores a failed exp= look-up and still passes; that pass is not kept.
    dns_server.load(KEPT_ZONE.replace("-all", "-all exp=why.sender.example"))
    dns_server.failing.add("why.sender.example.")
    resolver = dns_server.resolver(clock=FrozenClock(1_000_000))
    assert [kept_check(resolver) for _ in range(2)] == ["pass"] * 2
    assert len(evaluations) == 2
