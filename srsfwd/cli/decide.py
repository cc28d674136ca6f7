"""``srsfwd decide``: which pool carries a message, with SRS or not, and why."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from srsfwd.app import build_rewriter
from srsfwd.cli.common import (
    DnsChoice,
    config_option,
    dns_options,
    echo_json,
    open_config,
    read_message,
    resolver_from_options,
)
from srsfwd.cli.decision import ACTION_STATUS, describe, from_decision, from_forward_result
from srsfwd.cli.envelope import EnvelopeOptions, envelope_options
from srsfwd.cli.mailbox import MailboxPath, SinceDate
from srsfwd.config import Config
from srsfwd.dkim.settings import dkim_settings
from srsfwd.errors import AddressError
from srsfwd.facts import Envelope, FactGatherer, build_gatherer
from srsfwd.forward import Forwarder
from srsfwd.pool import (
    Decision,
    Policy,
    Pool,
    PoolSettings,
)
from srsfwd.pool import decide as decide_pool
from srsfwd.pool_settings import decide_settings, pools_from_config
from srsfwd.srs import SRSRewriter


@dataclass(frozen=True, slots=True)
class _Setup:
    gatherer: FactGatherer
    policy: Policy
    authserv_id: str
    rewriter: SRSRewriter | None
    pools: dict[Pool, PoolSettings]

    def describe(self, decision: Decision, envelope: Envelope) -> dict[str, Any]:
        """The decision document of the pool decision alone."""
        return from_decision(
            decision,
            envelope,
            pools=self.pools,
            authserv_id=self.authserv_id,
            rewriter=self.rewriter,
        )


def _setup(config: Config, dns: DnsChoice, accepted: tuple[str, ...]) -> _Setup:
    settings = decide_settings(config, accepted)
    resolver = resolver_from_options(config, dns, timeout=settings.dns_timeout)
    authserv = settings.authserv_id or dkim_settings(config).authserv_id
    rewriter: SRSRewriter | None = None
    if config.srs.domain and config.srs.secrets_file:
        rewriter = build_rewriter(config)
    pools = pools_from_config(config)
    gatherer = build_gatherer(resolver, settings)
    return _Setup(gatherer, settings.policy, authserv or socket.gethostname(), rewriter, pools)


def _forwarder(config: Config, dns: DnsChoice, accepted: tuple[str, ...]) -> Forwarder | None:
    """The pipeline ``srsfwd forward`` would run on ``config``, for dry runs; None when
    the configuration cannot forward at all (no SRS domain or secrets)."""
    if not (config.srs.domain and config.srs.secrets_file):
        return None
    settings = decide_settings(config, accepted)
    resolver = resolver_from_options(config, dns, timeout=settings.dns_timeout)
    forwarder = Forwarder.from_config(config, resolver=resolver, dry_run=True)
    if accepted:  # --accepted-domain widens what the configuration accepts
        forwarder.policy = settings.policy
        forwarder.gatherer = build_gatherer(resolver, settings)
    return forwarder


@click.command()
@config_option
@dns_options
@click.option(
    "--accepted-domain",
    "accepted",
    multiple=True,
    metavar="D",
    help="An accepted domain (*.example.com for subdomains). Repeatable.",
)
@envelope_options(required=False)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the decision as one JSON object; with --mailbox, one JSON line per message "
    "and the summary as the last line.",
)
@click.option(
    "--mailbox",
    type=MailboxPath(),
    help="Decide every message of an mbox file, Maildir or MH folder and print a summary.",
)
@click.option(
    "--since",
    type=SinceDate(),
    help="With --mailbox: skip messages whose Date: field is older than DATE: "
    "YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC unless an offset such as +01:00 follows.",
)
@click.argument("message", required=False, type=click.Path(dir_okay=False, path_type=Path))
def decide(
    config_path: Path | None,
    dns: DnsChoice,
    accepted: tuple[str, ...],
    envelope: EnvelopeOptions,
    as_json: bool,
    mailbox: Path | None,
    since: datetime | None,
    message: Path | None,
) -> None:
    """Pick the outbound pool and SRS for MESSAGE (standard input when absent).

    Says which pool carries the message (normal, relay or high-risk), whether its envelope
    sender is rewritten with SRS, and why: SPF, every DKIM signature, the sender domain's
    DNS, accepted domains, --spam.

    Exit status: 0 forward, 1 refused, 75 try again later (DNS failure), 2 usage error.

    \b
    Example:
      srsfwd decide --zone example.zone --accepted-domain fwd.example \\
          --client-ip 192.0.2.10 --helo mx.sender.example \\
          --mail-from alice@sender.example --rcpt bob@gmail.example --json message.eml
      srsfwd decide --config /etc/srsfwd/srsfwd.toml --mailbox ~/Maildir --since 2026-11-01
    """
    if since is not None and mailbox is None:
        raise click.UsageError("--since goes with --mailbox")
    config = open_config(config_path)
    setup = _setup(config, dns, accepted)
    if mailbox is not None:
        from srsfwd.cli.mailbox import run_mailbox

        status = run_mailbox(
            mailbox,
            setup.gatherer,
            setup.policy,
            describe=setup.describe,
            as_json=as_json,
            since=since,
        )
        sys.exit(status)
    if missing := envelope.missing():
        raise click.UsageError(f"missing {', '.join(missing)} (or use --mailbox)")
    data = read_message(message)
    inbound = envelope.inbound()
    forwarder = _forwarder(config, dns, accepted)
    if forwarder is not None:
        # What forward would do, by forward's own code, counting and storing nothing.
        result = envelope.forward(forwarder, data, dry_run=True)
        out = from_forward_result(result, inbound, authserv_id=forwarder.authserv_id)
        action = result.action
    else:
        try:
            facts = setup.gatherer.gather(
                data, envelope.envelope(), spam=envelope.spam, sasl_user=envelope.sasl_user
            )
        except AddressError as exc:
            raise click.UsageError(f"bad address: {exc}") from None
        decision = decide_pool(facts, setup.policy)
        out, action = setup.describe(decision, inbound), decision.action
    if as_json:
        echo_json(out)
    else:
        click.echo("\n".join(describe(out)))
    sys.exit(ACTION_STATUS[action])
