"""The SQLite store: one file, safe with several processes (WAL, busy timeout).

Within one process, writers of the same file queue on a ``threading.Lock`` before they
ask SQLite for its write lock: SQLite's busy handler sleeps and polls (1, 2, 5, 10 ms...),
so a thread that lost the race would sleep milliseconds for a lock held microseconds,
while a Python lock is handed over as soon as it is released. The busy handler is then
met only across processes. Reads (WAL) take no lock.

The table is postsrsd 2.x's (``kv(k, v, lt)``, ``lt`` the expiry epoch), so a store
that postsrsd wrote in database mode can be opened as it is.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from srsfwd.errors import StoreError

#: Entries kept at most: database mode stores one row per long sender anyone sends,
#: so without a cap a stranger could fill the disk.
DEFAULT_MAX_ENTRIES = 1_000_000
#: The expiry of entries that never expire (blocks lifted only by an operator).
FOREVER = 1 << 62
#: Counters are new rows every hour; expired ones are swept every so many additions.
_SWEEP_EVERY = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    k TEXT NOT NULL UNIQUE ON CONFLICT REPLACE, v TEXT NOT NULL, lt INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ltidx ON kv (lt);
"""

#: UPSERT ... RETURNING needs SQLite 3.35 (Debian 12 has 3.40); older falls back.
_HAS_RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)

#: The write locks of this process, one per store file (by its resolved path).
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    """The lock that every writer of ``path`` in this process holds around its statements."""
    key = os.path.realpath(path)
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


@functools.lru_cache(maxsize=32)
def _select_many(count: int) -> str:
    """The read of ``count`` keys (parameters: now, then the keys). The SQL text for each
    count is built once, so sqlite3's statement cache reuses the prepared statement."""
    keys = ", ".join(f"?{n}" for n in range(2, count + 2))
    return f"SELECT k, v FROM kv WHERE k IN ({keys}) AND lt > ?1"  # noqa: S608 (placeholders only)


@functools.lru_cache(maxsize=32)
def _upsert(count: int) -> str:
    """Add to ``count`` distinct counters, returning their new values (parameters: now,
    then key, amount, expiry for each). An expired counter starts again from the amount
    with a new expiry; a live one keeps its expiry."""
    rows = ", ".join(f"(?{n}, ?{n + 1}, ?{n + 2})" for n in range(2, 3 * count + 2, 3))
    return (
        f"INSERT INTO kv (k, v, lt) VALUES {rows} ON CONFLICT (k) DO UPDATE SET"  # noqa: S608
        " v = CASE WHEN lt > ?1 THEN CAST(v AS INTEGER) + CAST(excluded.v AS INTEGER)"
        " ELSE excluded.v END,"
        " lt = CASE WHEN lt > ?1 THEN lt ELSE excluded.lt END"
        " RETURNING k, v"
    )


