"""Sending limits, the outbound spam policy: recipients per sender per hour and day.

A forwarder whose user (or whose forwarded sender) suddenly sends to thousands of
recipients is sending spam: past a limit, the sender's mail goes through the high-risk
pool (``alert``) or is refused for the rest of the UTC day (``block-for-today``) or until
an operator lifts it (``block``). Counts are per fixed UTC hour and day windows, kept in
a ``CounterStore`` shared by every forwarder process.

A "sender" here is a key: whom the message authenticated, else the client's address
(``srsfwd.limits_identity`` decides which; ``[203.0.113.5]`` can never be a mailbox).

The judging is pure (``judge``); ``SendingLimits`` adds the store and the clock. A
message is judged without counting first (``peek``) and counted only once it is being
forwarded (``record``), so deferred and refused mail costs the sender nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from srsfwd.clock import Clock, SystemClock
from srsfwd.config_schema import ConfigTable, Count, check_store_location

LimitAction = Literal["alert", "block-for-today", "block"]
ACTIONS: tuple[LimitAction, ...] = ("alert", "block-for-today", "block")
HOUR = 3600
DAY = 86_400


class CounterStore(Protocol):
    """What the limits need of a store (``srsfwd.stores``): counters and flags that expire."""

    def put(self, key: str, value: str, *, ttl: int | None, now: float) -> None: ...

    def get(self, key: str, *, now: float) -> str | None: ...

    def get_many(self, keys: Sequence[str], *, now: float) -> list[str | None]: ...

    def add(self, key: str, amount: int, *, ttl: int, now: float) -> int: ...

    def add_many(self, counters: Sequence[tuple[str, int, int]], *, now: float) -> list[int]: ...

    def delete(self, key: str) -> bool: ...

    def items(self, prefix: str, *, now: float) -> Iterator[tuple[str, str]]: ...


class LimitsTable(ConfigTable, frozen=True):
    """The schema of the ``[limits]`` table: the limits and where the counts are kept."""

    external_per_hour: Count | None = None
    internal_per_hour: Count | None = None
    per_day: Count | None = None
    per_message: Count | None = None
    action: LimitAction | None = None
    store: str | None = None

    def __post_init__(self) -> None:
        check_store_location("store", self.store)


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """The limits, per sender; 0 switches a limit off. Defaults follow common practice."""

    external_per_hour: int = 500
    internal_per_hour: int = 1000
    per_day: int = 1000
    per_message: int = 500
    action: LimitAction = "block-for-today"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"limit action must be one of {', '.join(ACTIONS)}")
        for name in ("external_per_hour", "internal_per_hour", "per_day", "per_message"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True, slots=True)
class Counts:
    """A sender's recipients in the current windows, this message included."""

    external_this_hour: int = 0
    internal_this_hour: int = 0
    today: int = 0


@dataclass(frozen=True, slots=True)
class LimitVerdict:
    """What the limits say about one message.

    ``outcome`` is ``ok``, ``alert`` (send high-risk and log) or ``refuse``; ``reason`` is a
    reason code (``sender-restricted``, ``too-many-recipients``, ``limit-block``,
    ``limit-alert``) and ``limit`` names the limit that was reached.
    """

    outcome: Literal["ok", "alert", "refuse"]
    reason: str = ""
    limit: str = ""
    detail: str = ""
    blocked_until: float | None = None

    @property
    def refused(self) -> bool:
        return self.outcome == "refuse"


OK = LimitVerdict("ok")


def judge(policy: LimitPolicy, counts: Counts) -> tuple[str, int, int] | None:
    """The first limit that ``counts`` exceed, as (name, count, limit), or None."""
    for name, count, limit in (
        ("external-per-hour", counts.external_this_hour, policy.external_per_hour),
        ("internal-per-hour", counts.internal_this_hour, policy.internal_per_hour),
        ("per-day", counts.today, policy.per_day),
    ):
        if limit and count > limit:
            return name, count, limit
    return None


