"""Forwards per second through the whole pipeline, and sending-limit checks per second.

One forward of a 4 KB message signed by example.org: SPF through example.org's include
chain (DNS from a dnslib server on 127.0.0.1, answered from a warm cache), DKIM
verification, the pool decision, SRS, our RSA-2048 DKIM signature, and the sender's
limits counted in SQLite; then the same with ``[forward] arc = true`` (an ARC set sealed
with RSA-2048 as well). The baseline, measured in the same run, is the same checks and
signature done by calling pyspf and dkimpy directly (no decision, no SRS, no limits), and
for ARC on the same plus dkimpy's ``arc_sign``. The same sender on every message is
recalled from the SPF outcome cache after the first; a row with a new sender each message
shows the forward with SPF evaluated every time. The limit checks run against SQLite and a
real redis-server on loopback, next to one bare store round trip of each (an SQLite write
transaction, a Redis INCR+EXPIRE). Targets: 2,500 forwards per second, ARC off.

``--before DIR`` also times the forwarder of another checkout of srsfwd (for example
``git archive main | tar -x -C DIR``) in the same run, interleaved round by round, so a
change is shown next to the code it changes, with the range of the per-round ratios and
the load average.

    python -m benchmarks.forward_bench [--forwards N] [--rounds R] [--before DIR]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
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

TARGET = 2500
EXAMPLES = Path(__file__).parent.parent / "examples"
CLIENT, HELO, SENDER, RCPT = "198.51.100.25", "mail.example.org", "alice@example.org", "b@r.example"


def rate(function: Callable[[], object], count: int) -> float:
    """Calls per second of this process's CPU time (the DNS server's thread included):
    on a machine other jobs share, CPU time moves far less than the wall clock."""
    started = time.process_time()
    for _ in range(count):
        function()
    return count / (time.process_time() - started)


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


#: Run in a subprocess inside another checkout (``--before``): times its forwarder on the
#: same config, message and zone, and prints forwards per second.
_BEFORE_SCRIPT = """
import sys, time, warnings
from pathlib import Path
warnings.simplefilter("ignore")
from srsfwd.config import load_config
from srsfwd.forward import Forwarder
from tests.dnsserver import ZoneServer
config, zone, count = sys.argv[1], sys.argv[3], int(sys.argv[4])
message = Path(sys.argv[2]).read_bytes()
client_ip, helo, mail_from, rcpt = sys.argv[5:9]
server = ZoneServer().start()
server.load(Path(zone).read_text())
forwarder = Forwarder.from_config(load_config(Path(config)), resolver=server.resolver())
def once():
    result = forwarder.forward(
        message, client_ip=client_ip, helo=helo, mail_from=mail_from, rcpts=[rcpt]
    )
    assert result.forwarded and result.srs, result
once()
started = time.process_time()
for _ in range(count):
    once()
