"""The resolver in an inline attempt (``srsfwd.inline``): answers from the cache only."""

from __future__ import annotations

import threading

import pytest

from srsfwd import inline
from srsfwd.dns.resolver import Resolver
from tests.dnsserver import ZoneServer

ZONE = """\
$ORIGIN example.com.
$TTL 300
@               IN TXT "v=spf1 -all"
@               IN A   192.0.2.1
other           IN TXT "other"
"""


def test_a_cached_answer_is_given_in_an_attempt(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    resolver = dns_server.resolver()
    resolver.txt("example.com")
    with inline.attempt():
        assert resolver.txt("example.com") == [b"v=spf1 -all"]


def test_an_uncached_question_ends_the_attempt_before_any_query(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    resolver = dns_server.resolver()
    with inline.attempt() as attempt, pytest.raises(inline.NotInline):
        resolver.txt("example.com")
    assert dns_server.queries == []
    assert attempt.missed == "TXT example.com."


def test_a_miss_stores_no_answer_not_even_a_negative_one(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    resolver = dns_server.resolver()
    with inline.attempt(), pytest.raises(inline.NotInline):
        resolver.txt("other.example.com")
    assert resolver.txt("other.example.com") == [b"other"]


def test_an_attempt_that_missed_remembers_no_derived_value(dns_server: ZoneServer) -> None:
    # What pyspf computes after swallowing a miss must not outlive the attempt.
    dns_server.load(ZONE)
    resolver = dns_server.resolver()
    _, until = resolver.records_until("example.com", "TXT")
    with inline.attempt():
        try:
            resolver.txt("other.example.com")
        except inline.NotInline:
            pass  # swallowed, as a library's bare except would
        resolver.remember(("spf", "x"), "pass", until)
    assert resolver.derived(("spf", "x")) is None


def test_a_zone_file_answers_an_attempt_as_if_cached() -> None:
    resolver = Resolver.from_zone_text(ZONE)
    with inline.attempt() as attempt:
        assert resolver.addresses("example.com") == ["192.0.2.1"]
    assert not attempt.missed


def test_other_threads_keep_asking_the_network_during_an_attempt(
    dns_server: ZoneServer,
) -> None:
    dns_server.load(ZONE)
    resolver = dns_server.resolver()
    found: list[list[bytes]] = []
    with inline.attempt():
        worker = threading.Thread(target=lambda: found.append(resolver.txt("example.com")))
        worker.start()
        worker.join()
    assert found == [[b"v=spf1 -all"]]


def test_a_committed_attempt_asks_the_network(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    resolver = dns_server.resolver()
    with inline.attempt():
        inline.commit()
        assert resolver.txt("example.com") == [b"v=spf1 -all"]


def test_commit_stops_an_attempt_whose_miss_was_swallowed(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    resolver = dns_server.resolver()
    with inline.attempt():
        try:
            resolver.txt("example.com")
        except inline.NotInline:
            pass
        with pytest.raises(inline.NotInline):
            inline.commit()


def test_a_thread_without_an_attempt_is_never_stopped(dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    inline.commit()
    assert dns_server.resolver().txt("example.com") == [b"v=spf1 -all"]
