"""--json on every command that reports: one JSON document on standard output, fitting
the JSON Schema shipped for it in srsfwd/schemas (the decision of ``decide`` and
``forward``: test_decision.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from srsfwd.cli import cli
from tests.dkimhelp import RFC8463
from tests.dnsserver import ZoneServer
from tests.schemas import SCHEMA_FILES, load_schema, validate

EXAMPLES = Path(__file__).parents[3] / "examples"
FORGED_BOUNCE_RCPT = "SRS0=AAAA=AA=example.org=alice@fwd.example.net"


def run_json(*args: str) -> tuple[int, Any]:
    result = CliRunner().invoke(cli, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def make_keys(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    assert (
        CliRunner().invoke(cli, ["keygen", "--keys-dir", str(keys), "example.com"]).exit_code == 0
    )
    return keys


def test_verify_json_lists_each_signature() -> None:
    zone, message = str(RFC8463 / "football.zone"), str(RFC8463 / "signed.eml")
    code, results = run_json("verify", "--zone", zone, message)
    assert code == 0
    validate(results, "reports.schema.json", "verify")
    assert {(r["result"], r["selector"]) for r in results} == {
        ("pass", "brisbane"),
        ("pass", "test"),
    }


def test_keys_list_json(tmp_path: Path) -> None:
    code, keys = run_json("keys", "list", "--keys-dir", str(make_keys(tmp_path)))
    assert code == 0
    validate(keys, "reports.schema.json", "keys_list")
    assert [(k["domain"], k["algorithm"], k["active"]) for k in keys] == [
        ("example.com", "rsa-2048", True)
    ]


def test_keys_check_json(tmp_path: Path, dns_server: ZoneServer) -> None:
    keys = make_keys(tmp_path)
    dns_server.load("".join(p.read_text() for p in keys.glob("*/*.txt")))
    server = f"127.0.0.1:{dns_server.port}"
    code, checked = run_json(
        "keys", "check", "--keys-dir", str(keys), "--dns-server", server, "example.com"
    )
    assert code == 0
    validate(checked, "reports.schema.json", "keys_check")
    assert [c["ok"] for c in checked] == [True]


def test_limits_show_json(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\n')
    code, shown = run_json("limits", "show", "--config", str(config), "x@y.example")
    assert code == 0
    validate(shown, "reports.schema.json", "limits_show_sender")
    assert shown["today"] == 0 and shown["per_day"] == 2 and shown["blocked"] is None


def test_serve_check_json(tmp_path: Path) -> None:
    secret = tmp_path / "srs.secret"
    secret.write_text("a-secret-long-enough-to-keep\n")
    secret.chmod(0o600)
    config = tmp_path / "srsfwd.toml"
    config.write_text(
        '[srs]\nsrs-domain = "fwd.example"\nsecrets-file = "srs.secret"\n'
        f'[serve]\nsocketmap = "unix:{tmp_path}/srs.sock"\n'
    )
    code, report = run_json("serve", "--config", str(config), "--check")
    assert code == 0
    validate(report, "reports.schema.json", "serve_check")
    assert report["ok"] is True and report["srs_domain"] == "fwd.example"
    assert report["endpoints"] == [
        {"service": "socketmap", "endpoint": f"unix:{tmp_path}/srs.sock"}
    ]


def test_limits_show_json_of_every_sender(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\n')
    code, shown = run_json("limits", "show", "--config", str(config))
    assert code == 0
    validate(shown, "reports.schema.json", "limits_show")
    assert shown == {"blocked": [], "busiest_today": []}


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_each_shipped_schema_is_a_valid_schema(name: str) -> None:
    Draft202012Validator.check_schema(load_schema(name))


def test_doctor_json_fits_the_schema(example: Path, dns_server: ZoneServer) -> None:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    args = ["doctor", "--config", str(example / "srsfwd.toml")]
    server = f"127.0.0.1:{dns_server.port}"
    result = CliRunner().invoke(cli, [*args, "--dns-server", server, "--json"])
    validate(json.loads(result.stdout), "reports.schema.json", "doctor")


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