class SQLiteStore:
    """A ``KeyValueStore`` in an SQLite file."""

    def __init__(
        self,
        connection: sqlite3.Connection,
        *,
        max_entries: int,
        write_lock: threading.Lock | None = None,
    ) -> None:
        """``write_lock`` is shared by the stores of one file in this process (``open``
        finds it); without one the store has its own."""
        self._db = connection
        self._max_entries = max_entries
        self._additions = 0
        self._write_lock = write_lock if write_lock is not None else threading.Lock()

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> SQLiteStore:
        """Open (creating if needed) the store file at ``path``.

        Raises:
            StoreError: the file cannot be opened or is not an SQLite database.
        """
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from None
        # Several processes may create the file at once: switching it to WAL takes a
        # lock that SQLite's busy timeout does not wait for, so try again for a while.
        for attempt in range(50):
            try:
                if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(_SCHEMA)
                break
            except sqlite3.Error as exc:
                if "locked" not in str(exc) or attempt == 49:
                    connection.close()
                    raise StoreError(f"cannot open store {path}: {exc}") from None
                time.sleep(0.1)
        return cls(connection, max_entries=max_entries, write_lock=_write_lock(path))

    @classmethod
    def empty(cls) -> SQLiteStore:
        """A store in memory, for reading a store that does not exist without creating it."""
        connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        connection.executescript(_SCHEMA)
        return cls(connection, max_entries=DEFAULT_MAX_ENTRIES)

    def put(self, key: str, value: str, *, ttl: int | None, now: float) -> None:
        expires = FOREVER if ttl is None else int(now) + ttl
        with self._transaction("write"):
            (count,) = self._db.execute("SELECT count(*) FROM kv").fetchone()
            if count >= self._max_entries:
                self._db.execute("DELETE FROM kv WHERE lt <= ?", (int(now),))
                (count,) = self._db.execute("SELECT count(*) FROM kv").fetchone()
                if count >= self._max_entries:
                    raise StoreError(f"store is full ({self._max_entries} entries)")
            self._db.execute("INSERT INTO kv (k, v, lt) VALUES (?, ?, ?)", (key, value, expires))

    def get(self, key: str, *, now: float) -> str | None:
        try:
            row = self._db.execute(
                "SELECT v FROM kv WHERE k = ? AND lt > ?", (key, int(now))
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from None
        return None if row is None else str(row[0])

    def add(self, key: str, amount: int, *, ttl: int, now: float) -> int:
        return self.add_many([(key, amount, ttl)], now=now)[0]

    def get_many(self, keys: Sequence[str], *, now: float) -> list[str | None]:
        """The values of ``keys`` (None where absent or expired), in one statement."""
        try:
            rows = self._db.execute(_select_many(len(keys)), (int(now), *keys)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from None
        found = {str(k): str(v) for k, v in rows}
        return [found.get(key) for key in keys]

    def add_many(self, counters: Sequence[tuple[str, int, int]], *, now: float) -> list[int]:
        if _HAS_RETURNING and len({key for key, _, _ in counters}) == len(counters):
            return self._upsert_many(counters, now=now)
        return self._add_one_by_one(counters, now=now)

    def _upsert_many(self, counters: Sequence[tuple[str, int, int]], *, now: float) -> list[int]:
        """All counters in one UPSERT statement: atomic on its own, it takes the write lock
        before it reads, so concurrent writers wait (this process's lock, then SQLite's busy
        timeout across processes) rather than lose counts."""
        moment = int(now)
        values: list[object] = [moment]
        for key, amount, ttl in counters:
            values += (key, amount, moment + ttl)
        try:
            with self._write_lock:
                rows = self._db.execute(_upsert(len(counters)), values).fetchall()
                self._after_additions(now)
        except sqlite3.Error as exc:
            raise StoreError(f"store update failed: {exc}") from None
        counted = {str(k): int(v) for k, v in rows}
        return [counted[key] for key, _, _ in counters]

    def _after_additions(self, now: float) -> None:
        """Every so many additions, sweep the expired entries (the write lock held)."""
        self._additions += 1
        if self._additions % _SWEEP_EVERY == 0:
            try:
                self._db.execute("DELETE FROM kv WHERE lt <= ?", (int(now),))
            except sqlite3.Error:
                pass  # housekeeping only: the counts are in, the next sweep catches up

    def _add_one_by_one(self, counters: Sequence[tuple[str, int, int]], *, now: float) -> list[int]:
        """The fallback without RETURNING (SQLite < 3.35) or with a key given twice."""
        values: list[int] = []
        with self._transaction("update"):
            for key, amount, ttl in counters:
                row = self._db.execute(
                    "SELECT v, lt FROM kv WHERE k = ? AND lt > ?", (key, int(now))
                ).fetchone()
                value, expires = (int(row[0]) + amount, row[1]) if row else (amount, int(now) + ttl)
                self._db.execute(
                    "INSERT INTO kv (k, v, lt) VALUES (?, ?, ?)", (key, str(value), expires)
                )
                values.append(value)
            self._after_additions(now)
        return values

    def delete(self, key: str) -> bool:
        with self._transaction("delete"):
            return self._db.execute("DELETE FROM kv WHERE k = ?", (key,)).rowcount > 0

    def items(self, prefix: str, *, now: float) -> Iterator[tuple[str, str]]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        try:
            rows = self._db.execute(
                "SELECT k, v FROM kv WHERE k LIKE ? ESCAPE '\\' AND lt > ?",
                (escaped + "%", int(now)),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from None
        return iter([(str(k), str(v)) for k, v in rows])

    def purge_expired(self, *, now: float) -> int:
        """Delete expired entries; returns how many went."""
        with self._transaction("purge"):
            return self._db.execute("DELETE FROM kv WHERE lt <= ?", (int(now),)).rowcount

    def close(self) -> None:
        self._db.close()

    def _transaction(self, what: str) -> _Transaction:
        return _Transaction(self._db, self._write_lock, what)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT under the process's write lock of the file, rolled back
    on any error; SQLite errors → StoreError."""

    def __init__(self, db: sqlite3.Connection, write_lock: threading.Lock, what: str) -> None:
        self._db, self._write_lock, self._what = db, write_lock, what

    def __enter__(self) -> None:
        self._write_lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._write_lock.release()
            raise StoreError(f"store {self._what} failed: {exc}") from None
        except BaseException:
            self._write_lock.release()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: object
    ) -> None:
        try:
            self._db.execute("ROLLBACK" if kind else "COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"store {self._what} failed: {exc}") from None
        finally:
            self._write_lock.release()
        if isinstance(error, sqlite3.Error):
            raise StoreError(f"store {self._what} failed: {error}") from None
