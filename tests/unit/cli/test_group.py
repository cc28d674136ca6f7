"""The srsfwd command group: lazy subcommands and the one mapping from errors to exit statuses."""

from __future__ import annotations

import click
from click.testing import CliRunner

from srsfwd.cli.group import LazyGroup, batch_status, command_error
from srsfwd.errors import ConfigError, DNSTempError


@click.command()
@click.argument("what")
def failing(what: str) -> None:
    """Fail in the way WHAT names."""
    if what == "config":
        raise ConfigError("no secrets file")
    if what == "dns":
        raise DNSTempError("the DNS server did not answer")
    if what == "interrupt":
        raise KeyboardInterrupt
    click.echo("done")


group = LazyGroup(
    "srsfwd",
    lazy_subcommands={"failing": (f"{__name__}:failing", "Fail in the way WHAT names.")},
)


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(group, list(args))


def test_success_is_status_0() -> None:
    assert run("failing", "nothing").exit_code == 0


def test_an_error_is_one_error_line_and_status_1() -> None:
    result = run("failing", "config")
    assert result.exit_code == 1
    assert result.output == "Error: no secrets file\n"


def test_a_temporary_error_is_status_75() -> None:
    result = run("failing", "dns")
    assert result.exit_code == 75
    assert result.output == "Error: the DNS server did not answer\n"


def test_ctrl_c_is_status_130() -> None:
    assert run("failing", "interrupt").exit_code == 130


def test_a_usage_error_is_status_2() -> None:
    assert run("failing").exit_code == 2


def test_a_command_that_went_on_after_no_failure_is_status_0() -> None:
    assert batch_status([]) == 0


def test_a_command_that_went_on_after_a_lasting_failure_is_status_1() -> None:
    assert batch_status([DNSTempError("later"), ConfigError("never")]) == 1


def test_a_command_whose_every_failure_was_temporary_is_status_75() -> None:
    assert batch_status([DNSTempError("later"), DNSTempError("later again")]) == 75


def test_a_command_error_names_where_and_keeps_the_temporary_status() -> None:
    error = command_error(DNSTempError("no answer"), "message.eml")
    assert (error.message, error.exit_code) == ("message.eml: no answer", 75)


def test_the_help_lists_a_lazy_command_by_its_summary() -> None:
    result = run("--help")
    assert "failing  Fail in the way WHAT names." in result.output
