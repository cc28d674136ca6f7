"""Replies mean what they say; sending limits count what was sent.

A message that can never be forwarded is refused with a 5xx and a reason code; what may
work later is a 4xx. Only a message that is forwarded counts against its sender's limits.
Through the shipped example and the project's DNS server on loopback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from srsfwd.app import build_limits
from srsfwd.cli import cli
from srsfwd.config import load_config
from srsfwd.forward import Forwarder, ForwardResult, message_problem
from srsfwd.pool import Action
from tests.dnsserver import ZoneServer
from tests.hypothesis_profiles import budget
from tests.ports import free_port

EXAMPLES = Path(__file__).parents[2] / "examples"
SENDER = "alice@example.org"


@pytest.fixture
def dns(dns_server: ZoneServer) -> ZoneServer:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    return dns_server


@pytest.fixture
def forwarder(example: Path, dns: ZoneServer) -> Forwarder:
    return Forwarder.from_config(load_config(example / "srsfwd.toml"), resolver=dns.resolver())


def send(
    forwarder: Forwarder, message: bytes, rcpts: tuple[str, ...] = ("b@r.example",)
) -> ForwardResult:
    return forwarder.forward(
        message, client_ip="198.51.100.25", helo="mail.example.org", mail_from=SENDER, rcpts=rcpts
    )


def today(forwarder: Forwarder) -> int:
    assert forwarder.limits is not None
    return forwarder.limits.status(SENDER)[0].today


NORMAL = (EXAMPLES / "messages" / "normal.eml").read_bytes()
BROKEN = {
    "no-from": (b"To: b@r.example\r\nSubject: hi\r\n\r\nbody\r\n", "no-from"),
    "two-from": (
        b"From: a@example.org\r\nFrom: c@example.org\r\nSubject: hi\r\n\r\nbody\r\n",
        "several-from",
    ),
    "header-too-big": (
        b"From: a@example.org\r\n"
        + b"X-Pad: "
        + b"x" * 900
        + b"\r\n" * 1
        + b"".join(b"X-Pad: " + b"x" * 900 + b"\r\n" for _ in range(1300))
        + b"\r\nbody\r\n",
        "header-too-big",
    ),
    "no-header": (b"\r\njust a body\r\n", "not-a-message"),
    "not-a-message": (b"\x00\xff garbage that is no header\r\n", "not-a-message"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_message_that_can_never_be_forwarded_is_refused_with_5xx(
    forwarder: Forwarder, name: str
) -> None:
    message, reason = BROKEN[name]
    result = send(forwarder, message)
    assert result.action is Action.REJECT
    assert result.smtp_reply is not None and result.smtp_reply.startswith("550 5.6.0 ")
    assert result.reasons == (reason,)


def test_a_dns_outage_is_still_a_4xx(forwarder: Forwarder, dns: ZoneServer) -> None:
    dns.mode = "servfail"
    result = forwarder.forward(
        (EXAMPLES / "messages" / "relay.eml").read_bytes(),
        client_ip="192.0.2.99",
        helo="mx.unsigned.example",
        mail_from="carol@unsigned.example",
        rcpts=["b@r.example"],
    )
    assert result.action is Action.TEMPFAIL
    assert result.smtp_reply is not None and result.smtp_reply.startswith("4")


def test_a_forwarded_message_counts_its_recipients(forwarder: Forwarder) -> None:
    assert send(forwarder, NORMAL, ("a@r.example", "b@r.example")).forwarded
    assert today(forwarder) == 2


def test_a_deferred_message_counts_nothing(forwarder: Forwarder, dns: ZoneServer) -> None:
    dns.mode = "servfail"
    for _ in range(2):
        assert send(forwarder, NORMAL).action is Action.TEMPFAIL
    assert today(forwarder) == 0


def test_a_refused_message_counts_nothing(forwarder: Forwarder) -> None:
    assert send(forwarder, BROKEN["no-from"][0]).action is Action.REJECT
    assert today(forwarder) == 0


def test_a_dry_run_shows_the_verdict_and_counts_nothing(example: Path, dns: ZoneServer) -> None:
    config = example / "srsfwd.toml"
    config.write_text(config.read_text().replace("per_day = 1000", "per_day = 1"))
    forwarder = Forwarder.from_config(load_config(config), resolver=dns.resolver())
    rcpts = ("a@r.example", "b@r.example")
    dry = forwarder.forward(
        NORMAL,
        client_ip="198.51.100.25",
        helo="mail.example.org",
        mail_from=SENDER,
        rcpts=rcpts,
        dry_run=True,
    )
    assert dry.action is Action.REJECT and "limit-block" in dry.reasons
    assert today(forwarder) == 0
    assert forwarder.limits is not None and forwarder.limits.status(SENDER)[1] is None


def test_giving_back_a_forward_uncounts_it(forwarder: Forwarder) -> None:
    result = send(forwarder, NORMAL, ("a@r.example", "b@r.example"))
    forwarder.give_back(result)
    assert today(forwarder) == 0


def test_a_message_that_passes_the_limit_is_refused_and_not_counted(
    example: Path, dns: ZoneServer
) -> None:
    config = example / "srsfwd.toml"
    config.write_text(config.read_text().replace("per_day = 1000", "per_day = 2"))
    forwarder = Forwarder.from_config(load_config(config), resolver=dns.resolver())
    assert send(forwarder, NORMAL, ("a@r.example", "b@r.example")).forwarded
    refused = send(forwarder, NORMAL, ("c@r.example",))
    assert refused.action is Action.REJECT and "limit-block" in refused.reasons
    assert refused.smtp_reply is not None and "until" in refused.smtp_reply
    assert today(forwarder) == 2


def test_a_failed_hand_off_counts_nothing(example: Path, dns: ZoneServer) -> None:
    config = example / "srsfwd.toml"
    result = CliRunner().invoke(
        cli,
        [
            "forward",
            "--config",
            str(config),
            "--dns-server",
            f"127.0.0.1:{dns.port}",
            "--client-ip",
            "198.51.100.25",
            "--helo",
            "mail.example.org",
            "--mail-from",
            SENDER,
            "--rcpt",
            "b@r.example",
            "--deliver",
            f"127.0.0.1:{free_port()}",
            str(EXAMPLES / "messages" / "normal.eml"),
        ],
    )
    assert result.exit_code == 75, result.stderr
    assert build_limits(load_config(config)).status(SENDER)[0].today == 0


PROBLEMS = {"not-a-message", "header-too-big", "no-from", "several-from"}


@settings(max_examples=budget(300), deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_are_judged_never_crash(data: bytes) -> None:
    problem = message_problem(data)
    assert problem is None or (problem[0] in PROBLEMS and problem[1])


@settings(max_examples=budget(200), deadline=None)
@given(
    st.lists(
        st.sampled_from([b"From: a@b.example", b"To: c@d.example", b" folded", b"junk", b""]),
        max_size=8,
    ),
    st.sampled_from([b"\r\n", b"\n"]),
)
def test_header_lines_in_any_order_and_line_ending_are_judged(
    lines: list[bytes], newline: bytes
) -> None:
    problem = message_problem(newline.join(lines) + newline + newline + b"body" + newline)
    head = lines[: lines.index(b"")] if b"" in lines else lines  # an empty line ends it
    if problem is None:
        assert sum(line.startswith(b"From:") for line in head) == 1


_HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(["a", "@", "=", "\r", "\n", "\u2028", "\0", "`", "é", " "])).map(
        "".join
    ),
)
_HOSTILE_ADDRESS = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", _HOSTILE_TEXT, _HOSTILE_TEXT),
    # Shaped as a bounce to our SRS domain, so the reverse (and its error) runs on it.
    st.builds(lambda junk: f"SRS0={junk}=AB=example.org=a@fwd.example.net", _HOSTILE_TEXT),
    _HOSTILE_TEXT,
)


@settings(
    max_examples=budget(100),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    sender=_HOSTILE_ADDRESS,
    rcpt=_HOSTILE_ADDRESS,
    from_value=st.binary(max_size=60).filter(lambda v: b"\n" not in v),
)
def test_a_reply_to_hostile_addresses_is_one_printable_line(
    forwarder: Forwarder, sender: str, rcpt: str, from_value: bytes
) -> None:
    message = b"From: " + from_value + b"\r\nTo: b@r.example\r\n\r\nbody\r\n"
    result = forwarder.forward(
        message, client_ip="198.51.100.25", helo="h", mail_from=sender, rcpts=(rcpt,)
    )
    reply = result.smtp_reply or ""
    assert reply.isprintable(), reply
