"""``srsfwd limits``: what operators need when a sender is blocked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from srsfwd.app import build_limits
from srsfwd.cli.common import config_option, echo_json, json_option, open_config
from srsfwd.cli.table import echo_table
from srsfwd.limits import SendingLimits
from srsfwd.limits_identity import operator_key


def _limits(config_path: Path | None, *, create: bool = True) -> SendingLimits:
    return build_limits(open_config(config_path), create=create)


def _limits_key(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """SENDER as the limits count it: an address, or a client's address bare
    (``203.0.113.5``, ``2001:db8:1:2::9``) or as shown (``[203.0.113.5]``,
    ``[2001:db8:1:2::/64]``)."""
    if value is None:
        return None
    try:
        return operator_key(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.group()
def limits() -> None:
    """Show and lift the sending limits of senders ([limits] in the configuration).

    A sender is its MAIL FROM when SPF, DKIM, an SMTP AUTH login or a trusted submission
    vouched for it, else the client's address: [203.0.113.5], or an IPv6 client's /64.

    \b
    Example:
      srsfwd limits show
      srsfwd limits show alice@example.org
      srsfwd limits unblock alice@example.org
      srsfwd limits unblock '[203.0.113.5]'
    """


@limits.command()
@config_option
@json_option
@click.argument("sender", required=False, callback=_limits_key)
def show(config_path: Path | None, as_json: bool, sender: str | None) -> None:
    """Counts and blocks: of SENDER (an address, or a client's IP address), or the
    blocked and busiest senders of today.

    \b
    Example:
      srsfwd limits show --config /etc/srsfwd/srsfwd.toml alice@example.org
    """
    store = _limits(config_path, create=False)  # looking never creates a store
    policy = store.policy
    if sender and as_json:
        counts, block = store.status(sender)
        echo_json(
            {
                "sender": sender,
                "external_this_hour": counts.external_this_hour,
                "external_per_hour": policy.external_per_hour or None,
                "internal_this_hour": counts.internal_this_hour,
                "internal_per_hour": policy.internal_per_hour or None,
                "today": counts.today,
                "per_day": policy.per_day or None,
                "blocked": block,
            }
        )
        return
    if as_json:
        echo_json(
            {
                "blocked": [{"sender": who, "reason": why} for who, why in store.blocked()],
                "busiest_today": [
                    {"sender": who, "recipients": count} for who, count in store.busiest()
                ],
            }
        )
        return
    if sender:
        counts, block = store.status(sender)
        click.echo(f"sender {sender}: {f'blocked: {block}' if block else 'not blocked'}")
        echo_table(
            ("limit", "used", "of"),
            (
                ("external this hour", counts.external_this_hour, _of(policy.external_per_hour)),
                ("internal this hour", counts.internal_this_hour, _of(policy.internal_per_hour)),
                ("today (UTC)", counts.today, _of(policy.per_day)),
            ),
            numeric=(1, 2),
        )
        return
    blocked = store.blocked()
    click.echo(f"blocked senders: {len(blocked)}")
    if blocked:
        echo_table(("sender", "why"), blocked)
    busiest = store.busiest()
    click.echo(f"\nbusiest senders today (UTC): {len(busiest)}")
    if busiest:
        echo_table(("sender", "recipients"), busiest, numeric=(1,))


def _of(limit: int | None) -> str:
    return str(limit) if limit else "unlimited"


@limits.command()
@config_option
@json_option
@click.argument("sender", callback=_limits_key)
def unblock(config_path: Path | None, as_json: bool, sender: str, **_: Any) -> None:
    """Lift the block on SENDER (block or block-for-today): an address, or a client's
    IP address.

    \b
    Example:
      srsfwd limits unblock alice@example.org
    """
    lifted = _limits(config_path, create=False).unblock(sender)
    if as_json:
        echo_json({"sender": sender, "unblocked": lifted})
        return
    click.echo(f"{sender}: {'unblocked' if lifted else 'was not blocked'}")
