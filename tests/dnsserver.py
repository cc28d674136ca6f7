"""A real DNS server on 127.0.0.1 for tests: dnslib's server answering from zone text.

Tests reach it through ``srsfwd.dns.resolver.Resolver`` exactly as production reaches a
recursive server, over UDP and TCP. Use the ``dns_server`` fixture (tests/conftest.py):

    def test_something(dns_server: ZoneServer) -> None:
        dns_server.load('sel._domainkey.example.com. 300 IN TXT "v=DKIM1; p=..."')
        resolver = dns_server.resolver()          # a Resolver pointed at the server
        assert resolver.txt("sel._domainkey.example.com")
        dns_server.mode = "servfail"              # every answer is SERVFAIL
        dns_server.mode = "silent"                # no answer at all: the client times out
        dns_server.failing = {"sel._domainkey.example.com."}   # SERVFAIL for these names only

Zone text is a standard master file (``$ORIGIN``, ``$TTL``, parenthesised multi-string TXT).
A name not in the zone is NXDOMAIN; a known name without the asked type is NOERROR/no data.
"""

from __future__ import annotations

import socket
import threading
from typing import Any, Literal

from dnslib import QTYPE, RCODE, RR, DNSLabel, DNSRecord
from dnslib.dns import DNSError
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from srsfwd.clock import Clock
from srsfwd.dns.resolver import Resolver

Mode = Literal["answer", "servfail", "refused", "silent"]


class _ZoneResolver(BaseResolver):  # type: ignore[misc]
    def __init__(self, owner: ZoneServer) -> None:
        self._owner = owner

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        owner = self._owner
        with owner.lock:
            owner.queries.append((str(request.q.qname), QTYPE[request.q.qtype]))
            mode = owner.mode
            if str(request.q.qname).lower() in owner.failing:
                mode = "servfail"
            records = list(owner.records)
        if mode == "silent":
            # dnslib's handler logs a DNSError and sends nothing: the client times out.
            raise DNSError("silent mode: no answer")
        reply = request.reply()
        if mode in ("servfail", "refused"):
            reply.header.rcode = RCODE.SERVFAIL if mode == "servfail" else RCODE.REFUSED
            return reply
        qname: DNSLabel = request.q.qname
        qtype = request.q.qtype
        known = False
        for rr in records:
            if rr.rname == qname:
                known = True
                if rr.rtype == qtype or rr.rtype == QTYPE.CNAME:
                    reply.add_answer(rr)
        if not known:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


class _ClassicHandler(DNSHandler):  # type: ignore[misc]
    # Answers over 512 bytes are truncated on UDP, as a server without EDNS does, so the
    # client must retry over TCP (RSA-3072/4096 key records need it). dnslib's own
    # truncate() drops the question, which dnspython rightly rejects, so do it here.
    def get_reply(self, data: bytes) -> bytes:
        request = DNSRecord.parse(data)
        reply: DNSRecord = self.server.resolver.resolve(request, self)
        packed: bytes = reply.pack()
        if self.protocol == "udp" and len(packed) > 512:
            short = request.reply()
            short.header.tc = 1
            short.header.rcode = reply.header.rcode
            packed = short.pack()
        return packed


class ZoneServer:
    """A DNS server on 127.0.0.1, a free port, UDP and TCP, serving zone text."""

    def __init__(self, zone: str = "") -> None:
        self.lock = threading.Lock()
        self.mode: Mode = "answer"
        self.failing: set[str] = set()  # names (lower case, final dot) answered SERVFAIL
        self.records: list[RR] = []
        self.queries: list[tuple[str, str]] = []
        self.port = _free_port()
        resolver = _ZoneResolver(self)
        quiet = DNSLogger(log="-request,-reply,-truncated,-error", logf=lambda *_: None)
        self._servers = [
            DNSServer(
                resolver,
                address="127.0.0.1",
                port=self.port,
                logger=quiet,
                tcp=tcp,
                handler=_ClassicHandler,
            )
            for tcp in (False, True)
        ]
        if zone:
            self.load(zone)

    def load(self, zone: str) -> None:
        """Add the records of master-file text ``zone`` to what the server answers."""
        parsed = list(RR.fromZone(zone))
        with self.lock:
            self.records += parsed

    def clear(self) -> None:
        """Serve nothing (every name NXDOMAIN), answer again and forget the query log."""
        with self.lock:
            self.records = []
            self.queries = []
            self.mode = "answer"
            self.failing = set()

    def resolver(self, *, timeout: float = 2.0, clock: Clock | None = None) -> Resolver:
        """A production ``Resolver`` that asks this server."""
        return Resolver(nameservers=["127.0.0.1"], port=self.port, timeout=timeout, clock=clock)

    def start(self) -> ZoneServer:
        """Start answering (in daemon threads)."""
        for server in self._servers:
            server.start_thread()
        return self

    def stop(self) -> None:
        """Stop answering and close the sockets."""
        for server in self._servers:
            server.stop()
            server.server.server_close()


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free UDP+TCP port on 127.0.0.1")
