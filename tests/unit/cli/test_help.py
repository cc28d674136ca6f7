"""Every command and subcommand's --help shows its usage with an example."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from srsfwd.cli import SUBCOMMANDS, cli


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
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


def test_the_command_list_matches_each_commands_own_help() -> None:
    context = click.Context(cli)
    for name, (_, summary) in SUBCOMMANDS.items():
        command = cli.get_command(context, name)
        assert command is not None
        assert summary == command.get_short_help_str(limit=1000), name


def test_help_imports_no_subcommand() -> None:
    # --help lists the commands from their one-line summaries: no DKIM, DNS or pool code.
    heavy: tuple[str, ...] = ("srsfwd.dkim", "srsfwd.dns", "dns", "dkim", "srsfwd.pool")
    heavy += ("rich",)
    heavy += tuple({where.partition(":")[0] for where, _ in SUBCOMMANDS.values()})
    code = (
        "import sys; from srsfwd.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('loaded:', *sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.splitlines()[-1] == "loaded:"


def test_rewrite_and_json_output_do_not_import_the_table_library(tmp_path: Path) -> None:
    secret = tmp_path / "srs.secret"
    secret.write_text("a-secret-long-enough-to-keep\n")
    secret.chmod(0o600)
    runs = [
        ["rewrite", "--domain", "fwd.example", "--secret-file", str(secret), "a@b.example"],
        ["keys", "list", "--keys-dir", str(tmp_path / "keys"), "--json"],
    ]
    for argv in runs:
        code = (
            "import sys; from srsfwd.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "print('rich loaded:', 'rich' in sys.modules)"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert done.stdout.splitlines()[-1] == "rich loaded: False", argv
