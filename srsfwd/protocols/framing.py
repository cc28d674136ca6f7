"""The client-side buffering the socketmap and tcp_table reply decoders share.

Both protocols frame each reply on its own (a netstring, a line); a ``ReplyDecoder``
subclass says where the next frame ends and what it means, and this class keeps what
is left over between chunks.
"""

from __future__ import annotations

import abc
from typing import Generic, TypeVar

ReplyT = TypeVar("ReplyT")


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
