"""ARC seals per second: srsfwd's ``ArcSealer`` next to dkimpy's ``arc_sign``, same run, one core.

First hop: a 4 KB message with this hop's Authentication-Results given by the caller
(``seal(..., results=...)``, as the forwarder and the milter call it), RSA-2048, the same
key, header list and ``t=`` on both sides; the bench first checks that the two ARC sets are
byte-identical. Second hop: sealing the first hop's output with another key, which includes
checking the chain that arrived; for srsfwd that check is dkimpy's ``arc_verify`` (DNS from
memory), so dkimpy's side is ``arc_verify`` + ``arc_sign``. Best of interleaved rounds.

    python -m benchmarks.arc_bench [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from importlib.metadata import version

import dkim

from benchmarks.dkim_bench import NOW, MemoryResolver, best_rate, make_message
from srsfwd.clock import FrozenClock
from srsfwd.dkim.arc import ArcSealer
from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import SigningKey, generate_key, key_record_text, private_key_pem
from srsfwd.dkim.sign import default_header_list


def results_for(authserv_id: str) -> Callable[[str], str]:
    """This hop's Authentication-Results, as the forwarder's ``results`` callback writes it."""

    def results(cv: str) -> str:
        return (
            f"Authentication-Results: {authserv_id};\r\n"
            "\tspf=pass smtp.mailfrom=example.com;\r\n"
            f"\tdkim=none; arc={cv}"
        )

    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per timed run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"dkimpy {version('dkimpy')}, best of {args.rounds} x {args.seconds}s per side")

    hops = [
        SigningKey("fwd1.example", "arc", generate_key("rsa-2048")),
        SigningKey("fwd2.example", "arc", generate_key("rsa-2048")),
    ]
    records = {f"{k.selector}._domainkey.{k.domain}": key_record_text(k.key).encode() for k in hops}
    resolver = MemoryResolver(records)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name.decode().rstrip("."))

    sealers = [ArcSealer(k, k.domain, resolver, clock=FrozenClock(NOW)) for k in hops]
    results = [results_for(k.domain) for k in hops]
    message = make_message(4096)
    names = default_header_list(parse_message(message).headers)
    pems = [private_key_pem(k.key) for k in hops]

    def ours(hop: int, data: bytes) -> bytes:
        return sealers[hop].seal(data, results=results[hop]).message

    def theirs(hop: int, data: bytes, cv: str) -> bytes:
        header = (results[hop](cv) + "\r\n").encode()
        arc_set = dkim.arc_sign(
            header + data,
            hops[hop].selector.encode(),
            hops[hop].domain.encode(),
            pems[hop],
            hops[hop].domain.encode(),
            include_headers=names,
            timestamp=NOW,
        )
        return b"".join(arc_set) + header + data

    def theirs_second(data: bytes) -> bytes:
        cv, _, _ = dkim.arc_verify(data, dnsfunc=dnsfunc)
        return theirs(1, data, cv.decode())

    one = ours(0, message)
    assert one == theirs(0, message, "none"), "srsfwd and dkimpy disagree (first hop)"
    two = ours(1, one)
    assert two == theirs_second(one), "srsfwd and dkimpy disagree (second hop)"
    assert dkim.arc_verify(two, dnsfunc=dnsfunc)[0] == b"pass"

    rates = best_rate(
        {
            "srsfwd first": lambda: ours(0, message),
            "dkimpy first": lambda: theirs(0, message, "none"),
            "srsfwd second": lambda: ours(1, one),
            "dkimpy second": lambda: theirs_second(one),
        },
        args.seconds,
        args.rounds,
    )
    for hop in ("first", "second"):
        mine, other = rates[f"srsfwd {hop}"], rates[f"dkimpy {hop}"]
        ratio = mine / other
        print(
            f"rsa-2048 4 KB {hop:6} hop seal  srsfwd {mine:7.0f}/s  dkimpy {other:7.0f}/s"
            f"  ratio {ratio:5.1f}x"
        )


if __name__ == "__main__":
    main()
