"""What ``serve --check`` tries short of serving: bind and release every socket.

A configuration can be valid and still not start: a socket folder that does not exist, a
unix path longer than the kernel takes, an unknown socket group, a port already taken.
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from srsfwd.errors import ConfigError
from srsfwd.servers.runtime import _group_id, _remove_stale_socket, _user_id
from srsfwd.servers.settings import Endpoint, ServeSettings

#: sockaddr_un's sun_path holds 108 bytes on Linux, the final NUL included.
MAX_UNIX_PATH_BYTES = 107


def serving_problems(settings: ServeSettings) -> list[str]:
    """Every reason ``serve`` would fail to open what ``settings`` names; empty if none.

    Each unix socket is bound, given its mode and owner, and removed; each TCP endpoint
    is bound and released. A leftover socket nobody answers on is removed, as ``serve``
    would remove it.
    """
    problems: list[str] = []
    owner = group = -1
    try:
        if settings.socket_owner is not None:
            owner = _user_id(settings.socket_owner)
        if settings.socket_group is not None:
            group = _group_id(settings.socket_group)
    except ConfigError as exc:
        problems.append(str(exc))
    endpoints = settings.endpoints()
    if settings.metrics is not None:
        endpoints.append(("metrics", settings.metrics))
    for service, endpoint in endpoints:
        try:
            if endpoint.path is not None:
                _try_unix(Path(endpoint.path), settings.socket_mode, owner, group)
            else:
                _try_tcp(endpoint)
        except ConfigError as exc:
            problems.append(f"{service} on {endpoint}: {exc}")
    return problems


def _try_unix(path: Path, mode: int, owner: int, group: int) -> None:
    size = len(os.fsencode(path))
    if size > MAX_UNIX_PATH_BYTES:
        raise ConfigError(
            f"the path is {size} bytes; a unix socket path has at most {MAX_UNIX_PATH_BYTES}"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"folder {path.parent} does not exist")
    _remove_stale_socket(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(str(path))
        except OSError as exc:
            raise ConfigError(f"cannot bind: {exc.strerror or exc}") from None
        try:
            path.chmod(mode)
            if owner != -1 or group != -1:
                os.chown(path, owner, group)
        except OSError as exc:
            raise ConfigError(f"cannot give it mode and owner: {exc.strerror}") from None
        finally:
            with contextlib.suppress(OSError):
                path.unlink()


def _try_tcp(endpoint: Endpoint) -> None:
    try:
        found = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        raise ConfigError(f"cannot resolve {endpoint.host}: {exc.strerror or exc}") from None
    for family, kind, proto, _, address in found:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ConfigError(f"cannot bind: {exc.strerror or exc}") from None
