"""Pieces every subcommand shares: --config, the DNS options, parameter types, the
message reader and error lines."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from srsfwd.config import Config, SRSSettings, load_config
from srsfwd.hostport import parse_host_port
from srsfwd.logtext import one_line
from srsfwd.sizes import MAX_MESSAGE

if TYPE_CHECKING:
    from srsfwd.dns.resolver import Resolver

    _HostPortType = click.ParamType[tuple[str, int]]
    _TextType = click.ParamType[str]
else:  # click before 8.2 has no generic ParamType
    _HostPortType = _TextType = click.ParamType

F = TypeVar("F", bound=Callable[..., Any])


class WarningsToStderr(logging.Handler):
    """The library's warnings (a group-readable secrets file...) as ``Warning: ...`` lines
    on standard error (``Error: ...`` for errors, as click writes its own), for commands
    that set up no logging of their own."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"{record.levelname.capitalize()}: {one_line(record.getMessage())}", err=True)


def show_warnings() -> None:
    """Show the ``srsfwd`` logger's warnings on standard error until the command ends."""
    logger = logging.getLogger("srsfwd")
    handler = WarningsToStderr()
    logger.addHandler(handler)
    click.get_current_context().call_on_close(lambda: logger.removeHandler(handler))


def config_option(function: F) -> F:
    """Add ``-c/--config FILE`` (default /etc/srsfwd/srsfwd.toml when present)."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="SRSFWD_CONFIG",
        help="TOML configuration file [default: /etc/srsfwd/srsfwd.toml when present].",
    )(function)


def open_config(path: Path | None) -> Config:
    """Load the configuration (a bad one is an ``Error:`` line and exit status 1)."""
    return load_config(path)


def with_overrides(settings: SRSSettings, **flags: Any) -> SRSSettings:
    """``settings`` with every flag that was given (not None, not empty) put in."""
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    return dataclasses.replace(settings, **given)


def json_option(function: F) -> F:
    """Add ``--json``: the command prints one JSON document instead of lines for people."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document (for scripts)."
    )(function)


def echo_json(document: object) -> None:
    """Print ``document`` as indented JSON with sorted keys."""
    click.echo(json.dumps(document, indent=2, sort_keys=True))


def error(message: str) -> None:
    """Print ``Error: message`` on standard error, as click prints its own errors."""
    click.echo(f"Error: {message}", err=True)


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


class HostPort(_HostPortType):
    """``HOST[:PORT]`` (``[v6]:PORT`` for IPv6) as ``(host, port)``."""

    name = "host_port"

    def __init__(self, default_port: int, *, ip_only: bool = False) -> None:
        self.default_port = default_port
        self.ip_only = ip_only

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "IP[:PORT]" if self.ip_only else "HOST[:PORT]"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_host_port(str(value), default_port=self.default_port, ip_only=self.ip_only)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class IPAddress(_TextType):
    """An IPv4 or IPv6 address (brackets allowed), as its text without brackets."""

    name = "ip"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "IP"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip().strip("[]")
        try:
            ipaddress.ip_address(text)
        except ValueError:
            self.fail(f"{value!r} is not an IP address", param, ctx)
        return text


@dataclasses.dataclass(frozen=True, slots=True)
class DnsChoice:
    """What the DNS options ask for: zone files, servers (one port), a timeout."""

    zone_files: tuple[Path, ...] = ()
    nameservers: tuple[str, ...] = ()
    port: int | None = None
    timeout: float | None = None


_DEPRECATED_DNS = {
    "nameservers": "--nameserver is deprecated; use --dns-server IP[:PORT]",
    "old_port": "--port is deprecated; use --dns-server IP:PORT",
    "old_timeout": "--timeout is deprecated; use --dns-timeout",
}


def dns_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--zone FILE``, ``--dns-server IP[:PORT]`` and ``--dns-timeout SECONDS`` (and
    the old ``--nameserver/--port/--timeout``, hidden); the command gets them together
    as ``dns: DnsChoice`` (``resolver_from_options`` turns it into a resolver)."""

    @functools.wraps(function)
    def with_dns(*args: Any, **kwargs: Any) -> Any:
        kwargs["dns"] = _dns_choice(
            kwargs.pop("zone_files"),
            kwargs.pop("dns_servers"),
            kwargs.pop("dns_timeout"),
            nameservers=kwargs.pop("nameservers"),
            old_port=kwargs.pop("old_port"),
            old_timeout=kwargs.pop("old_timeout"),
        )
        return function(*args, **kwargs)

    options = [
        click.option(
            "--zone",
            "zone_files",
            multiple=True,
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="Answer DNS from this master file only, no network. Repeatable.",
        ),
        click.option(
            "--dns-server",
            "dns_servers",
            multiple=True,
            type=HostPort(53, ip_only=True),
            help="Ask this DNS server [config: dns.nameservers]. Repeatable.",
        ),
        click.option(
            "--dns-timeout",
            type=click.FloatRange(0.01, 3600),
            metavar="SECONDS",
            help="Give up on a DNS question after this long [config; 5].",
        ),
        click.option("--nameserver", "nameservers", multiple=True, hidden=True),
        click.option("--port", "old_port", type=click.IntRange(1, 65535), hidden=True),
        click.option("--timeout", "old_timeout", type=click.FloatRange(0.01, 3600), hidden=True),
    ]
    for option in reversed(options):
        with_dns = option(with_dns)
    return with_dns


def _dns_choice(
    zone_files: tuple[Path, ...],
    dns_servers: tuple[tuple[str, int], ...],
    dns_timeout: float | None,
    *,
    nameservers: tuple[str, ...],
    old_port: int | None,
    old_timeout: float | None,
) -> DnsChoice:
    given = {"nameservers": nameservers, "old_port": old_port, "old_timeout": old_timeout}
    for name, value in given.items():
        if value:
            click.echo(f"srsfwd: {_DEPRECATED_DNS[name]}", err=True)
    servers = [*dns_servers]
    for text in nameservers:
        try:
            servers.append(parse_host_port(text, default_port=old_port or 53, ip_only=True))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--nameserver") from None
    ports = {port for _, port in servers}
    if len(ports) > 1:
        raise click.BadParameter("every server must use the same port", param_hint="--dns-server")
    return DnsChoice(
        zone_files=zone_files,
        nameservers=tuple(host for host, _ in servers),
        port=ports.pop() if ports else old_port,
        timeout=dns_timeout if dns_timeout is not None else old_timeout,
    )


def resolver_from_options(
    config: Config, dns: DnsChoice, *, timeout: float | None = None
) -> Resolver:
    """The resolver the DNS options ask for, else the configured one; ``timeout`` is the
    command's own default when ``--dns-timeout`` is not given."""
    from srsfwd.app import build_resolver  # the wiring imports the whole library

    return build_resolver(
        config,
        zone_files=dns.zone_files,
        nameservers=dns.nameservers,
        port=dns.port,
        timeout=dns.timeout if dns.timeout is not None else timeout,
    )


def read_message(path: Path | None, limit: int = MAX_MESSAGE) -> bytes:
    """The message in ``path`` (standard input when None or ``-``), refused past ``limit``."""
    if path is not None and str(path) == "-":
        path = None
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
