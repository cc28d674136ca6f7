"""``srsfwd forward``: one forward of one message, from what arrived to what leaves."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from srsfwd.cli.common import (
    DnsChoice,
    HostPort,
    config_option,
    dns_options,
    open_config,
    read_message,
    resolver_from_options,
)
from srsfwd.cli.decision import ACTION_STATUS, describe, from_forward_result
from srsfwd.cli.envelope import EnvelopeOptions, envelope_options
from srsfwd.cli.group import exit_status
from srsfwd.delivery import POOL_HEADER, deliver_sendmail, deliver_smtp, with_pool_header
from srsfwd.errors import SrsfwdError
from srsfwd.forward import Forwarder
from srsfwd.pool_settings import decide_settings


def _build(config_path: Path | None, dns: DnsChoice) -> Forwarder:
    config = open_config(config_path)
    timeout = decide_settings(config).dns_timeout
    resolver = resolver_from_options(config, dns, timeout=timeout)
    return Forwarder.from_config(config, resolver=resolver)


@click.command()
@config_option
@dns_options
@envelope_options(required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the message to send here [standard output].",
)
@click.option("--json", "as_json", is_flag=True, help="The decision as one JSON object.")
@click.option(
    "--deliver",
    type=HostPort(25),
    help="Hand the message over by SMTP, from the pool's address and HELO name.",
)
@click.option(
    "--sendmail",
    "use_sendmail",
    is_flag=True,
    help="Pipe the message to sendmail -f SENDER -- RCPTS, with an X-Srsfwd-Pool field.",
)
@click.argument("message", required=False, type=click.Path(dir_okay=False, path_type=Path))
def forward(
    config_path: Path | None,
    dns: DnsChoice,
    envelope: EnvelopeOptions,
    output: Path | None,
    as_json: bool,
    deliver: tuple[str, int] | None,
    use_sendmail: bool,
    message: Path | None,
) -> None:
    """Forward MESSAGE (standard input when absent): pool, envelope, headers, signature.

    Writes the message to send to OUTPUT (standard output by default) and the decision
    with the new envelope to standard error, in words or with --json as one JSON object.
    A bounce to one of our SRS addresses is verified, reversed and sent to the original
    sender; a forged one is refused.

    Exit status: 0 forwarded, 1 refused, 75 try again later, 2 usage error.

    \b
    Example:
      srsfwd forward --config examples/srsfwd.toml --zone examples/example.zone \\
          --client-ip 192.0.2.25 --helo mail.example.org \\
          --mail-from alice@example.org --rcpt bob@receiver.example \\
          examples/messages/normal.eml > out.eml
    """
    if deliver and use_sendmail:
        raise click.UsageError("--deliver and --sendmail exclude each other")
    target = deliver
    forwarder = _build(config_path, dns)
    data = read_message(message)
    result = envelope.forward(forwarder, data)
    status = ACTION_STATUS[result.action]
    delivery_note = None
    if result.message is not None:
        try:
            if target is not None:
                deliver_smtp(
                    result.message,
                    mail_from=result.mail_from,
                    rcpts=result.rcpts,
                    host=target[0],
                    port=target[1],
                    source_address=result.source_address,
                    helo=result.helo,
                )
                delivery_note = f"delivered to {_shown(target)}"
            elif use_sendmail:
                # sendmail has no per-message transport: the MTA routes on the pool header.
                pool = result.pool or "normal"
                deliver_sendmail(
                    with_pool_header(result.message, pool),
                    mail_from=result.mail_from,
                    rcpts=result.rcpts,
                )
                delivery_note = f"handed to sendmail with {POOL_HEADER}: {pool}"
            elif output is not None:
                output.write_bytes(result.message)
            else:
                sys.stdout.buffer.write(result.message)
                sys.stdout.buffer.flush()
        except SrsfwdError as exc:
            delivery_note = f"not delivered: {exc}"
            status = exit_status(exc)
            try:
                forwarder.give_back(result)  # not sent: it counts nothing
            except SrsfwdError as store:
                delivery_note += f" (and its count stays: {store})"
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from None
    out = from_forward_result(
        result, envelope.inbound(), authserv_id=forwarder.authserv_id, delivery=delivery_note
    )
    if as_json:
        click.echo(json.dumps(out, indent=2, sort_keys=True), err=True)
    else:
        click.echo("\n".join(describe(out)), err=True)
    sys.exit(status)


def _shown(target: tuple[str, int]) -> str:
    host, port = target
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
