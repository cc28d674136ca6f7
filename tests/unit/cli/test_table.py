"""Tables for people: plain aligned columns in a pipe, rich's styling only on a terminal."""

from __future__ import annotations

from srsfwd.cli.table import render_table

ROWS = [("example.com", "s2026", 12), ("a-much-longer-domain.example.org", "x", 1)]


def test_plain_columns_line_up() -> None:
    lines = render_table(("domain", "selector", "count"), ROWS, numeric=(2,)).splitlines()
    header, first, second = lines
    assert header.index("selector") == first.index("s2026") == second.index("x ")
    assert len({len(line) for line in lines}) == 1  # the numbers align on the right


def test_plain_output_has_no_colour_codes_box_lines_or_trailing_spaces() -> None:
    text = render_table(("domain", "selector", "count"), ROWS, title="keys")
    assert "\x1b" not in text
    assert not set(text) & set("─━│┃")
    assert all(line == line.rstrip() for line in text.splitlines())


def test_plain_output_never_wraps_a_long_cell() -> None:
    long = "x" * 300 + ".example"
    assert long in render_table(("domain",), [(long,)])


def test_a_terminal_gets_styled_headers() -> None:
    text = render_table(("domain", "count"), ROWS[:1], terminal=True, width=80)
    assert "\x1b[1m" in text and "example.com" in text
