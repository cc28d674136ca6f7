"""``srsfwd decide`` as operators run it: a real DNS server, zone files, mailboxes."""

from __future__ import annotations

import json
import mailbox
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli
from srsfwd.dkim.keys import SigningKey, generate_key, key_record_text, zone_line
from srsfwd.dkim.sign import DkimSigner
from tests.dnsserver import ZoneServer

ZONE = """
$TTL 300
sender.example.        IN A    203.0.113.1
sender.example.        IN MX   10 mx.sender.example.
sender.example.        IN TXT  "v=spf1 include:_spf.sender.example -all"
_spf.sender.example.   IN TXT  "v=spf1 ip4:192.0.2.0/24 -all"
soft.example.          IN A    203.0.113.3
soft.example.          IN TXT  "v=spf1 ~all"
"""

MESSAGE = (
    b"From: Alice <alice@sender.example>\r\nTo: bob@fwd.example\r\nSubject: hi\r\n"
    b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\nHello.\r\n"
)


def base_args(*extra: str) -> list[str]:
    return [
        "decide",
        "--accepted-domain",
        "fwd.example",
        "--client-ip",
        "192.0.2.10",
        "--helo",
        "mx.sender.example",
        "--mail-from",
        "alice@sender.example",
        "--rcpt",
        "bob@gmail.example",
        *extra,
    ]


@pytest.fixture
def zone_file(tmp_path: Path) -> Path:
    path = tmp_path / "example.zone"
    path.write_text(ZONE)
    return path


def test_json_from_a_zone_file(zone_file: Path, tmp_path: Path) -> None:
    msg = tmp_path / "m.eml"
    msg.write_bytes(MESSAGE)
    result = CliRunner().invoke(cli, base_args("--zone", str(zone_file), "--json", str(msg)))
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["pool"], out["srs"], out["action"], out["spf"]) == (
        "normal",
        True,
        "forward",
        "pass",
    )
    assert out["reasons"][0] == "forward-authenticated"
    assert out["dkim"] == []
    assert out["authentication_results"].startswith("Authentication-Results: ")


def test_real_dns_server_and_stdin(dns_server: ZoneServer) -> None:
    key = generate_key("ed25519")
    dns_server.load(ZONE + zone_line("sel", "sender.example", key_record_text(key)))
    signed = DkimSigner([SigningKey("sender.example", "sel", key)]).sign(MESSAGE)
    args = base_args("--dns-server", f"127.0.0.1:{dns_server.port}", "--json")
    args[args.index("192.0.2.10")] = "198.51.100.1"  # SPF fails; DKIM carries it
    result = CliRunner().invoke(cli, args, input=signed)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["pool"], out["srs"], out["spf"]) == ("normal", True, "fail")
    assert out["dkim"] == [
        {
            "domain": "sender.example",
            "selector": "sel",
            "result": "pass",
            "reason": "signature verifies",
        }
    ]


def test_relay_and_words(zone_file: Path) -> None:
    args = base_args("--zone", str(zone_file))
    args[args.index("alice@sender.example")] = "a@soft.example"
    result = CliRunner().invoke(cli, args, input=MESSAGE)
    assert result.exit_code == 0
    assert "pool:          relay (SRS: no)" in result.output
    assert "relay-unauthenticated" in result.output
    assert "header from:   sender.example not authenticated" in result.output


def test_unrelated_from_signature_is_envelope_not_authenticated(dns_server: ZoneServer) -> None:
    key = generate_key("ed25519")
    dns_server.load(ZONE + zone_line("sel", "sender.example", key_record_text(key)))
    signed = DkimSigner([SigningKey("sender.example", "sel", key)]).sign(MESSAGE)
    args = base_args("--dns-server", f"127.0.0.1:{dns_server.port}")
    args[args.index("alice@sender.example")] = "a@soft.example"
    result = CliRunner().invoke(cli, args, input=signed)
    assert result.exit_code == 0, result.output
    assert "pool:          relay (SRS: no)" in result.output
    assert "reasons:       envelope-not-authenticated, dkim-pass-header-from" in result.output
    assert "header from:   sender.example authenticated" in result.output


def test_dns_timeout_exits_75(dns_server: ZoneServer, tmp_path: Path) -> None:
    dns_server.mode = "silent"
    config = tmp_path / "srsfwd.toml"
    config.write_text("[decide]\ndns_timeout = 0.3\n")
    args = [
        "decide",
        "--config",
        str(config),
        *base_args("--dns-server", f"127.0.0.1:{dns_server.port}", "--json")[1:],
    ]
    result = CliRunner().invoke(cli, args, input=MESSAGE)
    assert result.exit_code == 75, result.output
    out = json.loads(result.output)
    assert (out["pool"], out["action"], out["reasons"]) == (None, "tempfail", ["dns-temperror"])


def test_spam_flag_and_null_sender(zone_file: Path) -> None:
    result = CliRunner().invoke(
        cli, base_args("--zone", str(zone_file), "--spam", "--json"), input=MESSAGE
    )
    out = json.loads(result.output)
    assert (out["pool"], out["srs"], out["reasons"][0]) == ("high-risk", True, "spam")
    args = base_args("--zone", str(zone_file), "--json")
    args[args.index("alice@sender.example")] = "<>"
    out = json.loads(CliRunner().invoke(cli, args, input=MESSAGE).output)
    assert (out["pool"], out["srs"], out["reasons"]) == ("high-risk", False, ["ndr"])


