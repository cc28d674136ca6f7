"""The TOML configuration: read once into frozen settings; command-line flags win.

Each feature reads its own table: ``[srs]`` here, the others where they are used,
from ``Config.sections``. Relative paths are taken from the configuration file's folder.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from srsfwd.config_schema import ConfigTable, Count, Strings, check_store_location
from srsfwd.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/srsfwd/srsfwd.toml")
DEFAULT_STATE_DIR = Path("/var/lib/srsfwd")

T = TypeVar("T")

# postsrsd's names for the same settings, accepted so its users can copy them over.
SRS_KEY_ALIASES = {
    "srs_domain": "domain",
    "domains": "local_domains",
    "domains_file": "local_domains_file",
    "hash_min": "hash_minimum",
    "max_age": "max_age_days",
}


class SrsTable(ConfigTable):
    """The schema of the ``[srs]`` table (postsrsd's names are taken as ours first)."""

    domain: str | None = None
    secrets_file: str | None = None
    separator: str | None = None
    hash_length: Count | None = None
    hash_minimum: Count | None = None
    hash_alphabet: Literal["url", "classic"] | None = None
    max_age_days: Count | None = None
    local_domains: Strings | None = None
    local_domains_file: str | None = None
    always_rewrite: bool | None = None
    original_envelope: Literal["embedded", "database"] | None = None
    envelope_database: str | None = None
    max_aliases: Count | None = None

    def __post_init__(self) -> None:
        check_store_location(self.envelope_database)


@dataclass(frozen=True, slots=True)
class SRSSettings:
    """The ``[srs]`` table."""

    domain: str | None = None
    secrets_file: Path | None = None
    separator: str = "="
    hash_length: int = 4
    hash_minimum: int = 4
    hash_alphabet: str = "url"
    max_age_days: int = 21
    local_domains: tuple[str, ...] = ()
    local_domains_file: Path | None = None
    always_rewrite: bool = False
    original_envelope: str = "embedded"
    envelope_database: str | None = None
    max_aliases: int = 1_000_000


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration file, read once."""

    path: Path | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    srs: SRSSettings = field(default_factory=SRSSettings)
    sections: Mapping[str, Any] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path | None:
        """The folder relative paths are taken from (None: the current folder)."""
        return None if self.path is None else self.path.parent

    def resolve(self, value: str | Path) -> Path:
        """A path from the configuration, relative to the configuration file's folder."""
        path = Path(value).expanduser()
        if self.path is None or path.is_absolute():
            return path
        return self.path.parent / path


#: A file or folder given to the Python API: a ``str`` or any ``os.PathLike``.
StrPath = str | os.PathLike[str]


def load_config(path: StrPath | None) -> Config:
    """Read the configuration at ``path``; with None, the default file if it exists.

    Raises:
        ConfigError: the file cannot be read, is not TOML, or has a wrong value.
    """
    if path is None:
        if not DEFAULT_CONFIG_PATH.is_file():
            return Config()
        path = DEFAULT_CONFIG_PATH
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path} is not valid TOML: nested too deeply") from None
    return config_from_data(data, path)


def config_from_data(data: Mapping[str, Any], path: StrPath | None) -> Config:
    """A ``Config`` from already-parsed TOML-shaped ``data`` (other formats convert to it).

    Args:
        path: the file it came from; relative paths are taken from its folder.

    Raises:
        ConfigError: a wrong value.
    """
    from srsfwd.config_schema import validate_config

    validate_config(data)
    base = Config(path=Path(path).absolute() if path is not None else None)
    state_dir = (
        base.resolve(_expect(data, "state_dir", str, ""))
        if "state_dir" in data
        else (DEFAULT_STATE_DIR)
    )
    srs = _srs_settings(base, _table(data, "srs"))
    return Config(path=base.path, state_dir=state_dir, srs=srs, sections=data)


def _srs_settings(base: Config, table: Mapping[str, Any]) -> SRSSettings:
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        key = SRS_KEY_ALIASES.get(key, key)
        if key not in SRSSettings.__dataclass_fields__:
            raise ConfigError(f"[srs] has no setting {raw_key!r}")
        values[key] = value
    typed: dict[str, Any] = {}
    for key, value in values.items():
        default = getattr(SRSSettings(), key)
        if key in ("secrets_file", "local_domains_file"):
            typed[key] = base.resolve(_check(key, value, str))
        elif key == "local_domains":
            if isinstance(value, str):
                value = value.replace(",", " ").split()
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError("[srs] local_domains must be a list of domains")
            typed[key] = tuple(value)
        elif isinstance(default, bool):
            typed[key] = _check(key, value, bool)
        elif isinstance(default, int):
            typed[key] = _check(key, value, int)
        else:
            typed[key] = _check(key, value, str)
    settings = SRSSettings(**typed)
    if settings.original_envelope not in ("embedded", "database"):
        raise ConfigError("[srs] original_envelope must be 'embedded' or 'database'")
    return settings


def _table(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table")
    return table


def _check(key: str, value: object, kind: type[T]) -> T:
    # bool is an int in Python; a TOML 'true' must not pass as a hash length.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{key} must be a {kind.__name__}, not {value!r}")
    return value


def _expect(data: Mapping[str, Any], key: str, kind: type[T], default: T) -> T:
    return _check(key, data.get(key, default), kind)
