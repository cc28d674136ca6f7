"""The ``[serve]`` table: what ``srsfwd serve`` listens on and its limits. Pure.

Keys use postsrsd's names where postsrsd has one (``socketmap``, ``keep-alive``,
``connection-limit``); ``-`` and ``_`` are the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import msgspec

from srsfwd.config import Config
from srsfwd.config_schema import ConfigTable, PositiveCount, Seconds, Strings, as_list, given
from srsfwd.errors import ConfigError
from srsfwd.hostport import parse_host_port

#: postsrsd 2.x's default socket: Postfix (chrooted) names it ``unix:srs``.
DEFAULT_SOCKETMAP = "unix:/var/spool/postfix/srs"
LogTarget = Literal["stderr", "syslog"]
LogLevel = Literal["debug", "info", "warning", "error"]
#: What to do with a sender whose SRS local part would pass 64 octets.
LongAddresses = Literal["refuse", "rewrite"]
#: What an internal error does to a message in the milter.
MilterDefaultAction = Literal["tempfail", "accept"]
LOG_TARGETS: tuple[LogTarget, ...] = get_args(LogTarget)
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)


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


_ENDPOINT_KEYS = ("socketmap", "tcp_table_forward", "tcp_table_reverse", "milter")
_HEADER_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]*")
#: A socket owner or group: a name or a number.
Owner = str | Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]


class ServeTable(ConfigTable, frozen=True):
    """The schema of the ``[serve]`` table (keys with ``_`` for ``-``)."""

    socketmap: Strings | None = None
    tcp_table_forward: Strings | None = None
    tcp_table_reverse: Strings | None = None
    socket_owner: Owner | None = None
    socket_group: Owner | None = None
    socket_mode: str | Annotated[int, msgspec.Meta(ge=0, le=0o777)] | None = None
    keep_alive: Seconds | None = None
    connection_limit: PositiveCount | None = None
    tcp_table_connection_limit: PositiveCount | None = None
    milter_connection_limit: PositiveCount | None = None
    peer_connection_limit: PositiveCount | None = None
    first_request_timeout: Seconds | None = None
    long_addresses: LongAddresses | None = None
    log: LogTarget | None = None
    log_level: LogLevel | None = None
    metrics: str | None = None
    milter: Strings | None = None
    milter_default_action: MilterDefaultAction | None = None
    milter_local_domains: list[str] | None = None
    milter_spam_header: str | None = None
    milter_pool_header: str | None = None
    milter_timeout: Seconds | None = None
    milter_workers: PositiveCount | None = None
    milter_inline: bool | None = None

    def __post_init__(self) -> None:
        endpoints = [str(e) for key in _ENDPOINT_KEYS for e in self.endpoints(key)]
        if len(set(endpoints)) != len(endpoints):
            raise ValueError("socketmap: the same endpoint is named twice")
        if isinstance(self.socket_mode, str):
            self.mode()
        if self.metrics and self.metrics_endpoint() is None:
            raise ValueError(f"metrics: {self.metrics!r} must be HOST:PORT")
        for key in ("milter_spam_header", "milter_pool_header"):
            name = getattr(self, key)
            if name is not None and not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{key}: {name!r} is not a header field name")
        if self.milter_pool_header == "":
            raise ValueError("milter_pool_header: must not be empty")

    def endpoints(self, key: str) -> list[Endpoint]:
        """The endpoints of ``key`` (absent: none), parsed.

        Raises:
            ValueError: one that is not an endpoint, naming ``key``.
        """
        try:
            return [parse_endpoint(text) for text in as_list(getattr(self, key)) if text]
        except ConfigError as exc:
            raise ValueError(f"{key}: {exc}") from None

    def mode(self) -> int | None:
        """``socket_mode`` as a number (written in octal as a string, or a number).

        Raises:
            ValueError: a string that is not an octal mode.
        """
        if not isinstance(self.socket_mode, str):
            return self.socket_mode
        try:
            mode = int(self.socket_mode, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ValueError(f'socket_mode: {self.socket_mode!r} is not a mode like "0660"')
        return mode

    def metrics_endpoint(self) -> Endpoint | None:
        """``metrics`` as a TCP endpoint; None when absent, empty or a unix socket."""
        if not self.metrics:
            return None
        try:
            endpoint = parse_endpoint(self.metrics)
        except ConfigError as exc:
            raise ValueError(f"metrics: {exc}") from None
        return None if endpoint.is_unix else endpoint


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
        milter_inline: run a message (up to 1 MiB) on the event loop first, with DNS
            answered from the cache only; one whose answers are not all cached goes
            to a worker thread. Off: every message goes to a worker.
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
    long_addresses: LongAddresses = "refuse"
    log: LogTarget = "stderr"
    log_level: LogLevel = "info"
    metrics: Endpoint | None = None
    milter: tuple[Endpoint, ...] = ()
    milter_default_action: MilterDefaultAction = "tempfail"
    milter_local_domains: tuple[str, ...] | None = None
    milter_spam_header: str = ""
    milter_pool_header: str = "X-Srsfwd-Pool"
    milter_timeout: float = 600.0
    milter_workers: int = 16
    milter_inline: bool = True

    def endpoints(self) -> list[tuple[str, Endpoint]]:
        """Every (service, endpoint) to listen on; service is a server kind name."""
        return [
            *(("socketmap", e) for e in self.socketmap),
            *(("tcp-forward", e) for e in self.tcp_table_forward),
            *(("tcp-reverse", e) for e in self.tcp_table_reverse),
            *(("milter", e) for e in self.milter),
        ]


def serve_settings(config: Config) -> ServeSettings:
    """The ``[serve]`` table of ``config`` (checked when it was loaded), as settings.

    Raises:
        ConfigError: it listens nowhere (only ``serve`` needs somewhere to listen).
    """
    table = config.file.serve
    values: dict[str, Any] = given(table)
    for key in _ENDPOINT_KEYS:
        if key in values:
            values[key] = tuple(
                Endpoint(path=str(config.resolve(e.path))) if e.path is not None else e
                for e in table.endpoints(key)
            )
    for key in ("socket_owner", "socket_group"):
        if key in values:
            values[key] = str(values[key])
    if "socket_mode" in values:
        values["socket_mode"] = table.mode()
    if "metrics" in values:
        values["metrics"] = table.metrics_endpoint()
    if "milter_local_domains" in values:
        values["milter_local_domains"] = tuple(values["milter_local_domains"])
    for key in ("keep_alive", "first_request_timeout", "milter_timeout"):
        if key in values:
            values[key] = float(values[key])
    settings = ServeSettings(**values)
    if not settings.endpoints():
        raise ConfigError(
            "[serve] listens nowhere: set socketmap, milter or tcp-table-forward/-reverse"
        )
    return settings
