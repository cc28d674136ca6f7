"""Postfix's socketmap protocol (socketmap_table(5)) as postsrsd 2.x speaks it.

Each request and each reply is one netstring, ``<decimal length>:<payload>,``; a request
payload is ``<map name> SP <key>``. Written by hand rather than with a netstring library:
the maintained ones decode whole strings, not a stream fed in arbitrary chunks with the
limits a daemon facing untrusted peers needs (a bounded buffer, refusal before the payload
arrives), and the codec is forty lines.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from srsfwd.errors import ProtocolError
from srsfwd.protocols import framing

#: Longest request payload: postsrsd reads into a 1024-byte buffer and refuses a length
#: of 1024 or more before reading the payload.
MAX_PAYLOAD = 1023
#: Longest key postsrsd answers; longer ones get ``PERM Too big.`` on an open connection.
MAX_KEY = 512
#: Postfix refuses replies longer than this (socketmap_table(5)).
MAX_REPLY = 100_000

_MAX_DIGITS = len(str(MAX_REPLY))
#: One whole netstring: its length digits and its payload (checked against each other).
_PLAIN_NETSTRING = re.compile(rb"([0-9]+):(.+),", re.DOTALL)


class Status(enum.StrEnum):
    """The reply codes of socketmap_table(5)."""

    OK = "OK"
    NOTFOUND = "NOTFOUND"
    TEMP = "TEMP"
    TIMEOUT = "TIMEOUT"
    PERM = "PERM"


@dataclass(frozen=True, slots=True)
class Request:
    """One lookup: ``name`` is the map (``forward``, ``reverse``), ``key`` the address."""

    name: str
    key: str


@dataclass(frozen=True, slots=True)
class SocketmapReply:
    """One answer: a status and its data (the value for OK, a reason otherwise)."""

    status: Status
    text: str = ""


#: What postsrsd answers to a broken netstring before it closes the connection.
INVALID_QUERY = SocketmapReply(Status.PERM, "Invalid query.")


class RequestDecoder(framing.RequestDecoder[Request]):
    """Turns the bytes of one connection into requests, whatever the chunking.

    ``feed`` returns every request completed by the bytes given. Once the peer breaks
    the framing, ``error`` holds the reason and the decoder accepts nothing more: the
    caller answers ``INVALID_QUERY`` and closes. The buffer never holds more than one
    netstring (at most ``max_payload`` + 8 bytes), unless ``feed`` is given a ``limit``:
    then it also keeps the bytes after the ``limit``-th request, and ``backlog`` says
    to call ``feed(b"", limit)`` again.
    """

    __slots__ = ("_max_digits", "_max_frame", "_max_payload")

    def __init__(self, max_payload: int = MAX_PAYLOAD) -> None:
        super().__init__()
        self._max_payload = max_payload
        self._max_digits = len(str(max_payload))
        self._max_frame = self._max_digits + max_payload + 2

    def _decode(self, data: bytes, limit: int | None, requests: list[Request]) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        end_of_data = len(buffer)
        while start < end_of_data:
            if len(requests) == limit:
                self.backlog = True
                break
            colon = buffer.find(b":", start, start + self._max_digits + 1)
            if colon == -1:
                head = bytes(buffer[start : start + self._max_digits + 1])
                if len(head) > self._max_digits or not head.isdigit():
                    raise ProtocolError(f"bad netstring length {head[:12]!r}")
                break  # the length is still arriving
            head = bytes(buffer[start:colon])
            if not head.isdigit():
                raise ProtocolError(f"bad netstring length {head[:12]!r}")
            length = int(head)
            if length > self._max_payload:
                raise ProtocolError(f"netstring of {length} bytes is over the limit")
            if length == 0:
                raise ProtocolError("empty request")
            comma = colon + 1 + length
            if comma >= end_of_data:
                break  # the payload is still arriving
            if buffer[comma] != 0x2C:
                raise ProtocolError("netstring not terminated by ','")
            name, _, key = bytes(buffer[colon + 1 : comma]).partition(b" ")
            requests.append(
                Request(
                    name.decode("utf-8", "surrogateescape"),
                    key.decode("utf-8", "surrogateescape"),
                )
            )
            start = comma + 1
        del buffer[:start]

    def plain_request(self, data: bytes | bytearray, end: int | None = None) -> Request | None:
        """The request ``data[:end]`` holds if it is exactly one whole netstring, else None.

        Nothing may be buffered, and the netstring must be within the limits; this is
        how Postfix asks. The server's quick path takes it as it is; anything else
        (None) goes through ``feed``, which answers it the same way.
        """
        payload = self.plain_payload(data, end)
        if payload is None:
            return None
        name, _, key = payload.partition(b" ")
        return Request(
            name.decode("utf-8", "surrogateescape"), key.decode("utf-8", "surrogateescape")
        )

    def plain_payload(self, data: bytes | bytearray, end: int | None = None) -> bytes | None:
        """The payload (``<map> SP <key>``) of ``plain_request``'s netstring, or None:
        the server's quick path reads the map name from it without making a request."""
        if end is None:
            end = len(data)
        if self._buffer or self.error is not None or end > self._max_frame:
            return None
        # One C-speed match for the framing; the length is checked against it.
        plain = _PLAIN_NETSTRING.fullmatch(data, 0, end)
        if plain is None:
            return None
        head, payload = plain.groups()
        length = len(payload)
        if len(head) > self._max_digits or int(head) != length or length > self._max_payload:
            return None
        return bytes(payload)


def encode_request(request: Request) -> bytes:
    """The netstring Postfix sends for ``request`` (clients and tests use it)."""
    return netstring(f"{request.name} {request.key}".encode("utf-8", "surrogateescape"))


def encode_reply(reply: SocketmapReply) -> bytes:
    """The netstring for ``reply``, cut to what Postfix accepts."""
    payload = f"{reply.status} {reply.text}".encode("utf-8", "surrogateescape")
    return netstring(payload[:MAX_REPLY])


def netstring(payload: bytes) -> bytes:
    """``payload`` framed as a netstring."""
    return b"%d:%b," % (len(payload), payload)


class ReplyDecoder(framing.ReplyDecoder[SocketmapReply]):
    """The client side: turns the bytes of a connection into replies (tests, benchmarks)."""

    __slots__ = ()

    def _next_frame(self, buffer: bytearray, start: int) -> tuple[bytes, int] | None:
        colon = buffer.find(b":", start)
        if colon == -1:
            return None
        head = bytes(buffer[start:colon])
        if not head.isdigit() or len(head) > _MAX_DIGITS:
            raise ProtocolError(f"bad netstring length {head[:12]!r}")
        comma = colon + 1 + int(head)
        if comma >= len(buffer):
            return None
        if buffer[comma] != 0x2C:
            raise ProtocolError("netstring not terminated by ','")
        return bytes(buffer[colon + 1 : comma]), comma + 1

    def _reply(self, payload: bytes) -> SocketmapReply:
        status, _, text = payload.partition(b" ")
        try:
            code = Status(status.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError(f"unknown socketmap status {status[:20]!r}") from None
        return SocketmapReply(code, text.decode("utf-8", "surrogateescape"))

    def _check_unfinished(self, rest: bytes | bytearray) -> None:
        if len(rest) > _MAX_DIGITS and rest.find(b":") == -1:
            raise ProtocolError("no netstring length in sight")
