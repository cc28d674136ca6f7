"""The key store on disk and the key table."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from srsfwd.dkim.keys import DkimKey, private_key_pem
from srsfwd.errors import ConfigError, KeyFormatError, KeyNotFoundError
from srsfwd.keystore import KeyStore, KeyTable, read_opendkim_tables

NOW = 1_795_000_000.0


def make(
    store: KeyStore,
    domain: str,
    selector: str,
    key: DkimKey,
    *,
    now: float = NOW,
    active_from: float | None = None,
) -> None:
    store.create(domain, selector, key, pem=private_key_pem(key), now=now, active_from=active_from)


def test_create_writes_private_key_0600_in_0700_folder(
    tmp_path: Path, dkim_keys: dict[str, DkimKey]
) -> None:
    store = KeyStore(tmp_path / "keys")
    make(store, "Example.COM.", "s1", dkim_keys["rsa-2048"])
    key = tmp_path / "keys/example.com/s1.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert "s1._domainkey.example.com. IN TXT" in key.with_suffix(".txt").read_text()
    assert not list(key.parent.glob(".*"))  # no temporary left behind


def test_existing_key_is_never_overwritten(tmp_path: Path, dkim_keys: dict[str, DkimKey]) -> None:
    store = KeyStore(tmp_path)
    make(store, "example.com", "s1", dkim_keys["rsa-2048"])
    before = (tmp_path / "example.com/s1.key").read_bytes()
    with pytest.raises(ConfigError, match="never replaced"):
        make(store, "example.com", "s1", dkim_keys["ed25519"])
    assert (tmp_path / "example.com/s1.key").read_bytes() == before


def test_key_readable_by_others_is_refused(tmp_path: Path, dkim_keys: dict[str, DkimKey]) -> None:
    store = KeyStore(tmp_path)
    make(store, "example.com", "s1", dkim_keys["ed25519"])
    (tmp_path / "example.com/s1.key").chmod(0o644)
    with pytest.raises(KeyFormatError, match="chmod 600"):
        store.load("example.com", "s1")


def test_missing_key_is_key_not_found(tmp_path: Path) -> None:
    with pytest.raises(KeyNotFoundError):
        KeyStore(tmp_path).load("example.com", "nope")


def test_garbage_key_file_is_key_format_error(tmp_path: Path) -> None:
    (tmp_path / "example.com").mkdir()
    path = tmp_path / "example.com/s1.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    with pytest.raises(KeyFormatError, match="not a usable private key"):
        KeyStore(tmp_path).load("example.com", "s1")


@pytest.mark.parametrize("selector", ["../x", "a.b", "", "-a", "a b"])
def test_bad_selector_is_refused(tmp_path: Path, selector: str) -> None:
    with pytest.raises(ConfigError):
        KeyStore(tmp_path).key_path("example.com", selector)


@pytest.mark.parametrize("domain", ["../etc", "localhost", "a..b.com", "ex ample.com"])
def test_bad_domain_is_refused(tmp_path: Path, domain: str) -> None:
    with pytest.raises(ConfigError):
        KeyStore(tmp_path).key_path(domain, "s1")


def test_list_shows_newest_first_with_algorithm(
    tmp_path: Path, dkim_keys: dict[str, DkimKey]
) -> None:
    store = KeyStore(tmp_path)
    make(store, "example.com", "old", dkim_keys["rsa-2048"], now=NOW - 86400)
    make(store, "example.com", "new", dkim_keys["rsa-3072"])
    assert [(k.selector, k.spec, k.created) for k in store.list_keys()] == [
        ("new", "rsa-3072", NOW),
        ("old", "rsa-2048", NOW - 86400),
    ]


def test_newest_gives_one_rsa_and_one_ed25519(
    tmp_path: Path, dkim_keys: dict[str, DkimKey]
) -> None:
    store = KeyStore(tmp_path)
    make(store, "example.com", "s1", dkim_keys["rsa-2048"], now=NOW - 10)
    make(store, "example.com", "s2", dkim_keys["rsa-2048"])
    make(store, "example.com", "e1", dkim_keys["ed25519"])
    assert [k.selector for k in store.newest("example.com", now=NOW)] == ["s2", "e1"]


def test_rotated_key_waits_for_its_activation(
    tmp_path: Path, dkim_keys: dict[str, DkimKey]
) -> None:
    store = KeyStore(tmp_path)
    make(store, "example.com", "s1", dkim_keys["rsa-2048"], now=NOW - 10)
    make(store, "example.com", "s2", dkim_keys["rsa-2048"], active_from=NOW + 3600)
    table = KeyTable(store)
    assert [k.selector for k in table.signing_keys("example.com", now=NOW)] == ["s1"]
    assert [k.selector for k in table.signing_keys("example.com", now=NOW + 3600)] == ["s2"]


def test_table_rules_exact_and_subdomain(tmp_path: Path, dkim_keys: dict[str, DkimKey]) -> None:
    store = KeyStore(tmp_path)
    make(store, "example.com", "s1", dkim_keys["rsa-2048"])
    make(store, "example.com", "e1", dkim_keys["ed25519"])
    table = KeyTable.from_config(
        store, {"*.example.com": {"domain": "example.com"}, "example.net": ["e1"]}
    )
    sub = table.signing_keys("mail.eu.example.com", now=NOW)
    assert [(k.domain, k.selector) for k in sub] == [("example.com", "s1"), ("example.com", "e1")]
    assert table.rule_for("example.org") is None
    with pytest.raises(KeyNotFoundError):
        table.signing_keys("example.org", now=NOW)
    with pytest.raises(KeyNotFoundError):  # example.net rule names a selector it lacks
        table.signing_keys("example.net", now=NOW)


def test_wildcard_rule_does_not_cover_the_parent(tmp_path: Path) -> None:
    table = KeyTable.from_config(KeyStore(tmp_path), {"*.example.com": ["s1"]})
    assert table.rule_for("example.com") is None


def test_bad_rule_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        KeyTable.from_config(KeyStore(tmp_path), {"example.com": {"selector": "x"}})


def test_opendkim_tables_become_rules() -> None:
    rules = read_opendkim_tables(
        "k1 example.com:s1:/etc/opendkim/keys/example.com/s1.private\n"
        "k2 example.com:e1:/etc/opendkim/keys/example.com/e1.private  # ed25519\n",
        "*@example.com k1\n*@example.com k2\n*.example.com k1\n",
    )
    assert rules["example.com"].selectors == ("s1", "e1")
    assert rules["*.example.com"].domain == "example.com"


def test_opendkim_catch_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="catch-all"):
        read_opendkim_tables("k1 example.com:s1:/k\n", "* k1\n")
