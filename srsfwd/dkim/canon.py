"""Message parsing and DKIM canonicalisation (RFC 6376 §3.4), with whole-body bytes methods.

Written by hand because dkimpy runs ``re.sub`` over the whole body three times (about
35 MB/s); whole-body ``bytes.replace`` passes do the same work several times faster, with
no Python loop per line or per run of spaces, and give the same bytes
(tests/unit/dkim/test_canon.py compares the two with hypothesis). The white-space step of
relaxed bodies and the scan for bare LFs run compiled (srsfwd/dkim/_canon.c, an optional
extension) when the install built it, several times faster again, and in Python otherwise.
Bodies are canonicalised and hashed in pieces of ``BODY_CHUNK`` bytes cut at line ends, so
hashing a large body
costs one piece of extra memory, not a copy of the body. A body that fits in one piece
(most mail) is canonicalised in one step, without the generators that join pieces.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import getaddresses
from itertools import repeat

from srsfwd.errors import SignatureError

#: The largest header section we parse (Postfix's header_size_limit is 100 KiB per header).
MAX_HEADER_BYTES = 1 << 20
_NAME_CHARS = frozenset(range(0x21, 0x7F)) - {ord(":")}
# As a deletion table: what bytes.translate leaves is what a field name may not hold.
_NAME_DELETE = bytes(_NAME_CHARS)
_CRLF = b"\r\n"
# An LF with no CR before it. The regex engine looks for a pattern's literal first byte with
# a tight scan, so finding the rare LFs costs far less than counting LFs and CRLFs.
_BARE_LF = re.compile(rb"\n(?<!\r\n)")


@dataclass(frozen=True, slots=True)
class Header:
    """One header field as it is on the wire: ``name`` and the raw value after the colon.

    ``name`` keeps any white space before the colon (RFC 5322 §4.5.3 obsolete syntax).

    ``value`` keeps folding (CRLF + WSP) and leading whitespace; ``raw`` is the whole field
    without its final CRLF.
    """

    name: bytes
    value: bytes

    @property
    def key(self) -> bytes:
        """The lower-cased name without white space before the colon, for comparisons."""
        return self.name.rstrip(b" \t").lower()

    @property
    def raw(self) -> bytes:
        """``Name:value`` as on the wire, without the final CRLF."""
        return self.name + b":" + self.value


@dataclass(frozen=True, slots=True)
class Message:
    """A message split into its header fields and its body (both in CRLF form)."""

    headers: tuple[Header, ...]
    body: bytes

    def to_bytes(self) -> bytes:
        """The message in wire form."""
        lines = b"".join(h.raw + b"\r\n" for h in self.headers)
        return lines + b"\r\n" + self.body

    def find(self, name: str) -> list[Header]:
        """Every field named ``name`` (any case), top first."""
        key = name.lower().encode("ascii")
        return [h for h in self.headers if h.key == key]


def _find_bare_lf_python(data: bytes) -> int:
    """Where the first LF without a CR right before it is, or -1: the Python form of
    ``_canon.find_bare_lf``."""
    found = _BARE_LF.search(data)
    return -1 if found is None else found.start()


def to_crlf(data: bytes) -> bytes:
    """``data`` with every bare LF turned into CRLF (bare CRs stay as they are)."""
    if _find_bare_lf(data) == -1:
        return data  # no LF, or CRLF throughout: no copy
    if b"\r\n" in data:
        data = data.replace(b"\r\n", b"\n")
    return data.replace(b"\n", b"\r\n")


def parse_message(data: bytes) -> Message:
    """Split ``data`` (CRLF or LF lines) into header fields and body.

    The header section ends at the first empty line; without one, the message is all
    header and the body is empty. An mbox ``From `` line at the very top is dropped.

    Raises:
        SignatureError: not a message (a line that is no header field, no header at all,
            a header section over ``MAX_HEADER_BYTES``).
    """
    return parse_crlf(to_crlf(data))


def body_start(data: bytes) -> int:
    """Where the body of ``data`` (CRLF form) starts: after the first empty line, or at the
    end when there is none."""
    end = data.find(b"\r\n\r\n")
    return len(data) if end == -1 else end + 4


def parse_crlf(data: bytes) -> Message:
    """``parse_message`` for data known to be in CRLF form already (no second pass)."""
    if data.startswith(b"From "):
        data = data[data.find(b"\r\n") + 2 :] if b"\r\n" in data else b""
    if data.startswith(b"\r\n"):
        raise SignatureError("not a mail message: no header fields")
    end = data.find(b"\r\n\r\n")
    if end == -1:
        head, body = (data[:-2] if data.endswith(b"\r\n") else data), b""
    else:
        head, body = data[:end], data[end + 4 :]
    if len(head) > MAX_HEADER_BYTES:
        raise SignatureError(f"header section larger than {MAX_HEADER_BYTES} bytes")
    # Each field's lines are collected and joined once: appending line by line copies the
    # value again for every continuation line, quadratic in a long folded field.
    fields: list[tuple[bytes, list[bytes]]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise SignatureError("not a mail message: starts with a continuation line")
            fields[-1][1].append(line)
            continue
        name, colon, value = line.partition(b":")
        if not colon or not _is_field_name(name):
            shown = line[:40].decode("ascii", "replace")
            raise SignatureError(f"not a mail message: {shown!r} is not a header field")
        fields.append((name, [value]))
    if not fields:
        raise SignatureError("not a mail message: no header fields")
    headers = [Header(name, b"\r\n".join(lines)) for name, lines in fields]
    return Message(tuple(headers), body)


def _is_field_name(name: bytes) -> bool:
    """RFC 5322 field name, optionally followed by the obsolete white space before the colon
    (§4.5.3 ``obs-optional``), as Mail::DKIM and OpenDKIM accept it."""
    name = name.rstrip(b" \t")
    return bool(name) and not name.translate(None, _NAME_DELETE)


#: Bodies are canonicalised and hashed this many bytes at a time (cut at a CRLF): large
#: enough that every step is C work (hashlib drops the GIL for large updates), small enough
#: that a 50 MB body is never copied whole.
BODY_CHUNK = 1 << 20


def _squeeze(data: bytes) -> bytes:
    """Runs of spaces and tabs → one space (RFC 6376 §3.4.2 / §3.4.4 "reduce all sequences")."""
    if b"\t" in data:
        data = data.replace(b"\t", b" ")
    if b"  " not in data:
        return data
    if b"   " not in data:
        return b" ".join(data.split(b"  "))  # only runs of two: one pass is exact
    # Split at every double space: what is left of a run starts the next piece as spaces
    # (stripped) or as empty pieces (dropped). One split, C-level map/filter and one join,
    # whatever the runs: no Python code runs per piece.
    pieces = map(bytes.lstrip, data.split(b"  "), repeat(b" "))
    out = b" ".join(filter(None, pieces))
    if data[:1] == b" ":
        out = b" " + out
    if data[-1:] == b" " and out[-1:] != b" ":
        out += b" "
    return out


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """``name:value`` in relaxed form (RFC 6376 §3.4.2), without the final CRLF.

    White space on both sides of the colon goes, so ``Subject : x`` becomes ``subject:x``.
    """
    if b"\n" in value:
        value = value.replace(b"\r\n", b"").replace(b"\n", b"")
    return name.rstrip(b" \t").lower() + b":" + _squeeze(value).strip(b" \t")


def simple_header(name: bytes, value: bytes) -> bytes:
    """The field unchanged (RFC 6376 §3.4.1), without the final CRLF."""
    return name + b":" + value


def relaxed_body(body: bytes) -> bytes:
    """The body in relaxed form (RFC 6376 §3.4.4); an empty body stays empty.

    A last line without CRLF gets one after whitespace reduction, as dkimpy does.
    """
    return b"".join(relaxed_body_chunks(body))


def simple_body(body: bytes) -> bytes:
    """The body in simple form (RFC 6376 §3.4.3): exactly one final CRLF, even when empty."""
    return b"".join(simple_body_chunks(body))


def relaxed_body_chunks(body: bytes, chunk: int = BODY_CHUNK, *, start: int = 0) -> Iterator[bytes]:
    """``relaxed_body(body[start:])`` in pieces of about ``chunk`` bytes, for hashing.

    ``start`` lets a caller hash the body inside a whole message without copying it out.
    """
    if len(body) - start <= chunk:
        return iter((_trim_trailing_lines(_relaxed_lines(body[start:]), empty=b""),))
    pieces = _line_pieces(body, chunk, start)
    return _without_trailing_lines(map(_relaxed_lines, pieces), empty=b"")


def simple_body_chunks(body: bytes, chunk: int = BODY_CHUNK, *, start: int = 0) -> Iterator[bytes]:
    """``simple_body(body[start:])`` in pieces of about ``chunk`` bytes, for hashing."""
    if len(body) - start <= chunk:
        return iter((_trim_trailing_lines(body[start:], empty=_CRLF),))
    return _without_trailing_lines(_line_pieces(body, chunk, start), empty=_CRLF)


def body_digest(chunks: Iterator[bytes], length: int | None = None) -> tuple[bytes, int]:
    """SHA-256 of the first ``length`` bytes of the joined ``chunks`` (all when None), and
    how many bytes they hold in all."""
    digest = hashlib.sha256()
    total = 0
    for piece in chunks:
        if length is None:
            digest.update(piece)
        elif total < length:
            digest.update(memoryview(piece)[: length - total])
        total += len(piece)
    return digest.digest(), total


#: The chunk iterator of each body canonicalisation, by its ``c=`` name.
BODY_CANONICALISATIONS: dict[str, Callable[[bytes], Iterator[bytes]]] = {
    "relaxed": relaxed_body_chunks,
    "simple": simple_body_chunks,
}


def _line_pieces(body: bytes, chunk: int, start: int = 0) -> Iterator[bytes]:
    """``body[start:]`` in pieces of about ``chunk`` bytes, each ending in CRLF but the last.

    Whitespace runs never cross a CRLF, so each piece can be canonicalised on its own.
    """
    if len(body) - start <= chunk:
        if len(body) > start:
            yield body[start:] if start else body
        return
    while start < len(body):
        cut = body.rfind(_CRLF, start, start + chunk)
        if cut == -1:  # a line longer than a chunk: up to its end
            cut = body.find(_CRLF, start + chunk)
        end = len(body) if cut == -1 else cut + 2
        yield body[start:end]
        start = end


def _relaxed_lines_python(piece: bytes) -> bytes:
    """``piece`` (whole lines but maybe the last) with runs of SP/HTAB as one SP and those
    right before a CRLF removed: the Python form of ``_relaxed.relaxed_lines``."""
    piece = _squeeze(piece)
    if b" \r\n" in piece:  # one space at most is left before a CRLF
        # split and join: a quarter faster than replace, which counts the matches first
        piece = _CRLF.join(piece.split(b" \r\n"))
    return piece


# The same two scans compiled (srsfwd/dkim/_canon.c, an optional extension: about 0.2 ms
# per 200 KB of white-space-heavy text against 1.6 ms for the relaxed step, 0.02 against
# 0.25 ms for the LF scan), when the install could build it.
try:
    from srsfwd.dkim._canon import find_bare_lf as _find_bare_lf
    from srsfwd.dkim._canon import relaxed_lines as _relaxed_lines
except ImportError:  # no compiler at install time: the same results, slower
    _find_bare_lf = _find_bare_lf_python
    _relaxed_lines = _relaxed_lines_python

#: Whether canonicalisation runs the compiled extension's scans (else their Python forms).
COMPILED = _relaxed_lines is not _relaxed_lines_python


def _trailing_crlfs(data: bytes) -> int:
    """How many CRLF pairs ``data`` ends with (bare CRs and LFs are not line ends)."""
    tail = _line_end_tail(data)
    if not tail.endswith(b"\n"):
        return 0
    # The pairs run from after the last doubled CR or LF; an LF there starts no pair.
    start = max(tail.rfind(b"\r\r"), tail.rfind(b"\n\n")) + 1
    if tail[start : start + 1] == b"\n":
        start += 1
    return (len(tail) - start) // 2


def _line_end_tail(data: bytes) -> bytes:
    """The CRs and LFs at the end of ``data``, usually a few. Stripping the whole of
    ``data`` would copy it all (a piece of up to a chunk), so the end is stripped first
    and the window doubled only while it holds nothing but CRs and LFs."""
    size = 64
    while True:
        window = data[-size:]
        kept = window.rstrip(b"\r\n")
        if kept or size >= len(data):
            return window[len(kept) :]
        size *= 2


def _trim_trailing_lines(body: bytes, *, empty: bytes) -> bytes:
    """A whole body without its empty lines at the end, with a CRLF after a last line that
    has none, or ``empty`` when no line is left (``_without_trailing_lines`` for one piece)."""
    pairs = _trailing_crlfs(body)
    content = len(body) - 2 * pairs
    if content == 0:
        return empty
    if pairs == 0:
        return body + _CRLF
    return body[: content + 2] if pairs > 1 else body


def _without_trailing_lines(pieces: Iterator[bytes], *, empty: bytes) -> Iterator[bytes]:
    """``pieces`` without the empty lines at the end (RFC 6376 §3.4.3/§3.4.4), a CRLF
    after a last line that has none (as dkimpy does), and ``empty`` when no line is left.

    Empty lines are held back until a line with content follows them.
    """
    held = 0  # empty lines seen and not yet passed on
    seen_content = False
    for piece in pieces:
        pairs = _trailing_crlfs(piece)
        content = len(piece) - 2 * pairs
        if content == 0:
            held += pairs
            continue
        if held:
            yield from _crlf_runs(held)
        seen_content = True
        if pairs == 0:  # the last piece, without a final CRLF
            yield piece + _CRLF
            return
        yield piece[: content + 2] if pairs > 1 else piece
        held = pairs - 1
    if not seen_content:
        yield empty


def _crlf_runs(count: int) -> Iterator[bytes]:
    """``count`` CRLFs, at most a chunk's worth at a time."""
    most = BODY_CHUNK // 2
    while count > 0:
        yield _CRLF * min(count, most)
        count -= most


