"""``srsfwd decide``: which pool carries a message, with SRS or not, and why."""

from __future__ import annotations

import json
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from srsfwd.app import build_rewriter
from srsfwd.authresults import build_header
from srsfwd.cli.common import (
    DnsChoice,
    IPAddress,
    config_option,
    dns_options,
    open_config,
    read_message,
    resolver_from_options,
)
from srsfwd.cli.group import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL
from srsfwd.config import Config
from srsfwd.dkim.settings import dkim_settings
from srsfwd.errors import AddressError, SrsfwdError
from srsfwd.facts import Envelope, FactGatherer, build_gatherer
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.pool import (
    Action,
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


def _result(setup: _Setup, decision: Decision) -> dict[str, Any]:
    facts = decision.facts
    out = decision.as_dict()
    out["authentication_results"] = _hop_results(setup.authserv_id, decision)
    out["mail_from"] = facts.mail_from
    chosen = setup.pools.get(decision.pool) if decision.pool is not None else None
    out["transport"] = chosen.transport if chosen else None
    out["source_addresses"] = list(chosen.source_addresses) if chosen else []
    out["helo"] = chosen.helo if chosen and chosen.helo else None
    out["srs_mail_from"] = None
    if decision.srs and setup.rewriter is not None:
        try:
            out["srs_mail_from"] = setup.rewriter.forward(facts.mail_from, dry_run=True)
        except SrsfwdError as exc:
            out["notes"] = [f"SRS rewrite failed: {exc}"]
    return out


def _hop_results(authserv_id: str, decision: Decision) -> str:
    facts = decision.facts
    return build_header(
        authserv_id,
        spf=facts.spf,
        mail_from=facts.mail_from,
        helo=facts.helo or "",
        spf_reason=facts.spf_reason,
        dkim=facts.dkim,
    )


def _dry_run_result(forwarder: Forwarder, result: ForwardResult) -> dict[str, Any]:
    """What ``srsfwd forward`` would do, in ``decide``'s output form."""
    out: dict[str, Any] = {"facts": None, "dkim": [], "spf": None, "authentication_results": ""}
    if result.decision is not None:
        out = result.decision.as_dict()
        out["authentication_results"] = _hop_results(forwarder.authserv_id, result.decision)
    chosen = forwarder.pools.get(result.pool) if result.pool is not None else None
    out.update(
        action=str(result.action),
        pool=None if result.pool is None else str(result.pool),
        srs=result.srs,
        reasons=list(result.reasons),
        smtp_reply=result.smtp_reply,
        mail_from=result.decision.facts.mail_from if result.decision else result.mail_from,
        transport=result.transport,
        source_addresses=list(chosen.source_addresses) if chosen else [],
        helo=result.helo,
        srs_mail_from=result.mail_from if result.srs else None,
    )
    if result.notes:
        out["notes"] = list(result.notes)
    if result.dmarc is not None:
        out["dmarc"] = result.dmarc.as_dict()
    return out


def _show(out: dict[str, Any]) -> None:
    pool = out["pool"] or "none"
    srs = "yes" if out["srs"] else "no"
    facts = out["facts"]
    click.echo(f"action: {out['action']}")
    click.echo(f"pool:   {pool}  (SRS: {srs})")
    if out["transport"]:
        addresses = ", ".join(out["source_addresses"]) or "default address"
        click.echo(f"transport: {out['transport']} ({addresses}; HELO {out['helo'] or '-'})")
    if out["srs_mail_from"]:
        click.echo(f"envelope sender: {out['srs_mail_from']}")
    click.echo(f"reasons: {', '.join(out['reasons'])}")
    if out["smtp_reply"]:
        click.echo(f"reply:  {out['smtp_reply']}")
    for note in out.get("notes", []):
        click.echo(f"note:   {note}")
    if facts is None:  # refused before any look-up
        return
    spf = facts["spf"]
    click.echo(f"spf:    {spf['result']} ({spf['source']}; {spf['domain'] or '-'}) {spf['reason']}")
    for sig in out["dkim"]:
        click.echo(f"dkim:   {sig['result']} d={sig['domain']} s={sig['selector']} {sig['reason']}")
    if not out["dkim"]:
        click.echo("dkim:   none (no signature)")
    if facts["from_domain"]:
        state = "authenticated" if out["from_authenticated"] else "not authenticated"
        click.echo(f"from:   {facts['from_domain']} {state}")
    dns = facts["sender_dns"]
    if facts["sender_domain"]:
        found = [k.upper() for k in ("a", "aaaa", "mx") if dns[k]] + (
            ["null MX"] if dns["null_mx"] else []
        )
        # A lookup that failed says nothing about the records: never "no A/AAAA/MX".
        said = f"temperror ({dns['temperror']})" if dns["temperror"] else None
        said = said or ", ".join(found) or "no A/AAAA/MX"
        click.echo(f"sender domain {facts['sender_domain']}: {said}")
    click.echo(out["authentication_results"])


def _status(action: Action) -> int:
    return {
        Action.FORWARD: EXIT_OK,
        Action.REJECT: EXIT_FAILED,
        Action.TEMPFAIL: EXIT_TEMPFAIL,
    }[action]


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
@click.option("--client-ip", type=IPAddress(), help="The connecting client's address.")
@click.option("--helo", metavar="NAME", help="The client's HELO/EHLO name.")
@click.option("--mail-from", metavar="ADDR", help="Envelope sender ('' or '<>' for a bounce).")
@click.option(
    "--rcpt",
    "rcpts",
    multiple=True,
    metavar="ADDR",
    help="Envelope recipient after forwarding. Repeatable.",
)
@click.option("--spam", is_flag=True, help="Our own spam filter judged the message spam.")
@click.option("--sasl-user", metavar="LOGIN", help="The session logged in with SMTP AUTH as LOGIN.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--mailbox",
    type=click.Path(exists=True, path_type=Path),
    help="Decide every message of an mbox file or Maildir and print a summary.",
)
@click.argument("message", required=False, type=click.Path(dir_okay=False, path_type=Path))
def decide(
    config_path: Path | None,
    dns: DnsChoice,
    accepted: tuple[str, ...],
    client_ip: str | None,
    helo: str | None,
    mail_from: str | None,
    rcpts: tuple[str, ...],
    spam: bool,
    sasl_user: str | None,
    as_json: bool,
    mailbox: Path | None,
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
      srsfwd decide --config /etc/srsfwd/srsfwd.toml --mailbox ~/Maildir
    """
    config = open_config(config_path)
    setup = _setup(config, dns, accepted)
    if mailbox is not None:
        from srsfwd.cli.mailbox import run_mailbox

        sys.exit(run_mailbox(mailbox, setup.gatherer, setup.policy, as_json=as_json))
    if client_ip is None or helo is None or mail_from is None or not rcpts:
        missing = [
            name
            for name, value in (
                ("--client-ip", client_ip),
                ("--helo", helo),
                ("--mail-from", mail_from),
                ("--rcpt", rcpts or None),
            )
            if value is None
        ]
        raise click.UsageError(f"missing {', '.join(missing)} (or use --mailbox)")
    data = read_message(message)
    ip = client_ip
    forwarder = _forwarder(config, dns, accepted)
    if forwarder is not None:
        # What forward would do, by forward's own code, counting and storing nothing.
        result = forwarder.forward(
            data,
            client_ip=ip,
            helo=helo,
            mail_from=mail_from,
            rcpts=rcpts,
            spam=spam,
            sasl_user=sasl_user,
            dry_run=True,
        )
        out, action = _dry_run_result(forwarder, result), result.action
    else:
        envelope = Envelope(ip, helo, mail_from, rcpts)
        try:
            facts = setup.gatherer.gather(data, envelope, spam=spam, sasl_user=sasl_user)
        except AddressError as exc:
            raise click.UsageError(f"bad address: {exc}") from None
        decision = decide_pool(facts, setup.policy)
        out, action = _result(setup, decision), decision.action
    if as_json:
        click.echo(json.dumps(out, indent=2, sort_keys=True))
    else:
        _show(out)
    sys.exit(_status(action))
