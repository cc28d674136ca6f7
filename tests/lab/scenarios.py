"""What is sent into the lab, and what the receiver (or the original sender) got back.

Each scenario sends mail through the senders' Postfix (as a mail client of theirs would)
and waits for its copies; ``Outcome`` is what the tests assert and run.sh prints.
"""

from __future__ import annotations

import re
import smtplib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.utils import formatdate, make_msgid, parseaddr

import authres
import dkim
import dns.exception
import dns.resolver

from tests.lab import addresses as at
from tests.lab.world import LabError, Mailbox, World

WAIT = 60.0
RECEIVER_MAILBOX = "bob"


@dataclass
class Outcome:
    """One delivered copy, as its final mailbox shows it."""

    scenario: str
    mailbox: str
    message: Message
    raw: bytes
    results: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    symbols: set[str] = field(default_factory=set)

    @property
    def return_path(self) -> str:
        return parseaddr(self.message.get("Return-Path", ""))[1]

    @property
    def client(self) -> str:
        """The address the last hop connected from (the newest Received line)."""
        found = re.search(r"\[([0-9.]+)\]", str(self.message.get("Received", "")))
        return found.group(1) if found else ""

    def result(self, method: str) -> str:
        """The first verdict for ``method`` in rspamd's Authentication-Results, or ``none``."""
        verdicts = self.results.get(method, [])
        return verdicts[0][0] if verdicts else "none"

    def passing(self, method: str) -> list[str]:
        """The identities (``header.d``, ``smtp.mailfrom``) for which ``method`` passed."""
        return [identity for verdict, identity in self.results.get(method, []) if verdict == "pass"]

    def original_signature_verifies(self) -> bool:
        """Whether the top DKIM-Signature verifies against the lab's DNS (dkimpy)."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [at.DNS]

        def txt(name: bytes, timeout: int = 5) -> bytes | None:
            try:
                answer = resolver.resolve(name.decode(), "TXT", lifetime=timeout)
            except dns.exception.DNSException:
                return None
            return b"".join(next(iter(answer)).strings)

        return bool(dkim.verify(self.raw, dnsfunc=txt))

    def signers(self) -> list[str]:
        """The d= of every DKIM-Signature in the copy."""
        return [
            found.group(1).lower()
            for value in self.message.get_all("DKIM-Signature", [])
            if (found := re.search(r"\bd=([^;\s]+)", str(value)))
        ]


def read_outcome(scenario: str, mailbox: str, raw: bytes) -> Outcome:
    """The copy with rspamd's verdicts parsed from its Authentication-Results and symbols."""
    message = message_from_bytes(raw)
    outcome = Outcome(scenario, mailbox, message, raw)
    for value in message.get_all("Authentication-Results", []):
        text = re.sub(r"\s+", " ", str(value))
        if not text.startswith(f"mx.{at.RECEIVER_DOMAIN}"):
            continue
        parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {text}")
        for result in parsed.results:
            identity = next(
                (str(p.value) for p in result.properties if p.name in ("d", "mailfrom", "from")),
                "",
            )
            outcome.results.setdefault(result.method, []).append((result.result, identity))
    spamd = re.sub(r"\s+", " ", str(message.get("X-Spamd-Result", "")))
    outcome.symbols = set(re.findall(r"\b([A-Z][A-Z0-9_]+)\(", spamd))
    return outcome


def message_text(sender: str, to: list[str], subject: str, from_header: str | None = None) -> str:
    name = sender.split("@")[0].title()
    return (
        f"From: {from_header or f'{name} <{sender}>'}\r\n"
        f"To: {', '.join(to)}\r\n"
        f"Subject: {subject}\r\n"
        f"Date: {formatdate()}\r\n"
        f"Message-ID: {make_msgid(domain=sender.split('@')[1])}\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n"
        "\r\nHello from the mail lab.\r\n"
    )


def submit(sender: str, rcpts: list[str], *, to: list[str] | None = None) -> str:
    """Send through the senders' Postfix (OpenDKIM signs); returns the unique subject."""
    subject = f"lab {uuid.uuid4().hex[:12]}"
    with smtplib.SMTP(at.SENDER, 25, timeout=30) as smtp:
        smtp.sendmail(sender, rcpts, message_text(sender, to or rcpts, subject))
    return subject


