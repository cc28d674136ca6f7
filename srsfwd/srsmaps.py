"""Lookups as postsrsd answers them: a map name and a key in, a reply out. Pure.

Both wire protocols share these answers: socketmap sends them as they are, tcp_table as
200 (OK), 500 (NOTFOUND, PERM) or 400 (TEMP). The rules follow postsrsd 2.4:

* forward: a key over 512 octets is ``PERM Too big.``; no ``@`` is ``NOTFOUND No
  domain.``; a sender in a local domain (or our SRS domain) is ``NOTFOUND Need not
  rewrite local domain.``, so Postfix keeps it; a malformed SRS1 sender is ``PERM``.
* reverse: every address that is not ours to reverse (not SRS, forged, expired, foreign)
  is ``NOTFOUND <reason>``, so Postfix delivers or refuses it as it would without us and
  never defers mail for it. Database mode without a database is ``PERM``.

Where srsfwd differs, on purpose (docs/postfix.md):

* a sender whose SRS form would exceed 64 octets in the local part, or that SRS cannot
  carry (quoted local part, spaces), is ``NOTFOUND <reason>``: the mail leaves with its
  original sender. postsrsd rewrites it into an address most servers refuse. The
  ``[serve] long-addresses = "rewrite"`` setting does what postsrsd does.
* a store outage is ``TEMP`` (Postfix defers and retries), never a lost bounce.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from srsfwd.errors import (
    AddressError,
    SRSAliasError,
    SRSFormatError,
    SrsfwdError,
    SRSLengthError,
)
from srsfwd.protocols import tcptable
from srsfwd.protocols.socketmap import (
    MAX_KEY,
    MAX_REPLY,
    Request,
    SocketmapReply,
    Status,
    encode_reply,
)
from srsfwd.srs import SRSRewriter

_T = TypeVar("_T")

#: Forward results the per-day cache holds at most; when full it starts afresh.
FORWARD_CACHE_SIZE = 4096

FORWARD = "forward"
REVERSE = "reverse"
MAPS = (FORWARD, REVERSE)

TOO_BIG = SocketmapReply(Status.PERM, "Too big.")
INVALID_MAP = SocketmapReply(Status.PERM, "Invalid map.")
NO_DOMAIN = SocketmapReply(Status.NOTFOUND, "No domain.")
LOCAL = SocketmapReply(Status.NOTFOUND, "Need not rewrite local domain.")

#: How a reply goes on the wire: a socketmap netstring or a tcp_table line.
WireEncoder = Callable[[SocketmapReply], bytes]


class SRSMaps:
    """The ``forward`` and ``reverse`` maps over one ``SRSRewriter``.

    Forward answers are cached for the day: a sender's SRS address is the same until
    the day stamp changes (Postfix asks for it once per message and per recipient
    class). The cache is keyed by sender, emptied when the rewriter's day stamp changes,
    holds at most ``cache_size`` answers (then starts afresh, so a client sending
    endless distinct senders costs a bounded amount of memory) and never holds a
    temporary failure. ``forward_wire`` keeps the answers as each wire encodes them
    too, under the same rules, so that a hit on the servers' lookup path is one dict
    lookup returning ready bytes. A reload builds new maps, so a new configuration
    starts with empty caches. Reverse answers are not cached: reverse is how forged and
    unknown addresses arrive, and caching them would hand memory to whoever sends them.
    """

    __slots__ = ("_cache", "_cache_day", "_wire_caches", "cache_size", "rewriter")

    def __init__(self, rewriter: SRSRewriter, *, cache_size: int = FORWARD_CACHE_SIZE) -> None:
        self.rewriter = rewriter
        self.cache_size = cache_size
        self._cache: dict[str, SocketmapReply] = {}
        self._wire_caches: dict[WireEncoder, dict[str, bytes]] = {}
        self._cache_day = ""

    def lookup(self, request: Request) -> SocketmapReply:
        """The socketmap reply to ``request``.

        Raises only what the rewriter raises unexpectedly (a bug): the server answers
        those with TEMP.
        """
        if request.name == FORWARD:
            return self.forward(request.key)
        if request.name == REVERSE:
            return self.reverse(request.key)
        return INVALID_MAP

    def forward(self, sender: str) -> SocketmapReply:
        """The SRS address for ``sender``, or why it keeps its own."""
        day = self.rewriter.today()
        if day != self._cache_day:
            self._new_day(day)
        return self._cached_forward(sender)

    def forward_wire(self, sender: str, encode: WireEncoder) -> bytes:
        """``encode(self.forward(sender))``; a cache hit is one dict lookup and no
        encoding (the servers' lookup path)."""
        day = self.rewriter.today()
        if day != self._cache_day:
            self._new_day(day)
        cache = self._wire_caches.get(encode)
        if cache is None:
            cache = self._wire_caches[encode] = {}
        wire = cache.get(sender)
        if wire is None:
            # The common sender straight from the rewriter, with the stamp read above.
            rewritten = self.rewriter.forward_plain(sender, day)
            if rewritten is None or rewritten is sender:
                reply = self._forward(sender)
                wire = encode(reply)
                self._keep(cache, sender, wire, reply)
            else:
                found = _FOUND_ENCODERS.get(encode)
                wire = (
                    encode(SocketmapReply(Status.OK, rewritten))
                    if found is None
                    else found(rewritten)
                )
                # _keep, inlined for the distinct senders' path: an OK is cacheable.
                if self.cache_size > 0:
                    if len(cache) >= self.cache_size:
                        cache.clear()
                    cache[sender] = wire
        return wire

    def _new_day(self, day: str) -> None:
        self._cache.clear()
        self._wire_caches.clear()
        self._cache_day = day

    def _cached_forward(self, sender: str) -> SocketmapReply:
        reply = self._cache.get(sender)
        if reply is None:
            reply = self._forward(sender)
            self._keep(self._cache, sender, reply, reply)
        return reply

    def _keep(self, cache: dict[str, _T], sender: str, value: _T, reply: SocketmapReply) -> None:
        """Cache ``value`` for ``sender`` unless ``reply`` is a temporary failure."""
        if reply.status is not Status.TEMP and self.cache_size > 0:
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[sender] = value

    @property
    def cached(self) -> int:
        """Forward answers in the caches now (as replies and as each wire's bytes)."""
        return len(self._cache) + sum(len(cache) for cache in self._wire_caches.values())

    def _forward(self, sender: str) -> SocketmapReply:
        if _too_big(sender):
            return TOO_BIG
        if "@" not in sender:
            return NO_DOMAIN
        try:
            rewritten = self.rewriter.forward(sender)
        except SRSFormatError as exc:
            return SocketmapReply(Status.PERM, str(exc))
        except (SRSLengthError, AddressError) as exc:
            return SocketmapReply(Status.NOTFOUND, _sentence(str(exc)))
        except SrsfwdError as exc:
            return _failure(exc)
        if rewritten == sender:
            return LOCAL
        return SocketmapReply(Status.OK, rewritten)

    def reverse(self, address: str) -> SocketmapReply:
        """The original sender of the SRS ``address``, or why it is not ours."""
        if _too_big(address):
            return TOO_BIG
        try:
            return SocketmapReply(Status.OK, self.rewriter.reverse(address))
        except SRSAliasError as exc:
            status = Status.NOTFOUND if self.rewriter.database_mode else Status.PERM
            return SocketmapReply(status, str(exc))
        except SrsfwdError as exc:
            if exc.temporary:
                return SocketmapReply(Status.TEMP, _sentence(str(exc)))
            return SocketmapReply(Status.NOTFOUND, _sentence(str(exc)))


#: tcp_table's code for each socketmap status.
TCP_TABLE_CODES = {
    Status.OK: tcptable.Code.FOUND,
    Status.NOTFOUND: tcptable.Code.NOT_FOUND,
    Status.PERM: tcptable.Code.NOT_FOUND,
    Status.TEMP: tcptable.Code.TRY_AGAIN,
    Status.TIMEOUT: tcptable.Code.TRY_AGAIN,
}


def to_tcp_table(reply: SocketmapReply) -> tcptable.TcpTableReply:
    """The tcp_table form of a socketmap reply."""
    return tcptable.TcpTableReply(TCP_TABLE_CODES[reply.status], reply.text)


def tcp_table_line(reply: SocketmapReply) -> bytes:
    """The tcp_table reply line for a socketmap reply."""
    return tcptable.encode(TCP_TABLE_CODES[reply.status], reply.text)


def _tcp_table_found(address: str) -> bytes:
    """``tcp_table_line`` of an OK reply for an address ``forward_plain`` made: printable
    ASCII, so only a ``%`` needs quoting and only length cutting (then the general
    encoder does them)."""
    if "%" in address or len(address) > tcptable.MAX_REPLY - 5:
        return tcp_table_line(SocketmapReply(Status.OK, address))
    return f"200 {address}\n".encode()


def _socketmap_found(address: str) -> bytes:
    """``encode_reply`` of an OK reply for an address ``forward_plain`` made (ASCII)."""
    if len(address) > MAX_REPLY - 3:
        return encode_reply(SocketmapReply(Status.OK, address))
    return f"{len(address) + 3}:OK {address},".encode()


#: How each wire encoder writes an address ``forward_plain`` made, without a reply object.
_FOUND_ENCODERS: dict[WireEncoder, Callable[[str], bytes]] = {
    tcp_table_line: _tcp_table_found,
    encode_reply: _socketmap_found,
}


def _too_big(key: str) -> bool:
    # A character is at most 4 octets: short keys need no encoding to know.
    return len(key) > MAX_KEY // 4 and len(key.encode("utf-8", "surrogateescape")) > MAX_KEY


def _failure(exc: SrsfwdError) -> SocketmapReply:
    return SocketmapReply(Status.TEMP if exc.temporary else Status.PERM, _sentence(str(exc)))


def _sentence(text: str) -> str:
    """A reason as postsrsd words them: one line, capitalised, ending with a full stop."""
    text = " ".join(text.split())
    if not text:
        return "Unknown error."
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."
