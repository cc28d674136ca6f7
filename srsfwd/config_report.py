"""The effective configuration: every setting's value in force and where it came from.

``srsfwd config check`` prints it. A value comes from the ``file``, from a ``flag`` given
on the command line, or is the ``default``. Secrets are never read (their files are shown
by path), and a password inside a URL is redacted.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from srsfwd.app import limit_policy, limits_store_location
from srsfwd.config import Config
from srsfwd.config_schema import ConfigTable, normalise
from srsfwd.dkim.settings import dkim_settings, dns_settings
from srsfwd.pool import Pool
from srsfwd.pool_settings import PoolTable, decide_settings, pools_from_config
from srsfwd.servers.settings import Endpoint, serve_settings

Source = Literal["file", "flag", "default"]
#: One setting: its value (as JSON has it) and where it came from.
Setting = tuple[Any, Source]

REDACTED = "(redacted)"
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)[^@/]*(?=@)")


def effective_configuration(
    config: Config, flags: Collection[str] = ()
) -> dict[str, Setting | dict[str, Any]]:
    """Every setting of ``config`` in force: top-level keys, then one table per section
    (``pools`` has one per pool), each key mapped to ``(value, source)``.

    Args:
        flags: the settings given on the command line, as ``"state_dir"`` or
            ``"srs.domain"``.

    Raises:
        ConfigError: what only building the settings finds (``[serve]`` listening
            nowhere, an accepted domain that is no domain).
    """
    written = normalise(dict(config.sections))
    file = config.file

    def table(name: str, schema: ConfigTable, values: Mapping[str, Any]) -> dict[str, Setting]:
        present: dict[str, Any] = written
        for step in name.split("."):
            present = present.get(step, {})
        return {
            key: (_plain(values[key]), _source(f"{name}.{key}", key in present, flags))
            for key in schema.__struct_fields__
            if key in values
        }

    decide = decide_settings(config)
    pools = pools_from_config(config)
    serve = serve_settings(config)
    return {
        "state_dir": (str(config.state_dir), _source("state_dir", "state_dir" in written, flags)),
        "srs": table("srs", file.srs, _fields(config.srs)),
        "dkim": table("dkim", file.dkim, _fields(dkim_settings(config))),
        "dns": table("dns", file.dns, _fields(dns_settings(config))),
        "decide": table(
            "decide",
            file.decide,
            {
                **_fields(decide),
                **_fields(decide.policy),
                "accepted_domains": file.decide.accepted_domains or [],
            },
        ),
        "pools": {
            pool.value: table(
                f"pools.{pool.name.lower()}",
                PoolTable(),
                {**_fields(pools[pool]), "dkim_sign": pools[pool].signs_with},
            )
            for pool in Pool
        },
        "limits": table(
            "limits",
            file.limits,
            {**_fields(limit_policy(config)), "store": limits_store_location(config)},
        ),
        "forward": table("forward", file.forward, _fields(file.forward)),
        "serve": table(
            "serve",
            file.serve,
            {**_fields(serve), "socket_mode": f"{serve.socket_mode:04o}"},
        ),
    }


def _source(name: str, in_file: bool, flags: Collection[str]) -> Source:
    if name in flags:
        return "flag"
    return "file" if in_file else "default"


def _fields(settings: Any) -> dict[str, Any]:
    """The fields of a settings object (a dataclass or a msgspec ``Struct``)."""
    names = getattr(settings, "__struct_fields__", None) or settings.__dataclass_fields__
    return {name: getattr(settings, name) for name in names}


def _plain(value: Any) -> Any:
    """``value`` as JSON has it: paths and endpoints as text, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path | Endpoint):
        return str(value)
    if isinstance(value, str):
        return _URL_PASSWORD.sub(rf"\g<head>{REDACTED}", value)
    if isinstance(value, ConfigTable):
        return {k: _plain(v) for k, v in _fields(value).items() if v is not None}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
