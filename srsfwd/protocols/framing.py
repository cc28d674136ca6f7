"""The buffering the socketmap and tcp_table decoders share, server and client side.

Both protocols frame each request and reply on its own (a netstring, a line). A
``RequestDecoder`` subclass cuts requests out of its buffer and this class keeps the
error and backlog state; a ``ReplyDecoder`` subclass says where the next reply ends and
what it means, and this class keeps what is left over between chunks.
"""

from __future__ import annotations

import abc
from typing import Generic, TypeVar

from srsfwd.errors import ProtocolError

RequestT = TypeVar("RequestT")
ReplyT = TypeVar("ReplyT")


class RequestDecoder(abc.ABC, Generic[RequestT]):
    """Turns the bytes of one connection into requests, whatever the chunking.

    Once the peer breaks the framing, ``error`` holds the reason and the decoder accepts
    nothing more. With a ``limit``, ``feed`` keeps the bytes after the ``limit``-th
    request, and ``backlog`` says to call ``feed(b"", limit)`` again.
    """

    __slots__ = ("_buffer", "backlog", "error")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.error: ProtocolError | None = None
        self.backlog = False

    def feed(self, data: bytes, limit: int | None = None) -> list[RequestT]:
        """The requests completed by ``data`` (possibly none), at most ``limit`` if given."""
        self.backlog = False
        if self.error is not None:
            return []
        requests: list[RequestT] = []
        try:
            self._decode(data, limit, requests)
        except ProtocolError as exc:
            self.error = exc
            self._buffer.clear()
        return requests

    @property
    def buffered(self) -> int:
        """Bytes of an unfinished request held (for limits and tests)."""
        return len(self._buffer)

    @abc.abstractmethod
    def _decode(self, data: bytes, limit: int | None, requests: list[RequestT]) -> None:
        """Append to ``requests`` those ``data`` completes, at most ``limit``; keep the
        rest in the buffer and set ``backlog`` if the limit left whole ones there.

        Raises:
            ProtocolError: the peer broke the framing (the requests appended before
                still count).
        """


class ReplyDecoder(abc.ABC, Generic[ReplyT]):
    """Turns the bytes of a connection into replies, whatever the chunking (tests, benchmarks)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[ReplyT]:
        """The replies completed by ``data``.

        Raises:
            ProtocolError: the server broke the framing or sent a reply the protocol
                does not have.
        """
        buffer = self._buffer
        buffer += data
        replies: list[ReplyT] = []
        start = 0
        while (frame := self._next_frame(buffer, start)) is not None:
            payload, start = frame
            replies.append(self._reply(payload))
        del buffer[:start]
        self._check_unfinished(buffer)
        return replies

    @abc.abstractmethod
    def _next_frame(self, buffer: bytearray, start: int) -> tuple[bytes, int] | None:
        """The payload of the frame at ``start`` and where the next one starts, or None
        while it is incomplete."""

    @abc.abstractmethod
    def _reply(self, payload: bytes) -> ReplyT:
        """The reply one frame's payload holds."""

    @abc.abstractmethod
    def _check_unfinished(self, rest: bytes | bytearray) -> None:
        """Raises ``ProtocolError`` if ``rest``, an incomplete frame, can no longer be one."""
