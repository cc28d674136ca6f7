"""``srsfwd decide --mailbox``: what srsfwd would do with a whole mbox file or Maildir.

The envelope comes from the messages themselves: the sender from Return-Path (or the mbox
``From `` line), the client from the topmost Received hop (a trusted gateway's hop is
looked through by the fact gatherer). Every message is decided as if forwarded to an
outside recipient, which is the question an operator asks before switching srsfwd on.
"""

from __future__ import annotations

import json
import mailbox
import sys
from collections import Counter
from dataclasses import dataclass, field
from email.utils import getaddresses
from pathlib import Path

import click

from srsfwd.cli.group import EXIT_OK, EXIT_TEMPFAIL
from srsfwd.errors import AddressError, DNSTempError, SrsfwdError
from srsfwd.facts import Envelope, FactGatherer, parse_received
from srsfwd.pool import Action, Decision, Policy, decide

#: The recipient every message is decided for: outside every accepted domain.
FORWARD_RCPT = "forwarded@forward.invalid"
TOP_SENDERS = 10


@dataclass
class Summary:
    """Counts over a mailbox."""

    messages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    relay_senders: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    #: Why the run stopped before the end (DNS not answering), or None.
    stopped: str | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain JSON form."""
        return {
            "messages": self.messages,
            "pools": dict(self.outcomes.most_common()),
            "reasons": dict(self.reasons.most_common()),
            "relay_senders": dict(self.relay_senders.most_common(TOP_SENDERS)),
            "skipped": dict(self.skipped.most_common()),
            "stopped": self.stopped,
        }


def _open(path: Path) -> mailbox.Mailbox:
    if path.is_dir():
        return mailbox.Maildir(str(path), factory=None, create=False)
    return mailbox.mbox(str(path), create=False)


def envelope_of(data: bytes, mbox_from: str | None) -> Envelope | str:
    """The envelope read from a stored message, or the reason it cannot be read."""
    head = data.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    fields: dict[str, list[bytes]] = {}
    current: list[bytes] | None = None
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t") and current is not None:
            current[-1] += b" " + line.strip()
            continue
        name, colon, value = line.partition(b":")
        if colon:
            current = fields.setdefault(name.strip().lower().decode("ascii", "replace"), [])
            current.append(value.strip())
    hop = None
    for value in fields.get("received", []):
        hop = parse_received(b" " + value)
        if hop is not None:
            break
    if hop is None:
        return "no Received hop with a client address"
    sender: str | None = None
    if fields.get("return-path"):
        raw = fields["return-path"][0].decode("ascii", "replace").strip()
        sender = "" if raw in ("<>", "") else (getaddresses([raw])[0][1] or raw.strip("<>"))
    elif mbox_from:
        word = mbox_from.split()[0] if mbox_from.split() else ""
        sender = "" if word == "MAILER-DAEMON" else word
    if sender is None:
        return "no Return-Path"
    return Envelope(hop.ip, hop.helo, sender, (FORWARD_RCPT,))


def run_mailbox(path: Path, gatherer: FactGatherer, policy: Policy, *, as_json: bool) -> int:
    """Decide every message in ``path`` with a progress bar; print the summary; exit status."""
    try:
        box = _open(path)
        keys = list(box.keys())
    except (OSError, mailbox.Error) as exc:
        raise click.ClickException(f"cannot read mailbox {path}: {exc}") from None
    try:
        summary = _decide_all(box, keys, gatherer, policy)
    finally:
        box.close()
    if summary.stopped is not None:
        click.echo(
            f"DNS does not answer ({summary.stopped}): stopped after {summary.messages} of "
            f"{len(keys)} messages; try again when it does",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        _table(summary)
    return EXIT_OK if summary.stopped is None else EXIT_TEMPFAIL


def _decide_all(
    box: mailbox.Mailbox, keys: list[str], gatherer: FactGatherer, policy: Policy
) -> Summary:
    summary = Summary()
    with click.progressbar(keys, label="deciding", file=sys.stderr) as bar:
        for key in bar:
            summary.messages += 1
            try:
                stored = box.get_message(key)
                data = stored.as_bytes()
            except (OSError, mailbox.Error, ValueError, UnicodeError) as exc:
                summary.skipped[f"unreadable: {type(exc).__name__}"] += 1
                continue
            mbox_from = stored.get_from() if isinstance(stored, mailbox.mboxMessage) else None
            envelope = envelope_of(data, mbox_from)
            if isinstance(envelope, str):
                summary.skipped[envelope] += 1
                continue
            try:
                decision = decide(gatherer.gather(data, envelope), policy)
            except AddressError:
                summary.skipped["unusable envelope sender"] += 1
                continue
            except DNSTempError:
                summary.stopped = _dns_down(gatherer)
                if summary.stopped is not None:
                    break
                summary.outcomes[str(Action.TEMPFAIL)] += 1
                continue
            except SrsfwdError as exc:
                summary.skipped[f"error: {type(exc).__name__}"] += 1
                continue
            if _dns_failed(decision):
                # One domain's failure is that message's; DNS that is down is every
                # message's, and each would wait out the timeouts: stop instead.
                summary.stopped = _dns_down(gatherer)
                if summary.stopped is not None:
                    summary.outcomes[str(Action.TEMPFAIL)] += 1
                    break
            outcome = str(decision.pool) if decision.pool else str(decision.action)
            summary.outcomes[outcome] += 1
            summary.reasons.update(decision.reasons)
            if decision.pool is not None and decision.pool.value == "relay":
                summary.relay_senders[envelope.mail_from or "<>"] += 1
    return summary


def _dns_failed(decision: Decision) -> bool:
    facts = decision.facts
    return (
        decision.action is Action.TEMPFAIL
        or facts.spf == "temperror"
        or facts.sender_dns.temperror is not None
    )


def _dns_down(gatherer: FactGatherer) -> str | None:
    """Why DNS as a whole does not answer, or None when it does (a TLD's NS records)."""
    try:
        gatherer.resolver.records("com.", "NS")
    except DNSTempError as exc:
        return str(exc)
    return None


def _table(summary: Summary) -> None:
    click.echo(f"\n{summary.messages} messages")
    for title, counts in (
        ("pool", summary.outcomes.most_common()),
        ("reason", summary.reasons.most_common()),
        ("relay-pool sender", summary.relay_senders.most_common(TOP_SENDERS)),
        ("skipped", summary.skipped.most_common()),
    ):
        if not counts:
            continue
        width = max(len(title), *(len(k) for k, _ in counts))
        click.echo(f"\n{title:<{width}}  messages")
        click.echo(f"{'-' * width}  --------")
        for key, count in counts:
            click.echo(f"{key:<{width}}  {count:>8}")
