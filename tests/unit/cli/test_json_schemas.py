"""Every ``--json`` output fits the JSON Schema shipped for it (srsfwd/schemas), and
``decide`` and ``forward`` report one decision with the same keys and the same words.

Real outputs of the commands, through the shipped example and the project's DNS server.
"""

from __future__ import annotations

import json
import mailbox
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from jsonschema import Draft202012Validator

from srsfwd.cli import cli
from tests.dkimhelp import RFC8463
from tests.dnsserver import ZoneServer
from tests.schemas import SCHEMA_FILES, load_schema, validate
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


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_each_shipped_schema_is_a_valid_schema(name: str) -> None:
    Draft202012Validator.check_schema(load_schema(name))


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


def test_verify_json_fits_the_schema() -> None:
    zone, message = str(RFC8463 / "football.zone"), str(RFC8463 / "signed.eml")
    result = CliRunner().invoke(cli, ["verify", "--zone", zone, message, "--json"])
    validate(json.loads(result.stdout), "reports.schema.json", "verify")


def test_keys_list_and_check_json_fit_the_schema(tmp_path: Path, dns_server: ZoneServer) -> None:
    keys = tmp_path / "keys"
    assert CliRunner().invoke(cli, ["keygen", "--keys-dir", str(keys), "x.example"]).exit_code == 0
    listed = CliRunner().invoke(cli, ["keys", "list", "--keys-dir", str(keys), "--json"])
    validate(json.loads(listed.stdout), "reports.schema.json", "keys_list")
    dns_server.load("".join(p.read_text() for p in keys.glob("*/*.txt")))
    args = [
        "keys",
        "check",
        "--keys-dir",
        str(keys),
        "--dns-server",
        f"127.0.0.1:{dns_server.port}",
    ]
    checked = CliRunner().invoke(cli, [*args, "x.example", "--json"])
    validate(json.loads(checked.stdout), "reports.schema.json", "keys_check")


def test_limits_show_json_fits_the_schema(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\n')
    base = ["limits", "show", "--config", str(config), "--json"]
    one = CliRunner().invoke(cli, [*base, "x@y.example"])
    validate(json.loads(one.stdout), "reports.schema.json", "limits_show_sender")
    every = CliRunner().invoke(cli, base)
    validate(json.loads(every.stdout), "reports.schema.json", "limits_show")


def test_doctor_json_fits_the_schema(example: Path, dns: ZoneServer) -> None:
    args = ["doctor", "--config", str(example / "srsfwd.toml")]
    result = CliRunner().invoke(cli, [*args, "--dns-server", f"127.0.0.1:{dns.port}", "--json"])
    validate(json.loads(result.stdout), "reports.schema.json", "doctor")


def test_serve_check_json_fits_the_schema(tmp_path: Path) -> None:
    secret = tmp_path / "srs.secret"
    secret.write_text("a-secret-long-enough-to-keep\n")
    secret.chmod(0o600)
    config = tmp_path / "srsfwd.toml"
    config.write_text(
        '[srs]\ndomain = "fwd.example"\nsecrets_file = "srs.secret"\n'
        f'[serve]\nsocketmap = "unix:{tmp_path}/srs.sock"\n'
    )
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--check", "--json"])
    assert result.exit_code == 0, result.output
    validate(json.loads(result.stdout), "reports.schema.json", "serve_check")


def test_keygen_and_keys_rotate_json_fit_the_schema(tmp_path: Path) -> None:
    keys = str(tmp_path / "keys")
    made = CliRunner().invoke(cli, ["keygen", "--keys-dir", keys, "x.example", "--json"])
    validate(json.loads(made.stdout), "reports.schema.json", "keygen")
    rotated = CliRunner().invoke(cli, ["keys", "rotate", "--keys-dir", keys, "x.example", "--json"])
    document = json.loads(rotated.stdout)
    validate(document, "reports.schema.json", "keys_rotate")
    assert [key["selector"] for key in document["new_keys"]] != document["old_selectors"]


def test_limits_unblock_json_fits_the_schema(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\n')
    args = ["limits", "unblock", "--config", str(config), "x@y.example", "--json"]
    document = json.loads(CliRunner().invoke(cli, args).stdout)
    validate(document, "reports.schema.json", "limits_unblock")
    assert document == {"sender": "x@y.example", "unblocked": False}


#: Commands whose output is data (an address, a message, a configuration), not a report.
NOT_REPORTS = {
    ("rewrite",),
    ("reverse",),
    ("secret", "new"),
    ("sign",),
    ("seal",),
    ("keys", "import-opendkim"),
}


def test_every_command_that_reports_takes_json() -> None:
    from tests.unit.cli.test_help import command_paths

    for path in command_paths(cli):
        if path in NOT_REPORTS:
            continue
        context = click.Context(cli)
        command: click.Command | None = cli
        for name in path:
            assert isinstance(command, click.Group)
            command = command.get_command(context, name)
        assert command is not None
        if isinstance(command, click.Group):
            continue  # its subcommands are checked one by one
        assert "--json" in [o for p in command.params for o in p.opts], path


def test_bounce_json_fits_the_schema(tmp_path: Path) -> None:
    secret = tmp_path / "srs.secret"
    secret.write_text("a-test-secret-long-enough\n")
    secret.chmod(0o600)
    base = ["--domain", "fwd.example.net", "--secret-file", str(secret)]
    address = CliRunner().invoke(cli, ["rewrite", *base, "alice@example.org"]).stdout.strip()
    for rcpt in (address, FORGED_BOUNCE_RCPT):
        args = ["bounce", *base, "--rcpt", rcpt, "--json"]
        result = CliRunner().invoke(cli, args, input=b"Subject: failure\n\nbody\n")
        validate(json.loads(result.stdout), "reports.schema.json", "bounce")
