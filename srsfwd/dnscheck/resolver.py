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
"""

from __future__ import annotations

import ipaddress
import logging
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
import dns.zone

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
    def from_zone_file(cls, *paths: Path, clock: Clock | None = None) -> Resolver:
        """A resolver answering only from master files (RFC 1035 §5), with no network.

        Names are absolute or relative to ``$ORIGIN`` lines; one file may hold several
        zones; SOA and NS records are not required. A name absent from every file is
        NXDOMAIN.

        Raises:
            ConfigError: a file cannot be read or is not a master file.
        """
        return cls(backend=_ZoneBackend.load(paths), clock=clock, cache_size=0)

    @classmethod
    def from_zone_text(cls, text: str, *, clock: Clock | None = None) -> Resolver:
        """A resolver answering from master-file ``text`` (unit tests, no file, no network).

        Raises:
            ConfigError: ``text`` is not a master file.
        """
        return cls(
            backend=_ZoneBackend([_zone_from_text(text, "<text>")]), clock=clock, cache_size=0
        )

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

    def records(self, name: str, rdtype: RecordType) -> list[object]:
        """The records of one type, decoded: bytes (TXT), ``MXRecord``, address strings
        (A, AAAA) or names (PTR, CNAME). Empty for NXDOMAIN and no data.

        Raises:
            DNSTempError: SERVFAIL, REFUSED or no answer in time.
        """
        return list(self._lookup(name, rdtype).records)

    def _lookup(self, name: str, rdtype: RecordType) -> _Answer:
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
                    return hit[1]
                del self._cache[(quick, rdtype)]
        qname = _normalise(name)
        if qname is None:
            return _Answer((), 0)  # not a DNS name, so no such name
        key = (qname, rdtype)
        # The query runs outside the lock: a slow server must not hold up cached answers.
        answer = self._backend.query(key[0], rdtype)
        if self._cache_size > 0:
            ttl = min(answer.ttl, self._max_ttl) if answer.records else self._negative_ttl
            with self._lock:
                self._cache[key] = (now + ttl, answer)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return answer


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
            raise DNSTempError(f"DNS servers failed for {rdtype} {name}: {exc}") from None
        except dns.exception.DNSException as exc:
            raise DNSTempError(f"DNS error looking up {rdtype} {name}: {exc}") from None
        rrset = answer.rrset
        if rrset is None:
            return _Answer((), 0)
        return _Answer(tuple(_decode(r) for r in rrset), rrset.ttl)


_DEFAULT_TTL = "$TTL 300\n"


def _zone_from_text(text: str, where: str) -> dns.zone.Zone:
    """Parse master-file text with every name absolute or under its own $ORIGIN."""
    try:
        # A default $TTL lets the .txt files of `srsfwd keygen` serve as they are.
        return dns.zone.from_text(
            _DEFAULT_TTL + text,
            origin=dns.name.root,
            relativize=False,
            check_origin=False,
            filename=where,
        )
    except (dns.exception.DNSException, ValueError) as exc:
        raise ConfigError(f"zone file {where} is not a master file: {exc}") from None


class _ZoneBackend:
    """Answers from master files read once; follows CNAMEs inside them."""

    def __init__(self, zones: Iterable[dns.zone.Zone]) -> None:
        self._zones = list(zones)

    @classmethod
    def load(cls, paths: Iterable[Path]) -> _ZoneBackend:
        zones = []
        for path in paths:
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot read zone file {path}: {exc.strerror}") from None
            except UnicodeDecodeError as exc:
                raise ConfigError(f"zone file {path} is not a master file: {exc}") from None
            zones.append(_zone_from_text(text, str(path)))
        return cls(zones)

    def query(self, name: str, rdtype: RecordType) -> _Answer:
        wanted = dns.rdatatype.from_text(rdtype)
        for _ in range(8):  # CNAME chain limit, as resolvers do
            qname = dns.name.from_text(name)
            exists = False
            cname: str | None = None
            records: list[object] = []
            ttl = 0
            for zone in self._zones:
                node = zone.get_node(qname)
                if node is None:
                    continue
                exists = True
                rdataset = node.get_rdataset(dns.rdataclass.IN, wanted)
                if rdataset is not None:
                    records += [_decode(r) for r in rdataset]
                    ttl = rdataset.ttl
                alias = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
                if alias is not None and cname is None:
                    cname = str(next(iter(alias)).target)
            if records or cname is None or not exists:
                return _Answer(tuple(records), ttl)
            name = cname
        raise DNSTempError(f"CNAME loop at {name}")
