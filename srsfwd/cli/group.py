"""The ``srsfwd`` command group: subcommands imported on first use, and the one place
where errors become exit statuses."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from typing import Any

import click

from srsfwd.errors import SrsfwdError

#: Exit statuses of every command (sysexits' EX_TEMPFAIL for "try again later").
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_TEMPFAIL = 75
EXIT_INTERRUPTED = 130


class CommandError(click.ClickException, SrsfwdError):
    """A ``SrsfwdError`` as click prints it (``Error: ...``): exit status 1."""

    exit_code = EXIT_FAILED


class TemporaryCommandError(CommandError):
    """A temporary ``SrsfwdError``: exit status 75, try again later."""

    exit_code = EXIT_TEMPFAIL
    temporary = True


def exit_status(exc: SrsfwdError) -> int:
    """The exit status for ``exc``: 75 when it is temporary (try again later), else 1."""
    return EXIT_TEMPFAIL if exc.temporary else EXIT_FAILED


def batch_status(errors: Iterable[SrsfwdError]) -> int:
    """The exit status of a command that went on after some items failed: 0 when none
    did, 1 when one failed for good, 75 when every failure was temporary."""
    statuses = {exit_status(exc) for exc in errors}
    if not statuses:
        return EXIT_OK
    return EXIT_FAILED if EXIT_FAILED in statuses else EXIT_TEMPFAIL


def command_error(exc: SrsfwdError, where: str | None = None) -> CommandError:
    """``exc`` as the ``CommandError`` to raise, ``where`` (a file...) before its message."""
    message = f"{where}: {exc}" if where else str(exc)
    return (TemporaryCommandError if exc.temporary else CommandError)(message)


class LazyGroup(click.Group):
    """A group whose subcommands are imported when run, not when the group is built.

    ``lazy_subcommands`` maps each name to ``("module:attribute", "one-line help")``; the
    help line is what ``--help`` lists, so listing needs no import (a test keeps it equal
    to the command's own). ``srsfwd --help`` and a light command such as ``rewrite`` then
    pay only for what they use. Any ``SrsfwdError`` a subcommand lets out ends as
    ``Error: ...`` with exit status 1 (75 when it is temporary), and Ctrl-C as 130.
    """

    def __init__(
        self,
        *args: Any,
        lazy_subcommands: Mapping[str, tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands:
            return self.load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def load(self, cmd_name: str) -> click.Command:
        """Import the subcommand ``cmd_name``."""
        module_name, _, attribute = self.lazy_subcommands[cmd_name][0].partition(":")
        command = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module_name}:{attribute} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        summaries = {name: summary for name, (_, summary) in self.lazy_subcommands.items()}
        for name in super().list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is not None and not command.hidden:
                summaries[name] = command.get_short_help_str(limit=1000)
        if summaries:
            limit = formatter.width - 6 - max(map(len, summaries))
            # A stand-in command shortens each line exactly as click shortens its own.
            rows = [
                (name, click.Command(name, help=text).get_short_help_str(limit))
                for name, text in summaries.items()
            ]
            with formatter.section("Commands"):
                formatter.write_dl(sorted(rows))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CommandError:
            raise
        except SrsfwdError as exc:
            raise command_error(exc) from None
        except KeyboardInterrupt:
            click.echo("", err=True)
            ctx.exit(EXIT_INTERRUPTED)
