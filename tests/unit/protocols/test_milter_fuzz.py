"""Coverage-guided fuzzing of the milter codec with atheris (optional, not a project dep).

Run by hand, for as long as you like:

    pip install atheris
    python tests/unit/protocols/test_milter_fuzz.py -max_total_time=60

Under pytest the same targets run over a small seed corpus, so they stay correct without
atheris installed. The targets assert the one robustness promise of the codec: whatever
the bytes, it raises nothing but ``ProtocolError``.
"""

from __future__ import annotations

import importlib
import sys

import pytest

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter import (
    Connect,
    Family,
    Helo,
    MilterCodec,
)
from srsfwd.protocols.milter.mta import MtaClient, ReplyDecoder, encode_command

_CLIENT = MtaClient()
_PREFIX = encode_command(_CLIENT.offer)


def fuzz_filter_side(data: bytes) -> None:
    """Feed ``data`` after a valid negotiation, in two pieces split by its first byte."""
    conn = MilterCodec(max_packet=70_000, max_message=10_000)
    conn.feed(_PREFIX)
    if conn.options_reply is not None:
        conn.send(conn.options_reply)
    cut = data[0] if data else 0
    try:
        conn.feed(data[:cut])
        conn.feed(data[cut:])
    except ProtocolError:
        pass


def fuzz_mta_side(data: bytes) -> None:
    """Decode ``data`` as a filter's replies."""
    try:
        ReplyDecoder(max_packet=70_000).feed(data)
    except ProtocolError:
        pass


SEEDS = [
    b"",
    _CLIENT.encode(Connect("h", Family.INET, 25, "192.0.2.1"), Helo("h")),
    _CLIENT.encode(*_CLIENT.message("a@b", ["c@d"], [("Subject", b" x")], b"body\r\n")),
    b"\x00\x00\x00\x02D\xff",
    b"\x00\x00\x00\x05C\x00\x34\x00",
    b"\x00\x00\x00\x18y550 5.7.1 100%% forged\x00",
    b"\x00\x00\x00\x1fO\x00\x00\x00\x06\x00\x00\x01\x41\x00\x00\x01\x80\x00\x00\x00\x00{x}\x00",
]


@pytest.mark.parametrize("seed", SEEDS)
def test_fuzz_targets_survive_the_seed_corpus(seed: bytes) -> None:
    fuzz_filter_side(seed)
    fuzz_mta_side(seed)


def main() -> None:  # pragma: no cover - run by hand
    atheris = importlib.import_module("atheris")

    def target(data: bytes) -> None:
        if data[:1] == b"R":
            fuzz_mta_side(data[1:])
        else:
            fuzz_filter_side(data)

    # The codec is imported already: instrument what is loaded for coverage feedback.
    atheris.instrument_all()
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main()
