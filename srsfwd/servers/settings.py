"""The ``[serve]`` table: what ``srsfwd serve`` listens on and its limits. Pure.

Keys use postsrsd's names where postsrsd has one (``socketmap``, ``keep-alive``,
``connection-limit``); ``-`` and ``_`` are the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from srsfwd.config import Config
from srsfwd.config_schema import ConfigTable, PositiveCount, Seconds, Strings
from srsfwd.errors import ConfigError
from srsfwd.hostport import parse_host_port

#: postsrsd 2.x's default socket: Postfix (chrooted) names it ``unix:srs``.
DEFAULT_SOCKETMAP = "unix:/var/spool/postfix/srs"
LOG_TARGETS = ("stderr", "syslog")
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a server listens: a unix socket path, or a TCP host and port."""

    path: str | None = None
    host: str | None = None
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"inet:{host}:{self.port}"


def parse_endpoint(text: str) -> Endpoint:
    """An endpoint as postsrsd writes it.

    ``unix:PATH`` or ``local:PATH``; ``inet:HOST:PORT``, ``inet4:…``, ``inet6:…``,
    ``inet:[::1]:PORT``; a bare ``HOST:PORT`` is TCP. ``localhost`` is the loopback.

    Raises:
        ConfigError: anything else, or a port outside 1..65535.
    """
    scheme, colon, rest = text.partition(":")
    if colon and scheme in ("unix", "local"):
        if not rest:
            raise ConfigError(f"{text!r}: empty socket path")
        return Endpoint(path=rest)
    address = rest if colon and scheme in ("inet", "inet4", "inet6") else text
    try:
        host, port = parse_host_port(address)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not unix:PATH or inet:HOST:PORT ({exc})") from None
    if host == "localhost":
        host = "::1" if scheme == "inet6" else "127.0.0.1"
    return Endpoint(host=host, port=port)


