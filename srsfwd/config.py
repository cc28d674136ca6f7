"""The TOML configuration: checked once against its schema, read into frozen settings;
command-line flags win.

The whole file is checked when it is loaded (``srsfwd.config_file``); each feature then
reads its own typed table from ``Config.file`` (``[srs]`` is read once, into
``Config.srs``). Relative paths are taken from the configuration file's folder.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from srsfwd.errors import ConfigError

if TYPE_CHECKING:  # the schema imports every feature's table, and they import this module
    from srsfwd.config_file import ConfigFile
    from srsfwd.srs import HashAlphabet

DEFAULT_CONFIG_PATH = Path("/etc/srsfwd/srsfwd.toml")
DEFAULT_STATE_DIR = Path("/var/lib/srsfwd")

#: ``[srs] original_envelope``: in the SRS address, or under a short alias in a database.
OriginalEnvelope = Literal["embedded", "database"]


@dataclass(frozen=True, slots=True)
class SRSSettings:
    """The ``[srs]`` table."""

    domain: str | None = None
    secrets_file: Path | None = None
    separator: str = "="
    hash_length: int = 4
    hash_minimum: int = 4
    hash_alphabet: HashAlphabet = "url"
    max_age_days: int = 21
    local_domains: tuple[str, ...] = ()
    local_domains_file: Path | None = None
    always_rewrite: bool = False
    original_envelope: OriginalEnvelope = "embedded"
    envelope_database: str | None = None
    max_aliases: int = 1_000_000


def _empty_file() -> ConfigFile:
    from srsfwd.config_file import ConfigFile

    return ConfigFile()


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration file, read once.

    Attributes:
        file: every table, checked against the schema and typed: what features read.
        sections: the file as parsed (to merge it with another source, to tell what it sets).
    """

    path: Path | None = None
    state_dir: Path = DEFAULT_STATE_DIR
    srs: SRSSettings = field(default_factory=SRSSettings)
    file: ConfigFile = field(default_factory=_empty_file)
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
        ConfigError: a wrong value, an unknown table or key (one line naming it).
    """
    from srsfwd.config_file import parse_config_file
    from srsfwd.srs_settings import srs_settings

    file = parse_config_file(data)
    base = Config(path=Path(path).absolute() if path is not None else None)
    state_dir = DEFAULT_STATE_DIR if file.state_dir is None else base.resolve(file.state_dir)
    return Config(
        path=base.path,
        state_dir=state_dir,
        srs=srs_settings(base, file.srs),
        file=file,
        sections=data,
    )
