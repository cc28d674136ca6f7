"""Envelope addresses as SRS sees them: split, check and match against domain lists.

Written by hand rather than with ``email.utils``: that module parses header
addresses (display names, comments, groups) and silently repairs what it cannot
read, while an envelope path must be taken exactly as it is or refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from srsfwd.errors import AddressError

#: Longest address accepted at all: postsrsd's socketmap key limit. RFC 5321 §4.5.3.1.3
#: allows 256 octets for a path, but real peers pass longer ones, so we stay as lenient as
#: the peer we replace and refuse only what no peer would carry.
MAX_ADDRESS_LENGTH = 512

#: RFC 5321 §4.5.3.1.1: a local part has at most 64 octets.
MAX_LOCAL_PART = 64

# RFC 5322 §3.2.3 atext plus ".": every character an unquoted local part may hold.
# Dots are not checked for position: real senders use "a..b" and Postfix passes them.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+")
# Host names as mail software meets them (underscores included), or an address literal.
_DOMAIN = re.compile(r"(?:[A-Za-z0-9_-]+\.)*[A-Za-z0-9_-]+|\[[A-Za-z0-9:.]+\]")
# Both at once: one regex call accepts a good address; only a bad one is taken apart to
# say what is wrong with it. This is on the path of every forwarded message.
_ADDRESS = re.compile(f"({_LOCAL_PART.pattern})@({_DOMAIN.pattern})")
#: The pattern of an address ``split_address`` accepts at once: group 1 the local part,
#: group 2 the domain (for callers with a quick path of their own).
ADDRESS_PATTERN = _ADDRESS.pattern


def strip_brackets(address: str) -> str:
    """Return ``address`` without one pair of surrounding angle brackets."""
    if len(address) >= 2 and address[0] == "<" and address[-1] == ">":
        return address[1:-1]
    return address


def split_address(address: str) -> tuple[str, str]:
    """Split an envelope address into its local part and domain, checking both.

    Raises:
        AddressError: with the reason, for anything that is not ``local@domain``
            made of printable ASCII (quoted local parts and SMTPUTF8 included).
    """
    if len(address) <= MAX_ADDRESS_LENGTH and (match := _ADDRESS.fullmatch(address)):
        return match[1], match[2]
    check_text(address)
    local, at, domain = address.rpartition("@")
    if not at:
        raise AddressError("no @ in address")
    if not local:
        raise AddressError("empty local part")
    if "@" in local:
        if local.startswith('"'):
            raise AddressError("quoted local parts cannot be carried through SRS")
        raise AddressError("more than one @ in address")
    if not _LOCAL_PART.fullmatch(local):
        if local.startswith('"'):
            raise AddressError("quoted local parts cannot be carried through SRS")
        raise AddressError("local part has characters that need quoting")
    check_domain(domain)
    return local, domain


def check_text(address: str) -> None:
    """Refuse text that cannot be an address at all: too long, not ASCII, control bytes."""
    if len(address) > MAX_ADDRESS_LENGTH:
        raise AddressError(f"address longer than {MAX_ADDRESS_LENGTH} characters")
    if not address.isascii():
        raise AddressError("address is not ASCII (SMTPUTF8 addresses are not supported)")
    if not address.isprintable() or " " in address:
        raise AddressError("address contains spaces or control characters")


def check_domain(domain: str) -> None:
    """Refuse a domain that is not a host name or an address literal."""
    if not domain:
        raise AddressError("empty domain")
    if not _DOMAIN.fullmatch(domain):
        raise AddressError(f"not a valid domain: {domain[:80]!r}")


class DomainSet:
    """A set of domains with postsrsd's matching rules.

    ``example.com`` matches only itself; ``.example.com`` (or ``*.example.com``)
    matches every subdomain of example.com but not example.com itself. Matching
    ignores ASCII case.
    """

    __slots__ = ("_exact", "_parents")

    def __init__(self, domains: Iterable[str] = ()) -> None:
        self._exact: set[str] = set()
        self._parents: set[str] = set()
        for entry in domains:
            self.add(entry)

    def add(self, entry: str) -> None:
        """Add one entry: a domain, or ``.domain`` / ``*.domain`` for its subdomains."""
        name = entry.strip().lower()
        if name.startswith("*."):
            name = name[1:]
        is_parent_rule = name.startswith(".")
        bare = name.lstrip(".") if is_parent_rule else name
        if bare.endswith("."):
            bare = bare[:-1]
        check_domain(bare)
        (self._parents if is_parent_rule else self._exact).add(bare)

    def __contains__(self, domain: object) -> bool:
        if not isinstance(domain, str):
            return False
        name = domain.lower()
        if name in self._exact:
            return True
        if not self._parents:
            return False
        dot = name.find(".")
        while dot != -1:
            if name[dot + 1 :] in self._parents:
                return True
            dot = name.find(".", dot + 1)
        return False

    def __bool__(self) -> bool:
        return bool(self._exact or self._parents)

    def entries(self) -> list[str]:
        """The entries, exact names first, in a stable order."""
        return sorted(self._exact) + sorted("." + p for p in self._parents)


def read_domains_file(text: str) -> list[str]:
    """Domains from a postsrsd-style domains file: one per line, ``#`` starts a comment."""
    found: list[str] = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            found.append(entry)
    return found
