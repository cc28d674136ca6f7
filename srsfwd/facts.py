"""Gathering the facts the pool decision needs: DNS and message work around the pure core.

    gatherer = FactGatherer(resolver, accepted=DomainSet(["fwd.example"]))
    facts = gatherer.gather(message, Envelope(client_ip, helo, mail_from, rcpts))
    decision = srsfwd.pool.decide(facts, policy)

What it looks up, with the one ``Resolver``: SPF of the first untrusted hop (pyspf over the
resolver), every DKIM signature (srsfwd's strict verifier), and the envelope sender
domain's A, AAAA and MX records. Behind a trusted gateway (``trusted_relays``) the SPF
result is the gateway's Authentication-Results (trusted authserv-ids only) or is checked
again for the first Received hop from outside. A DNS failure is recorded as a fact
(``temperror``); the decision then defers.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import Message as EmailMessage
from typing import Protocol

from srsfwd.address import DomainSet, split_address, strip_brackets
from srsfwd.authresults import gateway_spf
from srsfwd.clock import Clock
from srsfwd.dkim.canon import Message, author_domain, parse_message
from srsfwd.dkim.verify import DkimVerifier
from srsfwd.dns.resolver import Resolver
from srsfwd.dns.spf import DEFAULT_TIMEOUT, check_host
from srsfwd.errors import DNSTempError, SignatureError
from srsfwd.message import ParsedMessage
from srsfwd.pool import DecideSettings, DKIMCheck, Facts, LimitLevel, SenderDNS

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SRS_LOCAL = re.compile(r"SRS[01][=+-]", re.IGNORECASE)
# The "from" clause of a Received field (RFC 5321 §4.4): the HELO name, then a comment
# holding the client's address literal, before " by ".
_RECEIVED_FROM = re.compile(rb"^\s*from\s+(\S+)(.*?)(?:\sby\s|;|$)", re.IGNORECASE | re.DOTALL)
_LITERAL = re.compile(rb"\[(?:IPv6:)?([0-9A-Fa-f:.]{2,45})\]")
_EXIM_HELO = re.compile(rb"\bhelo=([^\s)\]]+)", re.IGNORECASE)
_REPORT_TYPES = frozenset({"delivery-status", "disposition-notification"})


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope and client of one message, as the MTA saw them."""

    client_ip: str
    helo: str
    mail_from: str
    rcpts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Hop:
    """The client of one Received field: its HELO name and address."""

    helo: str
    ip: str


def parse_received(value: bytes) -> Hop | None:
    """The HELO name and client IP of a Received field's value, or None when it has none.

    Written by hand: no maintained library parses Received fields, whose comment part
    (RFC 5321 §4.4 "TCP-info") is free-form. Postfix, Sendmail, Exim and Exchange put
    the address in brackets inside the "from" clause, which is what is read here.
    """
    value = value.replace(b"\r\n", b" ")
    match = _RECEIVED_FROM.match(value)
    if match is None:
        return None
    helo, rest = match[1], match[2]
    literal = _LITERAL.search(rest) or _LITERAL.fullmatch(helo)
    if literal is None:
        return None
    try:
        ip = ipaddress.ip_address(literal[1].decode("ascii"))
    except ValueError:
        return None
    exim = _EXIM_HELO.search(rest)
    if exim is not None:
        helo = exim[1]
    name = helo.decode("ascii", "replace").strip("()")
    if name.startswith("[") and name.endswith("]"):
        name = ""
    return Hop(helo=name, ip=str(ip))


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """IP addresses or networks (``192.0.2.0/24``, ``2001:db8::/32``).

    Raises:
        ValueError: an entry that is neither.
    """
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)


def is_report(message: Message) -> bool:
    """True for a delivery or disposition report (RFC 6522 multipart/report)."""
    fields = message.find("content-type")
    if not fields or b"report" not in fields[0].value.lower():
        return False  # most mail: no need for the email package's parser
    parsed = EmailMessage()
    parsed["Content-Type"] = fields[0].value.replace(b"\r\n", b"").decode("ascii", "replace")
    if parsed.get_content_type() != "multipart/report":
        return False
    report = parsed.get_param("report-type")
    return isinstance(report, str) and report.strip().lower() in _REPORT_TYPES


