"""Key-value stores with expiry: SRS aliases now, sending limits later."""

from __future__ import annotations

from typing import Protocol


class KeyValueStore(Protocol):
    """A string store whose entries expire; shared by several processes at once."""

    def put(self, key: str, value: str, *, ttl: int, now: float) -> None:
        """Store ``value`` under ``key`` until ``now + ttl`` seconds."""

    def get(self, key: str, *, now: float) -> str | None:
        """The value under ``key``, or None when it is missing or expired."""
