"""``srsfwd doctor`` against a real DNS server on 127.0.0.1: healthy and broken deployments."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli
from srsfwd.config import config_from_data
from srsfwd.dkim.keys import generate_key, key_record_text, private_key_pem, zone_line
from srsfwd.doctor import spf_record_for
from srsfwd.keystore import KeyStore
from srsfwd.pool_settings import pools_from_config
from tests.dnsserver import ZoneServer

CONFIG = """
[srs]
domain = "fwd.example"
secrets_file = "srs.secret"

[dkim]
keys_dir = "keys"

[dns]
nameservers = ["127.0.0.1"]
port = {port}
timeout = 1.0

[pools.normal]
transport = "smtp"
source_addresses = ["192.0.2.1", "2001:db8::1"]
helo = "out1.fwd.example"

[pools.high-risk]
transport = "hrpool"
source_addresses = ["192.0.2.3"]
helo = "hr1.fwd.example"

[pools.relay]
transport = "relaypool"
source_addresses = ["198.51.100.9"]
helo = "rly1.fwd.example"
"""

GOOD_DNS = """
fwd.example.        IN MX   10 mx.fwd.example.
fwd.example.        IN TXT  "v=spf1 ip4:192.0.2.1 ip6:2001:db8::1 include:_hr.fwd.example -all"
_hr.fwd.example.    IN TXT  "v=spf1 ip4:192.0.2.3 -all"
_dmarc.fwd.example. IN TXT  "v=DMARC1; p=none"
"""


@pytest.fixture
def deployment(tmp_path: Path, dns_server: ZoneServer) -> tuple[Path, ZoneServer, str]:
    config = tmp_path / "srsfwd.toml"
    config.write_text(CONFIG.format(port=dns_server.port))
    secret = tmp_path / "srs.secret"
    secret.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQ=\n")
    secret.chmod(0o600)
    key = generate_key("ed25519")
    KeyStore(tmp_path / "keys").create(
        "fwd.example", "s1", key, pem=private_key_pem(key), now=1_700_000_000
    )
    return config, dns_server, zone_line("s1", "fwd.example", key_record_text(key))


def run(config: Path) -> tuple[int, list[dict[str, str]]]:
    result = CliRunner().invoke(cli, ["doctor", "--config", str(config), "--json"])
    return result.exit_code, json.loads(result.output)


def test_healthy_deployment(deployment: tuple[Path, ZoneServer, str]) -> None:
    config, server, dkim_record = deployment
    server.load(GOOD_DNS + dkim_record)
    status, findings = run(config)
    assert status == 0, findings
    assert {f["severity"] for f in findings} == {"ok"}
    checks = {f["check"] for f in findings}
    assert checks == {"spf", "mx", "dkim", "dmarc", "secret"}


def test_broken_deployment_says_what_to_fix(
    deployment: tuple[Path, ZoneServer, str], tmp_path: Path
) -> None:
    config, server, _ = deployment
    server.load(
        'fwd.example. IN TXT "v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"\n'
        "fwd.example. IN MX 0 .\n"
        's1._domainkey.fwd.example. IN TXT "v=DKIM1; k=ed25519; p="\n'
    )
    (tmp_path / "srs.secret").chmod(0o644)
    status, findings = run(config)
    assert status == 1
    errors = {
        (f["check"], f["message"].split(":")[0]) for f in findings if f["severity"] == "error"
    }
    assert ("spf", "relay pool address 198.51.100.9 passes SPF for fwd.example") in errors
    assert ("mx", "fwd.example has a null MX") in errors
    assert ("dkim", "s1._domainkey.fwd.example") in errors
    assert any(f["check"] == "secret" and f["fix"].startswith("chmod 600") for f in findings)
    spf_fix = next(f["fix"] for f in findings if f["check"] == "spf" and f["fix"])
    assert "ip4:192.0.2.1 ip6:2001:db8::1 ip4:192.0.2.3 -all" in spf_fix
    assert "198.51.100.9" not in spf_fix
    assert any(f["check"] == "dmarc" and f["severity"] == "warning" for f in findings)


def test_nothing_published(deployment: tuple[Path, ZoneServer, str]) -> None:
    config, _server, _ = deployment
    result = CliRunner().invoke(cli, ["doctor", "--config", str(config)])
    assert result.exit_code == 1
    assert re.search(r"^ERROR +spf +.+ publish: fwd\.example\. IN TXT", result.output, re.M)
    assert "no record published" in result.output


def test_dns_down_is_a_warning_not_a_crash(deployment: tuple[Path, ZoneServer, str]) -> None:
    config, server, _ = deployment
    server.mode = "servfail"
    status, findings = run(config)
    assert any(f["severity"] == "warning" and "DNS failed" in f["message"] for f in findings)
    assert status == 75  # unknown: try again, neither broken nor fine


def test_spf_record_suggestion() -> None:
    pools = pools_from_config(
        config_from_data(
            {
                "pools": {
                    "normal": {"source_addresses": ["192.0.2.1"]},
                    "high-risk": {"source_addresses": ["192.0.2.1", "2001:db8::5"]},
                    "relay": {"source_addresses": ["198.51.100.1"]},
                }
            },
            None,
        )
    )
    assert spf_record_for(pools) == "v=spf1 ip4:192.0.2.1 ip6:2001:db8::5 -all"