class FactGatherer:
    """Looks up everything ``srsfwd.pool.decide`` needs; built once, used per message."""

    def __init__(
        self,
        resolver: Resolver,
        *,
        accepted: DomainSet,
        trusted_relays: Sequence[str] = (),
        trusted_authserv_ids: Sequence[str] = (),
        verifier: DkimVerifier | None = None,
        clock: Clock | None = None,
        spf_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """A gatherer asking ``resolver``.

        Args:
            accepted: our accepted domains (a recipient outside them means "forwarded").
            trusted_relays: our own gateways (IPs or networks): SPF is then taken from
                their Authentication-Results or checked for the first untrusted hop.
            trusted_authserv_ids: Authentication-Results ids whose SPF result we believe.
            verifier: the DKIM verifier (default: srsfwd's, on ``resolver`` and ``clock``).
            spf_timeout: seconds for one whole SPF evaluation.

        Raises:
            ValueError: a trusted relay that is not an IP address or network.
        """
        self.resolver = resolver
        self.accepted = accepted
        self.trusted = parse_networks(trusted_relays)
        self.trusted_ids = tuple(trusted_authserv_ids)
        self.verifier = verifier or DkimVerifier(resolver, clock=clock)
        self.spf_timeout = spf_timeout

    def gather(
        self,
        message: bytes | ParsedMessage,
        envelope: Envelope,
        *,
        spam: bool = False,
        limit_verdict: LimitLevel | None = None,
        limit_name: str | None = None,
        sasl_user: str | None = None,
    ) -> Facts:
        """The facts for ``message`` received with ``envelope``.

        ``message``: the raw message, or the forward's one parse of it.
        ``sasl_user``: the SMTP AUTH login of the session, if it logged in. A message
        that cannot be parsed is decided on its envelope alone (no DKIM, no From); that
        is noted in ``Facts.notes``.

        Raises:
            AddressError: the envelope sender or a recipient is not a usable address.
        """
        sender = strip_brackets(envelope.mail_from.strip())
        sender_domain: str | None = None
        sender_is_srs = False
        if sender:
            local, domain = split_address(sender)
            sender_domain = domain.lower().rstrip(".")
            sender_is_srs = bool(_SRS_LOCAL.match(local))
        rcpts = tuple(strip_brackets(r.strip()) for r in envelope.rcpts)
        rcpt_domains = [split_address(r)[1].lower() for r in rcpts]
        forwarded = any(d not in self.accepted for d in rcpt_domains)

        notes: list[str] = []
        parsed: Message | None
        if isinstance(message, ParsedMessage):
            parsed = message.with_body()
        else:
            try:
                parsed = parse_message(message)
            except SignatureError as exc:
                parsed, notes = None, [f"message not parsed: {exc}"]

        spf = self._spf(parsed, envelope, sender)
        dkim: tuple[DKIMCheck, ...] = ()
        from_domain: str | None = None
        report = False
        if parsed is not None:
            from_domain = author_domain(parsed)
            report = is_report(parsed)
            dkim = tuple(
                DKIMCheck(r.domain, r.selector, str(r.result), r.reason)
                for r in self.verifier.verify_parsed(parsed)
            )
        sender_dns = self.sender_dns(sender_domain) if sender_domain else SenderDNS()
        return Facts(
            mail_from=sender,
            sender_domain=sender_domain,
            from_domain=from_domain,
            is_report=report,
            forwarded=forwarded,
            sender_dns=sender_dns,
            spam=spam,
            limit_verdict=limit_verdict,
            limit_name=limit_name,
            spf=spf.result,
            spf_domain=spf.domain,
            spf_source=spf.source,
            spf_reason=spf.reason,
            dkim=dkim,
            sender_is_srs=sender_is_srs,
            rcpts=rcpts,
            client_ip=envelope.client_ip,
            helo=envelope.helo,
            trusted_submission=parsed is not None and self._submitted_inside(parsed, envelope),
            sasl_user=sasl_user or None,
            notes=tuple(notes),
        )

    def sender_dns(self, domain: str) -> SenderDNS:
        """A, AAAA and MX of ``domain``; a null MX (RFC 7505) is no MX."""
        try:
            mx = self.resolver.mx(domain)
            addresses = self.resolver.addresses(domain)
        except DNSTempError as exc:
            return SenderDNS(temperror=str(exc))
        null_mx = len(mx) == 1 and mx[0].exchange.strip(".") == ""
        real_mx = any(r.exchange.strip(".") for r in mx)
        return SenderDNS(
            a=any(":" not in a for a in addresses),
            aaaa=any(":" in a for a in addresses),
            mx=real_mx,
            null_mx=null_mx,
        )

    def _trusted(self, ip: str) -> bool:
        if not self.trusted:
            return False
        try:
            address = ipaddress.ip_address(ip.strip().strip("[]"))
        except ValueError:
            return False
        return any(address in net for net in self.trusted)

    def _spf(self, message: Message | None, envelope: Envelope, sender: str) -> _SPF:
        client_ip, helo = envelope.client_ip, envelope.helo
        if self._trusted(client_ip):
            if message is None:
                return _SPF("none", None, "gateway", "message not parsed behind a gateway")
            stated = gateway_spf(
                (h.value for h in message.find("authentication-results")), self.trusted_ids
            )
            if stated is not None:
                return _SPF(stated.result, None, "gateway", f"stated by {stated.authserv_id}")
            hop = self._first_untrusted_hop(message)
            if hop is None:
                return _SPF("none", None, "gateway", "no untrusted Received hop found")
            client_ip, helo = hop.ip, hop.helo
            source = "received"
        else:
            source = "checked"
        outcome = check_host(
            self.resolver,
            client_ip=client_ip,
            mail_from=sender,
            helo=helo,
            timeout=self.spf_timeout,
        )
        return _SPF(outcome.result, outcome.domain, source, outcome.reason)

    def _submitted_inside(self, message: Message, envelope: Envelope) -> bool:
        """The client is trusted and so is every Received hop: no hop from outside.

        A Received field without a "from" clause is a local injection (pickup) and
        counts as inside; one with a "from" clause whose client cannot be read counts
        as outside. Fields below the first outside hop are never reached, so what an
        outside sender wrote into its own message does not count.
        """
        if not self._trusted(envelope.client_ip):
            return False
        for field in message.find("received"):
            if not field.value.lstrip().lower().startswith(b"from"):
                continue
            hop = parse_received(field.value)
            if hop is None or not self._trusted(hop.ip):
                return False
        return True

    def outside_client(self, message: ParsedMessage, envelope: Envelope) -> str:
        """The address the message came from: the connecting client, or behind one of
        our ``trusted_relays`` the first Received hop from outside (the client itself
        when no such hop can be read: a submission from inside, or a gateway's field
        that does not parse)."""
        if not self._trusted(envelope.client_ip):
            return envelope.client_ip
        hop = self._first_untrusted_hop(message)
        return envelope.client_ip if hop is None else hop.ip

    def _first_untrusted_hop(self, message: Message | ParsedMessage) -> Hop | None:
        for field in message.find("received"):
            hop = parse_received(field.value)
            if hop is not None and not self._trusted(hop.ip):
                return hop
        return None


def build_gatherer(
    resolver: Resolver, settings: DecideSettings, *, clock: Clock | None = None
) -> FactGatherer:
    """The ``FactGatherer`` that ``[decide]`` (``srsfwd.pool_settings``) asks for."""
    return FactGatherer(
        resolver,
        accepted=settings.policy.accepted,
        trusted_relays=settings.trusted_relays,
        trusted_authserv_ids=settings.trusted_authserv_ids,
        clock=clock,
    )


def with_limits(facts: Facts, verdict: LimitCheck) -> Facts:
    """``facts`` with the sending limits' verdict (``srsfwd.limits.LimitVerdict``) in.

    ``ok`` changes nothing; ``alert`` sends the message high-risk (rule 5); ``refuse``
    refuses it (rule 1), keeping the limits' own reason code.
    """
    if verdict.outcome == "ok":
        return facts
    level: LimitLevel = "alert" if verdict.outcome == "alert" else "block"
    return dataclasses.replace(
        facts,
        limit_verdict=level,
        limit_name=verdict.limit or None,
        limit_reason=verdict.reason or None,
        limit_detail=verdict.detail,
    )


class LimitCheck(Protocol):
    """The shape of ``srsfwd.limits.LimitVerdict`` that ``with_limits`` reads."""

    @property
    def outcome(self) -> str: ...

    @property
    def reason(self) -> str: ...

    @property
    def limit(self) -> str: ...

    @property
    def detail(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _SPF:
    result: str
    domain: str | None
    source: str
    reason: str


__all__ = [
    "Envelope",
    "FactGatherer",
    "Hop",
    "build_gatherer",
    "is_report",
    "parse_networks",
    "parse_received",
    "with_limits",
]
