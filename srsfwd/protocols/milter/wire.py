"""Milter wire constants and framing: ``<u32 length><command byte><payload>`` packets.

The constants carry the names of sendmail's ``mfdef.h`` (``SMFIC_*`` commands from the MTA,
``SMFIR_*`` replies from the filter, ``SMFIF_*`` actions, ``SMFIP_*`` protocol flags,
``SMFIM_*`` macro stages) so that a reader can grep both code bases. Postfix's MTA side is
``src/milter/milter8.c``; where it differs from libmilter the comment says so.
"""

from __future__ import annotations

import enum
import struct

from srsfwd.errors import ProtocolError

#: Milter protocol version we speak (Sendmail 8.14 / Postfix >= 2.6 default).
VERSION = 6
#: Largest body chunk an MTA sends (libmilter's and Postfix's ``MILTER_CHUNK_SIZE``).
CHUNK_SIZE = 65_535
#: Largest packet we accept by default. Body chunks are at most 65,535 bytes, but one
#: header is one packet and Postfix allows headers up to ``header_size_limit`` (102,400
#: bytes by default, configurable), so we allow 1 MiB plus room for a full body chunk.
MAX_PACKET = 1024 * 1024 + CHUNK_SIZE + 1

_LENGTH = struct.Struct("!I")


class Command(enum.IntEnum):
    """Commands from the MTA (``SMFIC_*``): the byte after the length."""

    ABORT = ord("A")
    BODY = ord("B")
    CONNECT = ord("C")
    MACRO = ord("D")
    END_OF_MESSAGE = ord("E")  # SMFIC_BODYEOB
    HELO = ord("H")
    QUIT_NC = ord("K")  # quit, a new connection follows on the same socket
    HEADER = ord("L")
    MAIL = ord("M")
    END_OF_HEADERS = ord("N")
    OPTNEG = ord("O")
    QUIT = ord("Q")
    RCPT = ord("R")
    DATA = ord("T")
    UNKNOWN = ord("U")


class ReplyCode(enum.IntEnum):
    """Replies and actions from the filter (``SMFIR_*``)."""

    ADDRCPT = ord("+")
    DELRCPT = ord("-")
    ADDRCPT_PAR = ord("2")
    SHUTDOWN = ord("4")
    ACCEPT = ord("a")
    REPLBODY = ord("b")
    CONTINUE = ord("c")
    DISCARD = ord("d")
    CHGFROM = ord("e")
    CONN_FAIL = ord("f")
    ADDHEADER = ord("h")
    INSHEADER = ord("i")
    SETSYMLIST = ord("l")
    CHGHEADER = ord("m")
    PROGRESS = ord("p")
    QUARANTINE = ord("q")
    REJECT = ord("r")
    SKIP = ord("s")
    TEMPFAIL = ord("t")
    REPLYCODE = ord("y")
    OPTNEG = ord("O")  # the negotiation reply reuses SMFIC_OPTNEG


class ActionFlag(enum.IntFlag):
    """What the filter may do at end of message (``SMFIF_*``), offered and requested in OPTNEG."""

    NONE = 0
    ADDHDRS = 0x001
    CHGBODY = 0x002
    ADDRCPT = 0x004
    DELRCPT = 0x008
    CHGHDRS = 0x010
    QUARANTINE = 0x020
    CHGFROM = 0x040
    ADDRCPT_PAR = 0x080
    SETSYMLIST = 0x100


#: Every action of protocol version 6: what Postfix offers.
ALL_ACTIONS = ActionFlag(0x1FF)


