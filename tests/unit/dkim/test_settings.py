"""The [dkim] and [dns] tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from srsfwd.app import build_resolver
from srsfwd.config import load_config
from srsfwd.dkim.settings import dkim_settings, dns_settings
from srsfwd.errors import ConfigError
from tests.dkimhelp import RFC8463


def config_with(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "srsfwd.toml"
    path.write_text(text)
    return path


def test_defaults_without_tables(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, ""))
    assert dkim_settings(config).keys_dir == tmp_path / "keys"
    assert dns_settings(config).nameservers == ()


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, '[dkim]\nkeys_dir = "k"\n[dns]\nzone_files = "z"\n'))
    assert dkim_settings(config).keys_dir == tmp_path / "k"
    assert dns_settings(config).zone_files == (tmp_path / "z",)


@pytest.mark.parametrize(
    "text",
    [
        "[dkim]\nkeyz_dir = 'x'\n",
        "[dkim]\nexpire_days = -1\n",
        "[dkim]\nexpire_days = true\n",
        "[dkim]\ndomains = 3\n",
        "[dns]\nport = 'x'\n",
        "[dns]\nnameservers = [1]\n",
        "dkim = 3\n",
    ],
)
def test_bad_values_are_config_errors(tmp_path: Path, text: str) -> None:
    def load_and_read_both() -> None:
        config = load_config(config_with(tmp_path, text))
        dkim_settings(config)
        dns_settings(config)

    with pytest.raises(ConfigError):
        load_and_read_both()


def test_configured_zone_file_means_no_network(tmp_path: Path) -> None:
    zone = RFC8463 / "football.zone"
    config = load_config(config_with(tmp_path, f'[dns]\nzone_files = ["{zone}"]\n'))
    resolver = build_resolver(config)
    assert resolver.txt("brisbane._domainkey.football.example.com")


def test_nameserver_flag_wins_over_config(tmp_path: Path) -> None:
    config = load_config(config_with(tmp_path, '[dns]\nnameservers = ["192.0.2.1"]\nport = 53\n'))
    resolver = build_resolver(config, nameservers=["127.0.0.1"], port=5300, timeout=1.0)
    assert (resolver.nameservers, resolver.port, resolver.timeout) == (("127.0.0.1",), 5300, 1.0)
