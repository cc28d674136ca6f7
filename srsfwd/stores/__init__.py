"""Key-value stores with expiry, shared by several processes: SRS aliases, sending limits.

Two implementations behind one interface: SQLite (``srsfwd.stores.sqlite``, the default,
one file) and Redis (``srsfwd.stores.redis``, for several forwarders sharing the work).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from srsfwd.errors import ConfigError
from srsfwd.logtext import without_password


class KeyValueStore(Protocol):
    """A string store whose entries expire. Every method may raise ``StoreError``."""

    def put(self, key: str, value: str, *, ttl: int | None, now: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (None: until deleted)."""

    def get(self, key: str, *, now: float) -> str | None:
        """The value under ``key``, or None when it is missing or expired."""

    def get_many(self, keys: Sequence[str], *, now: float) -> list[str | None]:
        """``get`` for several keys at once, in one round trip, in the order given."""

    def add(self, key: str, amount: int, *, ttl: int, now: float) -> int:
        """Add ``amount`` to the counter ``key`` atomically and return its new value.

        A counter that does not exist (or has expired) starts at 0 and lives ``ttl``
        seconds from now; adding does not extend it.
        """

    def add_many(self, counters: Sequence[tuple[str, int, int]], *, now: float) -> list[int]:
        """``add`` for several ``(key, amount, ttl)`` at once, atomically, in one round trip."""

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was there."""

    def items(self, prefix: str, *, now: float) -> Iterator[tuple[str, str]]:
        """Every live entry whose key starts with ``prefix``."""

    def close(self) -> None:
        """Let go of the connection."""


_REDIS_LOCATIONS = ("redis://", "rediss://", "unix://", "redis:")
_URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_redis(where: str) -> bool:
    """True when ``where`` names a Redis store (a server to wait for), not an SQLite file."""
    return where.startswith(_REDIS_LOCATIONS)


def check_location(where: str) -> None:
    """Refuse a URL that names no store we have: it would otherwise become the name of an
    SQLite file (``mysql://x`` a file ``x`` in a folder ``mysql:``).

    Raises:
        ConfigError: a URL whose scheme is not redis, rediss or unix.
    """
    if _URL_SCHEME.match(where) and not is_redis(where):
        raise ConfigError(
            f"{without_password(where)!r} is not an SQLite path or a redis://, rediss:// or"
            " unix:// URL"
        )


def open_store(
    where: str,
    *,
    base: Path | None = None,
    prefix: str = "",
    max_entries: int = 1_000_000,
    create: bool = True,
) -> KeyValueStore:
    """Open the store that ``where`` names.

    ``where`` is a Redis URL (``redis://host:port/db``, ``unix:///path``; postsrsd's
    ``redis:host:port`` too) or an SQLite file (``sqlite:path`` or a plain path, relative
    to ``base``). ``prefix`` goes before every Redis key; SQLite files are not shared
    between uses, so it needs none. With ``create=False`` a missing SQLite file (or
    folder) is not created: the store reads as empty and keeps nothing.

    Raises:
        ConfigError: a URL that names no store we have, or a Redis URL without the redis
            package installed.
        StoreError: the store cannot be opened.
    """
    check_location(where)
    if is_redis(where):
        try:
            from srsfwd.stores.redis import RedisStore  # optional dependency
        except ImportError:
            raise ConfigError("a Redis store needs: pip install 'srsfwd[redis]'") from None
        url = where
        if where.startswith("redis:") and not where.startswith("redis://"):
            url = "redis://" + where.removeprefix("redis:")  # postsrsd's redis:host:port
        return RedisStore.from_url(url, prefix=prefix, max_entries=max_entries)
    from srsfwd.stores.sqlite import SQLiteStore  # keeps "import srsfwd" light

    path = Path(where.removeprefix("sqlite:")).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if not create and not path.exists():
        return SQLiteStore.empty()
    return SQLiteStore.open(path, max_entries=max_entries)
