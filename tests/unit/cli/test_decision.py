"""``decide`` and ``forward`` report one decision: the same keys, fitting
srsfwd/schemas/decision.schema.json, and the same lines for people.

Real outputs of the commands, through the shipped example and the project's DNS server.
"""

from __future__ import annotations

import json
import mailbox
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from srsfwd.cli import cli
from tests.dnsserver import ZoneServer
from tests.schemas import validate
from tests.smtp_sink import smtp_sink

EXAMPLES = Path(__file__).parents[3] / "examples"
NORMAL = ("198.51.100.25", "mail.example.org", "alice@example.org", "normal")
RELAY = ("192.0.2.99", "mx.unsigned.example", "carol@unsigned.example", "relay")
NO_FROM = b"To: b@r.example\r\nSubject: hi\r\n\r\nbody\r\n"
BOUNCE = ("203.0.113.201", "mx.receiver.example", "", "bounce")
FORGED_BOUNCE_RCPT = "SRS0=AAAA=AA=example.org=alice@fwd.example.net"


@pytest.fixture
def dns(dns_server: ZoneServer) -> ZoneServer:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    return dns_server


def run(
    command: str,
    example: Path,
    dns: ZoneServer,
    envelope: tuple[str, str, str, str] = NORMAL,
    *,
    message: bytes | None = None,
    rcpt: str = "bob@receiver.example",
    json_output: bool = True,
    extra: tuple[str, ...] = (),
) -> Result:
    ip, helo, sender, name = envelope
    args = [command, "--config", str(example / "srsfwd.toml")]
    args += ["--dns-server", f"127.0.0.1:{dns.port}", "--client-ip", ip, "--helo", helo]
    args += ["--mail-from", sender, "--rcpt", rcpt, *(["--json"] if json_output else []), *extra]
    data = message if message is not None else (EXAMPLES / "messages" / f"{name}.eml").read_bytes()
    return CliRunner().invoke(cli, args, input=data)


def decision_of(command: str, result: Result) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(result.stderr if command == "forward" else result.stdout)
    return document


@pytest.mark.parametrize("command", ["decide", "forward"])
@pytest.mark.parametrize("envelope", [NORMAL, RELAY], ids=["normal", "relay"])
def test_a_forwarded_decision_fits_the_schema(
    example: Path, dns: ZoneServer, command: str, envelope: tuple[str, str, str, str]
) -> None:
    result = run(command, example, dns, envelope)
    assert result.exit_code == 0, result.output
    validate(decision_of(command, result), "decision.schema.json")


def test_forward_says_what_became_of_the_delivery(example: Path, dns: ZoneServer) -> None:
    with smtp_sink() as sink:
        target = f"{sink.host}:{sink.port}"
        result = run("forward", example, dns, extra=("--deliver", target))
        assert result.exit_code == 0, result.output
        document = decision_of("forward", result)
        validate(document, "decision.schema.json")
        assert document["delivery"] == f"delivered to {target}"
        assert len(sink.messages) == 1
    words = run("forward", example, dns, json_output=False, extra=("--deliver", "127.0.0.1:9"))
    assert words.exit_code == 75
    assert re.search(r"^delivery: +not delivered: ", words.stderr, re.M)


@pytest.mark.parametrize("command", ["decide", "forward"])
def test_a_refused_message_fits_the_schema(example: Path, dns: ZoneServer, command: str) -> None:
    result = run(command, example, dns, message=NO_FROM)
    assert result.exit_code == 1
    document = decision_of(command, result)
    validate(document, "decision.schema.json")
    assert (document["outbound"], document["facts"]) == (None, None)


@pytest.mark.parametrize("command", ["decide", "forward"])
def test_a_forged_bounce_fits_the_schema(example: Path, dns: ZoneServer, command: str) -> None:
    result = run(command, example, dns, BOUNCE, rcpt=FORGED_BOUNCE_RCPT)
    assert result.exit_code == 1
    validate(decision_of(command, result), "decision.schema.json")