def end_of_day(now: float) -> float:
    """Midnight UTC after ``now``: when a block-for-today ends."""
    return (now // DAY + 1) * DAY


def until_words(until: float | None) -> str:
    """When a block ends, in words: ``until 2026-12-07 00:00 UTC`` (None: no end)."""
    if until is None:
        return "until an operator lifts it"
    moment = datetime.fromtimestamp(until, tz=UTC)
    return f"until {moment:%Y-%m-%d %H:%M} UTC"


class SendingLimits:
    """Counts each sender's recipients and applies the policy, through a shared store."""

    PREFIX = "limits:"

    def __init__(
        self, store: CounterStore, policy: LimitPolicy, *, clock: Clock | None = None
    ) -> None:
        self._store = store
        self.policy = policy
        self._clock: Clock = clock or SystemClock()

    def peek(self, sender: str, *, internal: int, external: int) -> LimitVerdict:
        """Judge a message from ``sender`` to so many recipients without counting it.

        What ``record`` would say if nothing else were counted in between; ``srsfwd
        decide`` and the first look of a forward use it.

        Raises:
            StoreError: the store could not answer (temporary: defer the message).
        """
        now = self._clock.now()
        who = sender.lower()
        # One round trip (one statement in SQLite) for the block and the three counters.
        counters = self._counters(who, internal=internal, external=external, now=now)
        block, *counts = self._store.get_many(
            [self._block_key(who), *(key for key, _, _ in counters)], now=now
        )
        early = self._refusal_without_counts(block, internal + external, now)
        if early is not None:
            return early
        external_now, internal_now, today = (
            int(count or 0) + amount for count, (_, amount, _) in zip(counts, counters, strict=True)
        )
        return self._judge(Counts(external_now, internal_now, today), now)

    def record(self, sender: str, *, internal: int, external: int) -> LimitVerdict:
        """Count a message from ``sender`` that is being forwarded, and judge it.

        The counters move in one atomic step, so of concurrent messages only those that
        fit under a limit pass. A message that passes a limit is not counted: the counts
        are given back and the block is set, so refused mail costs the sender nothing.

        Raises:
            StoreError: the store could not answer (temporary: defer the message).
        """
        now = self._clock.now()
        who = sender.lower()
        early = self._before_counting(who, internal + external, now)
        if early is not None:
            return early
        return self._count_and_judge(who, internal, external, now)

    def _count_and_judge(self, who: str, internal: int, external: int, now: float) -> LimitVerdict:
        counters = self._counters(who, internal=internal, external=external, now=now)
        # One round trip (one UPSERT statement in SQLite) for the three counters.
        external_now, internal_now, today = self._store.add_many(counters, now=now)
        verdict = self._judge(Counts(external_now, internal_now, today), now)
        if verdict.refused:
            self._store.add_many([(k, -n, ttl) for k, n, ttl in counters], now=now)
            self.block(who, verdict)
        return verdict

    def block(self, sender: str, verdict: LimitVerdict) -> None:
        """Block ``sender`` as a ``limit-block`` verdict says (other verdicts: nothing).

        Raises:
            StoreError: the store could not answer.
        """
        if verdict.reason != "limit-block":
            return
        now = self._clock.now()
        until = None if verdict.blocked_until is None else int(verdict.blocked_until - now)
        block = f"{self.policy.action}:{verdict.limit}: {verdict.detail}"
        self._store.put(self._block_key(sender.lower()), block, ttl=until, now=now)

    def give_back(self, sender: str, *, internal: int, external: int) -> None:
        """Uncount a recorded message that was not sent after all (the hand-off failed).

        Raises:
            StoreError: the store could not answer.
        """
        now = self._clock.now()
        counters = self._counters(sender.lower(), internal=internal, external=external, now=now)
        self._store.add_many([(k, -n, ttl) for k, n, ttl in counters], now=now)

    def _before_counting(self, who: str, total: int, now: float) -> LimitVerdict | None:
        """The refusal that needs no counts: a blocked sender, too many recipients."""
        blocked = self._store.get(self._block_key(who), now=now)
        return self._refusal_without_counts(blocked, total, now)

    def _refusal_without_counts(
        self, blocked: str | None, total: int, now: float
    ) -> LimitVerdict | None:
        """A blocked sender (``blocked``: its block entry) or too many recipients."""
        if blocked is not None:
            until = None if blocked.startswith("block:") else end_of_day(now)
            return LimitVerdict(
                "refuse",
                "sender-restricted",
                detail=f"blocked {until_words(until)}",
                blocked_until=until,
            )
        if self.policy.per_message and total > self.policy.per_message:
            return LimitVerdict(
                "refuse",
                "too-many-recipients",
                "per-message",
                f"{total} recipients, over the limit of {self.policy.per_message} per message",
            )
        return None

    def _judge(self, counts: Counts, now: float) -> LimitVerdict:
        exceeded = judge(self.policy, counts)
        if exceeded is None:
            return OK
        name, count, limit = exceeded
        detail = f"{count} recipients, over the {name} limit of {limit}"
        if self.policy.action == "alert":
            return LimitVerdict("alert", "limit-alert", name, detail)
        until = end_of_day(now) if self.policy.action == "block-for-today" else None
        detail = f"{detail}; blocked {until_words(until)}"
        return LimitVerdict("refuse", "limit-block", name, detail, blocked_until=until)

    def _counters(
        self, who: str, *, internal: int, external: int, now: float
    ) -> list[tuple[str, int, int]]:
        hour, day = int(now // HOUR), int(now // DAY)
        return [
            (f"{self.PREFIX}ext:{hour}:{who}", external, HOUR),
            (f"{self.PREFIX}int:{hour}:{who}", internal, HOUR),
            (f"{self.PREFIX}day:{day}:{who}", internal + external, DAY),
        ]

    def _count(self, key: str, now: float) -> int:
        value = self._store.get(key, now=now)
        return int(value) if value else 0

    def _block_key(self, who: str) -> str:
        return f"{self.PREFIX}blocked:{who}"

    def unblock(self, sender: str) -> bool:
        """Lift a block on ``sender`` and start its counts over; True if it was blocked.

        Without the fresh start, the next message would pass the same limit again.
        """
        who = sender.lower()
        now = self._clock.now()
        for key, _, _ in self._counters(who, internal=0, external=0, now=now):
            self._store.delete(key)
        return self._store.delete(self._block_key(who))

    def status(self, sender: str) -> tuple[Counts, str | None]:
        """The sender's counts in the current windows and its block, if any."""
        now = self._clock.now()
        who = sender.lower()
        hour, day = int(now // HOUR), int(now // DAY)
        counts = Counts(
            self._count(f"{self.PREFIX}ext:{hour}:{who}", now),
            self._count(f"{self.PREFIX}int:{hour}:{who}", now),
            self._count(f"{self.PREFIX}day:{day}:{who}", now),
        )
        return counts, self._store.get(self._block_key(who), now=now)

    def blocked(self) -> list[tuple[str, str]]:
        """Every blocked sender with the reason."""
        prefix = self._block_key("")
        now = self._clock.now()
        return sorted(
            (key[len(prefix) :], value) for key, value in self._store.items(prefix, now=now)
        )

    def busiest(self, count: int = 20) -> list[tuple[str, int]]:
        """The senders with the most recipients today, most first."""
        now = self._clock.now()
        prefix = f"{self.PREFIX}day:{int(now // DAY)}:"
        found = [
            (key[len(prefix) :], int(value)) for key, value in self._store.items(prefix, now=now)
        ]
        return sorted(found, key=lambda item: (-item[1], item[0]))[:count]
