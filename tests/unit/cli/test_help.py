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
