"""The Python API takes a ``str`` as well as a ``Path`` wherever it takes a file or folder."""

from __future__ import annotations

from pathlib import Path

from srsfwd.app import build_key_table
from srsfwd.config import config_from_data, load_config
from srsfwd.dkim.keys import DkimKey, private_key_pem
from srsfwd.doctor import Severity, check_secret
from srsfwd.keystore import KeyStore, read_key_file
from srsfwd.postsrsdconf import read_postsrsd
from srsfwd.secretfile import load_secrets, write_new_secret, write_private
from srsfwd.stores.sqlite import SQLiteStore


def test_load_config_takes_a_str(tmp_path: Path) -> None:
    (tmp_path / "srsfwd.toml").write_text('[srs]\ndomain = "fwd.example"\nsecrets_file = "s"\n')
    config = load_config(str(tmp_path / "srsfwd.toml"))
    assert config.srs.domain == "fwd.example"
    assert config.srs.secrets_file == tmp_path / "s"


def test_config_from_data_takes_a_str(tmp_path: Path) -> None:
    config = config_from_data({"srs": {"secrets_file": "s"}}, str(tmp_path / "x.toml"))
    assert config.srs.secrets_file == tmp_path / "s"


def test_secrets_files_take_a_str(tmp_path: Path) -> None:
    write_new_secret(str(tmp_path / "new.secret"))
    write_private(str(tmp_path / "other.secret"), b"0123456789abcdefgh\n")
    assert len(load_secrets(str(tmp_path / "new.secret"))) == 1
    assert load_secrets(str(tmp_path / "other.secret")) == [b"0123456789abcdefgh"]


def test_key_store_and_key_files_take_a_str(tmp_path: Path, dkim_keys: dict[str, DkimKey]) -> None:
    store = KeyStore(str(tmp_path / "keys"))
    key = dkim_keys["ed25519"]
    store.create("example.com", "s1", key, pem=private_key_pem(key), now=1_795_000_000.0)
    assert store.root == tmp_path / "keys"
    assert read_key_file(str(store.key_path("example.com", "s1"))).algorithm == "ed25519-sha256"
    table = build_key_table(config_from_data({}, None), str(tmp_path / "keys"))
    assert table.store.root == tmp_path / "keys"


def test_sqlite_store_takes_a_str(tmp_path: Path) -> None:
    SQLiteStore.open(str(tmp_path / "db" / "s.sqlite")).close()
    assert (tmp_path / "db" / "s.sqlite").exists()


def test_postsrsd_reader_takes_a_str() -> None:
    data, _ = read_postsrsd('srs-domain = "a.example"', "/etc/postsrsd/postsrsd.conf")
    assert data["srs"]["secrets-file"] == "/etc/postsrsd/postsrsd.secret"


def test_doctor_secret_check_takes_a_str(tmp_path: Path) -> None:
    write_new_secret(tmp_path / "s")
    assert check_secret(str(tmp_path / "s")).severity is Severity.OK