def test_the_pool_decision_alone_fits_the_schema(dns: ZoneServer) -> None:
    ip, helo, sender, name = NORMAL
    args = ["decide", "--dns-server", f"127.0.0.1:{dns.port}", "--accepted-domain", "fwd.example"]
    args += ["--client-ip", ip, "--helo", helo, "--mail-from", sender, "--rcpt", "b@r.example"]
    message = (EXAMPLES / "messages" / f"{name}.eml").read_bytes()
    result = CliRunner().invoke(cli, [*args, "--json"], input=message)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    validate(document, "decision.schema.json")
    assert document["srs"] and document["outbound"]["mail_from"] is None  # no SRS domain


@pytest.mark.parametrize("envelope", [NORMAL, RELAY], ids=["normal", "relay"])
def test_decide_and_forward_print_the_same_keys(
    example: Path, dns: ZoneServer, envelope: tuple[str, str, str, str]
) -> None:
    decided = decision_of("decide", run("decide", example, dns, envelope))
    forwarded = decision_of("forward", run("forward", example, dns, envelope))
    assert sorted(decided) == sorted(forwarded)
    assert sorted(decided["outbound"]) == sorted(forwarded["outbound"])


def test_the_old_keys_are_gone(example: Path, dns: ZoneServer) -> None:
    for command in ("decide", "forward"):
        document = decision_of(command, run(command, example, dns))
        assert not {"srs_mail_from", "source_addresses", "mail_from", "transport"} & set(document)


@pytest.mark.parametrize("envelope", [NORMAL, RELAY], ids=["normal", "relay"])
def test_decide_and_forward_print_the_same_lines_for_people(
    example: Path, dns: ZoneServer, envelope: tuple[str, str, str, str]
) -> None:
    decided = run("decide", example, dns, envelope, json_output=False)
    forwarded = run("forward", example, dns, envelope, json_output=False)
    assert decided.stdout.splitlines() == forwarded.stderr.splitlines()


def test_the_decision_for_people_names_both_envelope_senders(
    example: Path, dns: ZoneServer
) -> None:
    lines = run("decide", example, dns, json_output=False).stdout.splitlines()
    (sender,) = [line for line in lines if line.startswith("mail from:")]
    assert "<alice@example.org> sent as <SRS0=" in sender


def test_the_decision_for_people_is_one_line_per_item_whatever_the_client_sent(
    example: Path, dns: ZoneServer
) -> None:
    hostile = ("198.51.100.25", "mail.example.org\u2028forged: line", "alice@example.org", "")
    message = b"From: a@ex\xe2\x80\xa8ample.org\r\nSubject: hi\xe2\x80\xa8\r\n\r\nbody\r\n"
    plain = run("decide", example, dns, json_output=False).stdout
    lines = run("decide", example, dns, hostile, message=message, json_output=False).stdout
    assert lines.count("\n") == len(lines.splitlines())
    assert "\\u2028" in lines  # shown escaped
    assert len(lines.splitlines()) == len(plain.splitlines())


def _stored(sender: str, ip: str, date: str = "Thu, 26 Nov 2026 10:00:00 +0000") -> bytes:
    return (
        f"Return-Path: <{sender}>\r\n"
        f"Received: from mx.x.example (mx.x.example [{ip}])\r\n"
        f"\tby mx.fwd.example (Postfix) with ESMTP id 1; {date}\r\n"
        f"From: {sender}\r\nDate: {date}\r\nSubject: hi\r\n\r\nbody\r\n"
    ).encode()


def test_every_mailbox_json_line_fits_the_schema(
    example: Path, dns: ZoneServer, tmp_path: Path
) -> None:
    box = mailbox.mbox(str(tmp_path / "mbox"))
    box.add(_stored("alice@example.org", "198.51.100.25"))
    box.add(_stored("carol@unsigned.example", "192.0.2.99"))
    box.add(b"Subject: no envelope\r\n\r\nbody\r\n")
    box.close()
    args = ["decide", "--config", str(example / "srsfwd.toml")]
    args += ["--dns-server", f"127.0.0.1:{dns.port}", "--mailbox", str(tmp_path / "mbox")]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    for line in lines:
        validate(line, "mailbox.schema.json")
    assert [line["type"] for line in lines] == ["decision", "decision", "skipped", "summary"]
    assert lines[0]["decision"]["outbound"]["mail_from"].startswith("SRS0=")
