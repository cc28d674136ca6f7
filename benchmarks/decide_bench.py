"""Pool decisions per second, next to the same SPF + DKIM checks by pyspf and dkimpy directly.

A 4 KB message with two DKIM signatures (RSA-2048 and Ed25519, both d=sender.example) from
a client that passes SPF through an include chain. DNS is a dnslib server on 127.0.0.1,
answered from a warm cache on both sides: srsfwd's Resolver cache for srsfwd, a dnspython
LRUCache on the default resolver (which pyspf and dkimpy use) for the direct calls. Each
side runs interleaved rounds and keeps its best.
Target: at least 1,000 decisions per second, and no slower than the direct calls.

    python -m benchmarks.decide_bench [--decisions N] [--rounds R]
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable

import dkim
import dns.resolver
import spf

from srsfwd.address import DomainSet
from srsfwd.dkim.keys import SigningKey, generate_key, key_record_text, zone_line
from srsfwd.dkim.sign import DkimSigner
from srsfwd.facts import Envelope, FactGatherer
from srsfwd.pool import Policy, Pool, decide
from tests.dnsserver import ZoneServer

TARGET = 1000
ZONE = """
$TTL 3600
sender.example.        IN A    203.0.113.1
sender.example.        IN MX   10 mx.sender.example.
sender.example.        IN TXT  "v=spf1 include:_spf.sender.example -all"
_spf.sender.example.   IN TXT  "v=spf1 a:out.sender.example include:_net.sender.example ~all"
_net.sender.example.   IN TXT  "v=spf1 ip4:198.51.100.0/24 ip4:192.0.2.0/24 -all"
out.sender.example.    IN A    203.0.113.9
"""
CLIENT, HELO, SENDER = "192.0.2.10", "mx.sender.example", "alice@sender.example"


def make_message(signer: DkimSigner) -> bytes:
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * (2900 // len(line))  # about 4 KB with the header and both signatures
    head = (
        "From: Alice <alice@sender.example>\r\nTo: bob@fwd.example\r\nSubject: report\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <b1@sender.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    return signer.sign((head + body).encode())


def rate(function: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        function()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    rsa, ed = generate_key("rsa-2048"), generate_key("ed25519")
    server = ZoneServer(
        ZONE
        + zone_line("rsa", "sender.example", key_record_text(rsa))
        + zone_line("ed", "sender.example", key_record_text(ed))
    ).start()
    try:
        signer = DkimSigner(
            [SigningKey("sender.example", "rsa", rsa), SigningKey("sender.example", "ed", ed)]
        )
        message = make_message(signer)

        gatherer = FactGatherer(server.resolver(), accepted=DomainSet(["fwd.example"]))
        policy = Policy(accepted=DomainSet(["fwd.example"]))
        envelope = Envelope(CLIENT, HELO, SENDER, ("bob@gmail.example",))

        def ours() -> object:
            return decide(gatherer.gather(message, envelope), policy)

        direct_resolver = dns.resolver.Resolver(configure=False)
        direct_resolver.nameservers = ["127.0.0.1"]
        direct_resolver.port = server.port
        direct_resolver.cache = dns.resolver.LRUCache()
        dns.resolver.default_resolver = direct_resolver

        def theirs() -> object:
            result = spf.check2(i=CLIENT, s=SENDER, h=HELO)
            checker = dkim.DKIM(message)
            return result, checker.verify(idx=0), checker.verify(idx=1)

        warnings.simplefilter("ignore", DeprecationWarning)  # pyspf's dns.resolver.query
        first = ours()
        assert getattr(first, "pool", None) is Pool.NORMAL, first
        direct = theirs()
        assert direct == (("pass", "sender SPF authorized"), True, True), direct
        assert [d.result for d in gatherer.gather(message, envelope).dkim] == ["pass", "pass"]

        best_ours = best_theirs = 0.0
        for _ in range(args.rounds):
            best_ours = max(best_ours, rate(ours, args.decisions))
            best_theirs = max(best_theirs, rate(theirs, args.decisions))
    finally:
        server.stop()

    print(f"message: {len(message)} bytes, 2 DKIM signatures (RSA-2048, Ed25519), SPF include")
    print(f"srsfwd decide (gather + decide):  {best_ours:10,.0f} decisions/s")
    print(f"pyspf + dkimpy called directly:   {best_theirs:10,.0f} checks/s")
    print(f"ratio: {best_ours / best_theirs:.2f}x   target: >= {TARGET:,}/s and >= 1.00x")
    ok = best_ours >= TARGET and best_ours >= best_theirs
    print("target met" if ok else "TARGET MISSED")


if __name__ == "__main__":
    main()
