"""The schema of the whole configuration file: every feature's table put together."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from srsfwd.config_schema import ConfigTable, convert_file
from srsfwd.dkim.settings import DkimTable, DnsTable
from srsfwd.forward_settings import ForwardTable
from srsfwd.limits import LimitsTable
from srsfwd.pool_settings import DecideTable, PoolsTable
from srsfwd.servers.settings import ServeTable
from srsfwd.srs_settings import SrsTable


class ConfigFile(ConfigTable, frozen=True):
    """The whole TOML file, checked: each table typed by the feature that owns it."""

    state_dir: str | None = None
    srs: SrsTable = msgspec.field(default_factory=SrsTable)
    dkim: DkimTable = msgspec.field(default_factory=DkimTable)
    dns: DnsTable = msgspec.field(default_factory=DnsTable)
    decide: DecideTable = msgspec.field(default_factory=DecideTable)
    pools: PoolsTable = msgspec.field(default_factory=PoolsTable)
    limits: LimitsTable = msgspec.field(default_factory=LimitsTable)
    forward: ForwardTable = msgspec.field(default_factory=ForwardTable)
    serve: ServeTable = msgspec.field(default_factory=ServeTable)


def parse_config_file(data: Mapping[str, Any]) -> ConfigFile:
    """``data`` (a parsed TOML file) checked against the schema of every table.

    Raises:
        ConfigError: one line naming the table and key.
    """
    return convert_file(data, ConfigFile)
