"""Messages per second through Postfix with the srsfwd milter, next to Postfix + OpenDKIM.

One private Postfix (loopback, its own configuration directory) with one smtpd listener
per milter, measured in the same run on the same 4 KB message (signed by example.org):

* ``postfix-alone``: no milter at all: the ceiling, the most any milter can reach on this
  machine with this client;
* ``srsfwd``: ``srsfwd serve``'s milter doing the whole job: SPF, DKIM verification,
  the pool decision, the sending limits (counted in SQLite, never refusing), SRS, our
  DKIM signature and an ARC set (three RSA-2048 signatures);
* ``srsfwd-no-arc``: like for like with OpenDKIM as far as srsfwd goes: no ARC, one
  RSA-2048 DKIM signature; it still checks SPF, verifies the arriving DKIM signature,
  decides the pool, counts the limits in SQLite, rewrites the sender (SRS) and writes
  Authentication-Results, none of which OpenDKIM does here;
* ``opendkim``: Debian's ``opendkim`` as the milter, signing only (RSA-2048).

Clients present themselves with XCLIENT as the example's outside host, so SPF passes as
it would on the Internet; every message has its own sender. Postfix discards what it
accepts (``default_transport`` and ``relay_transport`` are ``discard``), so the figure is
what the SMTP server accepts per second with the milter in the loop; the queue is
drained between phases.
``--connections`` SMTP sessions send at once. Target: srsfwd at least twice as fast as
Postfix + OpenDKIM; when Postfix alone is not, no milter can be, and the output says so.
Each ratio is also given per round (the rows of one round ran one after the other),
least to most, with the load average before and after. The CPU is shared with the
clients and Postfix, so each round also prints the milter process's CPU time per
message (``/proc``), which other jobs on the machine disturb less than the rate.
``--before DIR`` adds the milter of another srsfwd checkout (``git archive main | tar -x
-C DIR``), ARC on and off, measured in the same rounds; ``--workers W`` sets ``milter-workers``
for this checkout's milters.

    python -m benchmarks.milter_bench [--messages N] [--connections C] [--rounds R]
        [--before DIR] [--workers W]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import dkim

from srsfwd.dkim.keys import private_key_pem
from srsfwd.keystore import KeyStore
from tests.integration.postfix import Postfix, private_postfix, world_readable_tempdir
from tests.ports import free_port
from tests.serving import serve_process

EXAMPLES = Path(__file__).parent.parent / "examples"
CLIENT = "ADDR=198.51.100.25 NAME=mail.example.org HELO=mail.example.org"
RCPT = "bob@receiver.example"
TARGET = 2.0  # srsfwd / opendkim
CEILING = "postfix-alone"

#: The srsfwd milters measured, each with ARC on or off.
SRSFWD_MILTERS = {
    "srsfwd": True,
    "srsfwd-no-arc": False,
    "srsfwd-before": True,
    "srsfwd-before-no-arc": False,
}


def four_kb_message(work: Path) -> bytes:
    """A 4 KB message from alice@example.org with a valid example.org signature."""
    keys = work / "sender-keys"
    shutil.copytree(EXAMPLES / "sender-keys", keys)
    for key in keys.glob("*/*.key"):
        key.chmod(0o600)
    line = "The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    head = (
        "From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: report\r\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <bench@example.org>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    message = (head + line * (3300 // len(line))).encode()
    pem = private_key_pem(KeyStore(keys).load("example.org", "mail2026"))
    headers = [b"from", b"to", b"subject", b"date", b"message-id"]
    signature = dkim.sign(message, b"mail2026", b"example.org", pem, include_headers=headers)
    return bytes(signature) + message


def wait_for_port(port: int, timeout: float = 15) -> None:
    wait_for(f"inet:127.0.0.1:{port}", timeout)


def wait_for(address: str, timeout: float = 15) -> None:
    """Wait until something listens on ``address`` (``inet:HOST:PORT`` or ``unix:PATH``)."""
    kind, _, where = address.partition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if kind == "unix":
                with socket.socket(socket.AF_UNIX) as unix:
                    unix.connect(where)
            else:
                host, _, port = where.rpartition(":")
                socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {address}")


def milter_address(work: Path, name: str, kind: str) -> str:
    """Where milter ``name`` listens, as Postfix's ``smtpd_milters`` writes it."""
    if kind == "unix":
        return f"unix:{work}/{name}.milter"
    return f"inet:127.0.0.1:{free_port()}"


