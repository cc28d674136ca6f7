"""Whether an RSA-2048 signature in ``cryptography`` lets other Python threads run.

The milter signs in worker threads; if the signature holds the GIL, a second thread cannot
sign (or run the event loop) at the same time on a second core. The check does not time
the machine (a loaded machine only blurs a rate): with the switch interval set to 3 s, a
thread that holds the GIL keeps it for 3 s, so five 10 ms sleeps of the main thread (each
gives the GIL up and needs it back) take about 15 s beside a thread looping in Python,
and about 50 ms beside one that releases the GIL in each call. A thread looping over
``hashlib.sha256`` (which releases it) and one looping in Python (which cannot) are the
two references.

    python -m benchmarks.gil_check
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable

import cryptography
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

HELD_FOR = 3.0  # seconds: the switch interval while checking


def seconds_beside(work: Callable[[], object]) -> float:
    """How long five 10 ms sleeps of this thread take while another runs ``work`` in a loop."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            work()

    other = threading.Thread(target=loop)
    other.start()
    started = time.perf_counter()
    for _ in range(5):
        time.sleep(0.01)
    took = time.perf_counter() - started
    stop.set()
    other.join()
    return took


def main() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    checks: dict[str, Callable[[], object]] = {
        "hashlib.sha256 of 1 MB (releases the GIL)": lambda: hashlib.sha256(bytes(1 << 20)),
        "a Python loop (holds the GIL)": lambda: sum(range(20_000)),
        f"cryptography {cryptography.__version__} RSA-2048 sign": lambda: key.sign(
            b"digest", padding.PKCS1v15(), hashes.SHA256()
        ),
    }
    interval = sys.getswitchinterval()
    sys.setswitchinterval(HELD_FOR)
    try:
        for name, work in checks.items():
            took = seconds_beside(work)
            verdict = "held" if took > HELD_FOR / 2 else "released"
            print(f"{name}: five 10 ms sleeps beside it took {took:.2f} s: GIL {verdict}")
    finally:
        sys.setswitchinterval(interval)


if __name__ == "__main__":
    main()
