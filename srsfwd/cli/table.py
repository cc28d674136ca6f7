"""Aligned tables for people: rich's on a terminal; in a pipe the same columns as plain
text, with no colours and no box lines, so ``cut``, ``awk`` and tests read them."""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Collection, Iterable, Sequence

import click

#: Wide enough that no cell is wrapped or cut when the output is not a terminal.
PIPE_WIDTH = 1000


def render_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    title: str | None = None,
    numeric: Collection[int] = (),
    terminal: bool = False,
    width: int | None = None,
) -> str:
    """``rows`` under ``headers`` with aligned columns (``numeric`` ones to the right)."""
    # rich is imported here, not at the top: commands that print no table, and
    # ``srsfwd --help``, do not pay for it.
    from rich import box
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if terminal else "",
        title_style="bold" if terminal else "",
    )
    for index, header in enumerate(headers):
        table.add_column(header, justify="right" if index in numeric else "left")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width if terminal and width else PIPE_WIDTH,
        force_terminal=terminal,
        color_system="auto" if terminal else None,
        no_color=not terminal,
        highlight=False,
        emoji=False,
        markup=False,
    )
    console.print(table, crop=False, soft_wrap=False)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


def echo_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    title: str | None = None,
    numeric: Collection[int] = (),
) -> None:
    """Print a table on standard output, styled only when it is a terminal."""
    terminal = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if terminal else None
    click.echo(
        render_table(headers, rows, title=title, numeric=numeric, terminal=terminal, width=width),
        nl=False,
    )