def select_headers(headers: tuple[Header, ...], names: list[bytes]) -> list[Header]:
    """The fields named in ``names`` (lower case), each occurrence taken from the bottom up.

    RFC 6376 §5.4.2: a name listed twice means the last two instances; a name listed
    more often than it appears selects nothing for the extra (that is oversigning).
    """
    wanted = set(names)
    # Each wanted name's fields, top first; every listing takes the lowest one left.
    # One pass over the fields (their keys computed once), not one search per name.
    remaining: dict[bytes, list[Header]] = {}
    for header in headers:
        key = header.key
        if key in wanted:
            remaining.setdefault(key, []).append(header)
    chosen: list[Header] = []
    for name in names:
        left = remaining.get(name)
        if left:
            chosen.append(left.pop())
    return chosen


def author_domain(message: Message) -> str | None:
    """The domain of the single From address (RFC 5322 §3.6.2), lower case, or None."""
    froms = message.find("from")
    if len(froms) != 1:
        return None
    value = froms[0].value
    return _kept_address_domain(value) if len(value) <= 1024 else _address_domain(value)


def _address_domain(field_value: bytes) -> str | None:
    """The domain of the one address in a From value, lower case, or None."""
    value = field_value.replace(b"\r\n", b"").decode("utf-8", "replace")
    addresses = [a for _, a in getaddresses([value]) if "@" in a]
    if len(addresses) != 1:
        return None
    domain = addresses[0].rpartition("@")[2].strip().rstrip(".").lower()
    return domain or None


# A pure function of the field's bytes, and the email package's address parser costs more
# than the rest of the facts: kept per From value (a sender's is the same on every
# message), for values of ordinary length (1024 kept values of at most 1 KiB).
_kept_address_domain = functools.lru_cache(maxsize=1024)(_address_domain)
