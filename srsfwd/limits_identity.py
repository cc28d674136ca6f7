"""Whose sending limits a message counts against: the identity it authenticated.

A MAIL FROM is only a claim. Counting it as it stands would let anyone use up a victim's
limits, and get the victim blocked, with mail forged in the victim's name. So the limits
count the MAIL FROM only when something vouched for it on arrival:

* ``spf-pass``: SPF passed for the MAIL FROM;
* ``dkim-pass``: a DKIM signature passed whose ``d=`` is the MAIL FROM's domain or a
  parent of it within the same organizational domain;
* ``sasl-login``: the session logged in with SMTP AUTH and the MAIL FROM is in our
  accepted domains (a login vouches for those, docs/security.md);
* ``trusted-submission``: the message was written on our own hosts.

Otherwise the client pays (``client-address``): its address, bracketed so it can never
be mistaken for a mailbox, ``[203.0.113.5]``; for IPv6 its /64, ``[2001:db8:1:2::/64]``,
since one host holds a whole /64 and would otherwise get 2**64 fresh counters.

Pure: facts in, a key out.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from srsfwd.address import DomainSet
from srsfwd.orgdomain import aligned
from srsfwd.pool import Facts, authentication

Because = Literal["spf-pass", "dkim-pass", "sasl-login", "trusted-submission", "client-address"]
BECAUSE: tuple[Because, ...] = (
    "spf-pass",
    "dkim-pass",
    "sasl-login",
    "trusted-submission",
    "client-address",
)
#: The prefix length IPv6 clients are counted by: one host (one customer) holds a /64.
IPV6_PREFIX = 64


@dataclass(frozen=True, slots=True)
class LimitsIdentity:
    """The key a message counts against (``key``) and why that one (``because``)."""

    key: str
    because: Because

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON form: ``counted_as`` and ``because``."""
        return {"counted_as": self.key, "because": self.because}


def limits_identity(facts: Facts, accepted: DomainSet, *, client: str) -> LimitsIdentity | None:
    """Whose limits the message of ``facts`` counts against; None for the null sender.

    ``client`` is the address the message came from: the connecting client, or behind
    one of our trusted gateways the first hop from outside.

    Raises:
        ValueError: the MAIL FROM is vouched for by nothing and ``client`` is not an IP
            address (there is then nobody to count it against).
    """
    sender = facts.mail_from
    if not sender:
        return None
    because = vouched_by(facts, accepted)
    if because is not None:
        return LimitsIdentity(sender, because)
    return LimitsIdentity(client_key(client), "client-address")


def vouched_by(facts: Facts, accepted: DomainSet) -> Because | None:
    """What vouched for the MAIL FROM on arrival, or None."""
    domain = facts.sender_domain
    if not domain:
        return None
    if authentication(facts).spf:
        return "spf-pass"
    if any(c.result == "pass" and signs_for(c.domain, domain) for c in facts.dkim):
        return "dkim-pass"
    if facts.sasl_user and domain in accepted:
        return "sasl-login"
    if facts.trusted_submission:
        return "trusted-submission"
    return None


def signs_for(signer: str, domain: str) -> bool:
    """A signature of ``signer`` (``d=``) vouches for addresses at ``domain``: the same
    domain or a parent of it, and no higher than their organizational domain (a ``d=``
    that is a public suffix vouches for nobody)."""
    signer, domain = signer.lower().rstrip("."), domain.lower().rstrip(".")
    if not signer or not (domain == signer or domain.endswith("." + signer)):
        return False
    return aligned(signer, domain)


def client_key(client: str) -> str:
    """The limits key of a client address: ``[203.0.113.5]``, ``[2001:db8:1:2::/64]``.

    Accepts the address bare or as an address literal (``[IPv6:2001:db8::1]``); an
    IPv4-mapped IPv6 address counts as the IPv4 address.

    Raises:
        ValueError: ``client`` is not an IP address.
    """
    text = client.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text[:5].lower() == "ipv6:":
        text = text[5:]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"client address {client!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"[{address.ipv4_mapped}]"
        network = ipaddress.IPv6Network((int(address) >> IPV6_PREFIX << IPV6_PREFIX, IPV6_PREFIX))
        return f"[{network}]"
    return f"[{address}]"


def operator_key(text: str) -> str:
    """The limits key an operator means by ``text``: a mail address as it is; an IP
    address, bare or bracketed, or a bracketed IPv6 /64 as the key of that client.

    Raises:
        ValueError: ``text`` is neither a mail address nor an IP address.
    """
    text = text.strip()
    if "@" in text:
        return text
    inner = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    address, slash, prefix = inner.partition("/")
    if slash and (prefix != str(IPV6_PREFIX) or ":" not in address):
        raise ValueError(f"{text!r}: only an IPv6 /{IPV6_PREFIX} is a limits key")
    try:
        return client_key(address)
    except ValueError:
        raise ValueError(f"{text!r} is neither a mail address nor an IP address") from None


__all__ = [
    "BECAUSE",
    "IPV6_PREFIX",
    "Because",
    "LimitsIdentity",
    "client_key",
    "limits_identity",
    "operator_key",
    "signs_for",
    "vouched_by",
]
