"""What every client connection shares: limits, idle time, backpressure, errors.

``Connection`` is the base of one connection class per protocol (``lookup.py``:
socketmap and tcp_table; ``milter_connection.py``: the milter). ``ServerContext`` is
what they all share, the handler of each service among it: ``maps`` answers the
lookups, ``milter`` runs the pipeline. A reload swaps those two, and every connection
asks the context for its handler at each request, so open connections take the new
ones with no special case. This module imports neither protocol's connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, NamedTuple, cast

if TYPE_CHECKING:
    from srsfwd.servers.metrics import Metrics
    from srsfwd.servers.milter import MilterService
    from srsfwd.servers.settings import ServeSettings
    from srsfwd.srsmaps import SRSMaps

log = logging.getLogger(__name__)

#: Replies a client has not read yet before we stop reading from it (backpressure).
WRITE_HIGH_WATER = 64 * 1024
#: Bytes read from a client at once.
READ_SIZE = 16 * 1024
#: Lines a second about clients closed for protocol errors; the rest are counted.
CLIENT_LOGS_PER_SECOND = 10
#: struct ucred, what SO_PEERCRED gives for a unix socket peer: pid, uid, gid.
_UCRED = struct.Struct("3i")


class Refusal(NamedTuple):
    """Why a new connection is closed at once: ``kind`` is its metrics label."""

    kind: str
    reason: str


@dataclass(slots=True, eq=False)
class ServerContext:
    """What every connection shares; the daemon swaps the handlers and limits on reload.

    The handlers: ``maps`` answers socketmap and tcp_table lookups, ``milter`` (None
    when the milter is off) runs the forwarding pipeline.

    ``limits`` caps the connections of each service (``Connection.group``) and
    ``peer_limit`` those of one peer to one service, so that the clients of one service,
    or one peer, cannot lock the others out.
    """

    maps: SRSMaps
    keep_alive: float = 30.0
    limits: dict[str, int] = field(
        default_factory=lambda: {"socketmap": 200, "tcp_table": 200, "milter": 200}
    )
    peer_limit: int = 150
    first_request_timeout: float = 10.0
    metrics: Metrics | None = None
    #: Serve each lookup connection in a thread of its own (``lookup.py``).
    lookup_threads: bool = False
    #: Held by those threads while they use the maps.
    lock: threading.Lock = field(default_factory=threading.Lock)
    milter: MilterService | None = None
    connections: set[Connection] = field(default_factory=set)
    refused: int = 0
    _open: Counter[str] = field(default_factory=Counter)
    _open_by_peer: Counter[tuple[str, str]] = field(default_factory=Counter)
    _last_refusal_log: float = 0.0
    _log_window: float = 0.0
    _logged_in_window: int = 0
    _suppressed: int = 0

    def note_client_error(self, service: str, reason: object) -> None:
        """Log a misbehaving client, at most ``CLIENT_LOGS_PER_SECOND`` lines a second.

        A flood of bad clients must not flood the log too; what is left out is counted
        in the next line.
        """
        if self.metrics is not None:
            self.metrics.errors.labels("protocol").inc()
        now = time.monotonic()
        if now - self._log_window >= 1.0:
            if self._suppressed:
                log.info("... and %d more connections closed for protocol errors", self._suppressed)
            self._log_window, self._logged_in_window, self._suppressed = now, 0, 0
        if self._logged_in_window < CLIENT_LOGS_PER_SECOND:
            self._logged_in_window += 1
            log.info("%s: closing connection: %s", service, reason)
        else:
            self._suppressed += 1

    def swap(self, maps: SRSMaps, milter: MilterService | None) -> MilterService | None:
        """Put in the handlers of a new configuration; the milter service it replaces.

        Connections ask for their handler at each request, so this is all a reload
        needs: the message in the pipeline finishes on the service it started on.
        """
        old, self.maps, self.milter = self.milter, maps, milter
        return old

    def configure(self, settings: ServeSettings) -> None:
        """Take the idle times and limits of ``settings`` (at start and on reload)."""
        self.keep_alive = settings.keep_alive
        self.limits = {
            "socketmap": settings.connection_limit,
            "tcp_table": settings.tcp_table_connection_limit,
            "milter": settings.milter_connection_limit,
        }
        self.peer_limit = settings.peer_connection_limit
        self.first_request_timeout = settings.first_request_timeout

    def admit(self, group: str, peer: str) -> Refusal | None:
        """Count a new connection of service ``group`` from ``peer`` in, or say why not."""
        limit = self.limits.get(group, 0)
        if self._open[group] >= limit:
            return Refusal("connection-limit", f"{limit} connections open, the limit")
        if self._open_by_peer[group, peer] >= self.peer_limit:
            reason = f"{self.peer_limit} connections from {peer}, the limit per peer"
            return Refusal("peer-limit", reason)
        self._open[group] += 1
        self._open_by_peer[group, peer] += 1
        return None

    def release(self, group: str, peer: str) -> None:
        """Count a connection that ``admit`` let in out again."""
        self._open[group] -= 1
        key = (group, peer)
        self._open_by_peer[key] -= 1
        if self._open_by_peer[key] <= 0:
            del self._open_by_peer[key]  # one entry per peer connected now, no more

    def refuse(self, service: str, refusal: Refusal) -> None:
        """Count a connection over a limit; log it at most once a second."""
        self.refused += 1
        if self.metrics is not None:
            self.metrics.errors.labels(refusal.kind).inc()
        now = time.monotonic()
        if now - self._last_refusal_log >= 1.0:
            self._last_refusal_log = now
            log.warning(
                "%s: %s; closed new connections (%d so far)", service, refusal.reason, self.refused
            )


class Connection(asyncio.BufferedProtocol):
    """The shared half of every connection: admission, idle time, backpressure, errors.

    Reads go into a fixed ``READ_SIZE`` buffer; a subclass handles them in
    ``buffer_updated`` and says what a protocol error is answered with (``_invalid``).
    """

    service: ClassVar[str] = "?"
    #: The service whose connection limit this connection counts against.
    group: ClassVar[str] = "socketmap"

    def __init__(self, context: ServerContext) -> None:
        self.context = context
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.opened = 0.0
        self.last_request = 0.0
        #: Whether the first request was complete (the milter: options negotiated).
        self.started = False
        self._loop = asyncio.get_running_loop()
        self._read_view = memoryview(bytearray(READ_SIZE))
        self._write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        context = self.context
        transport = cast(asyncio.Transport, transport)
        peer = peer_of(transport)
        refusal = context.admit(self.group, peer)
        if refusal is not None:
            context.refuse(self.service, refusal)
            transport.abort()
            return
        self.transport, self.peer = transport, peer
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        context.connections.add(self)
        if context.metrics is not None:
            context.metrics.connections.inc()
        self.opened = self.last_request = self._loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        self.transport = None
        self.context.connections.discard(self)
        self.context.release(self.group, self.peer)
        if self.context.metrics is not None:
            self.context.metrics.connections.dec()

    def expired(self, now: float) -> bool:
        """Whether the connection has been idle too long at loop time ``now``.

        Before its first complete request a connection gets ``first_request_timeout``
        from when it was opened, however it trickles bytes; after it, ``keep_alive``
        from the last complete request.
        """
        context = self.context
        if not self.started:
            return self.opened < now - min(context.first_request_timeout, context.keep_alive)
        return self.last_request < now - context.keep_alive

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_view

    def buffer_updated(self, nbytes: int) -> None:
        raise NotImplementedError

    def eof_received(self) -> bool:
        return False  # the client is done: close

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests, and let the
        # idle timeout end it if it never catches up.
        self._write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def close(self, reason: str) -> None:
        """Close after the replies already written are sent."""
        if self.transport is not None and not self.transport.is_closing():
            log.debug("%s: closing connection: %s", self.service, reason)
            self.transport.close()

    def abort(self) -> None:
        """Close now, dropping unsent replies (shutdown of a client that does not read)."""
        if self.transport is not None:
            self.transport.abort()

    def _invalid(self) -> bytes:
        """What a client that broke the protocol is told before it is closed."""
        raise NotImplementedError

    def _protocol_error(self, reason: object) -> None:
        self.context.note_client_error(self.service, reason)
        if self.transport is not None:
            self.transport.write(self._invalid())
            self.transport.close()


def peer_of(transport: asyncio.BaseTransport) -> str:
    """Who is on the other end, for the per-peer limit.

    A TCP peer is its address (an IPv6 peer its /64, which one host usually holds
    whole); a unix socket peer is its user id (every Postfix process is one peer).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family == socket.AF_UNIX:
        try:
            credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        except (OSError, AttributeError):  # not Linux
            return "unix"
        return f"uid {_UCRED.unpack(credentials)[1]}"
    peername = transport.get_extra_info("peername")
    if not isinstance(peername, tuple) or not peername:
        return "unknown"
    return address_peer(str(peername[0]))


def address_peer(host: str) -> str:
    """The peer a TCP client at ``host`` counts as: its address, an IPv4-mapped IPv6
    address as IPv4, another IPv6 address as its /64."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
