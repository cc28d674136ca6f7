"""The one DNS resolver of srsfwd: TXT, MX and address look-ups over dnspython, with a cache.

Every feature that needs DNS (DKIM keys now; SPF and the pool decision later) takes a
``Resolver``. Three ways to build one, none of which does I/O in the constructor except the
named class methods:

    Resolver(nameservers=["127.0.0.1"], port=5353, timeout=2.0)   # given servers
    Resolver.from_system(timeout=5.0)                              # /etc/resolv.conf
    Resolver.from_zone_file(Path("example.zone"))                  # no network at all

Answers (rule of the house, RFC 2308):
    * a name that does not exist (NXDOMAIN) or has no record of the type (NODATA) is an
      empty list, a normal outcome;
    * SERVFAIL, REFUSED, a timeout or an unreachable server raises ``DNSTempError``
      (``.temporary`` is true: the caller should answer "try again later").

Positive answers are cached for their TTL (capped by ``max_ttl``), negative ones for
``negative_ttl`` seconds, on the injected ``Clock``; temporary errors are never cached.

A thread making an inline attempt (``srsfwd.inline``: the milter on its event loop) gets
answers from the cache only: a question the cache cannot answer raises
``srsfwd.inline.NotInline`` before any query, and stores nothing. A zone file's answers
are always at hand, so they count as cached.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import dns.exception
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset
import dns.tokenizer
import dns.zonefile

from srsfwd import inline
from srsfwd.clock import Clock, SystemClock
from srsfwd.errors import ConfigError, DNSTempError

log = logging.getLogger(__name__)

#: Record types this resolver answers.
RecordType = str


@dataclass(frozen=True, slots=True)
class MXRecord:
    """One MX record: lower preference is tried first."""

    preference: int
    exchange: str


@dataclass(frozen=True, slots=True)
class _Answer:
    """What a backend found: the record texts (wire-decoded) and how long to keep them."""

    records: tuple[object, ...]
    ttl: int


class _Backend(Protocol):
    def query(self, name: str, rdtype: RecordType) -> _Answer: ...


class DNSResolver(Protocol):
    """The port the core asks (a ``Resolver`` or any test double with these methods)."""

    def txt(self, name: str) -> list[bytes]: ...

    def mx(self, name: str) -> list[MXRecord]: ...

    def addresses(self, name: str) -> list[str]: ...


class Resolver:
    """Look up TXT, MX, A and AAAA records through one configured path, with a TTL cache."""

    def __init__(
        self,
        *,
        nameservers: Sequence[str] = ("127.0.0.1",),
        port: int = 53,
        timeout: float = 5.0,
        clock: Clock | None = None,
        cache_size: int = 4096,
        max_ttl: int = 3600,
        negative_ttl: int = 60,
        backend: _Backend | None = None,
    ) -> None:
        """A resolver asking ``nameservers`` on ``port`` (no I/O here).

        Args:
            nameservers: IP addresses of recursive servers, tried in order.
            port: their UDP and TCP port.
            timeout: seconds for the whole look-up, all servers and retries included.
            clock: the cache's time source.
            cache_size: answers kept at most (least recently used dropped first); 0 = none.
            max_ttl: never keep a positive answer longer than this.
            negative_ttl: seconds to remember "no such name / no such record".
            backend: replaces the network (``from_zone_file`` uses it).

        Raises:
            ConfigError: a nameserver that is not an IP address, a bad port or timeout.
        """
        for server in nameservers:
            try:
                ipaddress.ip_address(server)
            except ValueError:
                raise ConfigError(f"nameserver {server!r} is not an IP address") from None
        if not 0 < port < 65536:
            raise ConfigError(f"DNS port {port} is out of range")
        if timeout <= 0:
            raise ConfigError("DNS timeout must be positive")
        self.nameservers = tuple(nameservers)
        self.port = port
        self.timeout = timeout
        self._clock = clock or SystemClock()
        self._cache: OrderedDict[tuple[str, str], tuple[float, _Answer]] = OrderedDict()
        self._lock = threading.Lock()  # one resolver serves every thread of a daemon
        self._cache_size = cache_size
        self._max_ttl = max_ttl
        self._negative_ttl = negative_ttl
        self._backend = backend or _NetworkBackend(self.nameservers, port, timeout)
        # Answers without I/O (a zone file): an inline attempt may ask the backend.
        self._offline = bool(getattr(self._backend, "offline", False))
        # Results computed from answers (SPF outcomes), each kept until the first answer
        # it used expires: key -> (expiry, value).
        self._derived: OrderedDict[tuple[object, ...], tuple[float, object]] = OrderedDict()

    @classmethod
    def from_system(cls, *, timeout: float = 5.0, clock: Clock | None = None) -> Resolver:
        """A resolver using the nameservers of /etc/resolv.conf.

        Raises:
            ConfigError: resolv.conf is missing or lists no nameserver.
        """
        try:
            system = dns.resolver.Resolver(configure=True)
        except (dns.resolver.NoResolverConfiguration, OSError) as exc:
            raise ConfigError(f"no usable /etc/resolv.conf: {exc}") from None
        servers = [str(s) for s in system.nameservers]
        return cls(nameservers=servers, port=system.port, timeout=timeout, clock=clock)

    @classmethod
    def from_zone_file(cls, *paths: str | os.PathLike[str], clock: Clock | None = None) -> Resolver:
        """A resolver answering only from master files (RFC 1035 §5), with no network.

        Names are absolute or relative to ``$ORIGIN`` lines; one file may hold several
        zones, or one zone with its SOA and NS at its origin as a BIND or Knot file does
        (SOA and NS are not required). Wildcard records answer for names below them that
        do not exist (RFC 4592). A name absent from every file is NXDOMAIN.

        Raises:
            ConfigError: a file cannot be read or is not a master file.
        """
        return cls(
            backend=_ZoneBackend.load(Path(path) for path in paths), clock=clock, cache_size=0
        )

    @classmethod
    def from_zone_text(cls, text: str, *, clock: Clock | None = None) -> Resolver:
        """A resolver answering from master-file ``text`` (unit tests, no file, no network).

        Raises:
            ConfigError: ``text`` is not a master file.
        """
        return cls(backend=_ZoneBackend.from_text(text, "<text>"), clock=clock, cache_size=0)

    def txt(self, name: str) -> list[bytes]:
        """The TXT records at ``name``, each one's strings joined without separator.

        RFC 6376 §3.6.2.2 and RFC 7208 §3.3 both join the strings of one record as is.

        Raises:
            DNSTempError: SERVFAIL, timeout or no server reachable.
        """
        return [r for r in self._lookup(name, "TXT").records if isinstance(r, bytes)]

    def mx(self, name: str) -> list[MXRecord]:
        """The MX records at ``name``, lowest preference first.

        Raises:
            DNSTempError: SERVFAIL, timeout or no server reachable.
        """
        found = [r for r in self._lookup(name, "MX").records if isinstance(r, MXRecord)]
        return sorted(found, key=lambda r: (r.preference, r.exchange))

    def addresses(self, name: str) -> list[str]:
        """The IPv4 then IPv6 addresses of ``name`` (A and AAAA records).

        Raises:
            DNSTempError: SERVFAIL, timeout or no server reachable (for either type).
        """
        out: list[str] = []
        for rdtype in ("A", "AAAA"):
            out += [r for r in self._lookup(name, rdtype).records if isinstance(r, str)]
        return out

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._cache.clear()
            self._derived.clear()

    def records(self, name: str, rdtype: RecordType) -> list[object]:
        """The records of one type, decoded: bytes (TXT), ``MXRecord``, address strings
        (A, AAAA) or names (PTR, CNAME). Empty for NXDOMAIN and no data.

        Raises:
            DNSTempError: SERVFAIL, REFUSED or no answer in time.
        """
        return list(self._lookup(name, rdtype).records)

    def records_until(self, name: str, rdtype: RecordType) -> tuple[list[object], float]:
        """``records``, and the clock time until which the answer may be reused: its
        cache expiry, or now when answers are not cached.

        Raises:
            DNSTempError: SERVFAIL, REFUSED or no answer in time.
        """
        answer, expires = self._lookup_until(name, rdtype)
        return list(answer.records), expires

    def derived(self, key: tuple[object, ...]) -> object | None:
        """A value kept with ``remember`` under ``key`` and not yet expired, or None."""
        now = self._clock.now()
        with self._lock:
            hit = self._derived.get(key)
            if hit is None:
                return None
            if hit[0] <= now:
                del self._derived[key]
                return None
            self._derived.move_to_end(key)
            return hit[1]

    def remember(self, key: tuple[object, ...], value: object, until: float) -> None:
        """Keep ``value``, computed from answers of this resolver, until ``until`` (the
        earliest expiry of those answers, from ``records_until``); bounded like the
        answer cache, and forgotten with it by ``clear_cache``. Nothing is kept from
        an inline attempt that missed an answer: ``value`` may hide the miss."""
        if self._cache_size <= 0 or until <= self._clock.now() or inline.missed():
            return
        with self._lock:
            self._derived[key] = (until, value)
            self._derived.move_to_end(key)
            while len(self._derived) > self._cache_size:
                self._derived.popitem(last=False)

    def _lookup(self, name: str, rdtype: RecordType) -> _Answer:
        return self._lookup_until(name, rdtype)[0]

    def _lookup_until(self, name: str, rdtype: RecordType) -> tuple[_Answer, float]:
        now = self._clock.now()
        # A cache hit costs no name parsing: the key is only lower-cased and made absolute,
        # and only names that passed _normalise are ever stored under such a key.
        quick = name.strip().lower()
        quick = quick if quick.endswith(".") else quick + "."
        with self._lock:
            hit = self._cache.get((quick, rdtype))
            if hit is not None:
                if hit[0] > now:
                    self._cache.move_to_end((quick, rdtype))
                    return hit[1], hit[0]
                del self._cache[(quick, rdtype)]
        qname = _normalise(name)
        if qname is None:
            return _Answer((), 0), now  # not a DNS name, so no such name
        key = (qname, rdtype)
        if not self._offline and inline.cached_only():
            inline.miss(f"{rdtype} {qname}")  # raises: nothing asked, nothing stored
        # The query runs outside the lock: a slow server must not hold up cached answers.
        answer = self._backend.query(key[0], rdtype)
        if self._cache_size <= 0:
            return answer, now
        ttl = min(answer.ttl, self._max_ttl) if answer.records else self._negative_ttl
        with self._lock:
            self._cache[key] = (now + ttl, answer)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return answer, now + ttl


@functools.lru_cache(maxsize=4096)  # pure; spares dnspython's name parsing on uncached look-ups
def _normalise(name: str) -> str | None:
    """``name`` lower-cased and absolute, or None when it cannot be a DNS name."""
    name = name.strip().lower()
    if not name.endswith("."):
        name += "."
    try:
        dns.name.from_text(name)
    except (dns.exception.DNSException, UnicodeError):
        return None
    if name == "." or any(c.isspace() for c in name):
        return None
    return name


def _decode(rdata: object) -> object:
    """dnspython rdata → bytes (TXT), MXRecord, or an address string."""
    strings = getattr(rdata, "strings", None)
    if strings is not None:
        return b"".join(strings)
    exchange = getattr(rdata, "exchange", None)
    if exchange is not None:
        return MXRecord(int(getattr(rdata, "preference", 0)), exchange.to_text())
    return str(getattr(rdata, "address", rdata))


class _NetworkBackend:
    """Asks recursive servers with dnspython (UDP, TCP when truncated)."""

    def __init__(self, nameservers: Sequence[str], port: int, timeout: float) -> None:
        self._resolver = dns.resolver.Resolver(configure=False)
        self._resolver.nameservers = list(nameservers)
        self._resolver.port = port
        self._resolver.lifetime = timeout
        self._resolver.timeout = timeout
        # SERVFAIL from the last server is our answer, not a reason to loop to the deadline.
        self._resolver.retry_servfail = False

    def query(self, name: str, rdtype: RecordType) -> _Answer:
        try:
            answer = self._resolver.resolve(name, rdtype, search=False, raise_on_no_answer=True)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return _Answer((), 0)
        except dns.resolver.LifetimeTimeout:
            raise DNSTempError(f"DNS timeout looking up {rdtype} {name}") from None
        except dns.resolver.NoNameservers as exc:
            # What the servers answered, not who they are: the text reaches SMTP clients.
            raise DNSTempError(f"DNS servers failed for {rdtype} {name}: {_answers(exc)}") from None
        except dns.exception.DNSException as exc:
            raise DNSTempError(f"DNS error looking up {rdtype} {name}: {exc}") from None
        rrset = answer.rrset
        if rrset is None:
            return _Answer((), 0)
        return _Answer(tuple(_decode(r) for r in rrset), rrset.ttl)


#: The TTL of records in a file without ``$TTL`` (so `srsfwd keygen`'s .txt files serve as
#: they are).
_DEFAULT_TTL = 300
#: Master-file directives honoured; ``$INCLUDE`` is not (a zone file names no other file).
_DIRECTIVES = {"$ORIGIN", "$TTL", "$GENERATE"}
_WILDCARD = dns.name.Name([b"*"])

#: (owner, type) → (decoded records, TTL).
_Records = dict[tuple[dns.name.Name, int], tuple[list[object], int]]
#: Answers a zone backend keeps (its records never change, so neither do its answers);
#: the names come from senders, so the memo is bounded: emptied when full.
_ZONE_MEMO_SIZE = 4096


class _RecordsTransaction(dns.zonefile.RRsetsReaderTransaction):
    """dnspython's record-set reader, with an SOA accepted at any owner name.

    dnspython refuses an SOA anywhere but the one origin of a transaction; a master file
    here may hold several zones, each with its SOA at its own apex.
    """

    reader: dns.zonefile.Reader | None = None

    def _origin_information(self) -> tuple[dns.name.Name, bool, dns.name.Name]:
        # Only Transaction._add asks, to compare an SOA's owner: the record being read.
        owner = self.reader.last_name if self.reader is not None else None
        return dns.name.root, False, owner or dns.name.root


def _records_from_text(text: str, where: str) -> list[dns.rrset.RRset]:
    """The records of master-file text (RFC 1035 §5), relative names under ``$ORIGIN``.

    Read as record sets, not as one ``dns.zone.Zone``: a file may hold several zones, or
    one zone with its SOA and NS at its own ``$ORIGIN``, as BIND and Knot files do.
    """
    manager = dns.zonefile.RRSetsReaderManager(dns.name.root, False, dns.rdataclass.IN)
    try:
        with _RecordsTransaction(manager, True, False) as transaction:  # type: ignore[no-untyped-call]
            transaction.reader = dns.zonefile.Reader(
                dns.tokenizer.Tokenizer(text, where),
                dns.rdataclass.IN,
                transaction,
                allow_directives=_DIRECTIVES,
                default_ttl=_DEFAULT_TTL,
            )
            transaction.reader.read()
    except (dns.exception.DNSException, ValueError) as exc:
        raise ConfigError(f"zone file {where} is not a master file: {exc}") from None
    return manager.rrsets


class _ZoneBackend:
    """Answers from master files read once; wildcards (RFC 4592); follows CNAMEs inside."""

    offline = True  # every answer is at hand: no I/O

    def __init__(self, rrsets: Iterable[dns.rrset.RRset]) -> None:
        self._records: _Records = {}
        self._answers: dict[tuple[str, RecordType], _Answer] = {}
        # Every owner name and all its ancestors (empty non-terminals exist too, RFC 4592).
        self._existing: set[dns.name.Name] = set()
        for rrset in rrsets:
            found, _ = self._records.get((rrset.name, rrset.rdtype), ([], 0))
            for rdata in rrset:
                if (value := _decode(rdata)) not in found:
                    found.append(value)
            self._records[rrset.name, rrset.rdtype] = found, rrset.ttl
            name = rrset.name
            while name not in self._existing:
                self._existing.add(name)
                if name == dns.name.root:
                    break
                name = name.parent()

    @classmethod
    def from_text(cls, text: str, where: str) -> _ZoneBackend:
        return cls(_records_from_text(text, where))

    @classmethod
    def load(cls, paths: Iterable[Path]) -> _ZoneBackend:
        rrsets = []
        for path in paths:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read zone file {path}: {exc.strerror}") from None
            except UnicodeDecodeError as exc:
                raise ConfigError(f"zone file {path} is not a master file: {exc}") from None
            rrsets += _records_from_text(text, str(path))
        return cls(rrsets)

    def _owner(self, qname: dns.name.Name) -> dns.name.Name | None:
        """The name whose records answer ``qname``: itself, or the wildcard at its closest
        existing ancestor (RFC 4592 §3.3.1), or None (NXDOMAIN)."""
        if qname in self._existing:
            return qname
        encloser = qname
        while encloser not in self._existing and encloser != dns.name.root:
            encloser = encloser.parent()
        wildcard = _WILDCARD.concatenate(encloser)
        return wildcard if wildcard in self._existing else None

    def query(self, name: str, rdtype: RecordType) -> _Answer:
        key = (name, rdtype)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answer(name, rdtype)  # a CNAME loop raises and is not kept
            if len(self._answers) >= _ZONE_MEMO_SIZE:
                self._answers.clear()
            self._answers[key] = answer
        return answer

    def _answer(self, name: str, rdtype: RecordType) -> _Answer:
        wanted = dns.rdatatype.from_text(rdtype)
        for _ in range(8):  # CNAME chain limit, as resolvers do
            owner = self._owner(dns.name.from_text(name))
            if owner is None:
                return _Answer((), 0)
            records, ttl = self._records.get((owner, wanted), ([], 0))
            if records:
                return _Answer(tuple(records), ttl)
            alias, _ = self._records.get((owner, dns.rdatatype.CNAME), ([], 0))
            if not alias:
                return _Answer((), 0)
            name = str(alias[0])
        raise DNSTempError(f"CNAME loop at {name}")


def _answers(exc: dns.resolver.NoNameservers) -> str:
    """The servers' answers (``SERVFAIL``, ``REFUSED``...) of a failed query, once each."""
    words: list[str] = []
    for error in exc.kwargs.get("errors") or ():
        answer = error[3] if len(error) > 3 else None
        word = answer if isinstance(answer, str) else type(answer).__name__
        if word not in words:
            words.append(word)
    return ", ".join(words) or "no answer"
