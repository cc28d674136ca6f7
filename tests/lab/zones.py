"""The lab's DNS: one master file per zone, served by Knot DNS."""

from __future__ import annotations

from tests.lab import addresses as at

#: Sender domains, what they publish and whether the senders' OpenDKIM signs for them.
SENDER_DOMAINS: dict[str, dict[str, str | bool]] = {
    # SPF and DKIM, DMARC reject: forwarded, it passes at the receiver.
    "sender.example": {"spf": f"ip4:{at.SENDER}", "dmarc": "reject", "dkim": True},
    # SPF only, DMARC reject: fails DMARC once forwarded unless From is rewritten.
    "spfonly.example": {"spf": f"ip4:{at.SENDER}", "dmarc": "reject", "dkim": False},
    # SPF only, DMARC none: never rewritten.
    "relaxed.example": {"spf": f"ip4:{at.SENDER}", "dmarc": "none", "dkim": False},
    # SPF that does not list the senders' Postfix, no DKIM: the forwarder cannot vouch.
    "nospf.example": {"spf": "ip4:192.0.2.1", "dmarc": "", "dkim": False},
}
DKIM_SELECTOR = "lab"


def _zone(origin: str, records: list[str]) -> str:
    head = [
        "$TTL 300",
        f"$ORIGIN {origin}.",
        f"@ IN SOA ns.lab. hostmaster.{origin}. 1 3600 600 86400 300",
        "@ IN NS ns.lab.",
    ]
    return "\n".join([*head, *records]) + "\n"


def _txt(text: str) -> str:
    parts = [text[i : i + 250] for i in range(0, len(text), 250)]
    return "( " + " ".join(f'"{part}"' for part in parts) + " )"


def lab_zones(sender_dkim: str, forwarder_dkim: dict[str, str]) -> dict[str, str]:
    """Master files by zone name: ``sender_dkim`` is the senders' key record, ``forwarder_dkim``
    the forwarder's records by selector."""
    zones: dict[str, str] = {
        "lab": _zone("lab", [f"ns IN A {at.DNS}"]),
    }
    for domain, spec in SENDER_DOMAINS.items():
        records = [
            f"@ IN A {at.SENDER}",
            f"@ IN MX 10 mx.{domain}.",
            f"mx IN A {at.SENDER}",
            f'@ IN TXT "v=spf1 {spec["spf"]} -all"',
        ]
        if spec["dmarc"]:
            records.append(f'_dmarc IN TXT "v=DMARC1; p={spec["dmarc"]}"')
        if spec["dkim"]:
            records.append(f"{DKIM_SELECTOR}._domainkey IN TXT {_txt(sender_dkim)}")
        zones[domain] = _zone(domain, records)
    forwarder = [
        # Our users' domain: its mailboxes live on the forwarder.
        f"@ IN A {at.FORWARDER}",
        "@ IN MX 10 mx.fwd",
        f'@ IN TXT "v=spf1 ip4:{at.NORMAL_POOL} -all"',
        # The SRS domain: bounces come back to it; SPF lists normal and high-risk, never relay.
        f"fwd IN A {at.FORWARDER}",
        "fwd IN MX 10 mx.fwd",
        f'fwd IN TXT "v=spf1 ip4:{at.NORMAL_POOL} ip4:{at.HIGH_RISK_POOL} -all"',
        '_dmarc.fwd IN TXT "v=DMARC1; p=none"',
        f"mx.fwd IN A {at.FORWARDER}",
        f"mta1.fwd IN A {at.NORMAL_POOL}",
        f"rly1.fwd IN A {at.RELAY_POOL}",
        f"hr1.fwd IN A {at.HIGH_RISK_POOL}",
    ]
    forwarder += [
        f"{selector}._domainkey.fwd IN TXT {_txt(record)}"
        for selector, record in forwarder_dkim.items()
    ]
    zones[at.USERS_DOMAIN] = _zone(at.USERS_DOMAIN, forwarder)
    zones[at.RECEIVER_DOMAIN] = _zone(
        at.RECEIVER_DOMAIN,
        [f"@ IN A {at.RECEIVER}", "@ IN MX 10 mx", f"mx IN A {at.RECEIVER}"],
    )
    reverse = {
        at.SENDER: "mx.sender.example.",
        at.FORWARDER: "mx.fwd.example.net.",
        at.NORMAL_POOL: "mta1.fwd.example.net.",
        at.RELAY_POOL: "rly1.fwd.example.net.",
        at.HIGH_RISK_POOL: "hr1.fwd.example.net.",
        at.RECEIVER: "mx.rcv.example.",
    }
    zones["12.127.in-addr.arpa"] = _zone(
        "12.127.in-addr.arpa",
        [f"{'.'.join(reversed(ip.split('.')[2:]))} IN PTR {name}" for ip, name in reverse.items()],
    )
    return zones
