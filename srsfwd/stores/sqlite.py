"""The SQLite store: one file, safe with several processes (WAL, busy timeout).

The table is postsrsd 2.x's (``kv(k, v, lt)``, ``lt`` the expiry epoch), so a store
that postsrsd wrote in database mode can be opened as it is.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from srsfwd.errors import StoreError

#: Entries kept at most: database mode stores one row per long sender anyone sends,
#: so without a cap a stranger could fill the disk.
DEFAULT_MAX_ENTRIES = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    k TEXT NOT NULL UNIQUE ON CONFLICT REPLACE, v TEXT NOT NULL, lt INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS ltidx ON kv (lt);
"""


class SQLiteStore:
    """A ``KeyValueStore`` in an SQLite file."""

    def __init__(self, connection: sqlite3.Connection, *, max_entries: int) -> None:
        self._db = connection
        self._max_entries = max_entries

    @classmethod
    def open(cls, path: Path, *, max_entries: int = DEFAULT_MAX_ENTRIES) -> SQLiteStore:
        """Open (creating if needed) the store file at ``path``.

        Raises:
            StoreError: the file cannot be opened or is not an SQLite database.
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from None
        return cls(connection, max_entries=max_entries)

    def put(self, key: str, value: str, *, ttl: int, now: float) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (count,) = self._db.execute("SELECT count(*) FROM kv").fetchone()
                if count >= self._max_entries:
                    self._db.execute("DELETE FROM kv WHERE lt <= ?", (int(now),))
                    (count,) = self._db.execute("SELECT count(*) FROM kv").fetchone()
                    if count >= self._max_entries:
                        raise StoreError(f"store is full ({self._max_entries} entries)")
                self._db.execute(
                    "INSERT INTO kv (k, v, lt) VALUES (?, ?, ?)", (key, value, int(now) + ttl)
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from None

    def get(self, key: str, *, now: float) -> str | None:
        try:
            row = self._db.execute(
                "SELECT v FROM kv WHERE k = ? AND lt > ?", (key, int(now))
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from None
        return None if row is None else str(row[0])

    def purge_expired(self, *, now: float) -> int:
        """Delete expired entries; returns how many went."""
        try:
            return self._db.execute("DELETE FROM kv WHERE lt <= ?", (int(now),)).rowcount
        except sqlite3.Error as exc:
            raise StoreError(f"store purge failed: {exc}") from None

    def close(self) -> None:
        self._db.close()
