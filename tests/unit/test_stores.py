"""The key-value stores: the same behaviour from SQLite and from a real Redis server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from srsfwd import ConfigError, StoreError
from srsfwd.stores import KeyValueStore, open_store
from srsfwd.stores import sqlite as sqlite_store
from srsfwd.stores.sqlite import SQLiteStore
from tests.redis_server import RedisServer, redis_server

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.integration)]


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(params=BACKENDS)
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis")
        return f"{server.url.rsplit('/', 1)[0]}/{abs(hash(tmp_path)) % 16}"
    return str(tmp_path / "store.sqlite")


@pytest.fixture
def store(where: str) -> Iterator[KeyValueStore]:
    opened = open_store(where, prefix="test:")
    for key, _ in list(opened.items("", now=0)):
        opened.delete(key)
    yield opened
    opened.close()


def test_put_then_get(store: KeyValueStore) -> None:
    store.put("k", "v", ttl=100, now=1000)
    assert store.get("k", now=1001) == "v"


def test_missing_key_is_none(store: KeyValueStore) -> None:
    assert store.get("nothing", now=0) is None


def test_put_replaces(store: KeyValueStore) -> None:
    store.put("k", "one", ttl=100, now=0)
    store.put("k", "two", ttl=100, now=0)
    assert store.get("k", now=1) == "two"


def test_add_counts_from_zero(store: KeyValueStore) -> None:
    assert store.add("c", 3, ttl=100, now=0) == 3
    assert store.add("c", 4, ttl=100, now=0) == 7
    assert store.get("c", now=0) == "7"


def test_delete_says_whether_it_was_there(store: KeyValueStore) -> None:
    store.put("k", "v", ttl=None, now=0)
    assert store.delete("k") is True
    assert store.delete("k") is False
    assert store.get("k", now=0) is None


def test_items_lists_by_prefix(store: KeyValueStore) -> None:
    store.put("a:1", "x", ttl=100, now=0)
    store.put("a:2", "y", ttl=100, now=0)
    store.put("b:1", "z", ttl=100, now=0)
    store.put("a_%:3", "w", ttl=100, now=0)
    assert sorted(store.items("a:", now=1)) == [("a:1", "x"), ("a:2", "y")]
    assert sorted(store.items("a_%", now=1)) == [("a_%:3", "w")]


def test_concurrent_adds_lose_no_count(where: str) -> None:
    def work() -> None:
        mine = open_store(where, prefix="test:")
        for _ in range(50):
            mine.add("shared", 1, ttl=100, now=0)
        mine.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    reader = open_store(where, prefix="test:")
    assert reader.get("shared", now=0) == "200"
    reader.delete("shared")


# Expiry: SQLite is told the time, Redis keeps its own clock, so each is tested its way.


def test_sqlite_entries_expire(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "s.sqlite")
    store.put("k", "v", ttl=10, now=1000)
    assert store.get("k", now=1009) == "v"
    assert store.get("k", now=1010) is None


def test_sqlite_counter_starts_again_after_expiry(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "s.sqlite")
    store.add("c", 5, ttl=10, now=0)
    assert store.add("c", 1, ttl=10, now=20) == 1


def test_sqlite_adding_does_not_extend_a_counter(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "s.sqlite")
    store.add("c", 1, ttl=10, now=0)
    store.add("c", 1, ttl=10, now=9)
    assert store.get("c", now=10) is None


@pytest.mark.integration
def test_redis_keys_expire_by_themselves(redis: RedisServer) -> None:
    import redis as redis_client

    store = open_store(redis.url, prefix="exp:")
    store.put("k", "v", ttl=100, now=0)
    store.add("c", 1, ttl=50, now=0)
    store.add("c", 1, ttl=999, now=0)
    raw = redis_client.Redis.from_url(redis.url)
    assert 0 < raw.ttl("exp:k") <= 100
    assert 0 < raw.ttl("exp:c") <= 50
    raw.close()


@pytest.mark.integration
def test_redis_srs_aliases_use_postsrsd_keys(redis: RedisServer) -> None:
    import redis as redis_client

    raw = redis_client.Redis.from_url(redis.url, decode_responses=True)
    raw.set("PostSRSd/DCJGDE6N24LCRT41A4T0G1UIF0DTKKQJ@1", "test@otherdomain.com", ex=100)
    store = open_store(f"redis:127.0.0.1:{redis.port}", prefix="PostSRSd/")
    assert store.get("DCJGDE6N24LCRT41A4T0G1UIF0DTKKQJ@1", now=0) == "test@otherdomain.com"
    raw.close()


@pytest.mark.integration
def test_redis_stopped_mid_run_is_a_temporary_error(tmp_path: Path) -> None:
    with redis_server(tmp_path) as server:
        store = open_store(server.url, prefix="t:")
        store.put("k", "v", ttl=100, now=0)
        server.stop()
        with pytest.raises(StoreError) as caught:
            store.add("c", 1, ttl=10, now=0)
        assert caught.value.temporary
        server.start()
        assert store.add("c", 1, ttl=10, now=0) == 1


def test_unreachable_redis_is_a_temporary_error() -> None:
    with pytest.raises(StoreError):
        open_store("redis://127.0.0.1:1/0").get("k", now=0)


def test_redis_url_without_redis_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "srsfwd.stores.redis", None)
    with pytest.raises(ConfigError, match=r"srsfwd\[redis\]"):
        open_store("redis://127.0.0.1:6379/0")


def test_sqlite_prefix_spelling_opens_a_file(tmp_path: Path) -> None:
    store = open_store(f"sqlite:{tmp_path / 'x.sqlite'}")
    store.put("k", "v", ttl=1, now=0)
    assert (tmp_path / "x.sqlite").exists()


def test_add_many_counts_each_key(store: KeyValueStore) -> None:
    assert store.add_many([("a", 1, 100), ("b", 2, 100)], now=0) == [1, 2]
    assert store.add_many([("a", 5, 100), ("b", 0, 100), ("c", 3, 100)], now=0) == [6, 2, 3]


def test_add_many_with_a_key_given_twice_adds_both(store: KeyValueStore) -> None:
    assert store.add_many([("a", 1, 100), ("a", 2, 100)], now=0) == [1, 3]


def test_get_many_answers_in_the_order_asked(store: KeyValueStore) -> None:
    store.put("a", "one", ttl=100, now=0)
    store.put("b", "two", ttl=100, now=0)
    assert store.get_many(["b", "missing", "a"], now=1) == ["two", None, "one"]


def test_sqlite_get_many_leaves_out_expired_entries(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "s.sqlite")
    store.put("short", "v", ttl=10, now=0)
    store.put("long", "w", ttl=100, now=0)
    assert store.get_many(["short", "long"], now=10) == [None, "w"]


def test_sqlite_add_many_restarts_only_the_expired_counters(tmp_path: Path) -> None:
    store = SQLiteStore.open(tmp_path / "s.sqlite")
    store.add_many([("hour", 5, 10), ("day", 5, 100)], now=0)
    assert store.add_many([("hour", 1, 10), ("day", 1, 100)], now=10) == [1, 6]
    assert store.get("hour", now=19) == "1"
    assert store.get("hour", now=20) is None


def test_sqlite_without_returning_counts_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "_HAS_RETURNING", False)
    store = SQLiteStore.open(tmp_path / "s.sqlite")
    store.add_many([("hour", 5, 10), ("day", 5, 100)], now=0)
    assert store.add_many([("hour", 1, 10), ("day", 1, 100)], now=10) == [1, 6]


def test_a_full_store_refuses_new_entries(where: str) -> None:
    small = open_store(where, prefix=f"full:{where}:", max_entries=2)
    small.put("a", "1", ttl=100, now=0)
    small.put("b", "2", ttl=100, now=0)
    with pytest.raises(StoreError, match="full"):
        small.put("c", "3", ttl=100, now=50)
    assert small.get("c", now=50) is None


def test_a_full_store_makes_room_from_expired_entries(where: str) -> None:
    small = open_store(where, prefix=f"room:{where}:", max_entries=2)
    small.put("a", "1", ttl=10, now=0)
    small.put("b", "2", ttl=100, now=0)
    small.put("c", "3", ttl=100, now=50)
    assert small.get("c", now=50) == "3"


@pytest.mark.integration
def test_redis_alias_store_honours_max_aliases(redis: RedisServer, tmp_path: Path) -> None:
    from srsfwd.app import build_rewriter
    from srsfwd.config import load_config

    (tmp_path / "srs.secret").write_text("a-secret-of-sixteen-bytes-or-more\n")
    (tmp_path / "srs.secret").chmod(0o600)
    config = tmp_path / "srsfwd.toml"
    config.write_text(
        '[srs]\ndomain = "fwd.example"\nsecrets_file = "srs.secret"\n'
        'original_envelope = "database"\n'
        f'envelope_database = "{redis.url}"\nmax_aliases = 100\n'
    )
    rewriter = build_rewriter(load_config(config))
    long_local = "x" * 60
    for n in range(100):
        rewriter.forward(f"{long_local}{n}@sender.example")
    with pytest.raises(StoreError, match="full"):
        rewriter.forward(f"{long_local}100@sender.example")


def test_a_url_naming_no_store_is_refused_and_creates_no_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mysql://x"):
        open_store("mysql://x", base=tmp_path)
    assert list(tmp_path.iterdir()) == []


# Several writers of one SQLite file: threads queue on the process's lock of the file,
# processes on SQLite's own lock; neither loses a count.

_COUNT_IN_A_PROCESS = """
import sys
from srsfwd.stores.sqlite import SQLiteStore
store = SQLiteStore.open(sys.argv[1])
for _ in range(int(sys.argv[2])):
    store.add_many([("hour", 1, 3600), ("day", 2, 86400)], now=0)
