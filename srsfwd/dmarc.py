"""The receiver's DMARC verdict (RFC 7489) for a copy we are about to forward.

    record = parse_record("v=DMARC1; p=reject; adkim=s")
    found = discover(resolver, "mail.example.org")      # the one Resolver
    verdict = predict(found, "mail.example.org", dkim_domains=[...], spf_domain=None)

The record parser is written by hand: the `dmarc` package raises on records RFC 7489
§6.6.3 says to read as ``p=none``, has no type hints and brings a second Public Suffix
List; ``checkdmarc`` and ``authheaders`` do their own DNS rather than through our
resolver. A DMARC record is a short tag list, and only four of its tags matter here.

``pct`` is read but not used to lower the policy: a forwarded copy may be in the sampled
part, so any policy other than ``none`` counts as enforced (docs/forward.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from srsfwd.orgdomain import organizational_domain

Disposition = Literal["none", "quarantine", "reject"]
Alignment = Literal["r", "s"]

_DISPOSITIONS: tuple[Disposition, ...] = ("none", "quarantine", "reject")
#: Longest TXT record looked at; real DMARC records are a few hundred bytes.
MAX_RECORD = 4096


class TxtResolver(Protocol):
    """What discovery needs from ``srsfwd.dns.resolver.Resolver``."""

    def txt(self, name: str) -> list[bytes]: ...


@dataclass(frozen=True, slots=True)
class DmarcRecord:
    """The tags of one DMARC record that decide a verdict, defaults filled in."""

    policy: Disposition
    subdomain_policy: Disposition
    adkim: Alignment = "r"
    aspf: Alignment = "r"
    pct: int = 100


@dataclass(frozen=True, slots=True)
class FoundPolicy:
    """A record and where it was found (the From domain or its organizational domain)."""

    record: DmarcRecord
    domain: str

    def disposition_for(self, from_domain: str) -> Disposition:
        """``p`` at the From domain itself; ``sp`` when found at its organizational domain."""
        if self.domain == _clean(from_domain):
            return self.record.policy
        return self.record.subdomain_policy


def parse_record(text: str) -> DmarcRecord | None:
    """The DMARC record in one TXT record's text, or None when it is not one.

    ``v=DMARC1`` must come first (RFC 7489 §6.4) or the text is not a DMARC record.
    Unknown tags and bad values of tags that have a default are ignored; a missing or
    bad ``p`` is read as ``p=none`` (§6.6.3: no policy is enforced). Never raises.
    """
    if len(text) > MAX_RECORD:
        return None
    parts = text.split(";")
    version = parts[0].split("=", 1)
    if len(version) != 2 or version[0].strip() != "v" or version[1].strip() != "DMARC1":
        return None
    tags: dict[str, str] = {}
    for part in parts[1:]:
        name, equals, value = part.partition("=")
        name = name.strip().lower()
        if equals and name and name not in tags:
            tags[name] = value.strip().lower()
    policy = _disposition(tags.get("p"))
    if policy is None:
        return DmarcRecord("none", "none")
    return DmarcRecord(
        policy=policy,
        subdomain_policy=_disposition(tags.get("sp")) or policy,
        adkim=_alignment(tags.get("adkim")),
        aspf=_alignment(tags.get("aspf")),
        pct=_percent(tags.get("pct")),
    )


def discover(resolver: TxtResolver, from_domain: str) -> FoundPolicy | None:
    """The DMARC record for ``from_domain``: its own, else its organizational domain's.

    RFC 7489 §6.6.3: texts that are not DMARC records are skipped; more than one DMARC
    record at a name means none. None when no policy is published.

    Raises:
        DNSTempError: a look-up failed; the caller defers rather than guess.
    """
    domain = _clean(from_domain)
    if not domain:
        return None
    org = organizational_domain(domain)
    for name in dict.fromkeys((domain, org)):
        texts = resolver.txt(f"_dmarc.{name}")
        parsed = (parse_record(t.decode("utf-8", "replace")) for t in texts)
        records = [r for r in parsed if r is not None]
        if len(records) == 1:
            return FoundPolicy(records[0], name)
        if records:  # several records: no DMARC processing at all (§6.6.3)
            return None
    return None


def identifier_aligned(identifier: str | None, from_domain: str, mode: Alignment) -> bool:
    """Whether ``identifier`` (a d= or MAIL FROM domain) is aligned with the From domain.

    Strict: the same domain. Relaxed: the same organizational domain (RFC 7489 §3.1).
    """
    if not identifier:
        return False
    first, second = _clean(identifier), _clean(from_domain)
    if not first or not second:
        return False
    if mode == "s":
        return first == second
    return organizational_domain(first) == organizational_domain(second)


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the receiver will make of the copy: ``pass`` or ``fail`` and the disposition
    a failure meets (``none`` when no policy is published)."""

    result: Literal["pass", "fail"]
    disposition: Disposition
    policy_domain: str | None

    @property
    def enforced_failure(self) -> bool:
        """The copy fails DMARC and the policy asks to quarantine or reject it."""
        return self.result == "fail" and self.disposition != "none"


def predict(
    found: FoundPolicy | None,
    from_domain: str,
    *,
    dkim_domains: Iterable[str],
    spf_domain: str | None,
) -> Prediction:
    """The receiver's verdict given the d= domains of signatures that will verify there
    and the MAIL FROM domain SPF will pass for there (None when SPF will not pass)."""
    if found is None:
        return Prediction("fail", "none", None)
    record = found.record
    passes = any(identifier_aligned(d, from_domain, record.adkim) for d in dkim_domains) or (
        identifier_aligned(spf_domain, from_domain, record.aspf)
    )
    disposition = found.disposition_for(from_domain)
    return Prediction("pass" if passes else "fail", disposition, found.domain)


def _clean(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def _disposition(value: str | None) -> Disposition | None:
    for known in _DISPOSITIONS:
        if value == known:
            return known
    return None


def _alignment(value: str | None) -> Alignment:
    return "s" if value == "s" else "r"


def _percent(value: str | None) -> int:
    if value is None or not value.isdigit() or not value.isascii():
        return 100
    number = int(value[:4])
    return number if 0 <= number <= 100 else 100


__all__ = [
    "MAX_RECORD",
    "Alignment",
    "Disposition",
    "DmarcRecord",
    "FoundPolicy",
    "Prediction",
    "TxtResolver",
    "discover",
    "identifier_aligned",
    "parse_record",
    "predict",
]
