"""Every command and subcommand's --help shows its usage with an example."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from srsfwd.cli import cli


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
    return paths


@pytest.mark.parametrize("path", [(), *command_paths(cli)], ids=lambda p: " ".join(p) or "srsfwd")
def test_help_shows_usage_and_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    assert result.output.startswith("Usage: ")
    assert "Example" in result.output


def example_lines(help_text: str) -> list[str]:
    """The lines of the help's example block (after "Example:", up to a blank line)."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Example"))
    block = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        block.append(line.strip())
    return block


@pytest.mark.parametrize("path", [(), *command_paths(cli)], ids=lambda p: " ".join(p) or "srsfwd")
def test_each_example_line_is_one_line_of_the_command(path: tuple[str, ...]) -> None:
    # A backslash that ends a docstring line joins it to the next unless it is doubled.
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert [line for line in example_lines(result.output) if "   " in line] == []
