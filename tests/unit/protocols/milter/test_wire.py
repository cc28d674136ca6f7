"""Milter framing: length-prefixed packets, a bounded buffer, any chunking."""

from __future__ import annotations

import pytest

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter import MAX_PACKET, PacketDecoder
from srsfwd.protocols.milter.wire import encode_packet


def test_packet_is_length_command_payload() -> None:
    assert encode_packet(ord("B"), b"abc") == b"\x00\x00\x00\x04Babc"


def test_two_packets_in_one_read_are_both_returned() -> None:
    data = b"\x00\x00\x00\x01T\x00\x00\x00\x04Babc"
    assert PacketDecoder().feed(data) == [(ord("T"), b""), (ord("B"), b"abc")]


def test_packet_split_byte_by_byte_is_returned_once_complete() -> None:
    decoder = PacketDecoder()
    data = b"\x00\x00\x00\x04Babc"
    got = [packet for byte in data for packet in decoder.feed(bytes((byte,)))]
    assert got == [(ord("B"), b"abc")]
    assert decoder.pending == 0


def test_empty_feed_returns_nothing() -> None:
    assert PacketDecoder().feed(b"") == []


def test_zero_length_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="length 0"):
        PacketDecoder().feed(b"\x00\x00\x00\x00")


def test_oversized_length_is_refused_before_its_payload_arrives() -> None:
    decoder = PacketDecoder(max_packet=1000)
    with pytest.raises(ProtocolError, match="1001"):
        decoder.feed(b"\x00\x00\x03\xe9B")
    assert decoder.pending == 0


def test_largest_allowed_packet_is_accepted() -> None:
    decoder = PacketDecoder(max_packet=1000)
    assert decoder.feed(encode_packet(ord("B"), b"x" * 999)) == [(ord("B"), b"x" * 999)]


def test_default_limit_takes_a_full_body_chunk_and_a_large_header() -> None:
    assert MAX_PACKET > 65_536
    assert MAX_PACKET > 1024 * 1024


def test_decoder_stays_broken_after_an_error() -> None:
    decoder = PacketDecoder()
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x00\x00\x00\x00")
    with pytest.raises(ProtocolError):
        decoder.feed(b"\x00\x00\x00\x01T")


def test_incomplete_packet_is_held_until_the_rest_arrives() -> None:
    decoder = PacketDecoder()
    assert decoder.feed(b"\x00\x00\x00\x04Ba") == []
    assert decoder.pending == 6
    assert decoder.feed(b"bc") == [(ord("B"), b"abc")]
