"""Organizational domains (RFC 7489 §3.2) and relaxed identifier alignment (RFC 7489 §3.1).

The Public Suffix List comes from ``publicsuffixlist``, which ships a copy of the list;
it is read once per process (about 80 ms) and each domain's answer is cached, so a
message costs a dictionary look-up.
"""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PublicSuffixList

#: Domains whose organizational domain is remembered (most mail comes from few domains).
CACHE_SIZE = 65_536


@lru_cache(maxsize=1)
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def preload() -> None:
    """Read the Public Suffix List now (at start-up) rather than for the first message."""
    _public_suffixes()


@lru_cache(maxsize=CACHE_SIZE)
def organizational_domain(domain: str) -> str:
    """The public suffix of ``domain`` plus one label, lower case, without a final dot.

    A domain that is itself a public suffix (or has one label) is its own
    organizational domain.
    """
    name = domain.strip().rstrip(".").lower()
    if not name:
        return ""
    return _public_suffixes().privatesuffix(name) or name


def aligned(first: str | None, second: str | None) -> bool:
    """Relaxed alignment: both domains have the same organizational domain."""
    if not first or not second:
        return False
    org = organizational_domain(first)
    return bool(org) and org == organizational_domain(second)


__all__ = ["CACHE_SIZE", "aligned", "organizational_domain", "preload"]
