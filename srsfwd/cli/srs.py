"""``srsfwd rewrite``, ``reverse``, ``secret`` and ``bounce``: SRS from the command line."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from srsfwd.cli.common import (
    config_option,
    echo_json,
    error,
    json_option,
    lines_or_stdin,
    open_config,
    read_message,
    with_overrides,
)
from srsfwd.cli.group import EXIT_FAILED, EXIT_OK, batch_status
from srsfwd.errors import SrsfwdError
from srsfwd.secretfile import write_new_secret

if TYPE_CHECKING:
    from srsfwd.srs import SRSRewriter

_secret_file = click.option(
    "--secret-file",
    "secrets_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Secrets file: one secret per line, the first signs [config: srs.secrets_file].",
)
_hash_alphabet = click.option(
    "--hash-alphabet",
    type=click.Choice(["classic", "url"]),
    help="Hash characters: url (-_, postsrsd 2.2.6+) or classic (+/, Mail::SRS) [default: url].",
)


def _rewriter(config_path: Path | None, *, need_domain: bool, **flags: Any) -> SRSRewriter:
    from srsfwd.app import build_rewriter  # the wiring imports DNS and DKIM: slow to start

    config = open_config(config_path)
    settings = with_overrides(config.srs, **flags)
    return build_rewriter(config, settings, need_domain=need_domain, srs_options=True)


def _print_each(arguments: tuple[str, ...], convert: Callable[[str], str]) -> NoReturn:
    """Print ``convert`` of each argument (or line of standard input), then exit.

    A value that fails gives one ``Error:`` line and the others are still converted; the
    exit status is ``batch_status`` of the failures.
    """
    failures: list[SrsfwdError] = []
    for value in lines_or_stdin(arguments):
        try:
            click.echo(convert(value))
        except SrsfwdError as exc:
            error(f"{_shown(value)}: {exc}")
            failures.append(exc)
    sys.exit(batch_status(failures))


@click.command()
@config_option
@click.option("--domain", help="Our SRS domain [config: srs.domain].")
@_secret_file
@click.option("--separator", type=click.Choice(["=", "+", "-"]), help="After SRS0/SRS1 [=].")
@click.option("--hash-length", type=click.IntRange(1, 27), help="Hash characters [4].")
@_hash_alphabet
@click.option(
    "--local-domain",
    "local_domains",
    multiple=True,
    help="Never rewrite senders here; .example.com means its subdomains. Repeatable.",
)
@click.argument("senders", nargs=-1)
def rewrite(config_path: Path | None, senders: tuple[str, ...], **flags: Any) -> None:
    """Rewrite envelope SENDERs into SRS addresses, one per line.

    Senders come from the arguments, or one per line from standard input. A sender that
    needs no rewriting (null sender, local domain) is printed unchanged.

    \b
    Example:
      srsfwd rewrite --domain fwd.example.net --secret-file srs.secret alice@example.org
      SRS0=Hx3k=G3=example.org=alice@fwd.example.net
    """
    if flags["local_domains"]:
        config = open_config(config_path)
        flags["local_domains"] = (*config.srs.local_domains, *flags["local_domains"])
    rewriter = _rewriter(config_path, need_domain=True, **flags)
    _print_each(senders, rewriter.forward)


@click.command()
@config_option
@_secret_file
@click.option("--domain", help="Our SRS domain, checked with --require-domain.")
@_hash_alphabet
@click.option("--max-age", "max_age_days", type=click.IntRange(0, 1023), help="Days [21].")
@click.option("--require-domain", is_flag=True, help="Refuse addresses outside --domain.")
@click.argument("addresses", nargs=-1)
def reverse(
    config_path: Path | None, addresses: tuple[str, ...], require_domain: bool, **flags: Any
) -> None:
    """Verify SRS ADDRESSes and print the original sender of each.

    Addresses come from the arguments, or one per line from standard input. Forged,
    tampered, expired and malformed addresses give an "Error: ..." line with the reason
    and exit status 1.

    \b
    Example:
      srsfwd reverse --secret-file srs.secret SRS0=Hx3k=G3=example.org=alice@fwd.example.net
      alice@example.org
    """
    rewriter = _rewriter(config_path, need_domain=require_domain, **flags)
    _print_each(addresses, partial(rewriter.reverse, require_domain=require_domain))


@click.group()
def secret() -> None:
    """Make and rotate SRS secrets files.

    \b
    Example:
      srsfwd secret new /etc/srsfwd/srs.secret
    """


@secret.command("new")
@click.option("--rotate", is_flag=True, help="FILE exists: put a new secret before the old.")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def secret_new(file: Path, rotate: bool) -> None:
    """Write a strong random secret to FILE, readable by its owner only (0600).

    A missing folder is created, mode 0750 (give its group to the user srsfwd serve runs
    as). With --rotate the new secret goes first (it signs from now on) and the old ones stay
    after it (they still verify); drop them after max_age_days + 1 days.

    \b
    Example:
      srsfwd secret new /etc/srsfwd/srs.secret
      srsfwd secret new --rotate /etc/srsfwd/srs.secret
    """
    folder = file.parent
    if not folder.exists():
        try:
            folder.mkdir(mode=0o750, parents=True)
            folder.chmod(0o750)  # whatever the umask
        except OSError as exc:
            raise click.ClickException(f"cannot create {folder}: {exc.strerror}") from None
        click.echo(f"created {folder} (mode 0750)", err=True)
    write_new_secret(file, rotate=rotate)
    click.echo(f"{'rotated' if rotate else 'wrote'} {file} (mode 0600)", err=True)


@click.command()
@config_option
@_secret_file
@click.option("--domain", help="Our SRS domain, checked with --require-domain.")
@click.option("--max-age", "max_age_days", type=click.IntRange(0, 1023), help="Days [21].")
@click.option("--rcpt", help="The envelope recipient (when the message does not show it).")
@click.option("--require-domain", is_flag=True, help="Refuse addresses outside --domain.")
@json_option
@click.argument(
    "message", required=False, type=click.Path(dir_okay=False, allow_dash=True, path_type=Path)
)
def bounce(
    config_path: Path | None,
    message: Path | None,
    rcpt: str | None,
    require_domain: bool,
    as_json: bool,
    **flags: Any,
) -> None:
    """Check a bounce sent to one of our SRS addresses: where it goes, what it says.

    MESSAGE is a file (standard input by default): an RFC 3464 delivery status
    notification, or any mail sent to an SRS address. A forged, expired or malformed
    SRS address is reported as such and gives exit status 1: do not relay it.

    \b
    Example:
      srsfwd bounce --secret-file srs.secret dsn.eml
      srsfwd bounce --secret-file srs.secret --json \\
          --rcpt SRS0=Hx3k=G3=example.org=alice@fwd.example.net < dsn.eml
    """
    from srsfwd.bounce import check_bounce

    rewriter = _rewriter(config_path, need_domain=require_domain, **flags)
    report = check_bounce(read_message(message), rewriter, rcpt=rcpt, require_domain=require_domain)
    if as_json:
        echo_json(dataclasses.asdict(report) | {"deliverable": report.deliverable})
    else:
        click.echo(f"SRS address:  {report.srs_address or '(none)'}")
        if report.deliverable:
            click.echo(f"verdict:      valid; deliver to {report.original_sender}")
        else:
            click.echo(f"verdict:      {report.verdict} ({report.reason}) Do not relay it.")
        kind = "delivery status notification (RFC 3464)" if report.is_dsn else "plain message"
        click.echo(f"message:      {kind}")
        if report.reporting_mta:
            click.echo(f"reported by:  {report.reporting_mta}")
        for rcpt_status in report.recipients:
            line = (
                f"recipient:    {rcpt_status.recipient} {rcpt_status.action} {rcpt_status.status}"
            )
            if rcpt_status.diagnostic:
                line += f" ({rcpt_status.diagnostic})"
            click.echo(line)
    sys.exit(EXIT_OK if report.deliverable else EXIT_FAILED)


def _shown(text: str) -> str:
    """The input as it may go into an error line: one line, not too long."""
    return repr(text[:100]) if len(text) > 100 or not text.isprintable() else text