class ServeTable(ConfigTable):
    """The schema of the ``[serve]`` table (keys with ``_`` for ``-``).

    Endpoints, the socket mode and header names are checked by ``serve_settings``.
    """

    socketmap: Strings | None = None
    tcp_table_forward: Strings | None = None
    tcp_table_reverse: Strings | None = None
    socket_owner: str | int | None = None
    socket_group: str | int | None = None
    socket_mode: str | int | None = None
    keep_alive: Seconds | None = None
    connection_limit: PositiveCount | None = None
    tcp_table_connection_limit: PositiveCount | None = None
    milter_connection_limit: PositiveCount | None = None
    peer_connection_limit: PositiveCount | None = None
    first_request_timeout: Seconds | None = None
    long_addresses: Literal["refuse", "rewrite"] | None = None
    log: Literal["stderr", "syslog"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    metrics: str | None = None
    milter: Strings | None = None
    milter_default_action: Literal["tempfail", "accept"] | None = None
    milter_local_domains: list[str] | None = None
    milter_spam_header: str | None = None
    milter_pool_header: str | None = None
    milter_timeout: Seconds | None = None
    milter_workers: PositiveCount | None = None


@dataclass(frozen=True, slots=True)
class ServeSettings:
    """The ``[serve]`` table.

    Attributes:
        socketmap: endpoints serving the ``forward`` and ``reverse`` socketmaps.
        tcp_table_forward, tcp_table_reverse: postsrsd 1.x style tcp_table endpoints,
            one map per endpoint.
        socket_owner, socket_group, socket_mode: for the unix sockets we create (mode
            0666 by default, as postsrsd: Postfix's processes run as ``postfix``).
        keep_alive: seconds a connection may go without a complete request.
        connection_limit: socketmap connections served at once; more are closed at once.
        tcp_table_connection_limit, milter_connection_limit: the same for the tcp_table
            endpoints (forward and reverse together) and for the milter: each service
            has its own, so clients of one cannot lock the others out.
        peer_connection_limit: connections one peer may hold to one service (a TCP
            peer is its address, a unix socket peer its user id).
        first_request_timeout: seconds a new connection has to complete its first
            request (the milter: its option negotiation) before it is closed.
        long_addresses: ``refuse`` (NOTFOUND, the sender is kept) or ``rewrite`` (as
            postsrsd: an SRS local part over 64 octets).
        log, log_level: ``stderr`` or ``syslog`` (facility mail).
        metrics: ``HOST:PORT`` for a Prometheus endpoint; none by default.
        milter: endpoints serving the milter (the forwarding pipeline inside Postfix).
        milter_default_action: what an internal error does to a message: ``tempfail``
            (451, Postfix retries) or ``accept`` (passed on unchanged).
        milter_local_domains: recipients here are delivered locally; a message for them
            only is left as it is. None: ``[decide] accepted_domains``.
        milter_spam_header: the header our own spam filter adds (``X-Spam-Flag``);
            ``YES`` (any case) sends the message through the high-risk pool.
        milter_pool_header: the header naming the pool, for ``milter_header_checks``.
        milter_timeout: seconds a milter connection may be idle (Postfix keeps it for
            the whole SMTP session, so longer than ``smtpd_timeout``).
        milter_workers: messages run through the pipeline at once (threads).
    """

    socketmap: tuple[Endpoint, ...] = (parse_endpoint(DEFAULT_SOCKETMAP),)
    tcp_table_forward: tuple[Endpoint, ...] = ()
    tcp_table_reverse: tuple[Endpoint, ...] = ()
    socket_owner: str | None = None
    socket_group: str | None = None
    socket_mode: int = 0o666
    keep_alive: float = 30.0
    connection_limit: int = 200
    tcp_table_connection_limit: int = 200
    milter_connection_limit: int = 200
    peer_connection_limit: int = 150
    first_request_timeout: float = 10.0
    long_addresses: Literal["refuse", "rewrite"] = "refuse"
    log: Literal["stderr", "syslog"] = "stderr"
    log_level: str = "info"
    metrics: Endpoint | None = None
    milter: tuple[Endpoint, ...] = ()
    milter_default_action: Literal["tempfail", "accept"] = "tempfail"
    milter_local_domains: tuple[str, ...] | None = None
    milter_spam_header: str = ""
    milter_pool_header: str = "X-Srsfwd-Pool"
    milter_timeout: float = 600.0
    milter_workers: int = 16

    def endpoints(self) -> list[tuple[str, Endpoint]]:
        """Every (service, endpoint) to listen on; service is a server kind name."""
        return [
            *(("socketmap", e) for e in self.socketmap),
            *(("tcp-forward", e) for e in self.tcp_table_forward),
            *(("tcp-reverse", e) for e in self.tcp_table_reverse),
            *(("milter", e) for e in self.milter),
        ]


def serve_settings(config: Config) -> ServeSettings:
    """The ``[serve]`` table of ``config``, checked.

    Raises:
        ConfigError: an unknown key or a wrong value.
    """
    table = config.sections.get("serve", {})
    if not isinstance(table, Mapping):
        raise ConfigError("[serve] must be a table")
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("-", "_")
        if key not in ServeSettings.__dataclass_fields__:
            raise ConfigError(f"[serve] has no setting {raw_key!r}")
        values[key] = _convert(config, key, value)
    settings = ServeSettings(**values)
    if not settings.endpoints():
        raise ConfigError(
            "[serve] listens nowhere: set socketmap, milter or tcp-table-forward/-reverse"
        )
    paths = [str(e) for _, e in settings.endpoints()]
    if len(set(paths)) != len(paths):
        raise ConfigError("[serve] names the same endpoint twice")
    return settings


def _convert(config: Config, key: str, value: Any) -> Any:
    where = f"[serve] {key.replace('_', '-')}"
    if key in ("socketmap", "tcp_table_forward", "tcp_table_reverse", "milter"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{where} must be an endpoint or a list of endpoints")
        endpoints = [parse_endpoint(i) for i in items if i]
        return tuple(
            Endpoint(path=str(config.resolve(e.path))) if e.path is not None else e
            for e in endpoints
        )
    if key in ("socket_owner", "socket_group"):
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a user or group name or number")
        return str(value)
    if key == "socket_mode":
        mode = value
        if isinstance(value, str):
            try:
                mode = int(value, 8)
            except ValueError:
                raise ConfigError(f'{where} must be octal, like "0660"') from None
        if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o777:
            raise ConfigError(f"{where} must be a mode 0..0777")
        return mode
    if key in ("keep_alive", "first_request_timeout", "milter_timeout"):
        if (
            not isinstance(value, int | float)
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ConfigError(f"{where} must be a number of seconds above 0")
        return float(value)
    if key == "milter_local_domains":
        if not isinstance(value, list) or not all(isinstance(d, str) for d in value):
            raise ConfigError(f"{where} must be a list of domains")
        return tuple(value)
    if key in ("milter_spam_header", "milter_pool_header"):
        if not isinstance(value, str) or not re.fullmatch(r"[\x21-\x39\x3b-\x7e]*", value):
            raise ConfigError(f"{where} must be a header field name")
        if key == "milter_pool_header" and not value:
            raise ConfigError(f"{where} must not be empty")
        return value
    if key in (
        "connection_limit",
        "tcp_table_connection_limit",
        "milter_connection_limit",
        "peer_connection_limit",
        "milter_workers",
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where} must be a whole number above 0")
        return value
    if key == "metrics":
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be HOST:PORT")
        if not value:
            return None
        endpoint = parse_endpoint(value)
        if endpoint.is_unix:
            raise ConfigError(f"{where} must be HOST:PORT")
        return endpoint
    choices = {
        "long_addresses": ("refuse", "rewrite"),
        "log": LOG_TARGETS,
        "log_level": LOG_LEVELS,
        "milter_default_action": ("tempfail", "accept"),
    }[key]
    if value not in choices:
        raise ConfigError(f"{where} must be one of {', '.join(choices)}")
    return value
