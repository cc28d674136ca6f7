"""The pyspf adapter: DNS through the bound Resolver only, per thread, pyspf's own otherwise."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import spf

import srsfwd.dns.spf as adapter
from srsfwd.dns.resolver import Resolver
from srsfwd.dns.spf import check_host


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
    outcome = check_host(zone(tmp_path, "z", policy), client_ip=ip,
                         mail_from="a@sender.example", helo="mx.sender.example")
    assert outcome.result == result, outcome


@pytest.mark.parametrize("ip", ["", "garbage", "999.1.1.1", "192.0.2.1.5", "::zz"])
def test_garbage_ip_is_permerror(tmp_path: Path, ip: str) -> None:
    outcome = check_host(zone(tmp_path, "z", "v=spf1 -all"), client_ip=ip,
                         mail_from="a@sender.example", helo="h")
    assert outcome.result == "permerror"
    assert "not an IP address" in outcome.reason


def test_null_sender_checks_helo(tmp_path: Path) -> None:
    outcome = check_host(zone(tmp_path, "z", "v=spf1 mx -all"), client_ip="192.0.2.25",
                         mail_from="", helo="sender.example")
    assert (outcome.result, outcome.identity) == ("pass", "postmaster@sender.example")


def test_each_thread_asks_its_own_resolver(tmp_path: Path) -> None:
    passing = zone(tmp_path, "a", "v=spf1 +all")
    failing = zone(tmp_path, "b", "v=spf1 -all")
    results: dict[str, list[str]] = {"pass": [], "fail": []}

    def run(resolver: Resolver, key: str) -> None:
        for _ in range(50):
            results[key].append(check_host(resolver, client_ip="192.0.2.1",
                                           mail_from="a@sender.example", helo="h").result)

    threads = [threading.Thread(target=run, args=(passing, "pass")),
               threading.Thread(target=run, args=(failing, "fail"))]
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
