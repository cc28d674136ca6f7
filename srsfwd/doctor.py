"""``srsfwd doctor``: what a forwarder needs in DNS and on disk to be trusted, and the fix.

Each check takes the ``Resolver`` and already-read settings and returns ``Finding`` values
(severity, what, the fix); ``srsfwd.cli.doctor`` prints them. Checked:

* the SRS domain's SPF record lets the normal and high-risk pools' addresses pass and
  not the relay pool's (receivers must not take relayed mail for ours);
* the SRS domain has a usable MX (bounces to SRS addresses come back there);
* every key in the DKIM store is published, matches, and is not revoked;
* the signing domains publish DMARC;
* the SRS secrets file exists, holds a secret and is readable by its owner only.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from srsfwd.config import StrPath
from srsfwd.dkim.keys import (
    DkimKey,
    key_record_text,
    load_public_key,
    parse_key_record,
    public_key_data,
    zone_line,
)
from srsfwd.dns.resolver import Resolver
from srsfwd.dns.spf import check_host
from srsfwd.errors import DNSTempError, KeyFormatError
from srsfwd.pool import Pool, PoolSettings


class Severity(StrEnum):
    """How bad a finding is; any ``error`` makes ``srsfwd doctor`` exit non-zero."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One result: which check, what was found, and what to publish or change."""

    severity: Severity
    check: str
    message: str
    fix: str = ""
    #: DNS did not answer (temperror): the check could not be made, try again.
    unknown: bool = False

    def as_dict(self) -> dict[str, str | bool]:
        """Plain JSON form."""
        return {
            "severity": str(self.severity),
            "check": self.check,
            "message": self.message,
            "fix": self.fix,
            "unknown": self.unknown,
        }


def _dns_failed(check: str, where: str, error: object) -> Finding:
    """A check DNS did not let us make: unknown (temperror), never "no record"."""
    return Finding(
        Severity.WARNING,
        check,
        f"{where}: DNS failed (temperror: {error})",
        "retry",
        unknown=True,
    )


def spf_record_for(pools: Mapping[Pool, PoolSettings]) -> str:
    """The SPF record the SRS domain should publish: normal and high-risk addresses only."""
    terms = []
    for pool in (Pool.NORMAL, Pool.HIGH_RISK):
        for address in pools[pool].source_addresses:
            terms.append(("ip6:" if ":" in address else "ip4:") + address)
    return "v=spf1 " + " ".join([*dict.fromkeys(terms), "-all"])


def check_spf(
    resolver: Resolver, srs_domain: str, pools: Mapping[Pool, PoolSettings]
) -> list[Finding]:
    """SPF of ``srs_domain`` for every pool address (``postmaster@`` as RFC 7208 §2.3)."""
    wanted = spf_record_for(pools)
    fix = f'publish: {srs_domain}. IN TXT "{wanted}"'
    findings: list[Finding] = []
    configured = [a for p in pools.values() for a in p.source_addresses]
    if not configured:
        return [
            Finding(
                Severity.WARNING,
                "spf",
                "no pool has source_addresses; nothing to check",
                "set source_addresses in [pools.normal], [pools.relay], [pools.high-risk]",
            )
        ]
    for pool in (Pool.NORMAL, Pool.HIGH_RISK, Pool.RELAY):
        settings = pools[pool]
        for address in settings.source_addresses:
            outcome = check_host(
                resolver,
                client_ip=address,
                mail_from=f"postmaster@{srs_domain}",
                helo=settings.helo or srs_domain,
                timeout=10,
            )
            where = f"{pool} pool address {address}"
            if outcome.result == "temperror":
                findings.append(_dns_failed("spf", where, outcome.reason))
            elif pool is Pool.RELAY and outcome.result == "pass":
                findings.append(
                    Finding(
                        Severity.ERROR,
                        "spf",
                        f"{where} passes SPF for {srs_domain}: receivers would take relayed, "
                        "unauthenticated mail for ours",
                        fix,
                    )
                )
            elif pool is Pool.RELAY:
                findings.append(
                    Finding(
                        Severity.OK, "spf", f"{where} is not in the SPF record ({outcome.result})"
                    )
                )
            elif outcome.result == "pass":
                findings.append(Finding(Severity.OK, "spf", f"{where} passes SPF"))
            else:
                findings.append(
                    Finding(
                        Severity.ERROR,
                        "spf",
                        f"{where}: SPF {outcome.result} for {srs_domain} ({outcome.reason})",
                        fix,
                    )
                )
    return findings


