"""The Redis store, for several forwarders sharing the work.

Counters are one MULTI/EXEC of INCRBY and EXPIRE NX, so concurrent forwarders never lose
a count and keys expire by themselves. SRS aliases use postsrsd's key prefix
(``PostSRSd/``) so that a postsrsd Redis database keeps working.

Entries (not counters) are capped as in SQLite: a sorted set beside them holds each
entry's expiry, and one Lua script drops the expired ones, counts and writes, so
concurrent forwarders cannot pass the cap together. Redis has no per-prefix key count,
hence the index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import redis
import redis.exceptions

from srsfwd.errors import StoreError
from srsfwd.logtext import without_password

#: The sorted set of capped entries (score: expiry), after the store's prefix. Never a
#: key of its own: SRS aliases hold an "@" and the limits' keys start with "limits:".
INDEX_KEY = "srsfwd-entries"

# KEYS: entry, index. ARGV: value, ttl (-1: none), now, expiry score, max entries.
_PUT_CAPPED = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[3])
if not redis.call('ZSCORE', KEYS[2], KEYS[1])
    and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then
  return 0
end
if tonumber(ARGV[2]) >= 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[2], ARGV[4], KEYS[1])
return 1
"""


class RedisStore:
    """A ``KeyValueStore`` in Redis; every key gets ``prefix`` in front.

    At most ``max_entries`` entries (``put``) live at once; counters are not capped.
    """

    def __init__(
        self, client: redis.Redis, *, prefix: str = "", max_entries: int = 1_000_000
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._max_entries = max_entries
        self._put_capped = client.register_script(_PUT_CAPPED)

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "", timeout: float = 2.0, max_entries: int = 1_000_000
    ) -> RedisStore:
        """Connect lazily to the server at ``url`` (``redis://host:port/db``)."""
        try:
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
            )
        except ValueError as exc:
            raise StoreError(f"bad Redis URL {without_password(url)!r}: {exc}") from None
        return cls(client, prefix=prefix, max_entries=max_entries)

    def put(self, key: str, value: str, *, ttl: int | None, now: float) -> None:
        expiry = "+inf" if ttl is None else str(int(now) + ttl)
        keys = [self._prefix + key, self._prefix + INDEX_KEY]
        args = [value, -1 if ttl is None else max(ttl, 1), int(now), expiry, self._max_entries]
        if not self._call("write", self._put_capped, keys=keys, args=args):
            raise StoreError(f"store is full ({self._max_entries} entries)")

    def get(self, key: str, *, now: float) -> str | None:
        value = self._call("read", self._redis.get, self._prefix + key)
        return None if value is None else str(value)

    def get_many(self, keys: Sequence[str], *, now: float) -> list[str | None]:
        values = self._call("read", self._redis.mget, [self._prefix + key for key in keys])
        return [None if value is None else str(value) for value in values]

    def add(self, key: str, amount: int, *, ttl: int, now: float) -> int:
        return self.add_many([(key, amount, ttl)], now=now)[0]

    def add_many(self, counters: Sequence[tuple[str, int, int]], *, now: float) -> list[int]:
        def increment() -> list[int]:
            pipe = self._redis.pipeline(transaction=True)
            for key, amount, ttl in counters:
                pipe.incrby(self._prefix + key, amount)
                pipe.expire(self._prefix + key, ttl, nx=True)
            answers = pipe.execute()
            return [int(value) for value in answers[::2]]

        values: list[int] = self._call("update", increment)
        return values

    def delete(self, key: str) -> bool:
        def remove() -> int:
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(self._prefix + key)
            pipe.zrem(self._prefix + INDEX_KEY, self._prefix + key)
            return int(pipe.execute()[0])

        return int(self._call("delete", remove)) > 0

    def items(self, prefix: str, *, now: float) -> Iterator[tuple[str, str]]:
        def scan() -> list[tuple[str, str]]:
            pattern = _glob_escape(self._prefix + prefix) + "*"
            keys = list(self._redis.scan_iter(match=pattern, count=1000))
            values = self._redis.mget(keys) if keys else []
            start = len(self._prefix)
            pairs = zip(keys, values, strict=True)
            return [(str(k)[start:], str(v)) for k, v in pairs if v is not None]

        return iter(self._call("read", scan))

    def close(self) -> None:
        self._redis.close()

    def _call(self, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except redis.exceptions.RedisError as exc:
            raise StoreError(f"Redis {what} failed: {exc}") from None


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