"""


def _count_in_threads(path: Path, threads: int, times: int) -> None:
    stores = [SQLiteStore.open(path) for _ in range(threads)]

    def work(store: SQLiteStore) -> None:
        for _ in range(times):
            store.add_many([("hour", 1, 3600), ("day", 2, 86400)], now=0)

    workers = [threading.Thread(target=work, args=(store,)) for store in stores]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for store in stores:
        store.close()


def test_sqlite_many_threads_each_with_a_store_lose_no_count(tmp_path: Path) -> None:
    _count_in_threads(tmp_path / "s.sqlite", threads=16, times=100)
    reader = SQLiteStore.open(tmp_path / "s.sqlite")
    assert reader.get_many(["hour", "day"], now=0) == ["1600", "3200"]


def test_sqlite_two_processes_and_their_threads_count_together(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    SQLiteStore.open(path).close()
    root = Path(__file__).parents[2]
    other = subprocess.Popen(
        [sys.executable, "-c", _COUNT_IN_A_PROCESS, str(path), "400"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    _count_in_threads(path, threads=4, times=100)
    assert other.wait(timeout=60) == 0
    reader = SQLiteStore.open(path)
    assert reader.get_many(["hour", "day"], now=0) == ["800", "1600"]


def test_sqlite_stores_of_one_file_share_the_write_lock(tmp_path: Path) -> None:
    first = SQLiteStore.open(tmp_path / "s.sqlite")
    second = SQLiteStore.open(tmp_path / "." / "s.sqlite")
    assert first._write_lock is second._write_lock
    assert SQLiteStore.open(tmp_path / "t.sqlite")._write_lock is not first._write_lock


def test_sqlite_a_failed_write_lets_the_next_writer_through(tmp_path: Path) -> None:
    full = SQLiteStore.open(tmp_path / "s.sqlite", max_entries=1)
    full.put("a", "1", ttl=None, now=0)
    with pytest.raises(StoreError, match="full"):
        full.put("b", "2", ttl=None, now=0)
    other = SQLiteStore.open(tmp_path / "s.sqlite")
    writer = threading.Thread(target=other.add, args=("a", 1), kwargs={"ttl": 10, "now": 0})
    writer.start()
    writer.join(timeout=10)
    assert not writer.is_alive()
    assert other.delete("a") is True
