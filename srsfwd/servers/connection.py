"""One client connection: bytes to the codec, requests to the handler, replies back.

asyncio protocols rather than streams: a lookup is answered inside ``data_received``
with no task or await per request, which is what makes one process fast enough to
replace postsrsd's fork per connection. Nothing a client sends can raise out of here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast

from srsfwd.handlers import FORWARD, MAPS, TCP_TABLE_CODES, SRSMaps
from srsfwd.protocols import socketmap, tcptable

if TYPE_CHECKING:
    from srsfwd.servers.metrics import Metrics
    from srsfwd.servers.milter import MilterService
    from srsfwd.servers.settings import ServeSettings

log = logging.getLogger(__name__)

#: Replies a client has not read yet before we stop reading from it (backpressure).
WRITE_HIGH_WATER = 64 * 1024
#: Bytes read from a client at once.
READ_SIZE = 16 * 1024
#: Requests answered in one go before other connections get their turn.
BATCH = 64
#: Lines a second about clients closed for protocol errors; the rest are counted.
CLIENT_LOGS_PER_SECOND = 10
INTERNAL_ERROR = socketmap.SocketmapReply(socketmap.Status.TEMP, "Internal error.")
#: struct ucred, what SO_PEERCRED gives for a unix socket peer: pid, uid, gid.
_UCRED = struct.Struct("3i")
#: What one debug line says a lookup did, by map and status.
_OUTCOMES = {
    socketmap.Status.OK: ("rewritten", "reversed"),
    socketmap.Status.NOTFOUND: ("kept", "not ours"),
    socketmap.Status.PERM: ("refused", "refused"),
    socketmap.Status.TEMP: ("deferred", "deferred"),
    socketmap.Status.TIMEOUT: ("deferred", "deferred"),
}


class Refusal(NamedTuple):
    """Why a new connection is closed at once: ``kind`` is its metrics label."""

    kind: str
    reason: str


@dataclass(slots=True, eq=False)
class ServerContext:
    """What every connection shares; the daemon swaps ``maps`` and limits on reload.

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
    """The shared half: limits, idle time, fairness, backpressure, errors.

    Reads go into a fixed 16 KiB buffer, and at most ``BATCH`` requests are answered
    before the other connections get their turn: a client that pipelines thousands of
    lookups waits for the rest while everyone else is served, and its backlog is never
    more than one read.
    """

    service: ClassVar[str] = "?"
    #: The service whose connection limit this connection counts against.
    group: ClassVar[str] = "socketmap"
    _decoder: socketmap.RequestDecoder | tcptable.RequestDecoder

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
        self._draining = False
        self._eof = False

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
        self._serve(bytes(self._read_view[:nbytes]))

    def eof_received(self) -> bool:
        # The client is done sending: answer what it sent, then close.
        self._eof = True
        return self._draining

    def pause_writing(self) -> None:
        # The client does not read its replies: stop reading its requests, and let the
        # idle timeout end it if it never catches up.
        self._write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is None or self.transport.is_closing():
            return
        if self._draining:
            self._loop.call_soon(self._continue)
        else:
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

    def _serve(self, data: bytes) -> None:
        requests = self._decoder.feed(data, BATCH)
        transport = self.transport
        if transport is None:
            return
        if requests:
            self.last_request = self._loop.time()
            self.started = True
            transport.write(self._answer(requests))
        if self._decoder.error is not None:
            self._protocol_error(self._decoder.error)
        elif self._decoder.backlog:
            if not self._draining:
                self._draining = True
                transport.pause_reading()
            if not self._write_paused:
                self._loop.call_soon(self._continue)
        elif self._draining:
            self._draining = False
            if self._eof:
                transport.close()
            elif not self._write_paused:
                transport.resume_reading()

    def _continue(self) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing() and not self._write_paused:
            self._serve(b"")

    def _answer(self, requests: Sequence[Any]) -> bytes:
        raise NotImplementedError

    def _invalid(self) -> bytes:
        raise NotImplementedError

    def _protocol_error(self, reason: object) -> None:
        self.context.note_client_error(self.service, reason)
        if self.transport is not None:
            self.transport.write(self._invalid())
            self.transport.close()

    def _lookup(self, request: socketmap.Request) -> socketmap.SocketmapReply:
        metrics = self.context.metrics
        started = time.perf_counter() if metrics is not None else 0.0
        try:
            reply = self.context.maps.lookup(request)
        except Exception:  # noqa: BLE001 - a bug: _internal_error logs it
            reply = self._internal_error(request.name)
        if metrics is not None:
            metrics.observe(request.name, reply.status.value, time.perf_counter() - started)
        return reply

    def _internal_error(self, name: str) -> socketmap.SocketmapReply:
        """Log the exception being handled: a bug, not the client's fault. The reply is
        "try again", so mail is deferred, not lost, and the connection is kept."""
        log.exception("%s: lookup in %r failed", self.service, name)
        if self.context.metrics is not None:
            self.context.metrics.errors.labels("internal").inc()
        return INTERNAL_ERROR

    def _quick_path(self) -> bool:
        """Whether this read may be answered without the batch machinery: nothing is
        pending and there are no metrics or debug lines to write about it."""
        return (
            not self._draining
            and self.transport is not None
            and self.context.metrics is None
            and not log.isEnabledFor(logging.DEBUG)
        )

    def _answered(self, reply: bytes) -> None:
        """Send the reply to the one request of a quick read."""
        self.last_request = self._loop.time()
        self.started = True
        cast(asyncio.Transport, self.transport).write(reply)

    def _logged_lookup(self, request: socketmap.Request) -> socketmap.SocketmapReply:
        """``_lookup``, and one debug line about it (addresses and replies, no secret)."""
        reply = self._lookup(request)
        name = request.name
        known = name in MAPS
        log.debug(
            "%s: lookup map=%s key=%r %s result=%s reply=%r",
            self.service,
            name if known else repr(name),
            request.key,
            _OUTCOMES[reply.status][name != FORWARD] if known else "refused",
            reply.status.value,
            reply.text,
        )
        return reply

    def _lookup_function(self) -> Callable[[socketmap.Request], socketmap.SocketmapReply]:
        """The lookup for this batch: asked once per batch, so the lookup path does not
        pay for debug logging when it is off."""
        return self._logged_lookup if log.isEnabledFor(logging.DEBUG) else self._lookup


