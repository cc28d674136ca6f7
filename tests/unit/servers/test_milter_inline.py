"""The milter answers a message on its event loop when every DNS answer it needs is
cached, and hands it to a worker thread otherwise, with the same verdict, counted once.

DNS comes from the project's server on 127.0.0.1 (``dns_server``) through the production
resolver, so that answers can be cold; the example's zone file is always "cached".
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import urllib.request
from pathlib import Path
from types import MappingProxyType

import pytest

from srsfwd.address import DomainSet
from srsfwd.app import build_limits
from srsfwd.clock import FrozenClock, SystemClock
from srsfwd.config import load_config
from srsfwd.dns.resolver import Resolver
from srsfwd.forward import Forwarder
from srsfwd.protocols.milter import (
    Continue,
    Mail,
    MilterHeaderField,
    MilterMessage,
    MilterReply,
    Rcpt,
    SmtpReply,
)
from srsfwd.servers.milter import INLINE_MAX_SIZE, ForwarderPool, MilterService
from tests.dnsserver import ZoneServer
from tests.ports import free_port
from tests.serving import MilterClient, running, split_message
from tests.unit.servers.test_milter_server import (
    OUTSIDE,
    ZONE,
    eml,
    endpoint,
    example_copy,
    loader,
    one_message,
    run,
)

ACCEPTED = DomainSet(["example.net", "*.example.net"])
# example.org's SPF fetches an explanation named after the sender (RFC 7208 §6.2): pyspf
# looks it up inside a bare "except: pass", which swallows whatever the look-up raises.
EXPLAINED_ZONE = ZONE.replace(
    '"v=spf1 include:_spf.example.org -all"',
    '"v=spf1 include:_spf.example.org -all exp=%{l}._exp.example.org"',
)


def network_config(tmp_path: Path, dns_server: ZoneServer, serve: str = "") -> Path:
    """The example with its DNS from ``dns_server`` (answers can be cold) and a milter."""
    config = example_copy(
        tmp_path, f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n{serve}'
    )
    text = config.read_text().replace(
        'zone_files = ["example.zone"]', f'nameservers = ["127.0.0.1"]\nport = {dns_server.port}'
    )
    config.write_text(text)
    return config


@pytest.fixture
def zone_config(tmp_path: Path) -> Path:
    return example_copy(tmp_path, f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n')


def now() -> FrozenClock:
    """A clock that stands still at the time the test starts."""
    return FrozenClock(SystemClock().now())


def service(config: Path, resolver: Resolver, clock: FrozenClock, *, inline: bool) -> MilterService:
    loaded = load_config(config)
    forwarders = ForwarderPool(
        lambda: Forwarder.from_config(loaded, resolver=resolver, clock=clock)
    )
    return MilterService(forwarders, ACCEPTED, inline=inline)


def arriving(config: Path, sender: str = "alice@example.org", body: bytes = b"") -> MilterMessage:
    """The example's signed message as Postfix hands it over (HDR_LEADSPC)."""
    headers, original = split_message(eml(config, "normal"))
    fields = tuple(MilterHeaderField(name, value) for name, value in headers)
    body = original + body
    size = sum(len(name) + len(value) for name, value in headers) + len(body)
    macros = MappingProxyType({"client_addr": "198.51.100.25", "i": "QID"})
    rcpts = (Rcpt(f"<{OUTSIDE}>"),)
    return MilterMessage(
        None, "mail.example.org", f"<{sender}>", (), rcpts, fields, body, size, False, macros
    )


def sent_today(config: Path, sender: str = "alice@example.org") -> int:
    return build_limits(load_config(config)).status(sender)[0].today


# -- the service ------------------------------------------------------------------------