def wait_for(world: World, mailbox: Mailbox, match: Callable[[Message], bool]) -> bytes:
    """The first message in ``mailbox`` that ``match`` accepts, as delivered; waits for it."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        for raw in mailbox.raw_messages():
            if match(message_from_bytes(raw)):
                return raw
        time.sleep(0.2)
    raise LabError(f"nothing arrived in {mailbox.path} within {WAIT}s\n{world.logs()}")


def with_subject(subject: str) -> Callable[[Message], bool]:
    return lambda message: message.get("Subject", "") == subject


def bounce_of(subject: str) -> Callable[[Message], bool]:
    """A delivery status notification that quotes ``subject``."""

    def match(message: Message) -> bool:
        return message.get_content_type() == "multipart/report" and subject in str(message)

    return match


def forward(world: World, scenario: str, sender: str) -> Outcome:
    """``sender`` writes to alias@example.net, which forwards to bob@rcv.example."""
    subject = submit(sender, [f"alias@{at.USERS_DOMAIN}"])
    inbox = world.receiver.mailbox(RECEIVER_MAILBOX)
    return read_outcome(scenario, "bob@rcv.example", wait_for(world, inbox, with_subject(subject)))


def local_and_forwarded(world: World, scenario: str, rcpts: list[str]) -> tuple[Outcome, Outcome]:
    """One message to a local mailbox and an alias: (the local copy, the forwarded copy)."""
    subject = submit("alice@sender.example", rcpts)
    local = wait_for(world, world.forwarder.mailbox("carol"), with_subject(subject))
    remote = wait_for(world, world.receiver.mailbox(RECEIVER_MAILBOX), with_subject(subject))
    return (
        read_outcome(scenario, "carol@example.net", local),
        read_outcome(scenario, "bob@rcv.example", remote),
    )


def bounce(world: World, scenario: str, alias: str) -> Outcome:
    """alice@sender.example writes to ``alias``; the bounce she gets back."""
    sender = "alice@sender.example"
    subject = submit(sender, [alias])
    inbox = world.sender.mailbox("sender.example/alice")
    return read_outcome(scenario, sender, wait_for(world, inbox, bounce_of(subject)))


def forged_bounce() -> tuple[int, str]:
    """A bounce from outside to an SRS address srsfwd never made: the forwarder's answer."""
    forged = f"SRS0=AbCd=ZZ=sender.example=alice@{at.SRS_DOMAIN}"
    with smtplib.SMTP(at.FORWARDER, 25, timeout=30, source_address=(at.RECEIVER, 0)) as smtp:
        smtp.ehlo(f"mx.{at.RECEIVER_DOMAIN}")
        smtp.mail("<>")
        code, text = smtp.rcpt(forged)
        return code, text.decode(errors="replace")


def _row(outcome: Outcome) -> list[str]:
    """Mailbox, client, Return-Path, then rspamd's verdicts ("-" where no rspamd saw it)."""
    author = parseaddr(str(outcome.message.get("From", "")))[1]
    where = [outcome.mailbox, outcome.client, outcome.return_path or "<>", author]
    if not outcome.results:
        return [*where, "-", "-", "-", "-"]
    dkim = ",".join(outcome.passing("dkim")) or "none"
    verdicts = [outcome.result(method) for method in ("spf", "dmarc", "arc")]
    return [*where, verdicts[0], dkim, *verdicts[1:]]


def report(world: World) -> str:
    """Every scenario run once, as a table of what the final mailbox shows."""
    rows = [
        ["SPF+DKIM sender, forwarded", *_row(forward(world, "", "alice@sender.example"))],
        ["unauthenticated sender (relay)", *_row(forward(world, "", "alice@nospf.example"))],
        ["SPF-only sender, DMARC reject", *_row(forward(world, "", "alice@spfonly.example"))],
        ["SPF-only sender, DMARC none", *_row(forward(world, "", "alice@relaxed.example"))],
    ]
    local, remote = local_and_forwarded(
        world, "", [f"carol@{at.USERS_DOMAIN}", f"alias@{at.USERS_DOMAIN}"]
    )
    rows.append(["local mailbox + alias: local", *_row(local)])
    rows.append(["local mailbox + alias: alias", *_row(remote)])
    for name, alias in (
        ("refused at RCPT: bounce", "to-refuser"),
        ("refused at DATA: bounce", "to-data-refuser"),
        ("accepted, bounced later", "to-late-bouncer"),
    ):
        rows.append([name, *_row(bounce(world, "", f"{alias}@{at.USERS_DOMAIN}"))])
    code, _ = forged_bounce()
    rows.append(["forged bounce to SRS0=…", f"refused at RCPT: {code}", *[""] * 7])
    header = ["scenario", "delivered to", "client", "Return-Path", "From"]
    header += ["SPF", "DKIM pass", "DMARC", "ARC"]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
