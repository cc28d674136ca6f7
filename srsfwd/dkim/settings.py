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
from srsfwd.config_schema import (
    ConfigTable,
    Count,
    Port,
    Seconds,
    Strings,
    as_list,
    check_authserv_id,
    given,
)

DEFAULT_KEYS_DIR = "keys"


class DomainRuleTable(ConfigTable, frozen=True):
    """One ``[dkim.domains]`` rule written as a table (the key store checks the names)."""

    domain: str | None = None
    selectors: list[str] | None = None


#: A ``[dkim.domains]`` rule: a selector, a list of them, or a table.
DomainRule = str | list[str] | DomainRuleTable


class DkimTable(ConfigTable, frozen=True):
    """The schema of the ``[dkim]`` table."""

    keys_dir: str | None = None
    expire_days: Count | None = None
    authserv_id: str | None = None
    domains: dict[str, DomainRule] | None = None

    def __post_init__(self) -> None:
        check_authserv_id("authserv_id", self.authserv_id)


class DnsTable(ConfigTable, frozen=True):
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
    """The ``[dkim]`` table of ``config`` (checked when it was loaded), paths resolved."""
    table = config.file.dkim
    values: dict[str, Any] = given(table)
    values["keys_dir"] = config.resolve(table.keys_dir or DEFAULT_KEYS_DIR)
    if table.domains is not None:
        values["domains"] = {
            pattern: given(rule) if isinstance(rule, ConfigTable) else rule
            for pattern, rule in table.domains.items()
        }
    return DkimSettings(**values)


def dns_settings(config: Config) -> DnsSettings:
    """The ``[dns]`` table of ``config`` (checked when it was loaded), paths resolved."""
    table = config.file.dns
    values: dict[str, Any] = given(table)
    if table.nameservers is not None:
        values["nameservers"] = tuple(as_list(table.nameservers))
    if table.zone_files is not None:
        values["zone_files"] = tuple(config.resolve(z) for z in as_list(table.zone_files))
    if table.timeout is not None:
        values["timeout"] = float(table.timeout)
    return DnsSettings(**values)