def test_a_cold_message_is_not_answered_inline(tmp_path: Path, dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    config = network_config(tmp_path, dns_server)
    milter = service(config, dns_server.resolver(), now(), inline=True)
    try:
        assert milter.decide_inline(arriving(config), leading_space=True) is None
    finally:
        milter.close()


def test_an_attempt_that_misses_counts_nothing(tmp_path: Path, dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    config = network_config(tmp_path, dns_server)
    milter = service(config, dns_server.resolver(), now(), inline=True)
    try:
        milter.decide_inline(arriving(config), leading_space=True)
    finally:
        milter.close()
    assert sent_today(config) == 0


def test_a_warm_message_is_answered_inline(tmp_path: Path, dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    config = network_config(tmp_path, dns_server)
    milter = service(config, dns_server.resolver(), now(), inline=True)
    try:
        milter.decide(arriving(config), leading_space=True)  # as a worker: the cache fills
        verdict = milter.decide_inline(arriving(config), leading_space=True)
    finally:
        milter.close()
    assert verdict is not None and verdict.outcome == "forward"


def test_a_cold_message_gets_the_verdict_it_gets_with_inline_off(
    tmp_path: Path, dns_server: ZoneServer
) -> None:
    dns_server.load(ZONE)
    config = network_config(tmp_path, dns_server)
    clock = now()  # the same t= in both signatures and seals
    found = []
    for inline in (True, False):
        milter = service(config, dns_server.resolver(), clock, inline=inline)
        try:
            if inline:
                assert milter.decide_inline(arriving(config), leading_space=True) is None
            found.append(milter.decide(arriving(config), leading_space=True))  # the worker
        finally:
            milter.close()
    assert found[0] == found[1]
    assert found[0].outcome == "forward"


def test_a_miss_a_library_swallowed_never_makes_the_verdict(
    tmp_path: Path, dns_server: ZoneServer
) -> None:
    dns_server.load(EXPLAINED_ZONE)
    config = network_config(tmp_path, dns_server)
    milter = service(config, dns_server.resolver(), now(), inline=True)
    try:
        milter.decide(arriving(config), leading_space=True)  # every answer cached for alice
        # carol's explanation name is the one answer not cached, and pyspf swallows the miss
        verdict = milter.decide_inline(arriving(config, "carol@example.org"), leading_space=True)
    finally:
        milter.close()
    assert verdict is None
    assert sent_today(config, "carol@example.org") == 0


def test_a_message_over_the_inline_size_goes_to_a_worker(zone_config: Path) -> None:
    milter = service(zone_config, Resolver.from_zone_text(ZONE), now(), inline=True)
    lines = b"".join([b"x" * 76 + b"\r\n"] * (INLINE_MAX_SIZE // 78 + 1))
    large = arriving(zone_config, body=lines)
    try:
        assert milter.decide_inline(large, leading_space=True) is None
    finally:
        milter.close()


def test_with_inline_off_nothing_is_answered_inline(zone_config: Path) -> None:
    milter = service(zone_config, Resolver.from_zone_text(ZONE), now(), inline=False)
    try:
        assert milter.decide_inline(arriving(zone_config), leading_space=True) is None
    finally:
        milter.close()


# -- the daemon -------------------------------------------------------------------------


def test_a_warm_message_is_answered_without_a_worker(zone_config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(zone_config)) as daemon:
            _, _, final = await one_message(zone_config, "normal", "alice@example.org", [OUTSIDE])
            assert final == Continue()
            assert daemon.context.milter is not None
            assert daemon.context.milter.handed_off == 0

    run(scenario)


def test_a_cold_message_goes_to_a_worker(tmp_path: Path, dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    config = network_config(tmp_path, dns_server)

    async def scenario() -> None:
        async with running(loader(config)) as daemon:
            _, _, final = await one_message(config, "normal", "alice@example.org", [OUTSIDE])
            assert final == Continue()
            assert daemon.context.milter is not None
            assert daemon.context.milter.handed_off == 1

    run(scenario)


def test_the_next_message_of_a_sender_stays_on_the_event_loop(
    tmp_path: Path, dns_server: ZoneServer
) -> None:
    dns_server.load(ZONE)
    config = network_config(tmp_path, dns_server)

    async def scenario() -> None:
        async with running(loader(config)) as daemon:
            for _ in range(2):
                await one_message(config, "normal", "alice@example.org", [OUTSIDE])
            assert daemon.context.milter is not None
            assert daemon.context.milter.handed_off == 1

    run(scenario)


def test_a_message_a_worker_retried_is_counted_once(tmp_path: Path, dns_server: ZoneServer) -> None:
    dns_server.load(ZONE)
    config = network_config(tmp_path, dns_server)

    async def scenario() -> None:
        async with running(loader(config)):
            await one_message(config, "normal", "alice@example.org", ["a@r.example", "b@r.example"])

    run(scenario)
    assert sent_today(config) == 2


def test_a_message_a_worker_retried_is_logged_once(
    tmp_path: Path, dns_server: ZoneServer, caplog: pytest.LogCaptureFixture
) -> None:
    dns_server.load(ZONE)
    config = network_config(tmp_path, dns_server)

    async def scenario() -> None:
        async with running(loader(config)):
            await one_message(config, "normal", "alice@example.org", [OUTSIDE])

    with caplog.at_level(logging.INFO, logger="srsfwd"):
        run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("milter: ")]
    assert len(lines) == 1 and "action=forward" in lines[0]


def test_a_message_a_worker_retried_is_counted_once_in_the_metrics(
    tmp_path: Path, dns_server: ZoneServer
) -> None:
    dns_server.load(ZONE)
    port = free_port()
    config = network_config(tmp_path, dns_server, f'metrics = "127.0.0.1:{port}"\n')

    async def scenario() -> str:
        async with running(loader(config)):
            await one_message(config, "normal", "alice@example.org", [OUTSIDE])
            url = f"http://127.0.0.1:{port}/metrics"
            return await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=5).read().decode()
            )

    text = asyncio.run(asyncio.wait_for(scenario(), 120))
    decided = 'action="forward",pool="normal",reason="forward-authenticated"'
    assert f"srsfwd_milter_messages_total{{{decided}}} 1.0" in text


def test_milter_inline_off_hands_every_message_to_a_worker(tmp_path: Path) -> None:
    config = example_copy(
        tmp_path,
        f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\nmilter-inline = false\n',
    )

    async def scenario() -> None:
        async with running(loader(config)) as daemon:
            for _ in range(2):
                await one_message(config, "normal", "alice@example.org", [OUTSIDE])
            assert daemon.context.milter is not None
            assert daemon.context.milter.handed_off == 2

    run(scenario)


def test_a_forged_bounce_is_refused_at_rcpt_without_a_worker(zone_config: Path) -> None:
    forged = "SRS0=AAAA=AA=example.org=alice@fwd.example.net"

    async def scenario() -> None:
        async with running(loader(zone_config)) as daemon:
            client = await MilterClient.open(endpoint(zone_config))
            await client.start("203.0.113.201", "mx.receiver.example")
            await client.write(Mail(""), Rcpt(forged))
            assert await client.final() == ([], Continue())
            _, reply = await client.final()
            assert isinstance(reply, SmtpReply) and reply.line.startswith("550 5.7.1 <")
            client.close()
            assert daemon.context.milter is not None
            assert daemon.context.milter.handed_off == 0

    run(scenario)


def test_a_redis_limits_store_keeps_every_message_off_the_event_loop(zone_config: Path) -> None:
    text = zone_config.read_text()
    zone_config.write_text(
        text.replace("[limits]\n", '[limits]\nstore = "redis://127.0.0.1:1/0"\n')
    )
    loaded = loader(zone_config)()
    try:
        assert loaded.milter is not None and not loaded.milter.inline
    finally:
        if loaded.milter is not None:
            loaded.milter.close()


def over_the_hourly_limit(config: Path, sender: str = "alice@example.org") -> MilterMessage:
    """Two outside recipients for a sender allowed one an hour: the message blocks it."""
    config.write_text(
        config.read_text().replace("external_per_hour = 500", "external_per_hour = 1")
    )
    message = arriving(config, sender)
    return dataclasses.replace(message, recipients=(Rcpt("<a@r.example>"), Rcpt("<b@r.example>")))


def blocked(config: Path, sender: str) -> bool:
    return any(who == sender for who, _ in build_limits(load_config(config)).blocked())


def test_a_message_that_blocks_its_sender_is_refused_on_the_event_loop(zone_config: Path) -> None:
    message = over_the_hourly_limit(zone_config)
    milter = service(zone_config, Resolver.from_zone_text(ZONE), now(), inline=True)
    try:
        verdict = milter.decide_inline(message, leading_space=True)
    finally:
        milter.close()
    assert verdict is not None and verdict.outcome == "reject"
    assert "limit-block" in verdict.reasons


def test_a_block_is_not_set_by_an_attempt_whose_miss_was_swallowed(
    tmp_path: Path, dns_server: ZoneServer
) -> None:
    dns_server.load(EXPLAINED_ZONE)
    config = network_config(tmp_path, dns_server)
    message = over_the_hourly_limit(config, "carol@example.org")
    milter = service(config, dns_server.resolver(), now(), inline=True)
    try:
        milter.decide(arriving(config), leading_space=True)  # every answer cached for alice
        assert milter.decide_inline(message, leading_space=True) is None
    finally:
        milter.close()
    assert not blocked(config, "carol@example.org")


def test_the_worker_then_refuses_it_for_the_limit_it_passed_not_as_blocked_already(
    tmp_path: Path, dns_server: ZoneServer
) -> None:
    dns_server.load(EXPLAINED_ZONE)
    config = network_config(tmp_path, dns_server)
    message = over_the_hourly_limit(config, "carol@example.org")
    milter = service(config, dns_server.resolver(), now(), inline=True)
    try:
        milter.decide(arriving(config), leading_space=True)
        milter.decide_inline(message, leading_space=True)
        verdict = milter.decide(message, leading_space=True)  # the worker
    finally:
        milter.close()
    assert verdict.outcome == "reject"
    assert "limit-block" in verdict.reasons and "sender-restricted" not in verdict.reasons


def test_a_recipient_check_on_the_event_loop_without_a_forwarder_defers_in_one_line(
    zone_config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (key,) = (zone_config.parent / "keys" / "fwd.example.net").glob("*.key")

    async def scenario() -> list[MilterReply]:
        async with running(loader(zone_config)) as daemon:
            milter = daemon.context.milter
            assert milter is not None
            with milter.forwarders.borrow() as forwarder:
                bounce = forwarder.rewriter.forward("alice@example.org")
            key.chmod(0o644)  # no forwarder can be built any more
            milter.forwarders._idle.clear()
            client = await MilterClient.open(endpoint(zone_config))
            await client.start()
            await client.write(Mail(""), Rcpt(bounce))
            assert await client.final() == ([], Continue())
            _, reply = await client.final()
            client.close()
            return [reply]

    with caplog.at_level(logging.INFO):
        (reply,) = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert isinstance(reply, SmtpReply) and reply.line.startswith("451 4.3.0")
    failed = [r for r in caplog.records if "recipient check failed" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info is None
