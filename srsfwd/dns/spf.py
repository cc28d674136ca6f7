"""SPF (RFC 7208) with pyspf's evaluator, asking srsfwd's own ``Resolver``.

pyspf does the whole of RFC 7208 (macros, include/redirect, the 10-lookup and void-lookup
limits, CNAMEs, explanations); only its DNS is replaced. pyspf sends every query through
its module-level ``spf.DNSLookup``; this module installs a dispatcher there once, which
asks the ``Resolver`` bound to the current check (a context variable, so threads and
tasks each see their own) and falls back to pyspf's own function for callers that use
pyspf directly. Temporary DNS failures become SPF ``temperror``.

An outcome is a function of the check's inputs and the DNS answers it read, so it is kept
in the ``Resolver`` (``remember``) until the first of those answers expires from the DNS
cache, keyed by every input: a sender seen again within the TTLs costs no evaluation.
``fail`` (its explanation may expand ``%{t}``, the time) and ``temperror`` are not kept.
"""

from __future__ import annotations

import contextvars
import ipaddress
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import spf

from srsfwd.dns.resolver import MXRecord, Resolver
from srsfwd.errors import DNSTempError


class _Validity:
    """Until when the answers one check has read so far may be reused."""

    __slots__ = ("until",)

    def __init__(self) -> None:
        self.until = math.inf

    def used(self, expires: float) -> None:
        self.until = min(self.until, expires)


_current: contextvars.ContextVar[tuple[Resolver, _Validity] | None] = contextvars.ContextVar(
    "srsfwd_spf_resolver", default=None
)
#: Results kept in the resolver until their DNS answers expire (see the module docstring).
_KEPT_RESULTS = frozenset({"pass", "neutral", "softfail", "none", "permerror"})
# pyspf's own look-up, kept once even if this module is imported again (importlib.reload).
_pyspf_lookup: Callable[..., Any] = getattr(spf.DNSLookup, "pyspf_original", spf.DNSLookup)

#: Longest SPF check in seconds (RFC 7208 §4.6.4 suggests 20).
DEFAULT_TIMEOUT = 20


@dataclass(frozen=True, slots=True)
class SPFOutcome:
    """The result of one check_host(): the RFC 7208 result word and pyspf's explanation."""

    result: str
    identity: str
    domain: str
    reason: str
    mechanism: str | None = None

    @property
    def temporary(self) -> bool:
        """True for ``temperror``: the same check may give a real answer later."""
        return self.result == "temperror"


_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.%+=!#&*/~^{}|'`,?<>:"
)


def _presentation(name: str) -> str:
    """``name`` in master-file text, any other octet as ``\\DDD`` (RFC 1035 §5.1).

    SPF macros can expand to labels with spaces or other octets (RFC 7208 §7.3); they are
    legal on the wire, and this keeps them so rather than losing the query.
    """
    if all(c in _PLAIN for c in name):
        return name
    return "".join(
        c if c in _PLAIN else "".join(f"\\{b:03d}" for b in c.encode("utf-8")) for c in name
    )


def _records(
    resolver: Resolver, validity: _Validity, name: str, qtype: str
) -> list[tuple[tuple[str, str], Any]]:
    """One look-up in pyspf's answer shape: ``[((name, type), value), ...]``."""
    if qtype not in ("A", "AAAA", "MX", "TXT", "PTR"):
        return []  # RR type 99 (SPF) is obsolete (RFC 7208 §3.1)
    try:
        found, expires = resolver.records_until(_presentation(name), qtype)
    except DNSTempError as exc:
        # pyspf swallows some errors (an exp= look-up): an outcome that met one is not kept.
        validity.used(-math.inf)
        raise spf.TempError(str(exc)) from None
    validity.used(expires)
    key = (name, qtype)
    out: list[tuple[tuple[str, str], Any]] = []
    for record in found:
        if qtype == "TXT" and isinstance(record, bytes):
            out.append((key, (record,)))
        elif qtype == "MX" and isinstance(record, MXRecord):
            out.append((key, (record.preference, record.exchange)))
        elif qtype in ("A", "AAAA") and isinstance(record, str):
            out.append((key, record))
        elif qtype == "PTR" and isinstance(record, str):
            out.append((key, record.rstrip(".")))  # as pyspf's own look-up gives it
    return out


def _dispatch(name: str, qtype: str, *args: Any, **kwargs: Any) -> Any:
    current = _current.get()
    if current is None:
        return _pyspf_lookup(name, qtype, *args, **kwargs)
    return _records(*current, name, qtype)


_dispatch.pyspf_original = _pyspf_lookup  # type: ignore[attr-defined]
spf.DNSLookup = _dispatch


@contextmanager
def _using(resolver: Resolver) -> Iterator[_Validity]:
    validity = _Validity()
    token = _current.set((resolver, validity))
    try:
        yield validity
    finally:
        _current.reset(token)


def check_host(
    resolver: Resolver,
    *,
    client_ip: str,
    mail_from: str,
    helo: str,
    timeout: float = DEFAULT_TIMEOUT,
    receiver: str | None = None,
    default_explanation: str | None = None,
) -> SPFOutcome:
    """SPF for ``mail_from`` (or ``postmaster@helo`` for a null sender) from ``client_ip``.

    Never raises for bad input: an unusable client IP or HELO is a ``permerror`` or
    ``none`` outcome with the reason, as RFC 7208 §4.3 and §2.3 say.
    """
    # Keyed by the inputs as given: the same text always normalises the same way.
    key = ("spf", client_ip, mail_from, helo, receiver, default_explanation)
    kept = resolver.derived(key)
    if isinstance(kept, SPFOutcome):
        return kept
    try:
        ip = str(ipaddress.ip_address(client_ip.strip().strip("[]")))
    except ValueError:
        return SPFOutcome("permerror", mail_from or helo, "", f"not an IP address: {client_ip!r}")
    sender = mail_from.strip().strip("<>")
    helo = helo.strip()
    identity = sender or f"postmaster@{helo}"
    domain = identity.rpartition("@")[2]
    query = spf.query(
        i=ip,
        s=sender,
        h=helo,
        receiver=receiver,
        strict=True,
        timeout=timeout,
        querytime=timeout,
    )
    if default_explanation is not None:
        query.set_default_explanation(default_explanation)
    with _using(resolver) as validity:
        try:
            result, _code, explanation = query.check()
        except (spf.TempError, DNSTempError) as exc:
            result, explanation = "temperror", str(exc)
        except (ValueError, UnicodeError) as exc:
            result, explanation = "permerror", f"unusable identity: {exc}"
    result = {"error": "temperror", "unknown": "permerror", "ambiguous": "permerror"}.get(
        result, result
    )
    mechanism = getattr(query, "mechanism", None)
    outcome = SPFOutcome(
        result=result,
        identity=identity,
        domain=query.d if isinstance(getattr(query, "d", None), str) else domain,
        reason=str(explanation),
        mechanism=str(mechanism) if mechanism else None,
    )
    if result in _KEPT_RESULTS:
        resolver.remember(key, outcome, validity.until)
    return outcome
