"""Hostile configurations: each is refused at load time with one line naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srsfwd.config import config_from_data, load_config
from srsfwd.errors import ConfigError
from tests.hypothesis_profiles import budget

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


_TABLE_NAMES = ["srs", "dkim", "dns", "decide", "pools", "limits", "forward", "serve", "ssr"]
_KEY_NAMES = [
    "domain",
    "per_day",
    "keep-alive",
    "nameservers",
    "domains",
    "normal",
    "high-risk",
    "action",
    "store",
    "socketmap",
    "socket-mode",
    "dkim_sign",
    "x",
    "a.b",
]
_keys = st.one_of(st.sampled_from(_KEY_NAMES), st.text(max_size=8))
_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.text(min_size=100, max_size=400),  # long: an error quotes it shortened
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_keys, inner, max_size=4),
    ),
    max_leaves=20,
)
_files = st.dictionaries(
    st.one_of(st.sampled_from([*_TABLE_NAMES, "state_dir"]), _keys),
    st.one_of(st.dictionaries(_keys, _values, max_size=5), _values),
    max_size=4,
)


@settings(max_examples=budget(300), deadline=None)
@given(_files)
def test_any_toml_shaped_data_is_a_configuration_or_one_error_line(data: dict[str, Any]) -> None:
    error = ""
    try:
        config_from_data(data, None)
    except ConfigError as exc:
        error = str(exc) or "(empty)"
    assert len(error.splitlines()) <= 1
    assert error != "(empty)"
    assert len(error) < 400, error
