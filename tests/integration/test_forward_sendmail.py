"""``srsfwd forward --sendmail`` through a real Postfix: each pool leaves by its transport.

Postfix's sendmail cannot pick a transport per message, so srsfwd names the pool in an
``X-Srsfwd-Pool`` field; the cleanup service behind pickup turns it into the pool's
transport with ``header_checks`` ``FILTER``, and ``smtp_header_checks`` removes it on the
way out, as docs/forward.md sets it up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from srsfwd.cli import cli
from tests.dnsserver import ZoneServer
from tests.integration.postfix import Postfix, private_postfix
from tests.smtp_sink import Received, Sink, smtp_sink

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).parent.parent.parent / "examples"

# name → (client IP, HELO, MAIL FROM) of the example message, and the pool's address, HELO
SCENARIOS = {
    "normal": ("198.51.100.25", "mail.example.org", "alice@example.org"),
    "relay": ("192.0.2.99", "mx.unsigned.example", "carol@unsigned.example"),
    "no-a-no-mx": ("192.0.2.98", "mail.nowhere.example", "dave@nowhere.example"),
}
LEAVES_FROM = {
    "normal": ("127.0.0.2", "mta1.fwd.example.net"),
    "relay": ("127.0.0.3", "rly1.fwd.example.net"),
    "no-a-no-mx": ("127.0.0.4", "hr1.fwd.example.net"),
}


def pool_transport(name: str, source: str, helo: str) -> str:
    return f"{name} unix - - n - - smtp -o smtp_bind_address={source} -o smtp_helo_name={helo}"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with smtp_sink() as running:
        yield running


@pytest.fixture
def postfix(sink: Sink) -> Iterator[Postfix]:
    nexthop = f"[127.0.0.1]:{sink.port}"
    pool_checks = (
        f"/^X-Srsfwd-Pool:[[:space:]]*relay$/      FILTER relay-pool:{nexthop}\n"
        f"/^X-Srsfwd-Pool:[[:space:]]*high-risk$/  FILTER high-risk-pool:{nexthop}\n"
    )
    with private_postfix(
        relay_port=sink.port,
        maps={
            "header_checks": "regexp:$config_directory/header_checks",
            "smtp_header_checks": "regexp:$config_directory/smtp_header_checks",
            "smtp_bind_address": "127.0.0.2",
            "smtp_helo_name": "mta1.fwd.example.net",
        },
        files={
            "header_checks": "/^X-Srsfwd-Pool:/ IGNORE\n",
            "pool_header_checks": pool_checks,
            "smtp_header_checks": "/^X-Srsfwd-Pool:/ IGNORE\n",
        },
        replaced_services=["pickup unix n - n 60 1 pickup -o cleanup_service_name=pool-cleanup"],
        services=[
            "pool-cleanup unix n - n - 0 cleanup"
            " -o header_checks=regexp:$config_directory/pool_header_checks",
            pool_transport("relay-pool", *LEAVES_FROM["relay"]),
            pool_transport("high-risk-pool", *LEAVES_FROM["no-a-no-mx"]),
        ],
    ) as running:
        yield running


def arrived(sink: Sink, rcpt: str, timeout: float = 30) -> Received:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in sink.messages:
            if rcpt in message.rcpts:
                return message
        time.sleep(0.1)
    pytest.fail(f"nothing for {rcpt} reached the sink")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_pool_leaves_by_its_transport(
    example: Path, dns_server: ZoneServer, postfix: Postfix, sink: Sink, name: str
) -> None:
    dns_server.load((EXAMPLES / "example.zone").read_text())
    ip, helo, sender = SCENARIOS[name]
    rcpt = f"{name}@receiver.example"
    result = CliRunner(env={"MAIL_CONFIG": str(postfix.root / "etc")}).invoke(
        cli,
        [
            "forward",
            "--config",
            str(example / "srsfwd.toml"),
            "--dns-server",
            f"127.0.0.1:{dns_server.port}",
            "--client-ip",
            ip,
            "--helo",
            helo,
            "--mail-from",
            sender,
            "--rcpt",
            rcpt,
            "--sendmail",
            str(example / "messages" / f"{name}.eml"),
        ],
    )
    assert result.exit_code == 0, result.stderr
    message = arrived(sink, rcpt)
    assert (message.peer_ip, message.helo) == LEAVES_FROM[name]
    assert b"X-Srsfwd-Pool" not in message.data
