"""The TOML configuration: defaults, postsrsd's key names, relative paths, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from srsfwd import ConfigError
from srsfwd.app import build_rewriter
from srsfwd.config import load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "srsfwd.toml"
    path.write_text(text)
    return path


def test_missing_default_file_gives_defaults() -> None:
    assert load_config(None).srs.hash_length == 4


def test_srs_table_is_read(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[srs]\ndomain = "f.example"\nhash_length = 6\n'))
    assert (config.srs.domain, config.srs.hash_length) == ("f.example", 6)


def test_postsrsd_key_names_are_accepted(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            (
                '[srs]\nsrs-domain = "f.example"\ndomains = "a.example, .b.example"\n'
                'hash-minimum = 3\nalways-rewrite = true\nsecrets-file = "s"\n'
            ),
        )
    )
    srs = config.srs
    assert srs.domain == "f.example"
    assert srs.local_domains == ("a.example", ".b.example")
    assert (srs.hash_minimum, srs.always_rewrite) == (3, True)
    assert srs.secrets_file == tmp_path / "s"


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[srs]\nsecrets_file = "keys/srs.secret"\n'))
    assert config.srs.secrets_file == tmp_path / "keys" / "srs.secret"


def test_unknown_setting_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no setting 'hash_lenght'"):
        load_config(write(tmp_path, "[srs]\nhash_lenght = 6\n"))


@pytest.mark.parametrize(
    "text",
    [
        '[srs]\nhash_length = "6"\n',
        "[srs]\nhash_length = true\n",
        '[srs]\nalways_rewrite = "yes"\n',
        "srs = 3\n",
        '[srs]\noriginal_envelope = "cloud"\n',
    ],
)
def test_wrong_value_types_are_clear_errors(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, text))


def test_invalid_toml_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[srs\n"))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_binary_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "srsfwd.toml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        load_config(path)


def test_rewriter_is_built_from_config(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("secret\n")
    (tmp_path / "s").chmod(0o600)
    (tmp_path / "domains").write_text("# ours\nlocal.example\n\n.sub.example  # comment\n")
    config = load_config(
        write(
            tmp_path,
            ('[srs]\ndomain = "f.example"\nsecrets_file = "s"\ndomains_file = "domains"\n'),
        )
    )
    srs = build_rewriter(config)
    assert srs.forward("a@local.example") == "a@local.example"
    assert srs.forward("a@x.sub.example") == "a@x.sub.example"
    assert srs.forward("a@other.example").startswith("SRS0=")


def test_rewriter_without_secrets_file_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="secrets file"):
        build_rewriter(load_config(None))


def test_bad_separator_is_refused_when_the_file_is_loaded(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'\[srs\] separator: must be "=" or "\+" or "-"'):
        load_config(write(tmp_path, '[srs]\ndomain = "f.example"\nseparator = "/"\n'))


def test_database_mode_opens_store_under_state_dir(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("secret\n")
    (tmp_path / "s").chmod(0o600)
    config = load_config(
        write(
            tmp_path,
            (
                'state_dir = "state"\n[srs]\ndomain = "f.example"\nsecrets_file = "s"\n'
                'original_envelope = "database"\n'
            ),
        )
    )
    srs = build_rewriter(config)
    long_sender = "a" * 60 + "@example.org"
    assert srs.reverse(srs.forward(long_sender)) == long_sender
    assert (tmp_path / "state" / "srs-aliases.sqlite").exists()