def srsfwd_config(
    work: Path, name: str, address: str, *, arc: bool, workers: int | None = None
) -> Path:
    """A copy of the example configuration: milter on ``address``, limits counted only;
    ``workers`` sets ``milter-workers`` (the default otherwise)."""
    copy = work / name
    shutil.copytree(EXAMPLES, copy)
    for key in copy.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (copy / "srs.secret").chmod(0o600)
    config = copy / "srsfwd.toml"
    text = config.read_text().replace('state_dir = "../state"', 'state_dir = "state"')
    if not arc:
        text = text.replace("arc = true", "arc = false")
    for limit in ("external_per_hour", "internal_per_hour", "per_day", "per_message"):
        text = "\n".join(
            f"{limit} = 0" if line.startswith(f"{limit} =") else line for line in text.splitlines()
        )
    serve = f'[serve]\nsocketmap = []\nmilter = ["{address}"]\nlog-level = "warning"\n'
    if workers is not None:
        serve += f"milter-workers = {workers}\n"
    config.write_text(text[: text.index("[serve]")] + serve)
    return config


@contextmanager
def opendkim(address: str) -> Iterator[int]:
    """Debian's opendkim signing every message (d=example.org, RSA-2048) on ``address``
    (``inet:127.0.0.1:PORT`` or ``unix:PATH``, as Postfix writes it).

    Its files live outside /tmp: opendkim refuses files under a world-writable directory.
    """
    work = Path(tempfile.mkdtemp(prefix="srsfwd-opendkim-", dir=Path.home()))
    key = work / "opendkim.key"
    shutil.copy(EXAMPLES / "keys" / "fwd.example.net" / "s2026.key", key)
    key.chmod(0o600)
    conf = work / "opendkim.conf"
    conf.write_text(
        f"Syslog no\nMode s\nSocket {opendkim_socket(address)}\nDomain example.org\n"
        f"Selector s2026\nKeyFile {key}\nCanonicalization relaxed/simple\n"
        "SignatureAlgorithm rsa-sha256\nInternalHosts 0.0.0.0/0\nBackground no\n"
        f"PidFile {work}/opendkim.pid\nUMask 000\n"
    )
    process = subprocess.Popen(["/usr/sbin/opendkim", "-f", "-x", str(conf)])
    try:
        wait_for(address)
        yield process.pid
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def opendkim_socket(address: str) -> str:
    """Postfix's ``inet:HOST:PORT`` or ``unix:PATH`` as opendkim.conf writes it."""
    kind, _, where = address.partition(":")
    if kind == "unix":
        return f"local:{where}"
    host, _, port = where.rpartition(":")
    return f"inet:{port}@{host}"


def send(port: int, message: bytes, senders: list[str]) -> int:
    """One SMTP session sending ``message`` once per sender; the count accepted."""
    accepted = 0
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
        smtp.ehlo("bench.client")
        code, text = smtp.docmd("XCLIENT", CLIENT)
        if code != 220:
            raise SystemExit(f"XCLIENT refused: {code} {text!r}")
        smtp.ehlo("mail.example.org")
        for sender in senders:
            smtp.sendmail(sender, [RCPT], message)
            accepted += 1
    return accepted


