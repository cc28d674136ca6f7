"""The forwarding pipeline end to end, on the shipped example, through a real DNS server.

Every example message lands in its pool; what leaves carries a DKIM signature and an ARC
set that dkimpy verifies; the rewritten envelope sender reverses; bounces go home.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner

from srsfwd.cli import cli
from srsfwd.config import load_config
from srsfwd.dkim.arc import dkimpy_dnsfunc
from srsfwd.dns.resolver import Resolver
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.pool import Action, Pool
from tests.dnsserver import ZoneServer
from tests.redis_server import redis_server
from tests.smtp_sink import Sink, smtp_sink

EXAMPLES = Path(__file__).parent.parent.parent / "examples"

# name → (client IP, HELO, MAIL FROM, --spam, expected pool, expected SRS)
SCENARIOS = {
    "normal": ("198.51.100.25", "mail.example.org", "alice@example.org", False, Pool.NORMAL, True),
    "relay": (
        "192.0.2.99",
        "mx.unsigned.example",
        "carol@unsigned.example",
        False,
        Pool.RELAY,
        False,
    ),
    "no-a-no-mx": (
        "192.0.2.98",
        "mail.nowhere.example",
        "dave@nowhere.example",
        False,
        Pool.HIGH_RISK,
        False,
    ),
    "spam": ("198.51.100.25", "mail.example.org", "alice@example.org", True, Pool.HIGH_RISK, True),
    "accepted": ("192.0.2.10", "host.example.net", "frank@example.net", False, Pool.NORMAL, False),
}


@pytest.fixture
def resolver(dns_server: ZoneServer) -> Resolver:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    return dns_server.resolver()


@pytest.fixture
def forwarder(example: Path, resolver: Resolver) -> Forwarder:
    return Forwarder.from_config(load_config(example / "srsfwd.toml"), resolver=resolver)


def run(forwarder: Forwarder, example: Path, name: str, **changes: object) -> ForwardResult:
    ip, helo, sender, spam, _, _ = SCENARIOS.get(name, SCENARIOS["normal"])
    envelope: dict[str, object] = {
        "client_ip": ip,
        "helo": helo,
        "mail_from": sender,
        "rcpts": ["bob@receiver.example"],
        "spam": spam,
    }
    envelope.update(changes)
    message = (example / "messages" / f"{name}.eml").read_bytes()
    return forwarder.forward(message, **envelope)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_example_message_lands_in_its_pool(forwarder: Forwarder, example: Path, name: str) -> None:
    result = run(forwarder, example, name)
    *_, pool, srs = SCENARIOS[name]
    assert (result.action, result.pool, result.srs) == (Action.FORWARD, pool, srs)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_what_leaves_verifies_with_dkimpy(
    forwarder: Forwarder, example: Path, resolver: Resolver, name: str
) -> None:
    result = run(forwarder, example, name)
    assert result.message is not None
    dnsfunc = dkimpy_dnsfunc(resolver)
    if result.pool is Pool.NORMAL:
        assert dkim.verify(result.message, dnsfunc=dnsfunc)
    else:  # relay and high-risk mail is not signed by us
        assert not our_signatures(result.message)
    cv, _, reason = dkim.arc_verify(result.message, dnsfunc=dnsfunc)
    assert cv == b"pass", reason


def our_signatures(message: bytes) -> list[bytes]:
    """Our DKIM-Signature fields (d= of the example's SRS or users' domain), unfolded."""
    head = message.split(b"\r\n\r\n")[0].replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    return [
        line
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"dkim-signature:")
        and (b"d=fwd.example.net;" in line or b"d=example.net;" in line)
    ]


def test_our_signature_is_the_from_domain_or_the_srs_domain(
    forwarder: Forwarder, example: Path
) -> None:
    result = run(forwarder, example, "normal")
    assert result.message is not None
    signatures = [
        line for line in result.message.split(b"\r\n") if line.startswith(b"DKIM-Signature:")
    ]
    assert b"d=fwd.example.net" in signatures[0]


def test_the_original_signature_still_verifies(
    forwarder: Forwarder, example: Path, resolver: Resolver
) -> None:
    result = run(forwarder, example, "normal")
    assert result.message is not None
    verifier = dkim.DKIM(result.message)
    assert verifier.verify(idx=1, dnsfunc=dkimpy_dnsfunc(resolver))


def test_rewritten_sender_reverses(forwarder: Forwarder, example: Path) -> None:
    result = run(forwarder, example, "normal")
    assert result.mail_from.startswith("SRS0=")
    assert forwarder.rewriter.reverse(result.mail_from) == "alice@example.org"


def test_a_large_folded_header_is_forwarded_whole(forwarder: Forwarder, example: Path) -> None:
    field = b"X-Long: start\r\n" + b"".join(b" line %d\r\n" % i for i in range(60_000))
    message = field + (example / "messages" / "normal.eml").read_bytes()
    ip, helo, sender, *_ = SCENARIOS["normal"]
    result = forwarder.forward(
        message, client_ip=ip, helo=helo, mail_from=sender, rcpts=["bob@receiver.example"]
    )
    assert result.message is not None
    assert field in result.message


def test_hop_results_record_what_arrived(forwarder: Forwarder, example: Path) -> None:
    result = run(forwarder, example, "normal")
    assert result.message is not None
    head = result.message.split(b"\r\n\r\n")[0].decode()
    ours = head[head.index("\nAuthentication-Results:") :].split("\nDKIM-Signature")[0]
    assert "spf=pass" in ours and "header.d=example.org" in ours
    assert "header.d=fwd.example.net" not in ours


def test_forged_results_claiming_our_name_are_removed(forwarder: Forwarder, example: Path) -> None:
    message = (example / "messages" / "relay.eml").read_bytes()
    forged = b"Authentication-Results: fwd.example.net; spf=pass\n\tsmtp.mailfrom=x\n" + message
    result = forwarder.forward(
        forged,
        client_ip="192.0.2.99",
        helo="h.example",
        mail_from="carol@unsigned.example",
        rcpts=["b@receiver.example"],
    )
    assert result.message is not None
    assert result.message.count(b"Authentication-Results: fwd.example.net") == 1
    assert b"smtp.mailfrom=x" not in result.message


def test_pool_carries_transport_address_and_helo(forwarder: Forwarder, example: Path) -> None:
    result = run(forwarder, example, "relay")
    assert (result.transport, result.source_address, result.helo) == (
        "relay-pool",
        "127.0.0.3",
        "rly1.fwd.example.net",
    )


# -- the bounce path --------------------------------------------------------------


def test_bounce_to_our_srs_address_goes_home_through_high_risk(
    forwarder: Forwarder, example: Path
) -> None:
    address = forwarder.rewriter.forward("alice@example.org")
    result = run(forwarder, example, "bounce", mail_from="", rcpts=[address])
    assert (result.action, result.pool, result.srs) == (Action.FORWARD, Pool.HIGH_RISK, False)
    assert (result.mail_from, result.rcpts) == ("", ("alice@example.org",))
    assert "srs-bounce-verified" in result.reasons


def test_forged_bounce_is_refused_with_5xx(forwarder: Forwarder, example: Path) -> None:
    address = forwarder.rewriter.forward("alice@example.org")
    forged = address[:5] + ("AAAA" if address[5:9].upper() != "AAAA" else "BBBB") + address[9:]
    result = run(forwarder, example, "bounce", mail_from="", rcpts=[forged])
    assert result.action == Action.REJECT
    assert result.smtp_reply is not None and result.smtp_reply.startswith("550 5.7.1")
    assert result.message is None


def test_srs_address_of_another_forwarder_is_just_a_recipient(
    forwarder: Forwarder, example: Path
) -> None:
    result = run(forwarder, example, "normal", rcpts=["SRS0=abcd=AA=x.example=y@other.example"])
    assert result.rcpts == ("SRS0=abcd=AA=x.example=y@other.example",)


# -- limits, faults and bad input ---------------------------------------------------


def test_thousand_recipients_are_refused_clearly(forwarder: Forwarder, example: Path) -> None:
    rcpts = [f"user{n}@receiver.example" for n in range(1000)]
    result = run(forwarder, example, "normal", rcpts=rcpts)
    assert result.action == Action.REJECT
    assert result.smtp_reply is not None and result.smtp_reply.startswith("550 5.5.3")


def test_sender_over_its_limit_is_refused(example: Path, resolver: Resolver) -> None:
    config = example / "srsfwd.toml"
    config.write_text(config.read_text().replace("per_day = 1000", "per_day = 2"))
    forwarder = Forwarder.from_config(load_config(config), resolver=resolver)
    assert run(forwarder, example, "normal", rcpts=["a@r.example", "b@r.example"]).forwarded
    refused = run(forwarder, example, "normal", rcpts=["c@r.example"])
    assert refused.action == Action.REJECT and "limit-block" in refused.reasons
    assert run(forwarder, example, "normal").reasons == ("sender-restricted",)


def test_locked_limits_store_defers(forwarder: Forwarder, example: Path) -> None:
    store = example.parent / "state" / "limits.sqlite"
    blocker = sqlite3.connect(store, isolation_level=None, timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        result = run(forwarder, example, "normal")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert result.action == Action.TEMPFAIL
    assert result.smtp_reply is not None and result.smtp_reply.startswith("451 4.3.0")


@pytest.mark.integration  # starts a real redis-server
def test_redis_stopped_mid_run_defers_then_recovers(
    example: Path, resolver: Resolver, tmp_path: Path
) -> None:
    with redis_server(tmp_path) as server:
        config = example / "srsfwd.toml"
        config.write_text(
            config.read_text().replace(
                '# store = "redis://127.0.0.1:6379/0"', f'store = "{server.url}"'
            )
        )
        forwarder = Forwarder.from_config(load_config(config), resolver=resolver)
        assert run(forwarder, example, "normal").forwarded
        server.stop()
        deferred = run(forwarder, example, "normal")
        assert deferred.action == Action.TEMPFAIL and deferred.message is None
        server.start()
        assert run(forwarder, example, "normal").forwarded


def test_dns_that_stops_answering_defers(
    forwarder: Forwarder, example: Path, dns_server: ZoneServer
) -> None:
    dns_server.mode = "servfail"
    result = run(forwarder, example, "relay")
    assert result.action == Action.TEMPFAIL


def test_fifty_megabyte_message_is_forwarded(
    forwarder: Forwarder, example: Path, resolver: Resolver
) -> None:
    head = (example / "messages" / "relay.eml").read_bytes()
    big = head + (b"x" * 998 + b"\n") * 50_000
    result = forwarder.forward(
        big,
        client_ip="192.0.2.99",
        helo="h.example",
        mail_from="carol@unsigned.example",
        rcpts=["b@receiver.example"],
    )
    assert result.forwarded and result.message is not None
    assert result.pool is Pool.RELAY
    assert not our_signatures(result.message)
    cv, _, reason = dkim.arc_verify(result.message, dnsfunc=dkimpy_dnsfunc(resolver))
    assert cv == b"pass", reason


@pytest.mark.parametrize(
    ("sender", "rcpt"),
    [("not an address", "b@r.example"), ("a@b.example", "@@"), ("a@b.example", "")],
)
def test_bad_envelope_is_refused_with_the_reason(
    forwarder: Forwarder, sender: str, rcpt: str
) -> None:
    result = forwarder.forward(
        b"Subject: x\r\n\r\nbody\r\n",
        client_ip="192.0.2.1",
        helo="h",
        mail_from=sender,
        rcpts=[rcpt],
    )
    assert result.action == Action.REJECT
    assert result.smtp_reply is not None and result.smtp_reply[:1] == "5"


@pytest.mark.parametrize("message", [b"", b"\x00\xff garbage", b"no header at all"])
def test_garbage_message_is_decided_not_crashed(forwarder: Forwarder, message: bytes) -> None:
    result = forwarder.forward(
        message,
        client_ip="192.0.2.99",
        helo="h.example",
        mail_from="carol@unsigned.example",
        rcpts=["b@receiver.example"],
    )
    assert result.action in (Action.FORWARD, Action.REJECT, Action.TEMPFAIL)


def test_missing_key_for_arc_is_a_clear_config_error(example: Path, resolver: Resolver) -> None:
    shutil.rmtree(example / "keys" / "fwd.example.net")
    from srsfwd.errors import ConfigError

    with pytest.raises(ConfigError, match="ARC needs an RSA key"):
        Forwarder.from_config(load_config(example / "srsfwd.toml"), resolver=resolver)


# -- the command ------------------------------------------------------------------


def forward_cli(example: Path, dns: ZoneServer, *args: str) -> tuple[int, str, bytes]:
    result = CliRunner().invoke(
        cli,
        [
            "forward",
            "--config",
            str(example / "srsfwd.toml"),
            "--dns-server",
            f"127.0.0.1:{dns.port}",
            *args,
        ],
    )
    return result.exit_code, result.stderr, result.stdout_bytes


@pytest.fixture
def dns(dns_server: ZoneServer) -> ZoneServer:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    return dns_server


def test_cli_json_has_the_envelope_and_decision(example: Path, dns: ZoneServer) -> None:
    code, err, out = forward_cli(
        example,
        dns,
        "--client-ip",
        "198.51.100.25",
        "--helo",
        "mail.example.org",
        "--mail-from",
        "alice@example.org",
        "--rcpt",
        "bob@receiver.example",
        "--json",
        str(example / "messages" / "normal.eml"),
    )
    decision = json.loads(err)
    assert code == 0
    assert (decision["action"], decision["pool"], decision["srs"]) == ("forward", "normal", True)
    outbound = decision["outbound"]
    assert {k: outbound[k] for k in ("transport", "source_address", "helo")} == {
        "transport": "smtp",
        "source_address": "127.0.0.2",
        "helo": "mta1.fwd.example.net",
    }
    assert decision["inbound"]["mail_from"] == "alice@example.org"
    assert outbound["mail_from"].startswith("SRS0=") and out.startswith(b"ARC-Seal:")


def test_cli_forged_bounce_exits_1_with_reply(example: Path, dns: ZoneServer) -> None:
    code, err, out = forward_cli(
        example,
        dns,
        "--client-ip",
        "203.0.113.201",
        "--helo",
        "mx.receiver.example",
        "--mail-from",
        "",
        "--rcpt",
        "SRS0=AAAA=AA=example.org=alice@fwd.example.net",
        "--json",
        str(example / "messages" / "bounce.eml"),
    )
    assert code == 1 and out == b""
    assert json.loads(err)["smtp_reply"].startswith("550 5.7.1")


def test_cli_dns_failure_exits_75(example: Path, dns: ZoneServer) -> None:
    dns.mode = "servfail"
    code, _, _ = forward_cli(
        example,
        dns,
        "--client-ip",
        "192.0.2.99",
        "--helo",
        "mx.unsigned.example",
        "--mail-from",
        "carol@unsigned.example",
        "--rcpt",
        "bob@receiver.example",
        str(example / "messages" / "relay.eml"),
    )
    assert code == 75


def test_cli_usage_error_exits_2(example: Path, dns: ZoneServer) -> None:
    code, _, _ = forward_cli(
        example,
        dns,
        "--client-ip",
        "not-an-ip",
        "--helo",
        "h",
        "--mail-from",
        "a@b.example",
        "--rcpt",
        "c@d.example",
    )
    assert code == 2


def test_cli_unreadable_config_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "forward",
            "--config",
            str(tmp_path / "none.toml"),
            "--client-ip",
            "192.0.2.1",
            "--helo",
            "h",
            "--mail-from",
            "a@b.example",
            "--rcpt",
            "c@d.example",
        ],
    )
    assert result.exit_code == 1 and "does not exist" in result.stderr


@pytest.fixture
def sink() -> Iterator[Sink]:
    with smtp_sink() as running:
        yield running


@pytest.mark.parametrize(
    ("name", "source", "helo"),
    [
        ("normal", "127.0.0.2", "mta1.fwd.example.net"),
        ("relay", "127.0.0.3", "rly1.fwd.example.net"),
        ("no-a-no-mx", "127.0.0.4", "hr1.fwd.example.net"),
    ],
)
def test_cli_deliver_leaves_from_the_pool_address_and_helo(
    example: Path, dns: ZoneServer, sink: Sink, name: str, source: str, helo: str
) -> None:
    ip, client_helo, sender, *_ = SCENARIOS[name]
    code, err, _ = forward_cli(
        example,
        dns,
        "--client-ip",
        ip,
        "--helo",
        client_helo,
        "--mail-from",
        sender,
        "--rcpt",
        "bob@receiver.example",
        "--deliver",
        f"{sink.host}:{sink.port}",
        str(example / "messages" / f"{name}.eml"),
    )
    assert code == 0, err
    (got,) = sink.messages
    assert (got.peer_ip, got.helo) == (source, helo)
    assert got.rcpts == ["bob@receiver.example"]


def test_forward_script_embeds_the_api(example: Path, sink: Sink) -> None:
    import os
    import subprocess
    import sys

    env = dict(
        os.environ,
        SENDER="alice@example.org",
        CLIENT_ADDRESS="198.51.100.25",
        CLIENT_HELO="mail.example.org",
    )
    done = subprocess.run(
        [
            sys.executable,
            str(example / "forward_script.py"),
            "--config",
            str(example / "srsfwd.toml"),
            "--to",
            "bob@receiver.example",
            "--relay",
            f"{sink.host}:{sink.port}",
        ],
        input=(example / "messages" / "normal.eml").read_bytes(),
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    (got,) = sink.messages
    assert got.mail_from.startswith("SRS0=") and got.peer_ip == "127.0.0.2"
