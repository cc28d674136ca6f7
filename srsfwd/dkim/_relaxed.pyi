"""Types of the compiled extension srsfwd/dkim/_relaxed.c."""

def relaxed_lines(piece: bytes, /) -> bytes:
    """``piece`` with every run of SP/HTAB as one SP, and the runs right before CR LF removed."""
