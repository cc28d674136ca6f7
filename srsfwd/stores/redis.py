"""The Redis store, for several forwarders sharing the work.

Counters are one MULTI/EXEC of INCRBY and EXPIRE NX, so concurrent forwarders never lose
a count and keys expire by themselves. SRS aliases use postsrsd's key prefix
(``PostSRSd/``) so that a postsrsd Redis database keeps working.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import redis
import redis.exceptions

from srsfwd.errors import StoreError


class RedisStore:
    """A ``KeyValueStore`` in Redis; every key gets ``prefix`` in front."""

    def __init__(self, client: redis.Redis, *, prefix: str = "") -> None:
        self._redis = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "", timeout: float = 2.0) -> RedisStore:
        """Connect lazily to the server at ``url`` (``redis://host:port/db``)."""
        try:
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True
            )
        except ValueError as exc:
            raise StoreError(f"bad Redis URL {url!r}: {exc}") from None
        return cls(client, prefix=prefix)

    def put(self, key: str, value: str, *, ttl: int | None, now: float) -> None:
        self._call("write", self._redis.set, self._prefix + key, value, ex=ttl)

    def get(self, key: str, *, now: float) -> str | None:
        value = self._call("read", self._redis.get, self._prefix + key)
        return None if value is None else str(value)

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
        return int(self._call("delete", self._redis.delete, self._prefix + key)) > 0

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
