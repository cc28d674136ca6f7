"""The daemon stays fair under abuse, over real sockets: each service has its own
connection limit, a client that never completes its first request is closed early, one
peer cannot take a whole service, the milter's memory per connection is bounded,
metrics labels are bounded and debug logging shows each lookup."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from srsfwd.address import DomainSet
from srsfwd.forward import Forwarder
from srsfwd.protocols.milter import Command, DefineMacros, Mail, OptionsReply, Rcpt, SmtpReply
from srsfwd.protocols.milter.connection import MAX_HEADERS
from srsfwd.protocols.milter.mta import encode_command
from srsfwd.protocols.socketmap import Status
from srsfwd.protocols.tcptable import Code
from srsfwd.servers.connection import address_peer
from srsfwd.servers.milter import ForwarderPool, MilterService
from srsfwd.servers.runtime import Loaded
from srsfwd.servers.settings import Endpoint, ServeSettings
from tests.ports import free_port
from tests.serving import (
    MilterClient,
    SocketmapClient,
    TcpTableClient,
    postsrsd_maps,
    running,
    settings_for,
)
from tests.unit.servers.test_milter_server import OUTSIDE, example_copy, loader, one_message


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


def no_forwarder() -> Forwarder:
    raise AssertionError("these tests never finish a message")


def with_milter(settings: ServeSettings) -> Callable[[], Loaded]:
    """The daemon with a milter that is never asked to forward (only connections matter)."""
    milter = MilterService(ForwarderPool(no_forwarder), DomainSet())
    loaded = Loaded(settings, postsrsd_maps(), milter)
    return lambda: loaded


def lookups_only(settings: ServeSettings) -> Callable[[], Loaded]:
    loaded = Loaded(settings, postsrsd_maps())
    return lambda: loaded


async def tcp_table_from(endpoint: Endpoint, source: str) -> TcpTableClient:
    reader, writer = await asyncio.open_connection(
        endpoint.host, endpoint.port, local_addr=(source, 0)
    )
    return TcpTableClient(reader, writer)


async def closed_by_server(reader: asyncio.StreamReader, wait: float = 5) -> bool:
    """Whether the server closes the connection within ``wait`` seconds."""
    try:
        while await asyncio.wait_for(reader.read(65536), wait):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


# -- connection limits per service -------------------------------------------------------


def test_idle_milter_connections_do_not_stop_socketmap_lookups(tmp_path: Path) -> None:
    milter = Endpoint(host="127.0.0.1", port=free_port())
    settings = settings_for(
        tmp_path, milter=(milter,), connection_limit=4, milter_connection_limit=4
    )

    async def scenario() -> None:
        async with running(with_milter(settings)):
            idle = [await MilterClient.open(milter) for _ in range(4)]
            for client in idle:  # negotiated, then idle: surely counted by the daemon
                await client.write(client.mta.offer)
                assert isinstance(await client.reply(), OptionsReply)
            extra_reader, extra_writer = await asyncio.open_connection(milter.host, milter.port)
            assert await closed_by_server(extra_reader)
            lookup = await SocketmapClient.open(settings.socketmap[0])
            assert (await lookup.ask("forward test@otherdomain.com")).status is Status.OK
            lookup.close()
            extra_writer.close()
            for client in idle:
                client.close()

    run(scenario)


def test_tcp_table_clients_do_not_stop_socketmap_lookups(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, connection_limit=4, tcp_table_connection_limit=4)
    endpoint = settings.tcp_table_forward[0]

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            busy = [await TcpTableClient.open(endpoint) for _ in range(4)]
            for client in busy:
                assert (await client.ask("a@b.example")).code is Code.FOUND
            socketmap = await SocketmapClient.open(settings.socketmap[0])
            assert (await socketmap.ask("forward test@otherdomain.com")).status is Status.OK
            socketmap.close()
            for client in busy:
                client.close()

    run(scenario)


def test_the_service_limit_refuses_what_is_over_it(tmp_path: Path) -> None:
    milter = Endpoint(host="127.0.0.1", port=free_port())
    settings = settings_for(tmp_path, milter=(milter,), milter_connection_limit=2)

    async def scenario() -> None:
        async with running(with_milter(settings)) as daemon:
            kept = [await MilterClient.open(milter) for _ in range(2)]
            for client in kept:
                await client.write(client.mta.offer)
                assert isinstance(await client.reply(), OptionsReply)
            extra_reader, extra_writer = await asyncio.open_connection(milter.host, milter.port)
            assert await closed_by_server(extra_reader)
            assert daemon.context.refused == 1
            extra_writer.close()
            for client in kept:
                client.close()

    run(scenario)


def test_a_reload_applies_new_limits(tmp_path: Path) -> None:
    first = settings_for(tmp_path, connection_limit=1)
    current = {"settings": first}

    def loader() -> Loaded:
        return Loaded(current["settings"], postsrsd_maps())

    async def scenario() -> None:
        async with running(loader) as daemon:
            kept = await SocketmapClient.open(first.socketmap[0])
            assert (await kept.ask("forward a@b.example")).status is Status.OK
            current["settings"] = replace(first, connection_limit=2)
            daemon.reload()
            assert daemon._reloading is not None
            await daemon._reloading
            second = await SocketmapClient.open(first.socketmap[0])
            assert (await second.ask("forward a@b.example")).status is Status.OK
            for client in (kept, second):
                client.close()

    run(scenario)


def test_refusals_are_counted_by_kind(tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(
        tmp_path, metrics=Endpoint(host="127.0.0.1", port=port), peer_connection_limit=1
    )

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            kept = await SocketmapClient.open(settings.socketmap[0])
            assert (await kept.ask("forward a@b.example")).status is Status.OK
            refused = await SocketmapClient.open(settings.socketmap[0])
            assert await refused.closed()
            url = f"http://127.0.0.1:{port}/metrics"
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=5).read().decode()
            )
            for client in (kept, refused):
                client.close()
        assert 'srsfwd_errors_total{kind="peer-limit"} 1.0' in body

    run(scenario)


# -- a short timeout before the first request --------------------------------------------


def test_a_client_that_sends_no_first_request_is_closed_early(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, keep_alive=300.0, first_request_timeout=0.3)

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            silent = await SocketmapClient.open(settings.socketmap[0])
            assert await silent.closed(wait=10)
            silent.close()

    run(scenario)


def test_a_client_that_trickles_its_first_request_is_closed_early(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, keep_alive=300.0, first_request_timeout=0.3)

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            slow = await TcpTableClient.open(settings.tcp_table_forward[0])
            closed = False
            for byte in b"get " + b"a" * 200:
                try:
                    slow.writer.write(bytes([byte]))
                    await slow.writer.drain()
                except ConnectionError:
                    closed = True
                    break
                if slow.reader.at_eof():
                    closed = True
                    break
                await asyncio.sleep(0.05)
            assert closed or await closed_by_server(slow.reader, wait=10)
            slow.close()

    run(scenario)


def test_after_its_first_request_a_client_has_the_keep_alive_time(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, keep_alive=300.0, first_request_timeout=0.3)

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            client = await SocketmapClient.open(settings.socketmap[0])
            assert (await client.ask("forward test@otherdomain.com")).status is Status.OK
            assert not await client.closed(wait=1.5)
            assert (await client.ask("forward test@otherdomain.com")).status is Status.OK
            client.close()

    run(scenario)


def test_a_milter_client_that_does_not_negotiate_is_closed_early(tmp_path: Path) -> None:
    milter = Endpoint(host="127.0.0.1", port=free_port())
    settings = settings_for(
        tmp_path, milter=(milter,), milter_timeout=600.0, first_request_timeout=0.3
    )

    async def scenario() -> None:
        async with running(with_milter(settings)):
            silent_reader, silent_writer = await asyncio.open_connection(milter.host, milter.port)
            assert await closed_by_server(silent_reader, wait=10)
            silent_writer.close()
            negotiated = await MilterClient.open(milter)
            await negotiated.write(negotiated.mta.offer)
            assert isinstance(await negotiated.reply(), OptionsReply)
            assert not await closed_by_server(negotiated.reader, wait=1.5)
            negotiated.close()

    run(scenario)


# -- one peer cannot take a whole service ------------------------------------------------


def test_one_tcp_peer_cannot_lock_the_others_out(tmp_path: Path) -> None:
    settings = settings_for(
        tmp_path, tcp_table_connection_limit=10, peer_connection_limit=4, keep_alive=300.0
    )
    endpoint = settings.tcp_table_forward[0]

    async def scenario() -> None:
        async with running(lookups_only(settings)) as daemon:
            # A peer that keeps as many connections alive as it can, with requests.
            flood = [await tcp_table_from(endpoint, "127.0.0.2") for _ in range(10)]
            answered = []
            for client in flood:
                try:
                    answered.append((await client.ask("a@b.example")).code is Code.FOUND)
                except ConnectionError:
                    answered.append(False)
            assert answered.count(True) == 4
            postfix = await tcp_table_from(endpoint, "127.0.0.1")
            assert (await postfix.ask("test@otherdomain.com")).code is Code.FOUND
            assert daemon.context.refused == 6
            for client in [*flood, postfix]:
                client.close()

    run(scenario)


def test_unix_socket_peers_are_capped_by_user(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, peer_connection_limit=2)

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            kept = [await SocketmapClient.open(settings.socketmap[0]) for _ in range(2)]
            for client in kept:
                assert (await client.ask("forward a@b.example")).status is Status.OK
            third = await SocketmapClient.open(settings.socketmap[0])
            assert await third.closed()
            for client in [*kept, third]:
                client.close()

    run(scenario)


@pytest.mark.parametrize(
    ("host", "peer"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("fe80::1%eth0", "fe80::/64"),
    ],
)
def test_a_tcp_peer_is_its_address_or_its_ipv6_64(host: str, peer: str) -> None:
    assert address_peer(host) == peer


# -- the milter's memory per connection is bounded ---------------------------------------


async def negotiated_milter(endpoint: Endpoint) -> MilterClient:
    client = await MilterClient.open(endpoint)
    await client.start()
    return client


def test_a_macro_flood_closes_the_milter_connection(tmp_path: Path) -> None:
    milter = Endpoint(host="127.0.0.1", port=free_port())
    settings = settings_for(tmp_path, milter=(milter,))

    async def scenario() -> None:
        async with running(with_milter(settings)) as daemon:
            client = await negotiated_milter(milter)
            client.writer.write(encode_command(Mail("alice@example.org")))
            closed = False
            for round_ in range(200):
                macros = tuple((f"{{m{round_}x{i}}}", "v" * 200) for i in range(100))
                try:
                    client.writer.write(encode_command(DefineMacros(Command.RCPT, macros)))
                    await client.writer.drain()
                except ConnectionError:
                    closed = True
                    break
                if client.reader.at_eof():
                    closed = True
                    break
            assert closed or await closed_by_server(client.reader)
            assert len(daemon.context.connections) == 0
            client.close()
            other = await negotiated_milter(milter)
            assert not await closed_by_server(other.reader, wait=0.5)
            other.close()

    run(scenario)


def test_a_huge_recipient_closes_the_milter_connection(tmp_path: Path) -> None:
    milter = Endpoint(host="127.0.0.1", port=free_port())
    settings = settings_for(tmp_path, milter=(milter,))

    async def scenario() -> None:
        async with running(with_milter(settings)):
            client = await negotiated_milter(milter)
            await client.write(Mail("alice@example.org"))
            assert not isinstance(await client.reply(), OptionsReply)  # MAIL's CONTINUE
            client.writer.write(encode_command(Rcpt("b" * (1024 * 1024 - 20) + "@x.example")))
            assert await closed_by_server(client.reader)
            client.close()

    run(scenario)


def test_a_message_with_more_header_fields_than_kept_is_refused_as_too_big(
    tmp_path: Path,
) -> None:
    config = example_copy(tmp_path, f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n')
    many = b"".join(b"X-Filler: %d\r\n" % n for n in range(MAX_HEADERS + 1))
    message = many + (config.parent / "messages" / "normal.eml").read_bytes()

    async def scenario() -> None:
        async with running(loader(config)):
            _, actions, final = await one_message(
                config, "normal", "alice@example.org", [OUTSIDE], message=message
            )
        assert actions == []
        assert isinstance(final, SmtpReply) and final.line.startswith("552 5.3.4")

    run(scenario)


# -- metrics labels are bounded ----------------------------------------------------------


def test_unknown_map_names_share_one_metrics_label(tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(tmp_path, metrics=Endpoint(host="127.0.0.1", port=port))

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            client = await SocketmapClient.open(settings.socketmap[0])
            for n in range(20):
                assert (await client.ask(f"map{n} a@b.example")).status is Status.PERM
            await client.ask("forward test@otherdomain.com")
            url = f"http://127.0.0.1:{port}/metrics"
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=5).read().decode()
            )
            client.close()
        assert 'srsfwd_lookups_total{map="other",result="PERM"} 20.0' in body
        assert 'srsfwd_lookups_total{map="forward",result="OK"} 1.0' in body
        assert 'map="map' not in body

    run(scenario)


# -- debug logging -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("forward test@otherdomain.com", ["map=forward", "rewritten", "result=OK"]),
        ("forward test@example.com", ["map=forward", "kept", "result=NOTFOUND"]),
        (
            "reverse SRS0=XjO9=2V=otherdomain.com=test@example.com",
            ["map=reverse", "reversed", "result=OK"],
        ),
        ("reverse test@example.com", ["map=reverse", "not ours", "result=NOTFOUND"]),
    ],
)
def test_debug_logs_each_lookup_without_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, query: str, words: list[str]
) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            client = await SocketmapClient.open(settings.socketmap[0])
            await client.ask(query)
            client.close()

    with caplog.at_level(logging.DEBUG, logger="srsfwd"):
        run(scenario)
    (line,) = [r.getMessage() for r in caplog.records if " map=" in r.getMessage()]
    for word in words:
        assert word in line
    assert "tops3cr3t" not in caplog.text


def test_info_logs_no_lookup(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        async with running(lookups_only(settings)):
            client = await SocketmapClient.open(settings.socketmap[0])
            await client.ask("forward test@otherdomain.com")
            client.close()

    with caplog.at_level(logging.INFO, logger="srsfwd"):
        run(scenario)
    assert not [r for r in caplog.records if " map=" in r.getMessage()]


def test_debug_logs_each_milter_decision_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = example_copy(tmp_path, f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n')

    async def scenario() -> None:
        async with running(loader(config)):
            await one_message(config, "normal", "alice@example.org", [OUTSIDE])

    with caplog.at_level(logging.DEBUG, logger="srsfwd"):
        run(scenario)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert f"milter: RCPT <{OUTSIDE}>: CONTINUE" in lines
    (replied,) = [line for line in lines if " replied " in line]
    assert "CHGFROM SRS0=" in replied
    assert "INSHEADER DKIM-Signature" in replied
    assert "ADDHEADER X-Srsfwd-Pool: normal" in replied
    assert replied.endswith("CONTINUE")
    secret = (config.parent / "srs.secret").read_text().split()[0]
    assert secret not in caplog.text
    assert "PRIVATE KEY" not in caplog.text
