"""The shared buffering: replies cut anywhere come out whole, a framing error ends a stream."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.errors import ProtocolError
from srsfwd.protocols.framing import ReplyDecoder, RequestDecoder


class SemicolonDecoder(ReplyDecoder[str]):
    """Frames ending in ``;``, at most four bytes unfinished."""

    __slots__ = ()

    def _next_frame(self, buffer: bytearray, start: int) -> tuple[bytes, int] | None:
        end = buffer.find(b";", start)
        return None if end == -1 else (bytes(buffer[start:end]), end + 1)

    def _reply(self, payload: bytes) -> str:
        return payload.decode()

    def _check_unfinished(self, rest: bytes | bytearray) -> None:
        if len(rest) > 4:
            raise ProtocolError("unfinished frame too long")


@given(st.lists(st.text("ab", max_size=4), max_size=6), st.data())
def test_any_chunking_gives_the_same_replies(replies: list[str], data: st.DataObject) -> None:
    wire = "".join(f"{reply};" for reply in replies).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder, got, last = SemicolonDecoder(), [], 0
    for cut in [*cuts, len(wire)]:
        got += decoder.feed(wire[last:cut])
        last = cut
    assert got == replies


def test_an_unfinished_frame_over_its_bound_is_refused() -> None:
    decoder = SemicolonDecoder()
    decoder.feed(b"ok;abcd")
    with pytest.raises(ProtocolError, match="too long"):
        decoder.feed(b"e")


class SemicolonRequests(RequestDecoder[str]):
    """Requests ending in ``;``; an empty one breaks the framing."""

    __slots__ = ()

    def _decode(self, data: bytes, limit: int | None, requests: list[str]) -> None:
        self._buffer += data
        *whole, rest = bytes(self._buffer).split(b";")
        for request in whole:
            if not request:
                raise ProtocolError("empty request")
            requests.append(request.decode())
        self._buffer[:] = rest


def test_requests_before_a_framing_error_still_count() -> None:
    assert SemicolonRequests().feed(b"a;b;;c;") == ["a", "b"]


def test_after_a_framing_error_nothing_more_is_accepted_or_held() -> None:
    decoder = SemicolonRequests()
    decoder.feed(b";pending")
    assert (decoder.feed(b"a;"), decoder.buffered) == ([], 0)
    assert decoder.error is not None
