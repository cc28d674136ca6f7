"""Peak memory of forwarding a 50 MB message, as a multiple of its size, next to dkimpy.

``Forwarder.forward`` takes a 50 MB message signed by example.org (a base64 attachment,
CRLF lines, the example configuration, DNS from a dnslib server on 127.0.0.1): SPF, DKIM
verification, the decision, SRS and our RSA-2048 signature, with ARC off and then on.
Python's own allocations are traced (``tracemalloc``); the message itself, made before
tracing starts, is not counted, so "peak/size" is what forwarding adds on top of it. The
baseline in the same run is dkimpy signing the same message (``dkim.sign``).
Target: a forward adds less than 3x the message's size.

    python -m benchmarks.large_message_bench [--megabytes N]
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import shutil
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable
from pathlib import Path

import dkim

from benchmarks.forward_bench import CLIENT, EXAMPLES, HELO, RCPT, SENDER
from srsfwd.config import load_config
from srsfwd.dkim.keys import private_key_pem
from srsfwd.forward import Forwarder
from srsfwd.keystore import KeyStore
from tests.dnsserver import ZoneServer

TARGET = 3.0


def large_message(example: Path, size: int) -> bytes:
    """A message of about ``size`` bytes with a base64 attachment, signed by example.org."""
    head = (
        b"From: Alice <alice@example.org>\r\nTo: bob@example.net\r\nSubject: photos\r\n"
        b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <large@example.org>\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nThe photos.\r\n\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    payload = random.Random(size).randbytes(size * 3 // 4)
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    message = head + encoded + b"--b--\r\n"
    pem = private_key_pem(KeyStore(example / "sender-keys").load("example.org", "mail2026"))
    include = [b"from", b"to", b"subject", b"date", b"message-id"]
    signature = dkim.sign(message, b"mail2026", b"example.org", pem, include_headers=include)
    return bytes(signature) + message


def traced_peak(work: Callable[[], object]) -> tuple[int, float]:
    """Peak bytes ``work`` allocates on top of what exists when it starts, and seconds."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        work()
        taken = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return peak, taken


def forwarder_for(example: Path, resolver: object, *, arc: bool) -> Forwarder:
    config_path = example / "srsfwd.toml"
    text = (EXAMPLES / "srsfwd.toml").read_text()
    config_path.write_text(text.replace("arc = true", f"arc = {str(arc).lower()}"))
    return Forwarder.from_config(load_config(config_path), resolver=resolver)  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=50)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    work = Path(tempfile.mkdtemp(prefix="srsfwd-large-"))
    example = work / "examples"
    shutil.copytree(EXAMPLES, example)
    for key in example.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (example / "srs.secret").chmod(0o600)
    server = ZoneServer().start()
    server.load((EXAMPLES / "example.zone").read_text())
    try:
        message = large_message(example, args.megabytes << 20)
        size = len(message)
        print(f"message: {size / 2**20:.1f} MiB; extra memory at the peak, as a multiple of it")
        our_key = private_key_pem(KeyStore(example / "keys").load("fwd.example.net", "s2026"))
        failed = False
        for arc in (False, True):
            forwarder = forwarder_for(example, server.resolver(), arc=arc)

            def forward(forwarder: Forwarder = forwarder) -> None:
                result = forwarder.forward(
                    message, client_ip=CLIENT, helo=HELO, mail_from=SENDER, rcpts=[RCPT]
                )
                assert result.forwarded, result
                assert result.message is not None
                assert len(result.message) > size

            peak, taken = traced_peak(forward)
            ratio = peak / size
            failed |= ratio >= TARGET
            verdict = "ok" if ratio < TARGET else "OVER TARGET"
            print(
                f"  srsfwd forward, sign, ARC {'on ' if arc else 'off'}: peak {ratio:4.2f}x"
                f"  ({taken:.2f}s)  target < {TARGET:.0f}x {verdict}"
            )
        peak, taken = traced_peak(lambda: dkim.sign(message, b"s2026", b"fwd.example.net", our_key))
        print(f"  dkimpy dkim.sign alone:        peak {peak / size:4.2f}x  ({taken:.2f}s)")
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
