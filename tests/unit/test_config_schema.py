"""Hostile configurations: each is refused at load time with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from srsfwd.config import load_config
from srsfwd.errors import ConfigError

HOSTILE = [
    ("state_dri = 'x'\n", "state_dri"),
    ("[ssr]\ndomain = 'x'\n", "[ssr]"),
    ("[limts]\nper_day = 1\n", "[limts]"),
    ("[limits]\nper_day = true\n", "per_day"),
    ("[limits]\nper_day = 1.5\n", "per_day"),
    ("[limits]\nper_day = -1\n", "per_day"),
    ("[limits]\nper_day = 99999999999999\n", "per_day"),
    ("[limits]\nper_day = nan\n", "per_day"),
    ("[limits]\naction = 'blok'\n", "action"),
    ("[limits]\nstore = 'mysql://x'\n", "store"),
    ("[serve]\nkeep-alive = nan\n", "keep-alive"),
    ("[serve]\nkeep-alive = inf\n", "keep-alive"),
    ("[serve]\nkeep-alvie = 3\n", "keep-alvie"),
    ("[decide]\ndns_timeout = nan\n", "dns_timeout"),
    ("[decide]\naccepted_domain = []\n", "accepted_domain"),
    ("[dns]\nnameservers = 5\n", "nameservers"),
    ("[dns]\ntimeout = -inf\n", "timeout"),
    ("[dkim]\nexpire_days = true\n", "expire_days"),
    ("[srs]\nhash_lenght = 4\n", "hash_lenght"),
    ("[pools.normal]\nhlo = 'x'\n", "hlo"),
    ("[pools.hgh-risk]\n", "hgh-risk"),
    ("[forward]\narc = 1\n", "arc"),
    ("a = " + "[" * 3000 + "]" * 3000 + "\n", "nested"),
]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "srsfwd.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("text", "key"), HOSTILE)
def test_hostile_configuration_is_refused_naming_the_key(
    tmp_path: Path, text: str, key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        load_config(write(tmp_path, text))


def test_unknown_table_gets_a_did_you_mean(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"did you mean \[limits\]"):
        load_config(write(tmp_path, "[limts]\nper_day = 1\n"))


def test_example_configuration_validates() -> None:
    load_config(Path(__file__).parents[2] / "examples" / "srsfwd.toml")
