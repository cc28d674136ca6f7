"""The compiled scans (srsfwd/dkim/_canon.c): the same results as canon.py's Python forms,
for any input. Skipped where the optional extension is not built, except in CI
(``SRSFWD_REQUIRE_C_CANON=1``, set by .ci/run), where a silent build failure must show."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from dkim.canonicalization import Relaxed
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.dkim import canon
from srsfwd.dkim.canon import _find_bare_lf_python, _relaxed_lines_python, relaxed_body, to_crlf

compiled: Callable[[bytes], bytes] | None
compiled_find: Callable[[bytes], int] | None
try:
    from srsfwd.dkim._canon import find_bare_lf as compiled_find
    from srsfwd.dkim._canon import relaxed_lines as compiled
except ImportError:  # no compiler at install time
    compiled = compiled_find = None

needs_compiled = pytest.mark.skipif(compiled is None, reason="the C extension is not built")


def relaxed_lines_in_c(piece: bytes) -> bytes:
    assert compiled is not None
    return compiled(piece)


def find_bare_lf_in_c(data: bytes) -> int:
    assert compiled_find is not None
    return compiled_find(data)


def test_ci_canonicalises_relaxed_bodies_in_c() -> None:
    if os.environ.get("SRSFWD_REQUIRE_C_CANON") != "1":
        pytest.skip("SRSFWD_REQUIRE_C_CANON=1 is not set (CI sets it)")
    assert compiled is not None, "srsfwd/dkim/_canon.c was not built by pip install -e ."
    assert canon.COMPILED


def test_the_flag_says_which_form_canon_uses() -> None:
    assert (compiled is not None) == canon.COMPILED


WITHOUT_THE_EXTENSION = r"""
import sys
sys.modules["srsfwd.dkim._canon"] = None  # import fails, as after an install without a compiler
from srsfwd.dkim import canon
assert not canon.COMPILED
assert canon.relaxed_body(b"a \t b  \r\n") == b"a b\r\n"
assert canon.to_crlf(b"a\nb") == b"a\r\nb"
"""


def test_without_the_extension_canon_uses_its_python_forms() -> None:
    root = Path(__file__).parents[3]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_THE_EXTENSION],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


# Any bytes, and bytes weighted towards what the step looks at: SP, HTAB, CR, LF and their
# runs, with NULs and text between.
blank_heavy = st.lists(
    st.sampled_from(
        [b" ", b"\t", b"\r", b"\n", b"\r\n", b" \r\n", b"\t\r\n", b"  ", b" \t ", b"a", b"\x00"]
    ),
    max_size=120,
).map(b"".join)
pieces = st.one_of(st.binary(max_size=300), blank_heavy)


@needs_compiled
@given(pieces)
def test_compiled_step_matches_the_python_form_on_any_bytes(piece: bytes) -> None:
    assert relaxed_lines_in_c(piece) == _relaxed_lines_python(piece)


# The compiled scan reads 16-byte blocks and the byte after each: every pattern at every
# offset around the first blocks, with text of every length after it.
PATTERNS = [b" ", b"  ", b"\t", b" \t ", b" \r\n", b"  \r\n", b"\t\r\n", b" \r", b" \r ", b" \n"]


@needs_compiled
@pytest.mark.parametrize("pattern", PATTERNS)
def test_compiled_step_matches_at_every_block_offset(pattern: bytes) -> None:
    for before in range(40):
        for after in range(20):
            piece = b"x" * before + pattern + b"y" * after
            assert relaxed_lines_in_c(piece) == _relaxed_lines_python(piece), (before, after)


# Bodies spanning several 16-byte blocks, so runs and line ends fall across block edges.
words = st.sampled_from([b"word", b"a", b"0123456789abcdef", b" ", b"\t", b"   ", b"\r\n"])
bodies = st.lists(words, max_size=100).map(b"".join)


@needs_compiled
@given(bodies)
def test_relaxed_body_in_c_is_dkimpys_relaxed_body(body: bytes) -> None:
    assert relaxed_body(body) == Relaxed.canonicalize_body(body)


@needs_compiled
@given(bodies)
def test_relaxed_body_in_c_hashes_as_dkimpys(body: bytes) -> None:
    ours = hashlib.sha256(relaxed_body(body)).digest()
    assert ours == hashlib.sha256(Relaxed.canonicalize_body(body)).digest()


def white_space_heavy_text(size: int) -> bytes:
    """Text of ``size`` bytes or more with runs of spaces and tabs and trailing blanks."""
    rng = random.Random(size)
    tokens = [b"mail", b"the", b"  spaced", b"x\t", b" \t ", b"long" * 9, b" \r\n", b"\r\n"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(tokens) + b" "
    return bytes(out)


@needs_compiled
def test_a_large_piece_done_without_the_gil_matches_the_python_form() -> None:
    piece = white_space_heavy_text(300_000)
    assert relaxed_lines_in_c(piece) == _relaxed_lines_python(piece)


@needs_compiled
@pytest.mark.parametrize(
    "piece",
    [
        b"",
        b" ",
        b"\t",
        b" " * 1_000_000,
        b"\t \t" * 100_000 + b"\r\n",
        b"x" * 2_000_000,
        b"a\x00 \x00  \x00\t\r\n\x00",
        b"\x00" * 100_000,
        b"\r" * 1000 + b" " * 1000 + b"\n" * 1000,
    ],
    ids=[
        "empty",
        "space",
        "tab",
        "all-spaces",
        "runs-then-crlf",
        "one-huge-line",
        "nuls",
        "all-nuls",
        "bare-cr-and-lf",
    ],
)
def test_hostile_pieces_give_the_python_forms_bytes(piece: bytes) -> None:
    assert relaxed_lines_in_c(piece) == _relaxed_lines_python(piece)


@needs_compiled
def test_a_piece_with_nothing_to_change_is_returned_without_a_copy() -> None:
    piece = b"QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\r\n" * 1000
    assert relaxed_lines_in_c(piece) is piece


@needs_compiled
def test_a_bytes_subclass_gives_plain_bytes() -> None:
    class Tagged(bytes):
        pass

    result = relaxed_lines_in_c(Tagged(b"a b\r\n"))
    assert type(result) is bytes
    assert result == b"a b\r\n"


@needs_compiled
@pytest.mark.parametrize("wrong", [bytearray(b"a  b"), memoryview(b"a  b"), "a  b", None])
def test_anything_but_bytes_is_a_type_error(wrong: object) -> None:
    assert compiled is not None
    assert compiled_find is not None
    with pytest.raises(TypeError, match="takes bytes"):
        compiled(wrong)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="takes bytes"):
        compiled_find(wrong)  # type: ignore[arg-type]


@needs_compiled
@given(pieces)
def test_compiled_bare_lf_scan_matches_the_python_form_on_any_bytes(data: bytes) -> None:
    assert find_bare_lf_in_c(data) == _find_bare_lf_python(data)


@needs_compiled
@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r", b"\n\n", b"\r\r\n", b"\n\r"])
def test_compiled_bare_lf_scan_matches_at_every_block_offset(line_end: bytes) -> None:
    for before in range(40):
        for after in range(20):
            data = b"\r" * before + line_end + b"y" * after
            assert find_bare_lf_in_c(data) == _find_bare_lf_python(data), (before, after)


@needs_compiled
@pytest.mark.parametrize(
    ("data", "found"),
    [
        (b"", -1),
        (b"\n", 0),
        (b"\r\n" * 100_000, -1),
        (b"\r\n" * 100_000 + b"\n", 200_000),
        (b"x" * 2_000_000 + b"\r\n", -1),
        (b"\x00\r\x00\n", 3),
    ],
    ids=["empty", "one-lf", "crlf-throughout", "lf-at-the-end", "one-huge-line", "nuls"],
)
def test_the_bare_lf_scan_finds_the_first_lf_without_a_cr(data: bytes, found: int) -> None:
    assert find_bare_lf_in_c(data) == found


@needs_compiled
def test_a_message_already_in_crlf_form_is_not_copied() -> None:
    message = b"Subject: x\r\n\r\n" + b"line\r\n" * 50_000
    assert to_crlf(message) is message
