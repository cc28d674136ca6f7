"""--json on the commands that report: one JSON document on standard output."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from srsfwd.cli import cli
from tests.dkimhelp import RFC8463
from tests.dnsserver import ZoneServer


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
    assert {(r["result"], r["selector"]) for r in results} == {
        ("pass", "brisbane"),
        ("pass", "test"),
    }


def test_keys_list_json(tmp_path: Path) -> None:
    code, keys = run_json("keys", "list", "--keys-dir", str(make_keys(tmp_path)))
    assert code == 0
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
    assert [c["ok"] for c in checked] == [True]


def test_limits_show_json(tmp_path: Path) -> None:
    config = tmp_path / "srsfwd.toml"
    config.write_text('state_dir = "state"\n[limits]\nper_day = 2\n')
    code, shown = run_json("limits", "show", "--config", str(config), "x@y.example")
    assert code == 0
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
    assert report["ok"] is True and report["srs_domain"] == "fwd.example"
    assert report["endpoints"] == [
        {"service": "socketmap", "endpoint": f"unix:{tmp_path}/srs.sock"}
    ]
