"""``srsfwd decide`` says what ``srsfwd forward`` would do, and changes nothing.

Same configuration, message and envelope: the same action, pool and reasons. Through the
shipped example and the project's DNS server on loopback.
"""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.app import build_limits
from srsfwd.cli import cli
from srsfwd.config import load_config
from tests.dnsserver import ZoneServer
from tests.schemas import validate

EXAMPLES = Path(__file__).parents[3] / "examples"
SENDER = "alice@example.org"
ENVELOPES = {
    "normal": ("198.51.100.25", "mail.example.org", SENDER),
    "relay": ("192.0.2.99", "mx.unsigned.example", "carol@unsigned.example"),
    "no-a-no-mx": ("192.0.2.98", "mail.nowhere.example", "dave@nowhere.example"),
    "accepted": ("192.0.2.10", "host.example.net", "frank@example.net"),
}
NO_FROM = b"To: b@r.example\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
def dns(dns_server: ZoneServer) -> ZoneServer:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    return dns_server


def invoke(
    command: str,
    example: Path,
    dns: ZoneServer,
    message: bytes,
    envelope: tuple[str, str, str] = ENVELOPES["normal"],
    rcpts: tuple[str, ...] = ("b@r.example",),
    extra: tuple[str, ...] = (),
) -> tuple[int, dict[str, object]]:
    ip, helo, sender = envelope
    args = [command, "--config", str(example / "srsfwd.toml"), *extra]
    args += ["--dns-server", f"127.0.0.1:{dns.port}", "--json", "--client-ip", ip]
    args += ["--helo", helo, "--mail-from", sender]
    for rcpt in rcpts:
        args += ["--rcpt", rcpt]
    result = CliRunner().invoke(cli, args, input=message)
    text = result.stderr if command == "forward" else result.stdout
    return result.exit_code, json.loads(text)


def verdict(out: dict[str, object]) -> tuple[object, ...]:
    return out["action"], out["pool"], out["srs"], out["reasons"]


@pytest.mark.parametrize("name", list(ENVELOPES))
def test_decide_and_forward_agree_on_the_example_messages(
    example: Path, dns: ZoneServer, name: str
) -> None:
    message = (EXAMPLES / "messages" / f"{name}.eml").read_bytes()
    decided = invoke("decide", example, dns, message, ENVELOPES[name])
    forwarded = invoke("forward", example, dns, message, ENVELOPES[name])
    assert (decided[0], verdict(decided[1])) == (forwarded[0], verdict(forwarded[1]))


ROAMING = ("203.0.113.77", "laptop", "frank@example.net")  # in nobody's SPF record


@pytest.mark.parametrize("command", ["decide", "forward"])
def test_sasl_user_vouches_for_an_accepted_sender(
    example: Path, dns: ZoneServer, command: str
) -> None:
    message = (EXAMPLES / "messages" / "accepted.eml").read_bytes()
    _, alone = invoke(command, example, dns, message, ROAMING)
    assert (alone["pool"], alone["reasons"]) == ("relay", ["accepted-domain-unauthenticated"])
    _, logged_in = invoke(command, example, dns, message, ROAMING, extra=("--sasl-user", "frank"))
    assert (logged_in["pool"], logged_in["reasons"]) == (
        "normal",
        ["accepted-domain", "sasl-authenticated"],
    )


def test_decide_refuses_what_forward_refuses(example: Path, dns: ZoneServer) -> None:
    code, out = invoke("decide", example, dns, NO_FROM)
    assert (code, out["action"], out["reasons"]) == (1, "reject", ["no-from"])
    assert str(out["smtp_reply"]).startswith("550 5.6.0")


def test_decide_shows_the_limits_verdict_without_counting(example: Path, dns: ZoneServer) -> None:
    config = example / "srsfwd.toml"
    config.write_text(config.read_text().replace("per_day = 1000", "per_day = 1"))
    message = (EXAMPLES / "messages" / "normal.eml").read_bytes()
    code, out = invoke("decide", example, dns, message, rcpts=("a@r.example", "b@r.example"))
    assert (code, out["action"], out["reasons"]) == (1, "reject", ["limit-block"])
    code, out = invoke("decide", example, dns, message)
    assert (code, out["action"]) == (0, "forward")
    counts, block = build_limits(load_config(config)).status(SENDER)
    assert (counts.today, block) == (0, None)