def drain(postfix: Postfix) -> None:
    """Wait until Postfix's queue is empty."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        shown = subprocess.run(
            ["postqueue", "-c", str(postfix.root / "etc"), "-p"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if "empty" in shown:
            return
        time.sleep(0.2)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: int, message: bytes, count: int, connections: int, tag: str) -> float:
    """Messages accepted per second on ``port`` (``count`` over ``connections`` sessions)."""
    share = [
        [f"{tag}-{c}-{n}@example.org" for n in range(count // connections)]
        for c in range(connections)
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(connections) as pool:
        done = sum(pool.map(lambda senders: send(port, message, senders), share))
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--before", type=Path, help="another srsfwd checkout to measure too")
    parser.add_argument("--workers", type=int, help="milter-workers of this checkout's milters")
    parser.add_argument(
        "--socket",
        choices=("inet", "unix"),
        default="inet",
        help="the milters' sockets: TCP on loopback, or unix sockets as in production",
    )
    args = parser.parse_args()
    # Stopped early: still stop Postfix, the milters and remove the files.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))

    work = world_readable_tempdir("srsfwd-milter-bench-")
    names = ["srsfwd", "srsfwd-no-arc", "opendkim"]
    if args.before is not None:
        names += ["srsfwd-before", "srsfwd-before-no-arc"]
    milters: dict[str, str | None] = {CEILING: None}
    milters |= {name: milter_address(work, name, args.socket) for name in names}
    listeners = {name: free_port() for name in milters}
    services = [
        f"127.0.0.1:{listeners[name]} inet n - n - - smtpd"
        + ("" if address is None else f" -o smtpd_milters={address}")
        for name, address in milters.items()
    ]
    main_cf = {
        "default_transport": "discard:benchmark",
        "relay_transport": "discard:benchmark",
        "relay_domains": "receiver.example",
        "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        "milter_default_action": "tempfail",
        "smtpd_client_connection_count_limit": "0",
    }
    message = four_kb_message(work)
    pids: dict[str, int] = {}
    sent = args.messages // args.connections * args.connections
    rates: dict[str, list[float]] = {name: [] for name in milters}
    cpu: dict[str, list[float]] = {name: [] for name in milters}
    load_before = os.getloadavg()
    try:
        with ExitStack() as stack:
            for name, arc in SRSFWD_MILTERS.items():
                address = milters.get(name)
                if address is None:
                    continue
                checkout = args.before if name.startswith("srsfwd-before") else None
                workers = args.workers if checkout is None else None
                config = srsfwd_config(work, name, address, arc=arc, workers=workers)
                process, _ = stack.enter_context(
                    serve_process("--config", str(config), tmp=work / name, checkout=checkout)
                )
                pids[name] = process.pid
            opendkim_address = milters["opendkim"]
            assert opendkim_address is not None
            pids["opendkim"] = stack.enter_context(opendkim(opendkim_address))
            postfix = stack.enter_context(
                private_postfix(relay_port=free_port(), maps=main_cf, services=services)
            )
            for name in milters:
                wait_for_port(listeners[name])
                # Warm up with as many sessions as the rounds: a worker builds its forwarder
                # (keys, limits store) on its first message, not in a measured round.
                warm = 5 * args.connections
                measure(listeners[name], message, warm, args.connections, f"warm{name}")
            drain(postfix)
            for round_ in range(args.rounds):
                for name in milters:
                    pid = pids.get(name)
                    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
                    rate = measure(
                        listeners[name],
                        message,
                        args.messages,
                        args.connections,
                        f"r{round_}{name}",
                    )
                    shown = "no milter"
                    if pid is not None:
                        cpu[name].append((cpu_seconds(pid) - cpu_before) * 1000 / sent)
                        shown = f"milter CPU {cpu[name][-1]:5.2f} ms/message"
                    drain(postfix)
                    rates[name].append(rate)
                    print(f"round {round_ + 1}: {name:20} {rate:7.1f} messages/s, {shown}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(rates, cpu, args, len(message), (load_before, os.getloadavg()))


def report(
    rates: dict[str, list[float]],
    cpu: dict[str, list[float]],
    args: argparse.Namespace,
    size: int,
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
) -> None:
    """The best of the rounds, each ratio (best and per round) and the verdicts."""
    best = {name: max(each) for name, each in rates.items()}
    print(
        f"\nbest of {args.rounds}, {args.messages} messages of {size} bytes over"
        f" {args.connections} connections, milters on {args.socket} sockets;"
        f" load average {loads[0][0]:.2f} before, {loads[1][0]:.2f} after:"
    )
    for name, rate in best.items():
        spread = f"rounds {min(rates[name]):.1f} to {max(rates[name]):.1f}"
        shown = f"milter CPU {min(cpu[name]):5.2f} ms/message (least)" if cpu[name] else "no milter"
        print(f"  Postfix + {name:20} {rate:7.1f} messages/s ({spread}), {shown}")

    def ratio(name: str, peer: str) -> str:
        each = sorted(a / b for a, b in zip(rates[name], rates[peer], strict=True))
        return (
            f"{best[name] / best[peer]:.2f} (best of each; per round {each[0]:.2f} to"
            f" {each[-1]:.2f})"
        )

    ceiling = best[CEILING] / best["opendkim"]
    print(f"  {CEILING} / opendkim = {ratio(CEILING, 'opendkim')}: the ceiling of any milter")
    for name in SRSFWD_MILTERS:
        if name not in best:
            continue
        verdict = "meets" if best[name] / best["opendkim"] >= TARGET else "misses"
        print(
            f"  {name} / opendkim = {ratio(name, 'opendkim')}, {verdict} the target of"
            f" {TARGET}; {name} / {CEILING} = {ratio(name, CEILING)}"
        )
    for name, before in (("srsfwd", "srsfwd-before"), ("srsfwd-no-arc", "srsfwd-before-no-arc")):
        if before in best:
            each = sorted(a / b for a, b in zip(cpu[name], cpu[before], strict=True))
            print(
                f"  {name} / {before} = {ratio(name, before)}; milter CPU a message"
                f" {min(cpu[name]) / min(cpu[before]):.2f}x (least of each; per round"
                f" {each[0]:.2f}x to {each[-1]:.2f}x)"
            )
    if ceiling < TARGET:
        print(
            f"  Postfix with no milter at all is {ceiling:.2f}x Postfix + OpenDKIM, below"
            f" {TARGET}x: on this machine, with this client, no milter can reach the target."
        )


if __name__ == "__main__":
    main()
