"""``srsfwd doctor`` with DNS down: what it could not check is unknown, not broken or fine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli
from tests.dnsserver import ZoneServer

CONFIG = """
[srs]
domain = "fwd.example"
secrets_file = "srs.secret"

[dns]
nameservers = ["127.0.0.1"]
port = {port}
timeout = 0.3

[pools.normal]
source_addresses = ["192.0.2.1"]
helo = "out1.fwd.example"

[pools.relay]
source_addresses = ["198.51.100.9"]
helo = "rly1.fwd.example"
"""


@pytest.fixture
def config(tmp_path: Path, dns_server: ZoneServer) -> Path:
    path = tmp_path / "srsfwd.toml"
    path.write_text(CONFIG.format(port=dns_server.port))
    secret = tmp_path / "srs.secret"
    secret.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n")
    secret.chmod(0o600)
    return path


@pytest.mark.parametrize("mode", ["silent", "servfail"])
def test_dns_down_exits_75_and_says_temperror(
    config: Path, dns_server: ZoneServer, mode: str
) -> None:
    dns_server.mode = mode  # type: ignore[assignment]
    result = CliRunner().invoke(cli, ["doctor", "--config", str(config), "--json"])
    assert result.exit_code == 75, result.output
    findings = json.loads(result.output)
    unknown = [f for f in findings if f["check"] in ("spf", "mx")]
    assert unknown and all("temperror" in f["message"] for f in unknown)
    assert not any("no MX" in f["message"] for f in findings)
