"""Fact gathering on garbage: an AddressError or facts that decide() takes, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from srsfwd.address import DomainSet
from srsfwd.dns.resolver import Resolver
from srsfwd.errors import AddressError
from srsfwd.facts import Envelope, FactGatherer
from srsfwd.pool import Action, Policy, decide

ZONE = """
$TTL 300
sender.example.  IN A   203.0.113.1
sender.example.  IN TXT "v=spf1 ip4:192.0.2.0/24 -all"
"""

with tempfile.TemporaryDirectory() as _folder:
    _path = Path(_folder) / "z.zone"
    _path.write_text(ZONE)
    RESOLVER = Resolver.from_zone_file(_path)

GATHERER = FactGatherer(
    RESOLVER,
    accepted=DomainSet(["fwd.example"]),
    trusted_relays=["10.0.0.0/8"],
    trusted_authserv_ids=["gw.example"],
)
POLICY = Policy(accepted=DomainSet(["fwd.example"]))

_addresses = st.one_of(
    st.just("alice@sender.example"),
    st.just(""),
    st.just("<>"),
    st.text(max_size=40),
    st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}\.example", fullmatch=True),
)
_ips = st.one_of(
    st.just("192.0.2.1"), st.just("10.1.1.1"), st.text(max_size=20), st.ip_addresses().map(str)
)
_messages = st.one_of(
    st.binary(max_size=500),
    st.builds(
        lambda h, b: h + b"\r\n\r\n" + b,
        st.lists(
            st.sampled_from(
                [
                    b"From: a@sender.example",
                    b"Received: from x (x [192.0.2.9]) by y",
                    b"Authentication-Results: gw.example; spf=pass",
                    b"DKIM-Signature: v=1; d=x",
                    b"Content-Type: multipart/report; report-type=delivery-status",
                    b"DKIM-Signature: garbage",
                    b"From: <>",
                ]
            ),
            max_size=6,
        ).map(b"\r\n".join),
        st.binary(max_size=100),
    ),
)


@given(_messages, _ips, st.text(max_size=30), _addresses, st.lists(_addresses, max_size=3))
def test_gather_and_decide_never_crash(
    message: bytes, ip: str, helo: str, sender: str, rcpts: list[str]
) -> None:
    try:
        facts = GATHERER.gather(message, Envelope(ip, helo, sender, tuple(rcpts)))
    except AddressError:
        return
    decision = decide(facts, POLICY)
    assert decision.action in (Action.FORWARD, Action.TEMPFAIL, Action.REJECT)
    assert decision.reasons
