"""Postfix's tcp_table protocol (tcp_table(5)) as postsrsd 1.x speaks it.

A request is the line ``get SP <key> LF``, the reply the line ``<code> SP <text> LF``
(200 found, 500 not found, 400 try again). Keys and 200 values are %XX-encoded. Written
by hand: no library speaks this protocol, and the line codec must bound its buffer and
refuse a bad escape exactly as postsrsd does.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from srsfwd.errors import ProtocolError
from srsfwd.protocols import framing

#: postsrsd 1.11+ refuses a request line of 1023 bytes or more (its buffer is 1024).
MAX_LINE = 1022
#: Postfix refuses longer replies (tcp_table(5)).
MAX_REPLY = 4096

_HEX = b"0123456789abcdefABCDEF"
# Everything but the printable ASCII that needs no escape: isgraph() minus "%".
_NEEDS_QUOTING = re.compile(rb"[^\x21-\x24\x26-\x7e]")
#: A request the quick path takes: ``get <key> LF``, the key without escapes or CR.
_PLAIN_REQUEST = re.compile(rb"get ([^\r\n%]+)\n")


class Code(enum.IntEnum):
    """tcp_table(5) reply codes."""

    FOUND = 200
    TRY_AGAIN = 400
    NOT_FOUND = 500


@dataclass(frozen=True, slots=True)
class Request:
    """One ``get``: the decoded key."""

    key: str


@dataclass(frozen=True, slots=True)
class TcpTableReply:
    """One answer: for FOUND the value, otherwise a reason."""

    code: Code
    text: str = ""


_PREFIX = {code: b"%d " % code for code in Code}

#: What postsrsd 1.x answers to a malformed line before it closes the connection.
INVALID_REQUEST = TcpTableReply(Code.NOT_FOUND, "Invalid request")


class RequestDecoder(framing.RequestDecoder[Request]):
    """Turns the bytes of one connection into requests, whatever the chunking.

    Once the peer sends a malformed line, ``error`` holds the reason and the decoder
    accepts nothing more: answer ``INVALID_REQUEST`` and close. The buffer never holds
    more than one line (``max_line`` bytes), unless ``feed`` is given a ``limit``: then
    it also keeps the bytes after the ``limit``-th request, and ``backlog`` says to call
    ``feed(b"", limit)`` again.
    """

    __slots__ = ("_max_line",)

    def __init__(self, max_line: int = MAX_LINE) -> None:
        super().__init__()
        self._max_line = max_line

    def _decode(self, data: bytes, limit: int | None, requests: list[Request]) -> None:
        buffer = self._buffer
        last = len(data) - 1
        if not buffer and 0 < last <= self._max_line and data.find(b"\n") == last:
            # The usual case, one whole line (Postfix asks one key at a time): no copying.
            requests.append(parse_line(data[:-1]))
            return
        buffer += data
        start = 0
        while (newline := buffer.find(b"\n", start)) != -1:
            if len(requests) == limit:
                self.backlog = True
                break
            if newline - start > self._max_line:
                raise ProtocolError("request line too long")
            requests.append(parse_line(bytes(buffer[start:newline])))
            start = newline + 1
        if not self.backlog and len(buffer) - start > self._max_line:
            raise ProtocolError("request line too long")
        del buffer[:start]

    def plain_key(self, data: bytes | bytearray, end: int | None = None) -> str | None:
        """The key of ``data[:end]`` if it is exactly one plain request, else None.

        Plain: nothing buffered, ``get <key> LF`` with no escape and no CR, within the
        line limit; this is how Postfix asks. The server's quick path takes it without
        building a request, straight from its read buffer (``end``: the bytes read);
        anything else (None) goes through ``feed``, which answers it the same way.
        """
        if end is None:
            end = len(data)
        if self._buffer or self.error is not None or end > self._max_line + 1:
            return None
        # One C-speed match for every check.
        plain = _PLAIN_REQUEST.fullmatch(data, 0, end)
        return None if plain is None else plain[1].decode("utf-8", "surrogateescape")


def parse_line(line: bytes) -> Request:
    """One request line without its LF.

    Raises:
        ProtocolError: not ``get <key>``, an empty key, or a bad %XX escape.
    """
    line = line.replace(b"\r", b"")
    verb, space, key = line.partition(b" ")
    if verb != b"get" or not space:
        raise ProtocolError("request is not 'get <key>'")
    if not key:
        raise ProtocolError("empty key")
    return Request(unquote(key).decode("utf-8", "surrogateescape"))


def unquote(data: bytes) -> bytes:
    """Decode %XX escapes (hex in either case).

    Raises:
        ProtocolError: a ``%`` not followed by two hex digits.
    """
    if b"%" not in data:
        return data
    out = bytearray()
    index = 0
    while (percent := data.find(b"%", index)) != -1:
        out += data[index:percent]
        pair = data[percent + 1 : percent + 3]
        if len(pair) != 2 or pair[0] not in _HEX or pair[1] not in _HEX:
            raise ProtocolError("bad %XX escape in key")
        out.append(int(pair, 16))
        index = percent + 3
    out += data[index:]
    return bytes(out)


def quote(data: bytes) -> bytes:
    """%xx-encode ``%``, spaces, control and non-ASCII bytes (lower-case hex, as postsrsd)."""
    if _NEEDS_QUOTING.search(data) is None:
        return data  # the usual case: one C-speed scan
    return _NEEDS_QUOTING.sub(lambda match: b"%%%02x" % match[0][0], data)


def encode_request(request: Request) -> bytes:
    """The line Postfix sends for ``request`` (clients and tests use it)."""
    return b"get " + quote(request.key.encode("utf-8", "surrogateescape")) + b"\n"


def encode_reply(reply: TcpTableReply) -> bytes:
    """The reply line: the value %xx-encoded for 200, the reason made one line otherwise."""
    return encode(reply.code, reply.text)


def encode(code: Code, text: str) -> bytes:
    """``encode_reply`` without making a ``TcpTableReply`` first (the server's hot path)."""
    data = text.encode("utf-8", "surrogateescape")
    data = quote(data) if code is Code.FOUND else data.replace(b"\r", b" ").replace(b"\n", b" ")
    line = _PREFIX[code] + data
    return line[: MAX_REPLY - 1] + b"\n"


class ReplyDecoder(framing.ReplyDecoder[TcpTableReply]):
    """The client side: reply lines to replies (tests, benchmarks)."""

    __slots__ = ()

    def _next_frame(self, buffer: bytearray, start: int) -> tuple[bytes, int] | None:
        newline = buffer.find(b"\n", start)
        if newline == -1:
            return None
        return bytes(buffer[start:newline]), newline + 1

    def _reply(self, payload: bytes) -> TcpTableReply:
        code, _, text = payload.partition(b" ")
        try:
            status = Code(int(code))
        except ValueError:
            raise ProtocolError(f"bad tcp_table reply {payload[:40]!r}") from None
        if status is Code.FOUND:
            text = unquote(text)
        return TcpTableReply(status, text.decode("utf-8", "surrogateescape"))

    def _check_unfinished(self, rest: bytes | bytearray) -> None:
        if len(rest) > MAX_REPLY:
            raise ProtocolError("reply line too long")
