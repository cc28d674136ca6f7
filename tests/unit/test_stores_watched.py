"""The lookup daemon's alias store says in the log when it stops answering and when it
answers again: one line each, not one per lookup, without the store's password.

A real redis-server killed mid-run is in tests/unit/servers/test_lookup_faults.py; here
an in-memory store that fails on demand drives the state changes and the clock.
"""

from __future__ import annotations

import logging

import pytest

from srsfwd.clock import FrozenClock
from srsfwd.errors import StoreError
from srsfwd.stores.watched import WatchedStore

PASSWORD = "s3cret-pw"
WHERE = f"redis://:{PASSWORD}@127.0.0.1:6379/0"
QUIET = 60.0


class FlakyStore:
    """A dict that raises ``StoreError`` (with its URL, password and all) while down."""

    def __init__(self) -> None:
        self.down = False
        self.entries: dict[str, str] = {}

    def _check(self) -> None:
        if self.down:
            raise StoreError(f"cannot reach {WHERE}:\nconnection refused")

    def get(self, key: str, *, now: float) -> str | None:
        self._check()
        return self.entries.get(key)

    def put(self, key: str, value: str, *, ttl: int, now: float) -> None:
        self._check()
        self.entries[key] = value


@pytest.fixture
def flaky() -> FlakyStore:
    return FlakyStore()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(1000.0)


@pytest.fixture
def watched(flaky: FlakyStore, clock: FrozenClock) -> WatchedStore:
    return WatchedStore(flaky, WHERE, clock=clock.now, quiet_seconds=QUIET)


def failing_calls(watched: WatchedStore, count: int) -> None:
    for _ in range(count):
        with pytest.raises(StoreError):
            watched.get("K@alias", now=0)


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage()) for r in caplog.records if r.name == "srsfwd.stores.watched"
    ]


def test_a_store_that_answers_logs_nothing(
    watched: WatchedStore, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        watched.put("K@alias", "alice@example.org", ttl=60, now=0)
        assert watched.get("K@alias", now=0) == "alice@example.org"
    assert lines(caplog) == []


def test_many_failing_calls_log_one_warning(
    watched: WatchedStore, flaky: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    flaky.down = True
    with caplog.at_level(logging.INFO):
        failing_calls(watched, 50)
        with pytest.raises(StoreError):
            watched.put("K@alias", "alice@example.org", ttl=60, now=0)
    assert [level for level, _ in lines(caplog)] == [logging.WARNING]


def test_the_failure_still_reaches_the_caller(watched: WatchedStore, flaky: FlakyStore) -> None:
    flaky.down = True
    with pytest.raises(StoreError, match="connection refused"):
        watched.get("K@alias", now=0)


def test_the_first_answer_after_a_failure_logs_one_info_line(
    watched: WatchedStore, flaky: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    flaky.down = True
    failing_calls(watched, 3)
    flaky.down = False
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for _ in range(5):
            watched.get("K@alias", now=0)
    assert lines(caplog) == [
        (logging.INFO, "SRS alias store redis://:(redacted)@127.0.0.1:6379/0 answers again")
    ]


def test_the_warning_is_one_line_without_the_password(
    watched: WatchedStore, flaky: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    flaky.down = True
    with caplog.at_level(logging.INFO):
        failing_calls(watched, 1)
    ((_, line),) = lines(caplog)
    assert PASSWORD not in line
    assert "redis://:(redacted)@127.0.0.1:6379/0" in line
    assert "\n" not in line and "connection refused" in line


def test_a_store_failing_over_and_over_warns_once_per_quiet_period(
    watched: WatchedStore, flaky: FlakyStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        for _ in range(20):
            flaky.down = True
            failing_calls(watched, 1)
            flaky.down = False
            watched.get("K@alias", now=0)
            clock.advance(1)
    assert [level for level, _ in lines(caplog)] == [logging.WARNING, logging.INFO]


def test_a_failure_within_the_quiet_period_is_announced_after_it(
    watched: WatchedStore, flaky: FlakyStore, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    flaky.down = True
    failing_calls(watched, 1)
    flaky.down = False
    watched.get("K@alias", now=0)
    flaky.down = True
    caplog.clear()
    with caplog.at_level(logging.INFO):
        failing_calls(watched, 1)  # within the quiet period: not announced yet
        clock.advance(QUIET)
        failing_calls(watched, 1)  # still failing after it: announced now
    assert [level for level, _ in lines(caplog)] == [logging.WARNING]
