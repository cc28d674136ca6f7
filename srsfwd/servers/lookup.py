"""The lookup connections: Postfix's socketmap and tcp_table clients, asking the SRS maps.

asyncio protocols rather than streams: a lookup is answered inside ``buffer_updated``
with no task or await per request, which is what makes one process fast enough to
replace postsrsd's fork per connection. Nothing a client sends can raise out of here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, cast

from srsfwd.protocols import socketmap, tcptable
from srsfwd.servers.connection import Connection, ServerContext
from srsfwd.srsmaps import FORWARD, MAPS, REVERSE, TCP_TABLE_CODES, SRSMaps, tcp_table_line

log = logging.getLogger(__name__)

#: Seconds a closed threaded connection may still spend sending what it answered.
DRAIN_SECONDS = 2.0
#: Requests answered in one go before other connections get their turn.
BATCH = 64
INTERNAL_ERROR = socketmap.SocketmapReply(socketmap.Status.TEMP, "Internal error.")
#: What one debug line says a lookup did, by map and status.
_OUTCOMES = {
    socketmap.Status.OK: ("rewritten", "reversed"),
    socketmap.Status.NOTFOUND: ("kept", "not ours"),
    socketmap.Status.PERM: ("refused", "refused"),
    socketmap.Status.TEMP: ("deferred", "deferred"),
    socketmap.Status.TIMEOUT: ("deferred", "deferred"),
}


#: The map name the socketmap quick path answers without making a request.
_FORWARD = FORWARD.encode()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


class LookupConnection(Connection):
    """What socketmap and tcp_table share: requests decoded in batches, answered by the
    context's ``maps``, replies written once per batch.

    At most ``BATCH`` requests are answered before the other connections get their
    turn: a client that pipelines thousands of lookups waits for the rest while
    everyone else is served, and its backlog is never more than one read.

    The quick path: a read that is exactly one plain request (how Postfix asks), with
    nothing pending and no metrics or debug lines to write, goes straight to the maps
    and its reply bytes straight to the transport, a forward answer from the day's
    cache of encoded replies when it is there. No request object, list or batch is
    made for it.

    With ``ServerContext.lookup_threads`` the connection is served by a thread of its
    own instead, as postsrsd serves each connection in a process of its own: blocking
    ``recv`` and ``sendall`` on a duplicate of the socket, every request of a read
    answered and the replies sent at once, the same quick path and the same answers.
    The event loop keeps what it does for every connection (limits, idle sweeps,
    reload, shutdown): ``close`` shuts the socket down under the thread, which then ends.
    """

    _decoder: socketmap.RequestDecoder | tcptable.RequestDecoder
    _sock: socket.socket | None = None

    def __init__(self, context: ServerContext) -> None:
        super().__init__(context)
        self._draining = False
        self._eof = False
        # Asked once: the daemon sets its metrics and log level before it listens.
        self._quick = context.metrics is None and not log.isEnabledFor(logging.DEBUG)
        self._read_buffer = cast(bytearray, self._read_view.obj)
        # Reads answered: a plain int the idle sweep compares, instead of a clock read
        # per lookup (``expired``).
        self._answered = 0
        self._answered_seen = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self.transport is not None and self.context.lookup_threads:
            # The transport starts reading once this returns: stop it then.
            self._loop.call_soon(self._hand_over)

    def buffer_updated(self, nbytes: int) -> None:
        if self._quick and not self._draining and self.transport is not None:
            reply = self._quick_reply(self._read_buffer, nbytes)
            if reply is not None:
                self._answered += 1
                self.transport.write(reply)
                return
        self._serve(self._read_view[:nbytes].tobytes())

    def expired(self, now: float) -> bool:
        # The idle sweep notes the reads answered since its last look as activity now:
        # the lookup path counts them and reads no clock, and a connection idle for
        # keep-alive seconds is still closed, at most one sweep later.
        if self._answered != self._answered_seen:
            self._answered_seen = self._answered
            self.last_request = now
            self.started = True
        return super().expired(now)

    def _quick_reply(self, data: bytearray, end: int) -> bytes | None:
        """The reply if ``data[:end]`` is exactly one plain request, else None (then
        the batch path answers it, the same way)."""
        raise NotImplementedError

    def close(self, reason: str) -> None:
        if self._sock is not None:
            # The thread finishes the reply it is sending, reads the end and stops;
            # one that cannot send (a client that does not read) is cut off later.
            self._shut_down(socket.SHUT_RD)
            self._loop.call_later(DRAIN_SECONDS, self._shut_down, socket.SHUT_RDWR)
        super().close(reason)

    def abort(self) -> None:
        if self._sock is not None:
            self._shut_down(socket.SHUT_RDWR)
        super().abort()

    def _hand_over(self) -> None:
        """Stop the event loop reading and start the connection's thread; anything the
        loop read first was answered by it, in order, before this."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._draining or transport.get_write_buffer_size():
            # Requests or replies left from the loop's reads go first, in order.
            self._loop.call_later(0.01, self._hand_over)
            return
        transport.pause_reading()  # from now on only the thread reads
        fileno = transport.get_extra_info("socket").fileno()
        self._sock = socket.socket(fileno=os.dup(fileno))
        self._sock.setblocking(True)
        threading.Thread(
            target=self._serve_in_thread, name=f"srsfwd {self.service}", daemon=True
        ).start()

    def _serve_in_thread(self) -> None:
        sock, decoder, lock = cast(socket.socket, self._sock), self._decoder, self.context.lock
        # The event loop reads no more: its read buffer is the thread's now, and the
        # quick path parses a request where it lands.
        read_buffer = self._read_buffer
        receive, send = sock.recv_into, sock.send
        quick_reply = self._quick_reply if self._quick else None
        try:
            while size := receive(read_buffer):
                with lock:  # the maps (and a database mode store) one thread at a time
                    reply = quick_reply(read_buffer, size) if quick_reply is not None else None
                    if reply is None:
                        requests = decoder.feed(bytes(read_buffer[:size]))
                        reply = self._answer(requests) if requests else b""
                if reply:
                    self._answered += 1
                    # One send: a reply is small and the socket blocking, so it takes
                    # all of it; sendall only for a rest.
                    sent = send(reply)
                    if sent < len(reply):
                        sock.sendall(reply[sent:])
                if decoder.error is not None:
                    self._call_soon(self.context.note_client_error, self.service, decoder.error)
                    sock.sendall(self._invalid())
                    break
        except OSError:
            pass  # the client is gone, or close() shut the socket down
        except Exception:  # a bug: the connection ends, the daemon goes on
            log.exception("%s: connection thread failed", self.service)
        finally:
            sock.close()
            self._call_soon(self._thread_ended)

    def _thread_ended(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _call_soon(self, callback: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the daemon is done
            self._loop.call_soon_threadsafe(callback, *args)

    def _shut_down(self, how: int) -> None:
        with contextlib.suppress(OSError):
            cast(socket.socket, self._sock).shutdown(how)

    def eof_received(self) -> bool:
        # The client is done sending: answer what it sent, then close.
        self._eof = True
        return self._draining

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is None or self.transport.is_closing():
            return
        if self._draining:
            self._loop.call_soon(self._continue)
        else:
            self.transport.resume_reading()

    def _serve(self, data: bytes) -> None:
        requests = self._decoder.feed(data, BATCH)
        transport = self.transport
        if transport is None:
            return
        if requests:
            self._answered += 1
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


class SocketmapConnection(LookupConnection):
    """Postfix ``socketmap:`` lookups: maps ``forward`` and ``reverse``."""

    service = "socketmap"
    _decoder: socketmap.RequestDecoder

    def __init__(self, context: ServerContext) -> None:
        super().__init__(context)
        self._decoder = socketmap.RequestDecoder()

    def _quick_reply(self, data: bytearray, end: int) -> bytes | None:
        payload = self._decoder.plain_payload(data, end)
        if payload is None:
            return None
        encode, maps = socketmap.encode_reply, self.context.maps
        name, _, key = payload.partition(b" ")
        try:
            if name == _FORWARD:
                return maps.forward_wire(key.decode("utf-8", "surrogateescape"), encode)
            return encode(maps.lookup(socketmap.Request(_text(name), _text(key))))
        except Exception:  # noqa: BLE001 - a bug: _internal_error logs it
            return encode(self._internal_error(_text(name)))

    def _answer(self, requests: Sequence[socketmap.Request]) -> bytes:
        encode, lookup = socketmap.encode_reply, self._lookup_function()
        return b"".join([encode(lookup(r)) for r in requests])

    def _invalid(self) -> bytes:
        return socketmap.encode_reply(socketmap.INVALID_QUERY)


class TcpTableConnection(LookupConnection):
    """Postfix ``tcp:`` lookups on one map, as postsrsd 1.x serves them."""

    service = "tcp_table"
    group = "tcp_table"
    map_name: ClassVar[str] = ""
    _decoder: tcptable.RequestDecoder

    def __init__(self, context: ServerContext) -> None:
        super().__init__(context)
        self._decoder = tcptable.RequestDecoder()

    def _quick_reply(self, data: bytearray, end: int) -> bytes | None:
        key = self._decoder.plain_key(data, end)
        if key is None:
            return None
        try:
            return self._line(self.context.maps, key)
        except Exception:  # noqa: BLE001 - a bug: _internal_error logs it
            return tcp_table_line(self._internal_error(self.map_name))

    def _line(self, maps: SRSMaps, key: str) -> bytes:
        """The reply line to ``get key`` on this connection's map."""
        raise NotImplementedError

    def _answer(self, requests: Sequence[tcptable.Request]) -> bytes:
        name, encode, lookup = self.map_name, tcptable.encode, self._lookup_function()
        replies = [lookup(socketmap.Request(name, r.key)) for r in requests]
        return b"".join([encode(TCP_TABLE_CODES[r.status], r.text) for r in replies])

    def _invalid(self) -> bytes:
        return tcptable.encode_reply(tcptable.INVALID_REQUEST)


class TcpForwardConnection(TcpTableConnection):
    service = "tcp_table forward"
    map_name = FORWARD

    def _line(self, maps: SRSMaps, key: str) -> bytes:
        return maps.forward_wire(key, tcp_table_line)


class TcpReverseConnection(TcpTableConnection):
    service = "tcp_table reverse"
    map_name = REVERSE

    def _line(self, maps: SRSMaps, key: str) -> bytes:
        return tcp_table_line(maps.reverse(key))


#: The lookup servers by the name ``ServeSettings.endpoints`` gives them.
LOOKUP_KINDS: dict[str, type[LookupConnection]] = {
    "socketmap": SocketmapConnection,
    "tcp-forward": TcpForwardConnection,
    "tcp-reverse": TcpReverseConnection,
}
