"""Pieces every subcommand shares: the --config option and error reporting."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from srsfwd.config import Config, SRSSettings, load_config
from srsfwd.dnscheck.resolver import Resolver
from srsfwd.errors import SrsfwdError

F = TypeVar("F", bound=Callable[..., Any])


class WarningsToStderr(logging.Handler):
    """The library's warnings (a group-readable secrets file...) as ``warning: ...`` lines
    on standard error, for commands that set up no logging of their own."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname.lower()}: {record.getMessage()}", err=True)


def show_warnings() -> None:
    """Show the ``srsfwd`` logger's warnings on standard error until the command ends."""
    logger = logging.getLogger("srsfwd")
    handler = WarningsToStderr()
    logger.addHandler(handler)
    click.get_current_context().call_on_close(lambda: logger.removeHandler(handler))


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


def dns_options(function: F) -> F:
    """Add ``--zone FILE`` (repeatable) and ``--dns-server HOST[:PORT]``; see
    ``resolver_from_options`` for the resolver they ask for."""
    function = click.option(
        "--dns-server",
        metavar="HOST[:PORT]",
        help="Ask this DNS server (an IP address) [config: dns.nameservers].",
    )(function)
    return click.option(
        "--zone",
        "zone_files",
        multiple=True,
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="Answer DNS from this master file only, no network. Repeatable.",
    )(function)


def resolver_from_options(
    config: Config,
    zone_files: tuple[Path, ...],
    dns_server: str | None,
    *,
    timeout: float | None = None,
) -> Resolver:
    """The resolver that ``--zone`` and ``--dns-server`` ask for, else the configured one."""
    from srsfwd.app import build_resolver  # the wiring imports the whole library

    servers: tuple[str, ...] = ()
    port: int | None = None
    if dns_server:
        try:
            host, port = parse_dns_server(dns_server)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--dns-server") from None
        servers = (host,)
    try:
        return build_resolver(
            config, zone_files=zone_files, nameservers=servers, port=port, timeout=timeout
        )
    except SrsfwdError as exc:
        raise click.ClickException(str(exc)) from None


def parse_dns_server(text: str) -> tuple[str, int]:
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) → (IP, port); HOST must be an IP address.

    Raises:
        ValueError: with the reason.
    """
    host, port = text.strip(), 53
    if host.startswith("["):
        inside, _, rest = host[1:].partition("]")
        host = inside
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected [IPv6]:PORT")
            port = int(rest[1:])
    elif host.count(":") == 1:
        host, _, port_text = host.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is out of range")
    return host, port


def read_message(path: Path | None, limit: int) -> bytes:
    """The message in ``path`` (standard input when None), refused past ``limit`` bytes."""
    name = "standard input" if path is None else str(path)
    try:
        if path is None:
            data = sys.stdin.buffer.read(limit + 1)
        else:
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
    except OSError as exc:
        raise click.ClickException(f"cannot read {name}: {exc.strerror}") from None
    if len(data) > limit:
        raise click.ClickException(f"{name}: message larger than {limit >> 20} MiB")
    return data