class ProtocolFlag(enum.IntFlag):
    """Events the filter does not want (``NO*``), events it will not answer (``NR_*``), and
    the other ``SMFIP_*`` bits; offered by the MTA and chosen by the filter in OPTNEG."""

    NONE = 0
    NOCONNECT = 1 << 0
    NOHELO = 1 << 1
    NOMAIL = 1 << 2
    NORCPT = 1 << 3
    NOBODY = 1 << 4
    NOHDRS = 1 << 5
    NOEOH = 1 << 6
    NR_HDR = 1 << 7
    NOUNKNOWN = 1 << 8
    NODATA = 1 << 9
    SKIP = 1 << 10
    RCPT_REJ = 1 << 11
    NR_CONN = 1 << 12
    NR_HELO = 1 << 13
    NR_MAIL = 1 << 14
    NR_RCPT = 1 << 15
    NR_DATA = 1 << 16
    NR_UNKN = 1 << 17
    NR_EOH = 1 << 18
    NR_BODY = 1 << 19
    HDR_LEADSPC = 1 << 20


#: Every protocol flag of version 6: what Postfix offers (``MILTER8_V6_PROTO_MASK``).
ALL_PROTOCOL_FLAGS = ProtocolFlag((1 << 21) - 1)


class MacroStage(enum.IntEnum):
    """The stages a filter may ask macros for with a symbol list (``SMFIM_*``)."""

    CONNECT = 0
    HELO = 1
    MAIL = 2
    RCPT = 3
    DATA = 4
    END_OF_MESSAGE = 5
    END_OF_HEADERS = 6


class Family(enum.Enum):
    """Client address family in CONNECT (``SMFIA_*``)."""

    UNKNOWN = "U"
    UNIX = "L"
    INET = "4"
    INET6 = "6"


def encode_packet(code: int, payload: bytes = b"") -> bytes:
    """One packet: the length of command byte plus payload, the command byte, the payload."""
    return _LENGTH.pack(len(payload) + 1) + bytes((code,)) + payload


class PacketDecoder:
    """Splits a byte stream into ``(command byte, payload)`` pairs, whatever the chunking.

    The buffer is bounded: a length above ``max_packet`` is refused as soon as its four
    bytes arrive, before any of the payload is buffered, so the decoder never holds more
    than ``max_packet + 4`` bytes of an incomplete packet. After an error the decoder is
    poisoned and raises the same error again.
    """

    __slots__ = ("_buffer", "_error", "max_packet")

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self._buffer = bytearray()
        self._error: ProtocolError | None = None
        self.max_packet = max_packet

    @property
    def pending(self) -> int:
        """Bytes held for a packet not yet complete."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Every packet completed by ``data``.

        Raises:
            ProtocolError: a zero or oversized length (also on every later call).
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        packets: list[tuple[int, bytes]] = []
        start = 0
        end = len(buffer)
        while end - start >= 4:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if length == 0 or length > self.max_packet:
                self._error = ProtocolError(
                    f"milter packet length {length} outside 1..{self.max_packet}"
                )
                buffer.clear()
                raise self._error
            if end - start - 4 < length:
                break
            code = buffer[start + 4]
            packets.append((code, bytes(buffer[start + 5 : start + 4 + length])))
            start += 4 + length
        del buffer[:start]
        return packets


def split_strings(payload: bytes, what: str) -> list[bytes]:
    """The NUL-terminated strings of ``payload``; the last one must be terminated too.

    Raises:
        ProtocolError: ``payload`` does not end with NUL.
    """
    if not payload.endswith(b"\0"):
        raise ProtocolError(f"milter {what}: string not NUL-terminated")
    return payload[:-1].split(b"\0")


def text(raw: bytes, what: str) -> str:
    """Strict UTF-8, for fields the MTA itself produces or validates.

    Raises:
        ProtocolError: not UTF-8.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError(f"milter {what}: not UTF-8: {raw[:40]!r}") from None


def client_text(raw: bytes) -> str:
    """UTF-8 that never fails, for what an SMTP client typed and Postfix passes on unchecked.

    Undecodable bytes become lone surrogates (``surrogateescape``), so
    ``value.encode("utf-8", "surrogateescape")`` gives back the exact bytes.
    """
    return raw.decode("utf-8", "surrogateescape")