print(count / (time.process_time() - started))
server.stop()
"""


def before_rate(checkout: Path, config: Path, message: Path, count: int) -> float:
    """Forwards per second of the forwarder in ``checkout`` (its own process and imports)."""
    zone = EXAMPLES / "example.zone"
    argv = [sys.executable, "-c", _BEFORE_SCRIPT, str(config), str(message), str(zone)]
    done = subprocess.run(
        [*argv, str(count), CLIENT, HELO, SENDER, RCPT],
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.split()[-1])


def write_config(example: Path, *, arc: bool) -> Path:
    """The example config with ARC on or off and limits that count but never refuse."""
    text = (example / "srsfwd.toml").read_text().replace("arc = true", f"arc = {str(arc).lower()}")
    for name in ("external_per_hour", "internal_per_hour", "per_day", "per_message"):
        text = "\n".join(
            f"{name} = 0" if line.startswith(f"{name} =") else line for line in text.splitlines()
        )  # counted, never refused
    path = example / f"srsfwd-arc-{'on' if arc else 'off'}.toml"
    path.write_text(text)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forwards", type=int, default=1000)
    parser.add_argument("--checks", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another srsfwd checkout to time as well")
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    work = Path(tempfile.mkdtemp(prefix="srsfwd-bench-"))
    example = work / "examples"
    shutil.copytree(EXAMPLES, example)
    # git keeps no file modes; srsfwd refuses keys and secrets that others can read.
    for key in example.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (example / "srs.secret").chmod(0o600)
    configs = {arc: write_config(example, arc=arc) for arc in (False, True)}

    server = ZoneServer().start()
    server.load((EXAMPLES / "example.zone").read_text())
    try:
        resolver = server.resolver()
        forwarders = {
            arc: Forwarder.from_config(load_config(path), resolver=resolver)
            for arc, path in configs.items()
        }
        message = four_kb_message(example)
        message_path = work / "message.eml"
        message_path.write_bytes(message)

        def ours(arc: bool) -> Callable[[], None]:
            forwarder = forwarders[arc]

            def once() -> None:
                result = forwarder.forward(
                    message, client_ip=CLIENT, helo=HELO, mail_from=SENDER, rcpts=[RCPT]
                )
                assert result.forwarded
                assert result.srs

            once()  # warm the DNS cache and the signer
            return once

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

        def direct_arc() -> None:
            result, _ = spf.check2(i=CLIENT, s=SENDER, h=HELO)
            assert result == "pass"
            assert dkim.verify(message)
            signed = dkim.sign(message, b"s2026", b"fwd.example.net", our_key) + message
            results = b"Authentication-Results: fwd.example.net; spf=pass; dkim=pass\r\n"
            dkim.arc_sign(
                results + signed, b"s2026", b"fwd.example.net", our_key, b"fwd.example.net"
            )

        senders = (f"user{n}@example.org" for n in itertools.count())

        def ours_new_sender() -> None:
            # A sender not seen before: SPF evaluated (DNS answers cached), not recalled.
            result = forwarders[False].forward(
                message, client_ip=CLIENT, helo=HELO, mail_from=next(senders), rcpts=[RCPT]
            )
            assert result.forwarded

        timed: dict[str, Callable[[], None]] = {
            "ours": ours(False),
            "ours-new-sender": ours_new_sender,
            "ours-arc": ours(True),
            "direct": direct,
            "direct-arc": direct_arc,
        }
        for function in timed.values():
            function()
        rounds: dict[str, list[float]] = {}
        load_before = os.getloadavg()[0]
        for _ in range(args.rounds):
            for name, function in timed.items():
                count = args.forwards if name.startswith("ours") else max(args.forwards // 5, 20)
                rounds.setdefault(name, []).append(rate(function, count))
            if args.before is not None:
                for arc, path in configs.items():
                    name = "before-arc" if arc else "before"
                    measured = before_rate(args.before, path, message_path, args.forwards)
                    rounds.setdefault(name, []).append(measured)
        load_after = os.getloadavg()[0]
    finally:
        server.stop()
    best = {name: max(rates) for name, rates in rounds.items()}

    print(f"Forwards per CPU second, 4 KB message, best of {args.rounds} interleaved rounds")
    print(f"  (load average {load_before:.1f} at the start, {load_after:.1f} at the end)")
    print("  srsfwd Forwarder.forward (SPF, DKIM verify, decision, SRS, RSA-2048 sign,")
    print("    limits in SQLite)")
    for arc in (False, True):
        suffix = "-arc" if arc else ""
        label = "ARC on " if arc else "ARC off"
        line = f"    {label}: {best['ours' + suffix]:>8,.0f}/s"
        if "before" + suffix in best:
            before = best["before" + suffix]
            line += f"   before (--before, same run): {before:,.0f}/s"
            line += f" ({best['ours' + suffix] / before:.2f}x"
            pairs = zip(rounds["ours" + suffix], rounds["before" + suffix], strict=True)
            ratios = [mine / theirs for mine, theirs in pairs]
            line += f"; per round {min(ratios):.2f}x to {max(ratios):.2f}x,"
            line += f" median {statistics.median(ratios):.2f}x)"
        line += f"   pyspf + dkimpy direct: {best['direct' + suffix]:,.0f}/s"
        line += f" ({best['ours' + suffix] / best['direct' + suffix]:.1f}x)"
        print(line)
    line = f"    ARC off, a new sender each message: {best['ours-new-sender']:,.0f}/s"
    if "before" in best:
        line += f" ({best['ours-new-sender'] / best['before']:.2f}x before's ARC off)"
    print(line)
    verdict = "ok" if best["ours"] >= TARGET else "MISSED"
    print(f"  target >= {TARGET:,}/s with ARC off: {verdict}")

    print("Sending-limit checks per CPU second (one sender, distinct recipients counts)")
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
        f"{figures['sqlite-bare']:,.0f}/s; a check is 1 read + 1 UPSERT of 3 counters)"
    )
    print(
        f"  Redis:  {figures['redis']:>8,.0f} checks/s   (one bare INCRBY+EXPIRE: "
        f"{figures['redis-bare']:,.0f}/s; a check is 1 GET + 1 MULTI of 3 of them)"
    )
    shutil.rmtree(work, ignore_errors=True)
    raise SystemExit(0 if best["ours"] >= TARGET else 1)


if __name__ == "__main__":
    main()