def check_mx(resolver: Resolver, srs_domain: str) -> list[Finding]:
    """The SRS domain must receive mail: bounces to SRS addresses are sent to it."""
    fix = f"publish: {srs_domain}. IN MX 10 <a host that runs srsfwd's reverse map>."
    try:
        records = resolver.mx(srs_domain)
        addresses = resolver.addresses(srs_domain) if not records else []
    except DNSTempError as exc:
        return [_dns_failed("mx", srs_domain, exc)]
    real = [r for r in records if r.exchange.strip(".")]
    if real:
        hosts = ", ".join(r.exchange.rstrip(".") for r in real)
        return [Finding(Severity.OK, "mx", f"{srs_domain} MX {hosts}")]
    if records:
        return [
            Finding(
                Severity.ERROR,
                "mx",
                f"{srs_domain} has a null MX: bounces to SRS addresses are lost",
                fix,
            )
        ]
    if addresses:
        return [
            Finding(
                Severity.WARNING,
                "mx",
                f"{srs_domain} has no MX; bounces use its A/AAAA (implicit MX)",
                fix,
            )
        ]
    return [
        Finding(
            Severity.ERROR,
            "mx",
            f"{srs_domain} has no MX and no address: bounces cannot come back",
            fix,
        )
    ]


def check_dkim_key(resolver: Resolver, domain: str, selector: str, key: DkimKey) -> Finding:
    """Is ``selector._domainkey.domain`` published, matching ``key``, and not revoked?"""
    name = f"{selector}._domainkey.{domain}"
    fix = "publish: " + zone_line(selector, domain, key_record_text(key)).strip()
    try:
        records = resolver.txt(name)
    except DNSTempError as exc:
        return _dns_failed("dkim", name, exc)
    if not records:
        return Finding(Severity.ERROR, "dkim", f"{name}: no record published", fix)
    try:
        record = parse_key_record(records[0])
        if record.revoked:
            return Finding(
                Severity.ERROR,
                "dkim",
                f"{name}: revoked (empty p=)",
                "sign with another key, or publish this one again",
            )
        load_public_key(record)
    except KeyFormatError as exc:
        return Finding(Severity.ERROR, "dkim", f"{name}: {exc}", fix)
    if record.public != public_key_data(key):
        return Finding(
            Severity.ERROR, "dkim", f"{name}: the published key does not match the private key", fix
        )
    if record.testing:
        return Finding(
            Severity.WARNING,
            "dkim",
            f"{name}: testing mode (t=y)",
            "drop t=y once signatures verify",
        )
    return Finding(Severity.OK, "dkim", f"{name}: published and matching")


def check_dmarc(resolver: Resolver, domains: Iterable[str]) -> list[Finding]:
    """Each signing domain should publish a DMARC record at ``_dmarc.<domain>``."""
    findings = []
    for domain in sorted(set(domains)):
        name = f"_dmarc.{domain}"
        fix = f'publish: {name}. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc@{domain}"'
        try:
            records = [r for r in resolver.txt(name) if r.lower().startswith(b"v=dmarc1")]
        except DNSTempError as exc:
            findings.append(_dns_failed("dmarc", name, exc))
            continue
        if len(records) == 1:
            text = records[0].decode("ascii", "replace")
            findings.append(Finding(Severity.OK, "dmarc", f"{name}: {text}"))
        elif records:
            findings.append(
                Finding(
                    Severity.ERROR,
                    "dmarc",
                    f"{name}: {len(records)} DMARC records (receivers ignore all)",
                    "keep exactly one",
                )
            )
        else:
            findings.append(Finding(Severity.WARNING, "dmarc", f"{name}: no DMARC record", fix))
    return findings


def check_secret(path: StrPath | None) -> Finding:
    """The SRS secrets file: present, not empty, readable by its owner only."""
    if path is None:
        return Finding(
            Severity.ERROR,
            "secret",
            "no [srs] secrets_file configured",
            "srsfwd secret new /etc/srsfwd/srs.secret and set [srs] secrets_file",
        )
    path = Path(path)
    try:
        info = path.stat()
        size = info.st_size
    except OSError as exc:
        return Finding(
            Severity.ERROR, "secret", f"{path}: {exc.strerror}", f"srsfwd secret new {path}"
        )
    if not stat.S_ISREG(info.st_mode) or size == 0:
        return Finding(
            Severity.ERROR, "secret", f"{path}: empty or not a file", f"srsfwd secret new {path}"
        )
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        return Finding(
            Severity.ERROR,
            "secret",
            f"{path}: readable by others (mode {stat.filemode(info.st_mode)})",
            f"chmod 600 {path}",
        )
    return Finding(Severity.OK, "secret", f"{path}: present and private")


def check_relay_helo(pools: Mapping[Pool, PoolSettings]) -> list[Finding]:
    """The relay pool's HELO name should say so (``rly``), as receivers expect."""
    helo = pools[Pool.RELAY].helo
    if helo and "rly" not in helo.lower():
        return [
            Finding(
                Severity.WARNING,
                "pools",
                f"relay pool HELO {helo!r} does not contain 'rly'",
                "name it e.g. rly1.<your domain>",
            )
        ]
    return []


def failed(findings: Iterable[Finding]) -> bool:
    """True when any finding is an error."""
    return any(f.severity is Severity.ERROR for f in findings)


def unknown(findings: Iterable[Finding]) -> bool:
    """True when DNS did not answer for some check (temperror)."""
    return any(f.unknown for f in findings)
