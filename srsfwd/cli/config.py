"""``srsfwd config``: check the configuration file and show the settings in force."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click

from srsfwd.cli.common import config_option, echo_json, json_option, open_config, with_overrides


@click.group()
def config() -> None:
    """Check the configuration file and show the settings in force.

    \b
    Example:
      srsfwd config check --config /etc/srsfwd/srsfwd.toml
    """


@config.command()
@config_option
@json_option
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the state is kept, instead of state_dir.",
)
@click.option("--domain", help="Our SRS domain, instead of [srs] domain.")
@click.option(
    "--secret-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SRS secrets file, instead of [srs] secrets_file.",
)
def check(
    config_path: Path | None,
    as_json: bool,
    state_dir: Path | None,
    domain: str | None,
    secret_file: Path | None,
) -> None:
    """Check the configuration and print every setting in force, with where it came
    from: the file, a flag, or the default. Secrets and keys are never read or printed
    (only their paths); a password in a URL is redacted.

    Exit status 0 when the configuration is valid; 1 with one Error: line naming the
    table and key when it is not.

    \b
    Example:
      srsfwd config check --config examples/srsfwd.toml
      srsfwd config check --json --config examples/srsfwd.toml --state-dir /tmp/state
    """
    from srsfwd.config_report import effective_configuration

    loaded = open_config(config_path)
    flags: list[str] = []
    if state_dir is not None:
        loaded = dataclasses.replace(loaded, state_dir=state_dir.absolute())
        flags.append("state_dir")
    overrides = {"domain": domain, "secrets_file": secret_file}
    loaded = dataclasses.replace(loaded, srs=with_overrides(loaded.srs, **overrides))
    flags += [f"srs.{key}" for key, value in overrides.items() if value is not None]
    settings = effective_configuration(loaded, flags)
    path = str(loaded.path) if loaded.path is not None else None
    if as_json:
        echo_json({"path": path, "valid": True, "settings": _as_json(settings)})
        return
    click.echo(f"# {path or 'no configuration file: defaults'}: valid")
    _echo_table([], settings)


def _as_json(settings: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"value": item[0], "source": item[1]} if isinstance(item, tuple) else _as_json(item)
        for key, item in settings.items()
    }


def _echo_table(names: list[str], settings: dict[str, Any]) -> None:
    rows = [(key, item) for key, item in settings.items() if isinstance(item, tuple)]
    if names and rows:
        click.echo(f"\n[{'.'.join(names)}]")
    width = max((len(_line(names, key, value)) for key, (value, _) in rows), default=0)
    for key, (value, source) in rows:
        click.echo(f"{_line(names, key, value):<{width}}  # {source}")
    for key, item in settings.items():
        if not isinstance(item, tuple):
            _echo_table([*names, key], item)


def _line(names: list[str], key: str, value: Any) -> str:
    if names[:1] == ["serve"]:
        key = key.replace("_", "-")  # [serve] follows postsrsd's spelling
    shown = "(not set)" if value is None else json.dumps(value)
    return f"{key} = {shown}"