class SocketmapConnection(Connection):
    """Postfix ``socketmap:`` lookups: maps ``forward`` and ``reverse``."""

    service = "socketmap"
    _decoder: socketmap.RequestDecoder

    def __init__(self, context: ServerContext) -> None:
        super().__init__(context)
        self._decoder = socketmap.RequestDecoder()

    def buffer_updated(self, nbytes: int) -> None:
        # The quick path: one whole request in one read, as Postfix asks.
        data = self._read_view[:nbytes].tobytes()
        request = self._decoder.plain_request(data)
        if request is None or not self._quick_path():
            self._serve(data)
        else:
            self._answered(socketmap.encode_reply(self._lookup(request)))

    def _answer(self, requests: Sequence[socketmap.Request]) -> bytes:
        encode, lookup = socketmap.encode_reply, self._lookup_function()
        return b"".join([encode(lookup(r)) for r in requests])

    def _invalid(self) -> bytes:
        return socketmap.encode_reply(socketmap.INVALID_QUERY)


class TcpTableConnection(Connection):
    """Postfix ``tcp:`` lookups on one map, as postsrsd 1.x serves them."""

    service = "tcp_table"
    group = "tcp_table"
    map_name: ClassVar[str] = ""
    _decoder: tcptable.RequestDecoder

    def __init__(self, context: ServerContext) -> None:
        super().__init__(context)
        self._decoder = tcptable.RequestDecoder()
        self._forward = self.map_name == FORWARD

    def buffer_updated(self, nbytes: int) -> None:
        # The quick path: one plain ``get`` line in one read, as Postfix asks; straight
        # to the map, with no request, list or batch made for it.
        data = self._read_view[:nbytes].tobytes()
        key = self._decoder.plain_key(data)
        if key is None or not self._quick_path():
            self._serve(data)
            return
        maps = self.context.maps
        try:
            reply = maps.forward(key) if self._forward else maps.reverse(key)
        except Exception:  # noqa: BLE001 - a bug: _internal_error logs it
            reply = self._internal_error(self.map_name)
        self._answered(tcptable.encode(TCP_TABLE_CODES[reply.status], reply.text))

    def _answer(self, requests: Sequence[tcptable.Request]) -> bytes:
        name, encode, lookup = self.map_name, tcptable.encode, self._lookup_function()
        replies = [lookup(socketmap.Request(name, r.key)) for r in requests]
        return b"".join([encode(TCP_TABLE_CODES[r.status], r.text) for r in replies])

    def _invalid(self) -> bytes:
        return tcptable.encode_reply(tcptable.INVALID_REQUEST)


class TcpForwardConnection(TcpTableConnection):
    service = "tcp_table forward"
    map_name = "forward"


class TcpReverseConnection(TcpTableConnection):
    service = "tcp_table reverse"
    map_name = "reverse"


#: Server kinds by the name ``ServeSettings.endpoints`` gives them; the runtime adds
#: ``milter`` (``srsfwd.servers.milter``, which builds on this module).
PROTOCOLS: dict[str, type[Connection]] = {
    "socketmap": SocketmapConnection,
    "tcp-forward": TcpForwardConnection,
    "tcp-reverse": TcpReverseConnection,
}


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
