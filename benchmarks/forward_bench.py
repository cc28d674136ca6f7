"""Forwards per second through the whole pipeline, and sending-limit checks per second.

One forward of a 4 KB message signed by example.org: SPF through example.org's include
chain (DNS from a dnslib server on 127.0.0.1, answered from a warm cache), DKIM
verification, the pool decision, SRS, our RSA-2048 DKIM signature, and the sender's
limits counted in SQLite. The baseline, measured in the same run, is the same checks and
signature done by calling pyspf and dkimpy directly (no decision, no SRS, no limits).
The limit checks run against SQLite and a real redis-server on loopback, next to one bare
store round trip of each (an SQLite write transaction, a Redis INCR+EXPIRE).
Target: at least 500 forwards per second on one core.

    python -m benchmarks.forward_bench [--forwards N] [--rounds R]
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import dkim
import dns.resolver
import redis
import spf

from srsfwd.clock import SystemClock
from srsfwd.config import load_config
from srsfwd.dkim.keys import private_key_pem
from srsfwd.forward import Forwarder
from srsfwd.keystore import KeyStore
from srsfwd.limits import LimitPolicy, SendingLimits
from srsfwd.stores import open_store
from tests.dnsserver import ZoneServer
from tests.redis_server import redis_server

TARGET = 500
EXAMPLES = Path(__file__).parent.parent / "examples"
CLIENT, HELO, SENDER, RCPT = "198.51.100.25", "mail.example.org", "alice@example.org", "b@r.example"


def rate(function: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        function()
    return count / (time.perf_counter() - started)


def four_kb_message(example: Path) -> bytes:
    """A 4 KB message with a valid example.org signature, keyed from ``example``'s copy."""
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    head = (
        "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: report\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    store = KeyStore(example / "sender-keys")
    pem = private_key_pem(store.load("example.org", "mail2026"))
    message = (head + line * (3300 // len(line))).encode()
    signature = dkim.sign(
        message,
        b"mail2026",
        b"example.org",
        pem,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"],
    )
    return bytes(signature) + message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    work = Path(tempfile.mkdtemp(prefix="srsfwd-bench-"))
    example = work / "examples"
    shutil.copytree(EXAMPLES, example)
    # git keeps no file modes; srsfwd refuses keys and secrets that others can read.
    for key in example.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (example / "srs.secret").chmod(0o600)
    config_path = example / "srsfwd.toml"
    text = config_path.read_text().replace("arc = true", "arc = false")
    for name in ("external_per_hour", "internal_per_hour", "per_day", "per_message"):
        text = "\n".join(
            f"{name} = 0" if line.startswith(f"{name} =") else line for line in text.splitlines()
        )  # counted, never refused
    config_path.write_text(text)

    server = ZoneServer().start()
    server.load((EXAMPLES / "example.zone").read_text())
    try:
        resolver = server.resolver()
        forwarder = Forwarder.from_config(load_config(config_path), resolver=resolver)
        message = four_kb_message(example)

        def ours() -> None:
            result = forwarder.forward(
                message, client_ip=CLIENT, helo=HELO, mail_from=SENDER, rcpts=[RCPT]
            )
            assert result.forwarded
            assert result.srs

        ours()  # warm the DNS cache and the signer
        # The direct calls use dnspython's default resolver (pyspf's and dkimpy's), with a
        # cache, pointed at the same server.
        default = dns.resolver.get_default_resolver()
        default.nameservers, default.port = ["127.0.0.1"], server.port
        default.cache = dns.resolver.LRUCache()
        our_key = private_key_pem(KeyStore(example / "keys").load("fwd.example.net", "s2026"))

        def direct() -> None:
            result, _ = spf.check2(i=CLIENT, s=SENDER, h=HELO)
            assert result == "pass"
            assert dkim.verify(message)
            dkim.sign(message, b"s2026", b"fwd.example.net", our_key)

        direct()
        best: dict[str, float] = {}
        for _ in range(args.rounds):
            best["ours"] = max(best.get("ours", 0), rate(ours, args.forwards))
            best["direct"] = max(best.get("direct", 0), rate(direct, max(args.forwards // 5, 20)))
    finally:
        server.stop()

    print(f"Forwards per second, 4 KB message, best of {args.rounds} rounds (one core)")
    print("  srsfwd Forwarder.forward (SPF, DKIM verify, decision, SRS, RSA-2048 sign,")
    print(f"    limits in SQLite):                           {best['ours']:>8,.0f}/s")
    print(f"  pyspf + dkimpy verify + dkimpy sign, direct:   {best['direct']:>8,.0f}/s")
    ratio = best["ours"] / best["direct"]
    verdict = "ok" if best["ours"] >= TARGET else "MISSED"
    print(f"  ratio {ratio:.1f}x; target >= {TARGET}/s: {verdict}")

    print("Sending-limit checks per second (one sender, distinct recipients counts)")
    sqlite_store = open_store(str(work / "limits.sqlite"))
    db = sqlite3.connect(work / "bare.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE c (k TEXT PRIMARY KEY, v INTEGER)")
    db.execute("INSERT INTO c VALUES ('k', 0)")

    def bare_sqlite() -> None:
        db.execute("BEGIN IMMEDIATE")
        db.execute("UPDATE c SET v = v + 1 WHERE k = 'k'")
        db.execute("COMMIT")

    open_policy = LimitPolicy(external_per_hour=0, internal_per_hour=0, per_day=0, per_message=0)
    sqlite_limits = SendingLimits(sqlite_store, open_policy, clock=SystemClock())
    with redis_server(work) as running:
        redis_limits = SendingLimits(open_store(running.url, prefix="bench:"), open_policy)
        raw = redis.Redis.from_url(running.url)

        def bare_redis() -> None:
            pipe = raw.pipeline(transaction=True)
            pipe.incrby("bare", 1)
            pipe.expire("bare", 3600, nx=True)
            pipe.execute()

        figures = {
            "sqlite": rate(
                lambda: sqlite_limits.record(SENDER, internal=1, external=1), args.checks
            ),
            "sqlite-bare": rate(bare_sqlite, args.checks),
            "redis": rate(lambda: redis_limits.record(SENDER, internal=1, external=1), args.checks),
            "redis-bare": rate(bare_redis, args.checks),
        }
        raw.close()
    print(
        f"  SQLite: {figures['sqlite']:>8,.0f} checks/s   (one bare write transaction: "
        f"{figures['sqlite-bare']:,.0f}/s; a check is 1 read + 1 transaction of 3 counter updates)"
    )
    print(
        f"  Redis:  {figures['redis']:>8,.0f} checks/s   (one bare INCRBY+EXPIRE: "
        f"{figures['redis-bare']:,.0f}/s; a check is 1 GET + 1 MULTI of 3 of them)"
    )
    shutil.rmtree(work, ignore_errors=True)
    raise SystemExit(0 if best["ours"] >= TARGET else 1)


if __name__ == "__main__":
    main()
