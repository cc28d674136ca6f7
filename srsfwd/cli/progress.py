"""A progress display on a terminal: count, rate and time left; nothing in a pipe."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def progress(total: int, stream: TextIO, *, unit: str = "msg") -> Iterator[Callable[[], None]]:
    """Yield ``advance()``, to call once per item done; shown on ``stream`` only when it
    is a terminal (and then cleared at the end), so logs and pipes get no control codes."""
    if not stream.isatty():
        yield lambda: None
        return
    # rich is imported only when a display is shown: pipes and tests do not pay for it.
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Items per second, once there is a rate to show."""

        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.1f} {unit}/s" if speed else f"- {unit}/s")

    display = Progress(
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        TextColumn("left"),
        console=Console(file=stream, force_terminal=True),
        transient=True,
    )
    with display:
        task = display.add_task("deciding", total=total)
        yield lambda: display.advance(task)
