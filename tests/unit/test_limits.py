"""Sending limits: counts per sender and window, the three actions, operators' tools."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd import FrozenClock, StoreError
from srsfwd.cli import cli
from srsfwd.limits import HOUR, Counts, LimitPolicy, SendingLimits, end_of_day
from srsfwd.stores import open_store
from tests.redis_server import RedisServer, redis_server

NOON = 1_700_049_600  # 2023-11-15 12:00 UTC


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.integration)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        return server.url
    return str(tmp_path / "limits.sqlite")


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOON)


def make(where: str, clock: FrozenClock, **policy: object) -> SendingLimits:
    store = open_store(where, prefix=f"t{clock.now()}:{id(policy)}:")
    return SendingLimits(store, LimitPolicy(**policy), clock=clock)  # type: ignore[arg-type]


def test_under_the_limits_is_ok(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock)
    assert limits.record("a@x.example", internal=10, external=10).outcome == "ok"


def test_external_hourly_limit(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, external_per_hour=5, action="alert")
    assert limits.record("a@x.example", internal=0, external=5).outcome == "ok"
    verdict = limits.record("a@x.example", internal=0, external=1)
    assert (verdict.outcome, verdict.reason, verdict.limit) == (
        "alert",
        "limit-alert",
        "external-per-hour",
    )


def test_internal_hourly_limit(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, internal_per_hour=3, action="alert")
    assert limits.record("a@x.example", internal=4, external=0).limit == "internal-per-hour"


def test_daily_limit_counts_both(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=5, action="alert")
    limits.record("a@x.example", internal=3, external=0)
    assert limits.record("a@x.example", internal=0, external=3).limit == "per-day"


def test_hour_window_starts_again(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, external_per_hour=5, per_day=0, action="alert")
    limits.record("a@x.example", internal=0, external=5)
    clock.advance(HOUR)
    assert limits.record("a@x.example", internal=0, external=5).outcome == "ok"


def test_senders_are_counted_apart_and_without_case(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, external_per_hour=5, action="alert")
    limits.record("A@X.example", internal=0, external=5)
    assert limits.record("b@x.example", internal=0, external=5).outcome == "ok"
    assert limits.record("a@x.EXAMPLE", internal=0, external=1).outcome == "alert"


def test_too_many_recipients_in_one_message_is_refused(where: str, clock: FrozenClock) -> None:
    verdict = make(where, clock, per_message=3).record("a@x.example", internal=2, external=2)
    assert (verdict.outcome, verdict.reason) == ("refuse", "too-many-recipients")


def test_block_for_today_refuses_until_midnight_utc(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, external_per_hour=1, action="block-for-today")
    first = limits.record("a@x.example", internal=0, external=2)
    assert (first.outcome, first.reason, first.blocked_until) == (
        "refuse",
        "limit-block",
        end_of_day(NOON),
    )
    clock.advance(2 * HOUR)
    assert limits.record("a@x.example", internal=0, external=1).reason == "sender-restricted"


def test_block_stays_until_an_operator_lifts_it(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=1, action="block")
    limits.record("a@x.example", internal=2, external=0)
    clock.advance(3 * 86_400)
    assert limits.record("a@x.example", internal=1, external=0).reason == "sender-restricted"
    assert limits.unblock("a@x.example") is True
    assert limits.record("a@x.example", internal=1, external=0).outcome == "ok"


def test_blocked_and_busiest_lists(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=10, action="block")
    limits.record("busy@x.example", internal=8, external=0)
    limits.record("spammer@x.example", internal=20, external=0)
    limits.record("busier@x.example", internal=9, external=0)
    assert [who for who, _ in limits.blocked()] == ["spammer@x.example"]
    assert limits.busiest()[:2] == [("busier@x.example", 9), ("busy@x.example", 8)]


def test_zero_switches_a_limit_off(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, external_per_hour=0, per_day=0, per_message=0)
    assert limits.record("a@x.example", internal=0, external=10_000).outcome == "ok"


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="action"):
        LimitPolicy(action="shrug")  # type: ignore[arg-type]


@pytest.mark.integration
def test_store_down_is_a_temporary_error(tmp_path: Path, clock: FrozenClock) -> None:
    with redis_server(tmp_path) as server:
        limits = make(server.url, clock)
        server.stop()
        with pytest.raises(StoreError) as caught:
            limits.record("a@x.example", internal=1, external=1)
        assert caught.value.temporary


def test_limits_commands(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\naction = "block"\n')
    runner = CliRunner()
    from srsfwd.app import build_limits
    from srsfwd.config import load_config

    build_limits(load_config(config)).record("x@y.example", internal=3, external=0)
    shown = runner.invoke(cli, ["limits", "show", "--config", str(config)])
    assert "x@y.example" in shown.stdout and "blocked senders: 1" in shown.stdout
    one = runner.invoke(cli, ["limits", "show", "--config", str(config), "x@y.example"])
    assert re.search(r"^today \(UTC\) +0 +2$", one.stdout, re.M)
    assert "until an operator lifts it" in one.stdout
    lifted = runner.invoke(cli, ["limits", "unblock", "--config", str(config), "x@y.example"])
    assert lifted.stdout == "x@y.example: unblocked\n"


def test_bad_limits_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('[limits]\naction = "explode"\n')
    result = CliRunner().invoke(cli, ["limits", "show", "--config", str(config)])
    assert result.exit_code == 1 and "[limits]" in result.stderr


def test_a_peek_counts_nothing(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=5)
    assert limits.peek("a@x.example", internal=0, external=4).outcome == "ok"
    assert limits.status("a@x.example")[0].today == 0


def test_a_peek_shows_the_verdict_the_message_would_get(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=5)
    limits.record("a@x.example", internal=0, external=4)
    verdict = limits.peek("a@x.example", internal=0, external=2)
    assert (verdict.outcome, verdict.reason) == ("refuse", "limit-block")
    assert limits.blocked() == []


def test_a_message_refused_by_a_limit_is_not_counted(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=5)
    limits.record("a@x.example", internal=0, external=4)
    assert limits.record("a@x.example", internal=0, external=2).refused
    assert limits.status("a@x.example")[0].today == 4


def test_of_messages_peeked_together_only_those_under_the_limit_pass(
    where: str, clock: FrozenClock
) -> None:
    limits = make(where, clock, per_day=5)
    peeks = [limits.peek("a@x.example", internal=0, external=3) for _ in range(2)]
    assert [p.outcome for p in peeks] == ["ok", "ok"]
    records = [limits.record("a@x.example", internal=0, external=3) for _ in range(2)]
    assert [r.outcome for r in records] == ["ok", "refuse"]


def test_giving_back_uncounts_a_message(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock)
    limits.record("a@x.example", internal=1, external=2)
    limits.give_back("a@x.example", internal=1, external=2)
    assert limits.status("a@x.example")[0] == Counts()


def test_unblock_lets_the_next_message_through(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=2, action="block-for-today")
    limits.record("a@x.example", internal=0, external=2)
    assert limits.record("a@x.example", internal=0, external=1).refused
    assert limits.unblock("a@x.example") is True
    assert limits.record("a@x.example", internal=0, external=1).outcome == "ok"


def test_a_block_for_today_says_until_when_in_words(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=1, action="block-for-today")
    first = limits.record("a@x.example", internal=0, external=2)
    assert first.detail.endswith("blocked until 2023-11-16 00:00 UTC")
    again = limits.record("a@x.example", internal=0, external=1)
    assert again.detail == "blocked until 2023-11-16 00:00 UTC"


def test_a_block_says_it_lasts_until_an_operator_lifts_it(where: str, clock: FrozenClock) -> None:
    limits = make(where, clock, per_day=1, action="block")
    limits.record("a@x.example", internal=0, external=2)
    again = limits.record("a@x.example", internal=0, external=1)
    assert again.detail == "blocked until an operator lifts it"


def test_limits_show_never_creates_a_store(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\n')
    for args in (["limits", "show"], ["limits", "show", "x@y.example"]):
        shown = CliRunner().invoke(cli, [*args, "--config", str(config)])
        assert shown.exit_code == 0, shown.output
    assert not (tmp_path / "state").exists()


def test_concurrent_messages_cannot_all_pass_a_limit(where: str, clock: FrozenClock) -> None:
    def opened() -> SendingLimits:  # one connection per thread, as in several processes
        store = open_store(where, prefix="concurrent:")
        return SendingLimits(store, LimitPolicy(per_day=10), clock=clock)

    limits = [opened() for _ in range(4)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def send(mine: SendingLimits) -> None:
        for _ in range(10):
            outcome = mine.record("a@x.example", internal=0, external=1).outcome
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=send, args=(one,)) for one in limits]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 10
    assert opened().status("a@x.example")[0].today == 10


def test_limits_commands_take_a_client_address_key(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\naction = "block"\n')
    runner = CliRunner()
    from srsfwd.app import build_limits
    from srsfwd.config import load_config

    build_limits(load_config(config)).record("[2001:db8:1:2::/64]", internal=3, external=0)
    shown = runner.invoke(cli, ["limits", "show", "--config", str(config)])
    assert "[2001:db8:1:2::/64]" in shown.stdout and "blocked senders: 1" in shown.stdout
    one = runner.invoke(cli, ["limits", "show", "--config", str(config), "2001:db8:1:2::77"])
    assert one.stdout.startswith("sender [2001:db8:1:2::/64]: blocked")
    args = ["limits", "unblock", "--config", str(config), "[2001:db8:1:2::/64]"]
    assert runner.invoke(cli, args).stdout == "[2001:db8:1:2::/64]: unblocked\n"


def test_limits_commands_refuse_what_is_neither_an_address_nor_an_ip(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\n')
    refused = CliRunner().invoke(cli, ["limits", "unblock", "--config", str(config), "alice"])
    assert refused.exit_code == 2
    assert "neither a mail address nor an IP address" in refused.stderr