def test_srs_rewrite_shown_when_configured(zone_file: Path, tmp_path: Path) -> None:
    secret = tmp_path / "srs.secret"
    secret.write_text("0123456789abcdef0123456789abcdef\n")
    secret.chmod(0o600)
    config = tmp_path / "srsfwd.toml"
    config.write_text(f'[srs]\ndomain = "fwd.example"\nsecrets_file = "{secret}"\n')
    args = ["decide", "--config", str(config), *base_args("--zone", str(zone_file), "--json")[1:]]
    args[args.index("alice@sender.example")] = "SRS0=abcd=TT=orig.example=alice@sender.example"
    out = json.loads(CliRunner().invoke(cli, args, input=MESSAGE).output)
    assert out["srs"] is True
    assert out["outbound"]["mail_from"].startswith("SRS1=")
    assert out["outbound"]["mail_from"].endswith("@fwd.example")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--client-ip", "300.1.2.3"), "is not an IP address"),
        (("--mail-from", "not an address"), "bad address"),
        (("--rcpt", "@@"), "bad address"),
        (("--dns-server", "dns.example:53"), "is not an IP address"),
    ],
)
def test_bad_input_is_a_clear_usage_error(
    zone_file: Path, change: tuple[str, str], message: str
) -> None:
    args = base_args()
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += list(change)
    if change[0] != "--dns-server":
        args += ["--zone", str(zone_file)]
    result = CliRunner().invoke(cli, args, input=MESSAGE)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_missing_options(zone_file: Path) -> None:
    result = CliRunner().invoke(cli, ["decide", "--zone", str(zone_file)], input=MESSAGE)
    assert result.exit_code == 2
    assert "missing --client-ip, --helo, --mail-from, --rcpt" in result.output


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00\x01\x02" * 1000, b"Subject: x\r\n" * 50_000, b"no header line\n\nbody"],
)
def test_garbage_messages_get_a_decision(zone_file: Path, data: bytes) -> None:
    result = CliRunner().invoke(cli, base_args("--zone", str(zone_file), "--json"), input=data)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["pool"] == "normal"


def test_message_too_large(zone_file: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.eml"
    with big.open("wb") as handle:
        handle.write(MESSAGE)
        handle.truncate((64 << 20) + 10)
    result = CliRunner().invoke(cli, base_args("--zone", str(zone_file), str(big)))
    assert result.exit_code == 1
    assert "larger than 64 MiB" in result.output


def _stored(sender: str, ip: str, subject: str) -> bytes:
    return (
        f"Return-Path: <{sender}>\r\n"
        f"Received: from mx.x.example (mx.x.example [{ip}])\r\n"
        "\tby mx.fwd.example (Postfix) with ESMTP id 1; Thu, 26 Nov 2026 10:00:00 +0000\r\n"
        f"From: {sender or 'MAILER-DAEMON@x.example'}\r\nSubject: {subject}\r\n\r\nbody\r\n"
    ).encode()


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
def test_mailbox_summary(zone_file: Path, tmp_path: Path, kind: str) -> None:
    path = tmp_path / kind
    box: mailbox.Mailbox = mailbox.mbox(str(path)) if kind == "mbox" else mailbox.Maildir(str(path))
    for data in (
        _stored("alice@sender.example", "192.0.2.10", "good"),
        _stored("alice@sender.example", "192.0.2.11", "good too"),
        _stored("a@soft.example", "198.51.100.1", "relay"),
        _stored("a@soft.example", "198.51.100.2", "relay"),
        _stored("", "198.51.100.3", "bounce"),
        b"Subject: nothing known\r\n\r\nbody\r\n",
    ):
        box.add(data)
    box.close()
    args = ["decide", "--zone", str(zone_file), "--mailbox", str(path)]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["messages"] == 6
    assert {name: o["messages"] for name, o in summary["outcomes"].items()} == {
        "normal": 2,
        "relay": 2,
        "high-risk": 1,
    }
    assert summary["relay_senders"] == {"a@soft.example": 2}
    assert summary["skipped"] == {"no Received hop with a client address": 1}
    table = CliRunner().invoke(cli, args)
    assert "relay-pool sender" in table.output and "a@soft.example" in table.output


def test_help_shows_an_example() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "srsfwd", "decide", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Example:" in out and "--mailbox" in out


def test_pool_transport_from_config(zone_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text(
        '[pools.relay]\ntransport = "relaypool"\nsource_addresses = ["198.51.100.9"]'
        '\nhelo = "rly1.fwd.example"\n'
    )
    args = ["decide", "--config", str(config), *base_args("--zone", str(zone_file), "--json")[1:]]
    args[args.index("alice@sender.example")] = "a@soft.example"
    out = json.loads(CliRunner().invoke(cli, args, input=MESSAGE).output)
    outbound = out["outbound"]
    assert (out["pool"], outbound["transport"], outbound["source_address"], outbound["helo"]) == (
        "relay",
        "relaypool",
        "198.51.100.9",
        "rly1.fwd.example",
    )
