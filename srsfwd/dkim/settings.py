"""The ``[dkim]`` and ``[dns]`` tables of the configuration, read into frozen settings.

    [dkim]
    keys_dir = "keys"              # the key store, relative to the configuration file
    expire_days = 7                # x= this many days after t=; 0 or absent: no x=
    authserv_id = "fwd.example.net"   # for `srsfwd seal` and Authentication-Results
    [dkim.domains]                 # key table overrides (see srsfwd.keystore)
    "*.example.com" = { domain = "example.com" }

    [dns]
    nameservers = ["127.0.0.1"]    # absent: those of /etc/resolv.conf
    port = 53
    timeout = 5.0
    zone_files = []                # answer from these master files only (tests, examples)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srsfwd.config import Config
from srsfwd.config_schema import ConfigTable, Count, Port, Seconds, Strings
from srsfwd.errors import ConfigError

DEFAULT_KEYS_DIR = "keys"


class DkimTable(ConfigTable):
    """The schema of the ``[dkim]`` table (``domains`` is checked by the key store)."""

    keys_dir: str | None = None
    expire_days: Count | None = None
    authserv_id: str | None = None
    domains: dict[str, Any] | None = None


class DnsTable(ConfigTable):
    """The schema of the ``[dns]`` table."""

    nameservers: Strings | None = None
    port: Port | None = None
    timeout: Seconds | None = None
    zone_files: Strings | None = None


@dataclass(frozen=True, slots=True)
class DkimSettings:
    """The ``[dkim]`` table."""

    keys_dir: Path = Path(DEFAULT_KEYS_DIR)
    expire_days: int = 0
    authserv_id: str | None = None
    domains: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DnsSettings:
    """The ``[dns]`` table."""

    nameservers: tuple[str, ...] = ()
    port: int = 53
    timeout: float = 5.0
    zone_files: tuple[Path, ...] = ()


def dkim_settings(config: Config) -> DkimSettings:
    """The ``[dkim]`` table of ``config``.

    Raises:
        ConfigError: an unknown key or a value of the wrong type.
    """
    table = _table(config, "dkim")
    _only(table, "dkim", {"keys_dir", "expire_days", "authserv_id", "domains"})
    expire = table.get("expire_days", 0)
    if not isinstance(expire, int) or isinstance(expire, bool) or expire < 0:
        raise ConfigError("[dkim] expire_days must be a whole number of days (0: no x=)")
    authserv = table.get("authserv_id")
    if authserv is not None and not isinstance(authserv, str):
        raise ConfigError("[dkim] authserv_id must be a string")
    domains = table.get("domains", {})
    if not isinstance(domains, dict):
        raise ConfigError("[dkim.domains] must be a table")
    keys_dir = table.get("keys_dir", DEFAULT_KEYS_DIR)
    if not isinstance(keys_dir, str):
        raise ConfigError("[dkim] keys_dir must be a path")
    return DkimSettings(config.resolve(keys_dir), expire, authserv, domains)


def dns_settings(config: Config) -> DnsSettings:
    """The ``[dns]`` table of ``config``.

    Raises:
        ConfigError: an unknown key or a value of the wrong type.
    """
    table = _table(config, "dns")
    _only(table, "dns", {"nameservers", "port", "timeout", "zone_files"})
    servers = table.get("nameservers", [])
    if isinstance(servers, str):
        servers = [servers]
    zones = table.get("zone_files", [])
    if isinstance(zones, str):
        zones = [zones]
    if not all(isinstance(s, str) for s in servers) or not all(isinstance(z, str) for z in zones):
        raise ConfigError("[dns] nameservers and zone_files must be lists of strings")
    port = table.get("port", 53)
    timeout = table.get("timeout", 5.0)
    if not isinstance(port, int) or isinstance(port, bool):
        raise ConfigError("[dns] port must be a number")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool):
        raise ConfigError("[dns] timeout must be a number of seconds")
    return DnsSettings(
        tuple(servers), port, float(timeout), tuple(config.resolve(z) for z in zones)
    )


def _table(config: Config, name: str) -> Mapping[str, Any]:
    table = config.sections.get(name, {})
    if not isinstance(table, dict):
        raise ConfigError(f"[{name}] must be a table")
    return table


def _only(table: Mapping[str, Any], name: str, known: set[str]) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[{name}] has no setting {unknown[0]!r}")
