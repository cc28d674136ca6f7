"""The daemon runtime: listeners, signals, reload, idle sweeps, systemd, shutdown.

One asyncio process serves every enabled endpoint. SIGHUP re-reads the configuration
and secrets through the injected loader and swaps them in under open connections;
SIGTERM (or SIGINT) stops listening, lets answered replies drain and exits.

Server kinds are ``KINDS`` entries named by ``ServeSettings.endpoints``, one
``Connection`` subclass each; another kind joins by adding its class there and its
endpoints to ``[serve]``: listening, limits, idle sweeps, reload and shutdown then apply
to it unchanged. A reload swaps the handlers in the shared ``ServerContext``; the
connections ask it for theirs at each request.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import signal
import socket
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from srsfwd.errors import ConfigError, SrsfwdError
from srsfwd.servers.connection import Connection, ServerContext
from srsfwd.servers.lookup import LOOKUP_KINDS
from srsfwd.servers.metrics import Metrics
from srsfwd.servers.milter import MilterService
from srsfwd.servers.milter_connection import MilterConnection
from srsfwd.servers.settings import Endpoint, ServeSettings
from srsfwd.servers.systemd import sd_notify
from srsfwd.srsmaps import SRSMaps

log = logging.getLogger(__name__)

#: Seconds SIGTERM waits for unsent replies before it drops the connections.
DRAIN_SECONDS = 2.0
#: Every server kind: the lookup tables and the milter.
KINDS: dict[str, type[Connection]] = {**LOOKUP_KINDS, "milter": MilterConnection}
#: Pending connections the kernel queues: a burst of Postfix processes starting at once
#: must not see "connection refused" (unix sockets do not retry as TCP does).
LISTEN_BACKLOG = 1024


@dataclass(frozen=True, slots=True)
class Loaded:
    """What the loader builds from the configuration: settings and the maps."""

    settings: ServeSettings
    maps: SRSMaps
    milter: MilterService | None = None


Loader = Callable[[], Loaded]


@dataclass(slots=True)
class _Listener:
    service: str
    endpoint: Endpoint
    server: asyncio.Server
    inode: tuple[int, int] | None = None  # (device, inode) of the socket we made


class Daemon:
    """Runs the servers the configuration enables until told to stop.

    Args:
        loader: builds settings and maps; called at start and on every SIGHUP.
        notify: where systemd notifications go (sd_notify by default).
        lookup_threads: serve each socketmap and tcp_table connection in a thread of
            its own rather than in the event loop (``srsfwd.servers.lookup``).
    """

    def __init__(
        self,
        loader: Loader,
        *,
        notify: Callable[[str], object] = sd_notify,
        lookup_threads: bool = False,
    ) -> None:
        self._loader = loader
        self._notify = notify
        self._lookup_threads = lookup_threads
        self._listeners: dict[tuple[str, str], _Listener] = {}
        self._stop = asyncio.Event()
        self._context: ServerContext | None = None
        self._metrics: Metrics | None = None
        self._reloading: asyncio.Task[None] | None = None

    @property
    def context(self) -> ServerContext:
        if self._context is None:
            raise RuntimeError("the daemon is not running")
        return self._context

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT (or ``stop()``).

        Raises:
            ConfigError: the configuration is wrong or an endpoint cannot be bound;
                raised before anything is served.
        """
        loaded = self._loader()
        settings = loaded.settings
        if settings.metrics is not None:
            self._metrics = Metrics()
        self._context = ServerContext(
            maps=loaded.maps,
            metrics=self._metrics,
            milter=loaded.milter,
            lookup_threads=self._lookup_threads,
        )
        self._context.configure(settings)
        loop = asyncio.get_running_loop()
        try:
            await self._listen(settings)
            if self._metrics is not None and settings.metrics is not None:
                try:
                    self._metrics.start(settings.metrics)
                except OSError as exc:
                    raise ConfigError(
                        f"cannot serve metrics on {settings.metrics}: {exc}"
                    ) from None
            for signum, handler in (
                (signal.SIGHUP, self.reload),
                (signal.SIGTERM, self.stop),
                (signal.SIGINT, self.stop),
            ):
                loop.add_signal_handler(signum, handler)
            sweeper = asyncio.create_task(self._sweep_idle())
            log.info("serving %s", ", ".join(f"{s} on {e}" for s, e in settings.endpoints()))
            self._notify(f"READY=1\nSTATUS=serving {len(self._listeners)} endpoints")
            await self._stop.wait()
            self._notify("STOPPING=1")
            log.info("stopping")
            sweeper.cancel()
            if self._reloading is not None:
                await asyncio.gather(self._reloading, return_exceptions=True)
        finally:
            for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self._shutdown()

    def stop(self) -> None:
        """Stop serving (what SIGTERM does)."""
        self._stop.set()

    def reload(self) -> asyncio.Task[None]:
        """Re-read configuration and secrets (what SIGHUP does); returns the reload's task."""
        if self._reloading is not None and not self._reloading.done():
            log.info("reload already in progress")
            return self._reloading
        self._reloading = asyncio.get_running_loop().create_task(self._reload())
        return self._reloading

    async def _reload(self) -> None:
        self._notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        loaded: Loaded | None = None
        try:
            loaded = self._loader()
            await self._listen(loaded.settings)
        except SrsfwdError as exc:
            log.error("reload failed, still serving the old configuration: %s", exc)
            if loaded is not None and loaded.milter is not None:
                loaded.milter.close()
            if self._metrics is not None:
                self._metrics.reloads.labels("failed").inc()
        else:
            context = self.context
            old = context.swap(loaded.maps, loaded.milter)
            context.configure(loaded.settings)
            if old is not None:
                old.close()
            log.info("reloaded; %d connections kept open", len(context.connections))
            if self._metrics is not None:
                self._metrics.reloads.labels("done").inc()
        finally:
            self._notify("READY=1")

    async def _listen(self, settings: ServeSettings) -> None:
        """Open the endpoints ``settings`` names that are not open; close the others.

        Raises:
            ConfigError: an endpoint cannot be bound; whatever this call opened is closed.
        """
        wanted = {(service, str(e)): (service, e) for service, e in settings.endpoints()}
        opened: list[_Listener] = []
        try:
            for key, (service, endpoint) in wanted.items():
                if key not in self._listeners:
                    listener = await self._open(service, endpoint, settings)
                    opened.append(listener)
                    log.info("listening for %s on %s", service, endpoint)
        except BaseException:
            for listener in opened:
                await _close_listener(listener)
            raise
        for listener in opened:
            self._listeners[(listener.service, str(listener.endpoint))] = listener
        for key in [k for k in self._listeners if k not in wanted]:
            listener = self._listeners.pop(key)
            log.info("no longer listening for %s on %s", listener.service, listener.endpoint)
            await _close_listener(listener)

    async def _open(self, service: str, endpoint: Endpoint, settings: ServeSettings) -> _Listener:
        loop = asyncio.get_running_loop()
        kind = KINDS[service]
        context = self.context

        def factory() -> Connection:
            return kind(context)

        try:
            if endpoint.path is not None:
                path = Path(endpoint.path)
                _remove_stale_socket(path)
                server = await loop.create_unix_server(factory, str(path), backlog=LISTEN_BACKLOG)
                try:
                    inode = _set_socket_access(path, settings)
                except (OSError, ConfigError):
                    server.close()
                    _unlink(path, None)
                    raise
                return _Listener(service, endpoint, server, inode)
            server = await loop.create_server(
                factory,
                endpoint.host,
                endpoint.port,
                backlog=LISTEN_BACKLOG,
                reuse_address=True,
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {endpoint}: {exc.strerror or exc}") from None
        return _Listener(service, endpoint, server)

    async def _sweep_idle(self) -> None:
        """Close connections that sent no complete request for keep-alive seconds, or
        no first request for first-request-timeout seconds."""
        loop = asyncio.get_running_loop()
        while True:
            context = self.context
            await asyncio.sleep(min(1.0, context.keep_alive / 4, context.first_request_timeout / 4))
            now = loop.time()
            for connection in [c for c in context.connections if c.expired(now)]:
                if connection.started:
                    connection.close("idle")
                else:
                    connection.close("no complete first request in time")
                    if context.metrics is not None:
                        context.metrics.errors.labels("first-request-timeout").inc()

    async def _shutdown(self) -> None:
        for listener in self._listeners.values():
            await _close_listener(listener)
        self._listeners.clear()
        if self._context is not None:
            connections = list(self._context.connections)
            for connection in connections:
                connection.close("shutting down")
            deadline = time.monotonic() + DRAIN_SECONDS
            while self._context.connections and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            for connection in list(self._context.connections):
                connection.abort()
        if self._metrics is not None:
            self._metrics.stop()
        if self._context is not None and self._context.milter is not None:
            self._context.milter.close()


async def _close_listener(listener: _Listener) -> None:
    listener.server.close()
    # Existing connections stay open (they are closed, if at all, by their owner).
    if listener.endpoint.path is not None and listener.inode is not None:
        _unlink(Path(listener.endpoint.path), listener.inode)


def _unlink(path: Path, inode: tuple[int, int] | None) -> None:
    """Remove the socket at ``path`` if it is still the one made (``inode``) or any."""
    with contextlib.suppress(OSError):
        info = path.stat()
        if inode is None or (info.st_dev, info.st_ino) == inode:
            path.unlink()


def _remove_stale_socket(path: Path) -> None:
    """Remove a socket left by a previous run; refuse to take over a live one.

    Raises:
        ConfigError: the path is something else, or another process serves on it.
    """
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigError(f"cannot use {path}: {exc.strerror}") from None
    if not stat.S_ISSOCK(mode):
        raise ConfigError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink(missing_ok=True)  # nobody answers: a leftover
    else:
        raise ConfigError(f"{path} is in use by another process (postsrsd still running?)")
    finally:
        probe.close()


def _set_socket_access(path: Path, settings: ServeSettings) -> tuple[int, int]:
    """Give the new socket its mode and owner; its (device, inode) for a later unlink."""
    path.chmod(settings.socket_mode)
    info = path.stat()
    if settings.socket_owner is None and settings.socket_group is None:
        return info.st_dev, info.st_ino
    uid = _user_id(settings.socket_owner) if settings.socket_owner is not None else -1
    gid = _group_id(settings.socket_group) if settings.socket_group is not None else -1
    try:
        os.chown(path, uid, gid)
    except OSError as exc:
        raise ConfigError(f"cannot give {path} to {uid}:{gid}: {exc.strerror}") from None
    return info.st_dev, info.st_ino


def _user_id(name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        raise ConfigError(f"[serve] socket-owner: no user {name!r}") from None


def _group_id(name: str) -> int:
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(f"[serve] socket-group: no group {name!r}") from None
