"""Free loopback ports for the servers the tests and benchmarks start."""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_RANDOM = random.Random()  # its own: tests that seed the module's generator stay as seeded


def _first_ephemeral_port() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` right now.

    Drawn below the kernel's ephemeral range: a port the kernel handed out (bind to port 0)
    may be handed out again, to any client's outgoing connection, before our server binds
    it ("address already in use" on a busy machine); a port below that range is not.
    """
    first_ephemeral = _first_ephemeral_port()
    if first_ephemeral > _LOWEST + 1000:
        for _ in range(100):
            port = _RANDOM.randrange(_LOWEST, first_ephemeral)
            with socket.socket() as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
                return port
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