def test_decide_validates_the_limits_section(example: Path, dns: ZoneServer) -> None:
    config = example / "srsfwd.toml"
    config.write_text(config.read_text().replace('action = "block-for-today"', 'action = "blok"'))
    args = ["decide", "--config", str(config), "--dns-server", f"127.0.0.1:{dns.port}"]
    args += [
        "--client-ip",
        "192.0.2.1",
        "--helo",
        "h",
        "--mail-from",
        SENDER,
        "--rcpt",
        "b@r.example",
    ]
    result = CliRunner().invoke(cli, args, input=NO_FROM)
    assert result.exit_code == 1 and "[limits]" in result.stderr


def test_a_dns_timeout_is_shown_as_temperror_not_as_no_records(
    example: Path, dns: ZoneServer
) -> None:
    config = example / "srsfwd.toml"
    config.write_text(config.read_text().replace("[decide]\n", "[decide]\ndns_timeout = 0.3\n"))
    dns.mode = "silent"
    args = ["decide", "--config", str(config), "--dns-server", f"127.0.0.1:{dns.port}"]
    ip, helo, sender = ENVELOPES["relay"]
    args += ["--client-ip", ip, "--helo", helo, "--mail-from", sender, "--rcpt", "b@r.example"]
    result = CliRunner().invoke(cli, args, input=(EXAMPLES / "messages" / "relay.eml").read_bytes())
    assert result.exit_code == 75
    assert "no A/AAAA/MX" not in result.stdout
    assert "sender domain: unsigned.example: temperror" in result.stdout


def _stored(sender: str, ip: str) -> bytes:
    return (
        f"Return-Path: <{sender}>\r\n"
        f"Received: from mx.x.example (mx.x.example [{ip}])\r\n"
        "\tby mx.fwd.example (Postfix) with ESMTP id 1; Thu, 26 Nov 2026 10:00:00 +0000\r\n"
        f"From: {sender}\r\nSubject: hi\r\n\r\nbody\r\n"
    ).encode()


def test_mailbox_with_dns_down_says_so_once_and_stops(
    example: Path, dns: ZoneServer, tmp_path: Path
) -> None:
    config = example / "srsfwd.toml"
    config.write_text(config.read_text().replace("[decide]\n", "[decide]\ndns_timeout = 0.3\n"))
    box = mailbox.mbox(str(tmp_path / "mbox"))
    for n in range(20):
        box.add(_stored(f"user{n}@unsigned.example", "198.51.100.1"))
    box.close()
    dns.mode = "silent"
    args = ["decide", "--config", str(config), "--dns-server", f"127.0.0.1:{dns.port}"]
    result = CliRunner().invoke(cli, [*args, "--mailbox", str(tmp_path / "mbox"), "--json"])
    assert result.exit_code == 75
    assert result.stderr.count("DNS does not answer") == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    summary = lines[-1]
    assert summary["messages"] < 20 and summary["stopped"]
    assert len(lines) == summary["messages"] + 1  # a line for each message read
    assert (lines[-2]["type"], lines[-2]["reason"]) == ("skipped", "DNS does not answer")


@pytest.mark.parametrize("command", ["decide", "forward"])
@pytest.mark.parametrize(
    ("name", "limits"),
    [
        ("normal", {"counted_as": SENDER, "because": "spf-pass"}),
        ("relay", {"counted_as": "[192.0.2.99]", "because": "client-address"}),
    ],
)
def test_decide_and_forward_say_whose_limits_the_message_counts_against(
    example: Path, dns: ZoneServer, command: str, name: str, limits: dict[str, str]
) -> None:
    message = (EXAMPLES / "messages" / f"{name}.eml").read_bytes()
    _, out = invoke(command, example, dns, message, ENVELOPES[name])
    validate(out, "decision.schema.json")
    assert out["limits"] == limits


def test_decide_says_in_words_whose_limits_count(example: Path, dns: ZoneServer) -> None:
    ip, helo, sender = ENVELOPES["relay"]
    args = ["decide", "--config", str(example / "srsfwd.toml")]
    args += ["--dns-server", f"127.0.0.1:{dns.port}", "--client-ip", ip, "--helo", helo]
    args += ["--mail-from", sender, "--rcpt", "b@r.example"]
    message = (EXAMPLES / "messages" / "relay.eml").read_bytes()
    lines = CliRunner().invoke(cli, args, input=message).stdout.splitlines()
    assert [line for line in lines if line.startswith("limits:")] == [
        "limits:        counted as [192.0.2.99]"
        " (nothing vouched for the MAIL FROM: the client's address pays)"
    ]
