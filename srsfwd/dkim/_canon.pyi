"""Types of the compiled extension srsfwd/dkim/_canon.c."""

def relaxed_lines(piece: bytes, /) -> bytes:
    """``piece`` with every run of SP/HTAB as one SP, and the runs right before CR LF removed."""

def find_bare_lf(data: bytes, /) -> int:
    """Where the first LF without a CR right before it is in ``data``, or -1."""
