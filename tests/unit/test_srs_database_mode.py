"""Database mode: senders too long to embed travel under a short alias, as postsrsd 2.x does."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from srsfwd import FrozenClock, SRSAliasError, SRSRewriter, StoreError
from srsfwd.srs import alias_for
from srsfwd.stores.sqlite import SQLiteStore

NEW_YEAR_2020 = 1577836860
LONG_SENDER = "a.very.long.local.part.that.goes.on.and.on@a-long-sender-domain.example"


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore.open(tmp_path / "state" / "aliases.sqlite")


def make(store: SQLiteStore | None, clock: FrozenClock | None = None) -> SRSRewriter:
    return SRSRewriter(
        ["tops3cr3t"], "example.com", alias_store=store, clock=clock or FrozenClock(NEW_YEAR_2020)
    )


def test_alias_is_postsrsd_base32hex_of_sha1() -> None:
    assert alias_for("test@otherdomain.com") == "DCJGDE6N24LCRT41A4T0G1UIF0DTKKQJ"


def test_long_sender_is_forwarded_under_an_alias(store: SQLiteStore) -> None:
    address = make(store).forward(LONG_SENDER)
    assert address.startswith("SRS0=")
    assert f"=2W=1={alias_for(LONG_SENDER)}@example.com" in address
    assert len(address.split("@")[0]) <= 64


def test_aliased_address_reverses_to_the_long_sender(store: SQLiteStore) -> None:
    srs = make(store)
    assert srs.reverse(srs.forward(LONG_SENDER)) == LONG_SENDER


def test_aliased_address_reverses_after_case_smashing(store: SQLiteStore) -> None:
    srs = make(store)
    assert srs.reverse(srs.forward(LONG_SENDER).lower()) == LONG_SENDER


def test_short_sender_is_embedded_not_stored(store: SQLiteStore) -> None:
    make(store).forward("test@otherdomain.com")
    assert store.get(f"{alias_for('test@otherdomain.com')}@1", now=NEW_YEAR_2020) is None


def test_postsrsd_alias_address_reverses_from_its_store(store: SQLiteStore) -> None:
    store.put(
        "DCJGDE6N24LCRT41A4T0G1UIF0DTKKQJ@1", "test@otherdomain.com", ttl=86400, now=NEW_YEAR_2020
    )
    srs = make(store)
    assert srs.reverse("SRS0=bxzH=2W=1=DCJGDE6N24LCRT41A4T0G1UIF0DTKKQJ@example.com") == (
        "test@otherdomain.com"
    )


def test_unknown_alias_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(SRSAliasError, match="Unknown alias"):
        make(store).reverse("SRS0=bxzH=2W=1=DCJGDE6N24LCRT41A4T0G1UIF0DTKKQJ@example.com")


def test_alias_without_a_store_is_refused() -> None:
    with pytest.raises(SRSAliasError, match="No database"):
        make(None).reverse("SRS0=bxzH=2W=1=DCJGDE6N24LCRT41A4T0G1UIF0DTKKQJ@example.com")


def test_alias_expires_after_max_age(store: SQLiteStore) -> None:
    clock = FrozenClock(NEW_YEAR_2020)
    srs = make(store, clock)
    srs.forward(LONG_SENDER)
    clock.advance(23 * 86400)
    assert store.get(f"{alias_for(LONG_SENDER)}@1", now=clock.now()) is None


def test_full_store_refuses_new_aliases(tmp_path: Path) -> None:
    small = SQLiteStore.open(tmp_path / "small.sqlite", max_entries=2)
    small.put("a", "1", ttl=100, now=0)
    small.put("b", "2", ttl=100, now=0)
    with pytest.raises(StoreError, match="full"):
        small.put("c", "3", ttl=100, now=50)


def test_full_store_makes_room_from_expired_entries(tmp_path: Path) -> None:
    small = SQLiteStore.open(tmp_path / "small.sqlite", max_entries=2)
    small.put("a", "1", ttl=10, now=0)
    small.put("b", "2", ttl=100, now=0)
    small.put("c", "3", ttl=100, now=50)
    assert small.get("c", now=50) == "3"


def test_store_full_is_a_temporary_error() -> None:
    assert StoreError("x").temporary


def test_store_reads_a_postsrsd_database(tmp_path: Path) -> None:
    path = tmp_path / "postsrsd.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE kv(k TEXT NOT NULL UNIQUE ON CONFLICT REPLACE, v TEXT NOT NULL,"
        " lt INTEGER NOT NULL); CREATE INDEX ltidx ON kv(lt);"
        "INSERT INTO kv VALUES ('ABC@1', 'x@y.example', 2000000000);"
    )
    db.commit()
    db.close()
    assert SQLiteStore.open(path).get("ABC@1", now=NEW_YEAR_2020) == "x@y.example"


def test_garbage_store_file_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError):
        SQLiteStore.open(path)


def test_locked_store_is_a_temporary_store_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    SQLiteStore.open(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    store = SQLiteStore(sqlite3.connect(path, timeout=0.1, isolation_level=None), max_entries=10)
    with pytest.raises(StoreError) as caught:
        store.put("k", "v", ttl=10, now=0)
    assert caught.value.temporary
    blocker.execute("ROLLBACK")


def test_several_writers_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    SQLiteStore.open(path)

    def write(worker: int) -> None:
        store = SQLiteStore.open(path)
        for n in range(50):
            store.put(f"{worker}-{n}", "v", ttl=100, now=0)
        store.close()

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = SQLiteStore.open(path)
    assert all(reader.get(f"{w}-{n}", now=1) == "v" for w in range(4) for n in range(50))


def test_a_dry_run_names_the_alias_and_stores_nothing(store: SQLiteStore) -> None:
    srs = make(store)
    assert srs.forward(LONG_SENDER, dry_run=True) == srs.forward(LONG_SENDER)
    store.delete(f"{alias_for(LONG_SENDER)}@1")
    srs.forward(LONG_SENDER, dry_run=True)
    assert store.get(f"{alias_for(LONG_SENDER)}@1", now=NEW_YEAR_2020) is None
