"""Pieces every subcommand shares: the --config option and error reporting."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from srsfwd.config import Config, SRSSettings, load_config
from srsfwd.errors import SrsfwdError

F = TypeVar("F", bound=Callable[..., Any])


def config_option(function: F) -> F:
    """Add ``--config FILE`` (default /etc/srsfwd/srsfwd.toml when present)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="SRSFWD_CONFIG",
        help="TOML configuration file [default: /etc/srsfwd/srsfwd.toml when present].",
    )(function)


def open_config(path: Path | None) -> Config:
    """Load the configuration, turning a bad one into a clean command-line error."""
    try:
        return load_config(path)
    except SrsfwdError as exc:
        raise click.ClickException(str(exc)) from None


def with_overrides(settings: SRSSettings, **flags: Any) -> SRSSettings:
    """``settings`` with every flag that was given (not None, not empty) put in."""
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    return dataclasses.replace(settings, **given)


def error(message: str) -> None:
    """Print ``error: message`` on standard error."""
    click.echo(f"error: {message}", err=True)


def lines_or_stdin(arguments: Iterable[str]) -> Iterator[str]:
    """The arguments, or the non-blank lines of standard input when there are none."""
    items = list(arguments)
    if items:
        yield from items
        return
    for line in sys.stdin:
        line = line.rstrip("\r\n")
        if line.strip():
            yield line
