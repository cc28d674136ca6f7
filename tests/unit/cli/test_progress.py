"""The progress display: count, rate and time left on a terminal; nothing elsewhere."""

from __future__ import annotations

import io

from srsfwd.cli.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_count_rate_and_time_left() -> None:
    stream = Terminal()
    with progress(3, stream) as advance:
        for _ in range(3):
            advance()
    shown = stream.getvalue()
    assert "3/3" in shown
    assert "msg/s" in shown
    assert "left" in shown


def test_a_pipe_sees_nothing() -> None:
    stream = io.StringIO()
    with progress(3, stream) as advance:
        for _ in range(3):
            advance()
    assert stream.getvalue() == ""
