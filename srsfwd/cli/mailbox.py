"""``srsfwd decide --mailbox``: what srsfwd would do with a whole mailbox (an mbox file,
a Maildir or an MH folder).

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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from srsfwd.cli.group import EXIT_OK, EXIT_TEMPFAIL
from srsfwd.cli.progress import progress
from srsfwd.cli.table import echo_table
from srsfwd.errors import AddressError, DNSTempError, SrsfwdError
from srsfwd.facts import Envelope, FactGatherer, parse_received
from srsfwd.pool import Action, Decision, Policy, decide

if TYPE_CHECKING:
    _PathType = click.ParamType[Path]
    _DateType = click.ParamType[datetime]
else:  # click before 8.2 has no generic ParamType
    _PathType = _DateType = click.ParamType

#: The recipient every message is decided for: outside every accepted domain.
FORWARD_RCPT = "forwarded@forward.invalid"
TOP_SENDERS = 10
#: Why the message the run stopped at was not decided.
DNS_DOWN = "DNS does not answer"
#: Builds the ``--json`` decision document of one message.
Describe = Callable[[Decision, Envelope], dict[str, Any]]


# ----------------------------------------------------------------------- what is a mailbox


def not_a_mailbox(reason: str) -> click.BadParameter:
    """The usage error (exit status 2) for a ``--mailbox`` path that is no mailbox."""
    return click.BadParameter(reason, param_hint="'--mailbox'")


def mailbox_kind(path: Path) -> str:
    """``mbox``, ``maildir`` or ``mh``; for anything else a usage error that says why in
    words (``click.BadParameter``)."""
    if path.is_dir():
        if (path / "cur").is_dir() and (path / "new").is_dir():
            return "maildir"
        if (path / ".mh_sequences").is_file():
            return "mh"
        raise not_a_mailbox(
            f"{path} is a folder but not a mailbox: a Maildir has cur/ and new/ in it, "
            "an MH folder a .mh_sequences file"
        )
    if not path.exists():
        raise not_a_mailbox(f"{path} does not exist")
    if not path.is_file():
        raise not_a_mailbox(f"{path} is neither a file nor a folder")
    try:
        with path.open("rb") as handle:
            start = handle.read(5)
    except OSError as exc:
        raise not_a_mailbox(f"cannot read {path}: {exc.strerror}") from None
    if start and start != b"From ":
        raise not_a_mailbox(
            f"{path} is not an mbox file (it does not start with a 'From ' line); "
            "for one message, leave out --mailbox"
        )
    return "mbox"


def open_mailbox(path: Path) -> mailbox.Mailbox:
    """The mailbox at ``path``, opened read-only in spirit (nothing is created)."""
    kind = mailbox_kind(path)
    if kind == "maildir":
        return mailbox.Maildir(str(path), factory=None, create=False)
    if kind == "mh":
        return mailbox.MH(str(path), create=False)
    return mailbox.mbox(str(path), create=False)


class MailboxPath(_PathType):
    """``--mailbox``: an mbox file, a Maildir or an MH folder; anything else is refused."""

    name = "mailbox"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "MAILBOX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path:
        path = Path(value)
        try:
            mailbox_kind(path)
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)
        return path


class SinceDate(_DateType):
    """``--since``: ``YYYY-MM-DD`` or an ISO 8601 time (``2026-11-30T08:00+01:00``); UTC
    when it names no offset."""

    name = "date"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "DATE"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            when = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM", param, ctx)
        return when if when.tzinfo else when.replace(tzinfo=UTC)


# ------------------------------------------------------------------- one stored message


def header_fields(data: bytes) -> dict[str, list[bytes]]:
    """The header fields of a stored message by lower-case name, unfolded, in order."""
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
    return fields


def message_date(fields: dict[str, list[bytes]]) -> datetime | None:
    """The first Date field as an aware time (UTC when it names no zone), or None when
    there is none or it cannot be read."""
    for value in fields.get("date", [])[:1]:
        try:
            when = parsedate_to_datetime(value.decode("ascii", "replace"))
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


def envelope_of(data: bytes, mbox_from: str | None) -> Envelope | str:
    """The envelope read from a stored message, or the reason it cannot be read."""
    fields = header_fields(data)
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


# ------------------------------------------------------------------------------ counts


@dataclass
class Outcome:
    """The messages of one pool (or of one action when there is no pool)."""

    messages: int = 0
    srs: int = 0
    reasons: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        """Plain JSON form."""
        return {
            "messages": self.messages,
            "srs": {"yes": self.srs, "no": self.messages - self.srs},
            "reasons": dict(self.reasons.most_common()),
        }


@dataclass
class Summary:
    """Counts over a mailbox."""

    #: Messages read: each one is either decided (counted in ``outcomes``) or skipped.
    messages: int = 0
    #: By pool, or by action (``reject``, ``tempfail``) when there is no pool.
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    relay_senders: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    since: datetime | None = None
    #: Why the run stopped before the end (DNS not answering), or None.
    stopped: str | None = None

    def count(self, name: str, *, srs: bool, reasons: tuple[str, ...]) -> None:
        """Count one decided message under the pool or action ``name``."""
        outcome = self.outcomes.setdefault(name, Outcome())
        outcome.messages += 1
        outcome.srs += srs
        outcome.reasons.update(reasons)

    @property
    def decided(self) -> int:
        """Messages decided (not skipped)."""
        return sum(o.messages for o in self.outcomes.values())

    @property
    def with_srs(self) -> int:
        """Decided messages that would get SRS."""
        return sum(o.srs for o in self.outcomes.values())

    def as_dict(self) -> dict[str, object]:
        """Plain JSON form (the last line of ``--json``)."""
        ranked = sorted(self.outcomes.items(), key=lambda item: -item[1].messages)
        return {
            "type": "summary",
            "messages": self.messages,
            "decided": self.decided,
            "srs": {"yes": self.with_srs, "no": self.decided - self.with_srs},
            "outcomes": {name: outcome.as_dict() for name, outcome in ranked},
            "relay_senders": dict(self.relay_senders.most_common(TOP_SENDERS)),
            "skipped": dict(self.skipped.most_common()),
            "since": None if self.since is None else self.since.isoformat(),
            "stopped": self.stopped,
        }


# ------------------------------------------------------------------------------- the run


def run_mailbox(
    path: Path,
    gatherer: FactGatherer,
    policy: Policy,
    *,
    describe: Describe,
    as_json: bool,
    since: datetime | None = None,
) -> int:
    """Decide every message in ``path`` (a progress display on a terminal), print one
    JSON line per message with ``as_json``, then the summary; return the exit status."""
    try:
        box = open_mailbox(path)
        keys = list(box.keys())
    except (OSError, mailbox.Error) as exc:
        raise click.ClickException(f"cannot read mailbox {path}: {exc}") from None
    summary = Summary(since=since)
    emit = _json_line if as_json else None
    try:
        with progress(len(keys), sys.stderr) as advance:
            _decide_all(box, keys, gatherer, policy, summary, describe, emit, advance)
    finally:
        box.close()
    if summary.stopped is not None:
        click.echo(
            f"DNS does not answer ({summary.stopped}): stopped after {summary.messages} of "
            f"{len(keys)} messages; try again when it does",
            err=True,
        )
    if as_json:
        _json_line(summary.as_dict())
    else:
        show_summary(summary)
    return EXIT_OK if summary.stopped is None else EXIT_TEMPFAIL


def _json_line(record: dict[str, Any]) -> None:
    click.echo(json.dumps(record, sort_keys=True))


def _decide_all(
    box: mailbox.Mailbox,
    keys: list[Any],
    gatherer: FactGatherer,
    policy: Policy,
    summary: Summary,
    describe: Describe,
    emit: Callable[[dict[str, Any]], None] | None,
    advance: Callable[[], None],
) -> None:
    def skip(key: object, reason: str) -> None:
        summary.skipped[reason] += 1
        if emit is not None:
            emit({"type": "skipped", "key": str(key), "reason": reason})

    for key in keys:
        advance()
        summary.messages += 1
        try:
            stored = box.get_message(key)
            data = stored.as_bytes()
        except (OSError, mailbox.Error, ValueError, UnicodeError) as exc:
            skip(key, f"unreadable: {type(exc).__name__}")
            continue
        if summary.since is not None:
            when = message_date(header_fields(data))
            if when is None:
                skip(key, "no readable Date field")
                continue
            if when < summary.since:
                skip(key, "older than --since")
                continue
        mbox_from = stored.get_from() if isinstance(stored, mailbox.mboxMessage) else None
        envelope = envelope_of(data, mbox_from)
        if isinstance(envelope, str):
            skip(key, envelope)
            continue
        try:
            decision = decide(gatherer.gather(data, envelope), policy)
        except AddressError:
            skip(key, "unusable envelope sender")
            continue
        except DNSTempError:
            summary.stopped = _dns_down(gatherer)
            skip(key, DNS_DOWN if summary.stopped is not None else "DNS failed for this message")
            if summary.stopped is not None:
                break
            continue
        except SrsfwdError as exc:
            skip(key, f"error: {type(exc).__name__}")
            continue
        if _dns_failed(decision):
            # One domain's failure is that message's; DNS that is down is every
            # message's, and each would wait out the timeouts: stop instead.
            summary.stopped = _dns_down(gatherer)
            if summary.stopped is not None:
                skip(key, DNS_DOWN)
                break
        outcome = str(decision.pool) if decision.pool else str(decision.action)
        summary.count(outcome, srs=decision.srs, reasons=decision.reasons)
        if decision.pool is not None and decision.pool.value == "relay":
            summary.relay_senders[envelope.mail_from or "<>"] += 1
        if emit is not None:
            emit({"type": "decision", "key": str(key), "decision": describe(decision, envelope)})


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


# ---------------------------------------------------------------------------- for people


def show_summary(summary: Summary) -> None:
    """The summary as aligned tables."""
    since = f" (--since {summary.since.isoformat()})" if summary.since else ""
    click.echo(
        f"{summary.messages} messages read, {summary.decided} decided, "
        f"{sum(summary.skipped.values())} skipped{since}; "
        f"SRS: {summary.with_srs} yes, {summary.decided - summary.with_srs} no\n"
    )
    ranked = sorted(summary.outcomes.items(), key=lambda item: -item[1].messages)
    if ranked:
        rows = [(n, o.messages, o.srs, o.messages - o.srs) for n, o in ranked]
        echo_table(("pool", "messages", "SRS yes", "SRS no"), rows, numeric=(1, 2, 3))
        click.echo()
        rows_by_reason = [
            (name, reason, count)
            for name, outcome in ranked
            for reason, count in outcome.reasons.most_common()
        ]
        echo_table(("pool", "reason", "messages"), rows_by_reason, numeric=(2,))
    for title, counts in (
        ("relay-pool sender", summary.relay_senders.most_common(TOP_SENDERS)),
        ("skipped", summary.skipped.most_common()),
    ):
        if counts:
            click.echo()
            echo_table((title, "messages"), counts, numeric=(1,))
