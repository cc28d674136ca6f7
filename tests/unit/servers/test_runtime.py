"""The daemon over real sockets (unix and TCP), in this process: postsrsd's black-box
cases, protocol violations, limits, idle timeouts, reload and misbehaving clients."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import stat
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from srsfwd.errors import ConfigError
from srsfwd.protocols.socketmap import SocketmapReply, Status, netstring
from srsfwd.protocols.tcptable import Code
from srsfwd.servers.connection import Connection
from srsfwd.servers.runtime import Daemon, Loaded
from srsfwd.servers.settings import Endpoint, ServeSettings
from srsfwd.srsmaps import SRSMaps
from tests.ports import free_port
from tests.serving import (
    SocketmapClient,
    TcpTableClient,
    postsrsd_maps,
    running,
    settings_for,
)
from tests.unit.test_srsmaps import STATELESS


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 60))


class WatchedConnections(set[Connection]):
    """The daemon's open connections; ``closed`` is set each time one goes away."""

    def __init__(self, connections: set[Connection]) -> None:
        super().__init__(connections)
        self.closed = asyncio.Event()

    def discard(self, connection: object, /) -> None:
        super().discard(connection)
        self.closed.set()


async def until_open(daemon: Daemon, count: int) -> None:
    """Wait until the daemon has noticed closes and holds ``count`` connections open."""
    watched = WatchedConnections(daemon.context.connections)
    daemon.context.connections = watched
    while len(watched) != count:
        watched.closed.clear()
        await asyncio.wait_for(watched.closed.wait(), 5)


def fixed(settings: ServeSettings, maps: SRSMaps | None = None) -> Callable[[], Loaded]:
    loaded = Loaded(settings, maps or postsrsd_maps())
    return lambda: loaded


def test_postsrsd_black_box_queries_over_one_unix_connection(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        async with running(fixed(settings)):
            mode = (await asyncio.to_thread(Path(settings.socketmap[0].path or "").stat)).st_mode
            assert stat.S_ISSOCK(mode) and mode & 0o777 == 0o666  # postsrsd's mode
            client = await SocketmapClient.open(settings.socketmap[0])
            for line, status, text in STATELESS:
                assert await client.ask(line) == SocketmapReply(status, text), line
            client.close()

    run(scenario)


# postsrsd's execute_death_tests: "PERM Invalid query.", then the connection is closed.
@pytest.mark.parametrize(
    "wire",
    [
        b"0:,",
        b"1024:forward " + b"a" * 1016 + b",",
        b"get test@example.com\n",
        b"18446744073709551616:some data...",
        b"28:forward test@otherdomain.com;",
    ],
)
def test_protocol_violations_are_answered_and_closed(tmp_path: Path, wire: bytes) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        async with running(fixed(settings)):
            client = await SocketmapClient.open(settings.socketmap[0])
            await client.send_raw(wire)
            assert await client.reply() == SocketmapReply(Status.PERM, "Invalid query.")
            assert await client.closed()
            client.close()
            # ... and the daemon serves the next client.
            other = await SocketmapClient.open(settings.socketmap[0])
            assert (await other.ask("forward test@otherdomain.com")).status is Status.OK
            other.close()

    run(scenario)


def test_tcp_table_forward_and_reverse(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        async with running(fixed(settings)):
            forward = await TcpTableClient.open(settings.tcp_table_forward[0])
            reverse = await TcpTableClient.open(settings.tcp_table_reverse[0])
            reply = await forward.ask("test@otherdomain.com")
            assert (reply.code, reply.text) == (
                Code.FOUND,
                "SRS0=vmyz=2W=otherdomain.com=test@example.com",
            )
            reply = await reverse.ask("SRS0=XjO9=2V=otherdomain.com=test@example.com")
            assert (reply.code, reply.text) == (Code.FOUND, "test@otherdomain.com")
            reply = await reverse.ask("test@example.com")
            assert (reply.code, reply.text) == (Code.NOT_FOUND, "Not an SRS address.")
            reply = await forward.ask("test@example.com")
            assert reply.code is Code.NOT_FOUND
            forward.writer.write(b"GET x@y\n")
            assert await forward.reply() == type(reply)(Code.NOT_FOUND, "Invalid request")
            assert await forward.reader.read() == b""
            forward.close()
            reverse.close()

    run(scenario)


def test_pipelined_requests_are_answered_in_order(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    senders = [f"user{i}@sender{i}.example" for i in range(500)]

    async def scenario() -> None:
        async with running(fixed(settings)):
            client = await SocketmapClient.open(settings.socketmap[0])
            wire = b"".join(netstring(f"forward {s}".encode()) for s in senders)
            await client.send_raw(wire)
            replies = [await client.reply() for _ in senders]
            for sender, reply in zip(senders, replies, strict=True):
                local, _, domain = sender.partition("@")
                assert reply.text.endswith(f"={domain}={local}@example.com")
            client.close()

    run(scenario)


def test_idle_connections_are_closed_and_slow_clients_too(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, keep_alive=0.4)

    async def scenario() -> None:
        async with running(fixed(settings)) as daemon:
            idle = await SocketmapClient.open(settings.socketmap[0])
            busy = await SocketmapClient.open(settings.socketmap[0])
            slow = await SocketmapClient.open(settings.socketmap[0])
            started = time.monotonic()
            # slow sends a byte every 0.1 s: never a whole request, so it counts as idle.
            cut_off = False
            for byte in b"28:forward test@otherdomain.com,"[:25]:
                try:
                    await slow.send_raw(bytes([byte]))
                except ConnectionError:
                    cut_off = True
                    break
                await asyncio.sleep(0.1)
                assert (await busy.ask("reverse test@example.com")).status is Status.NOTFOUND
            assert cut_off or await slow.closed(wait=3)
            assert time.monotonic() - started < 2
            assert await idle.closed(wait=3)
            assert (await busy.ask("forward test@otherdomain.com")).status is Status.OK
            assert len(daemon.context.connections) == 1
            for client in (busy, idle, slow):
                client.close()

    run(scenario)


def test_connections_over_the_limit_are_closed_and_the_others_served(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, connection_limit=3)

    async def scenario() -> None:
        async with running(fixed(settings)) as daemon:
            clients = [await SocketmapClient.open(settings.socketmap[0]) for _ in range(3)]
            for client in clients:
                assert (await client.ask("forward a@b.example")).status is Status.OK
            extra = await SocketmapClient.open(settings.socketmap[0])
            assert await extra.closed()
            assert daemon.context.refused == 1
            extra.close()
            clients[0].close()
            await until_open(daemon, 2)
            again = await SocketmapClient.open(settings.socketmap[0])
            assert (await again.ask("forward a@b.example")).status is Status.OK
            for client in [*clients[1:], again]:
                client.close()

    run(scenario)


def test_a_thousand_connections_at_once(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2200:
        if hard != resource.RLIM_INFINITY and hard < 2200:
            pytest.skip("needs 2200 open files")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2200, hard))
    settings = settings_for(
        tmp_path,
        connection_limit=1200,
        tcp_table_connection_limit=1200,
        peer_connection_limit=1200,
    )

    async def one(index: int) -> SocketmapReply:
        endpoint = settings.socketmap[0] if index % 2 else settings.tcp_table_forward[0]
        if endpoint.path is None:
            tcp = await TcpTableClient.open(endpoint)
            reply = await tcp.ask(f"u{index}@d.example")
            tcp.close()
            return SocketmapReply(
                Status.OK if reply.code is Code.FOUND else Status.PERM, reply.text
            )
        client = await SocketmapClient.open(endpoint)
        answer = await client.ask(f"forward u{index}@d.example")
        client.close()
        return answer

    async def scenario() -> None:
        async with running(fixed(settings)) as daemon:
            started = time.monotonic()
            replies = await asyncio.gather(*(one(i) for i in range(1000)))
            elapsed = time.monotonic() - started
            assert all(r.status is Status.OK for r in replies)
            assert elapsed < 20, elapsed
            await until_open(daemon, 0)

    try:
        run(scenario)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_clients_that_vanish_mid_request_disturb_nobody(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        async with running(fixed(settings)) as daemon:
            steady = await SocketmapClient.open(settings.socketmap[0])
            for cut in (1, 3, 10, 20):
                gone = await SocketmapClient.open(settings.socketmap[0])
                await gone.send_raw(b"28:forward test@otherdomain.com,"[:cut])
                gone.writer.transport.abort()
                gone.close()
                assert (await steady.ask("forward test@otherdomain.com")).status is Status.OK
            await until_open(daemon, 1)
            steady.close()

    run(scenario)


def test_a_client_that_never_reads_is_held_back_not_buffered(tmp_path: Path) -> None:
    # keep-alive well past the test: on a slow machine the idle sweep must not close the
    # greedy client before we look at its connection's buffer.
    settings = settings_for(tmp_path, keep_alive=60.0)

    async def scenario() -> None:
        async with running(fixed(settings)) as daemon:
            greedy = await SocketmapClient.open(settings.socketmap[0])
            request = netstring(b"forward " + b"x" * 40 + b"@sender.example")
            sent = 0
            # Write for a while without reading: the daemon must stop reading us.
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                greedy.writer.write(request * 200)
                sent += 200
                try:
                    await asyncio.wait_for(greedy.writer.drain(), 0.2)
                except TimeoutError:
                    break
            (connection,) = daemon.context.connections
            assert connection.transport is not None
            assert connection.transport.get_write_buffer_size() < 1024 * 1024
            other = await SocketmapClient.open(settings.socketmap[0])
            assert (await other.ask("forward a@b.example")).status is Status.OK
            other.close()
            greedy.writer.transport.abort()
            greedy.close()

    run(scenario)


def test_reload_swaps_secrets_without_dropping_connections(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    current = {"maps": postsrsd_maps()}

    def loader() -> Loaded:
        return Loaded(settings, current["maps"])

    async def scenario() -> None:
        async with running(loader) as daemon:
            client = await SocketmapClient.open(settings.socketmap[0])
            before = await client.ask("forward test@otherdomain.com")
            current["maps"] = postsrsd_maps(secret="another secret")
            await daemon.reload()
            after = await client.ask("forward test@otherdomain.com")
            assert before.text == "SRS0=vmyz=2W=otherdomain.com=test@example.com"
            assert after.status is Status.OK and after.text != before.text
            client.close()

    run(scenario)


def test_a_failed_reload_keeps_the_old_configuration(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(tmp_path)
    loads = {"n": 0}

    def loader() -> Loaded:
        loads["n"] += 1
        if loads["n"] > 1:
            raise ConfigError("secrets file is gone")
        return Loaded(settings, postsrsd_maps())

    async def scenario() -> None:
        async with running(loader) as daemon:
            await daemon.reload()
            client = await SocketmapClient.open(settings.socketmap[0])
            assert (await client.ask("forward test@otherdomain.com")).status is Status.OK
            client.close()

    run(scenario)
    assert loads["n"] == 2
    assert "reload failed, still serving the old configuration" in caplog.text


def test_a_reload_that_cannot_listen_keeps_the_old_secrets(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    host, port = taken.getsockname()
    unbindable = replace(settings, tcp_table_forward=(Endpoint(host=host, port=port),))
    current = {"loaded": Loaded(settings, postsrsd_maps())}

    async def scenario() -> None:
        async with running(lambda: current["loaded"]) as daemon:
            client = await SocketmapClient.open(settings.socketmap[0])
            before = await client.ask("forward test@otherdomain.com")
            current["loaded"] = Loaded(unbindable, postsrsd_maps(secret="another secret"))
            await daemon.reload()
            assert await client.ask("forward test@otherdomain.com") == before
            client.close()

    try:
        run(scenario)
    finally:
        taken.close()


def test_reload_opens_new_endpoints_and_closes_dropped_ones(tmp_path: Path) -> None:
    first = settings_for(tmp_path)
    second = replace(first, socketmap=(Endpoint(host="127.0.0.1", port=free_port()),))
    current = {"settings": first}

    def loader() -> Loaded:
        return Loaded(current["settings"], postsrsd_maps())

    async def scenario() -> None:
        async with running(loader) as daemon:
            kept = await SocketmapClient.open(first.socketmap[0])
            current["settings"] = second
            await daemon.reload()
            assert not await asyncio.to_thread(Path(first.socketmap[0].path or "").exists)
            fresh = await SocketmapClient.open(second.socketmap[0])
            assert (await fresh.ask("forward a@b.example")).status is Status.OK
            assert (await kept.ask("forward a@b.example")).status is Status.OK
            fresh.close()
            kept.close()

    run(scenario)


def exploding_maps() -> SRSMaps:
    """Maps whose rewriter has a bug: it raises on ``boom@x.example``."""
    maps = postsrsd_maps()
    forward, forward_plain = maps.rewriter.forward, maps.rewriter.forward_plain

    def buggy(sender: str, *, dry_run: bool = False) -> str:
        if sender == "boom@x.example":
            raise RuntimeError("a bug")
        return forward(sender, dry_run=dry_run)

    def buggy_plain(sender: str, stamp: str) -> str | None:
        if sender == "boom@x.example":
            raise RuntimeError("a bug")
        return forward_plain(sender, stamp)

    maps.rewriter.forward = buggy  # type: ignore[method-assign]
    maps.rewriter.forward_plain = buggy_plain  # type: ignore[method-assign]
    return maps


def test_a_bug_in_a_lookup_is_a_temporary_failure(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    maps = exploding_maps()

    async def scenario() -> None:
        async with running(fixed(settings, maps)):
            client = await SocketmapClient.open(settings.socketmap[0])
            assert await client.ask("forward boom@x.example") == SocketmapReply(
                Status.TEMP, "Internal error."
            )
            assert (await client.ask("forward a@b.example")).status is Status.OK
            client.close()

    run(scenario)


def test_a_bug_in_a_tcp_table_lookup_is_a_temporary_failure(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        async with running(fixed(settings, exploding_maps())):
            client = await TcpTableClient.open(settings.tcp_table_forward[0])
            assert (await client.ask("boom@x.example")).code is Code.TRY_AGAIN
            assert (await client.ask("a@b.example")).code is Code.FOUND
            client.close()

    run(scenario)


def test_a_live_socket_is_not_taken_over(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    async def scenario() -> None:
        async with running(fixed(settings)):
            with pytest.raises(ConfigError, match="in use"):
                async with running(fixed(replace(settings, tcp_table_forward=()))):
                    pass

    run(scenario)


def test_a_stale_socket_is_replaced_and_removed_at_exit(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    path = Path(settings.socketmap[0].path or "")
    import socket as socket_module

    stale = socket_module.socket(socket_module.AF_UNIX)
    stale.bind(str(path))
    stale.close()

    async def scenario() -> None:
        async with running(fixed(settings)):
            client = await SocketmapClient.open(settings.socketmap[0])
            assert (await client.ask("forward a@b.example")).status is Status.OK
            client.close()

    run(scenario)
    assert not path.exists()


def test_socket_mode_and_group(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, socket_mode=0o660, socket_group=str(os.getgid()))

    async def scenario() -> None:
        async with running(fixed(settings)):
            info = await asyncio.to_thread(Path(settings.socketmap[0].path or "").stat)
            assert info.st_mode & 0o777 == 0o660
            assert info.st_gid == os.getgid()

    run(scenario)


def test_metrics_endpoint_counts_lookups(tmp_path: Path) -> None:
    port = free_port()
    settings = settings_for(tmp_path, metrics=Endpoint(host="127.0.0.1", port=port))

    async def scenario() -> None:
        async with running(fixed(settings)):
            client = await SocketmapClient.open(settings.socketmap[0])
            await client.ask("forward test@otherdomain.com")
            await client.ask("reverse test@example.com")
            url = f"http://127.0.0.1:{port}/metrics"
            body = await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=5).read().decode()
            )
            assert 'srsfwd_lookups_total{map="forward",result="OK"} 1.0' in body
            assert 'srsfwd_lookups_total{map="reverse",result="NOTFOUND"} 1.0' in body
            assert "srsfwd_lookup_seconds_bucket" in body
            assert "srsfwd_connections 1.0" in body
            client.close()

    run(scenario)


def test_an_endpoint_that_cannot_be_bound_is_a_config_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, socketmap=(Endpoint(path="/nonexistent/dir/srs"),))

    async def scenario() -> None:
        with pytest.raises(ConfigError, match="cannot listen"):
            async with running(fixed(settings)):
                pass

    run(scenario)


def test_a_flood_of_bad_clients_does_not_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    from srsfwd.servers.connection import CLIENT_LOGS_PER_SECOND, ServerContext

    context = ServerContext(maps=postsrsd_maps())
    with caplog.at_level("INFO", logger="srsfwd.servers.connection"):
        for n in range(500):
            context.note_client_error("socketmap", f"bad client {n}")
    assert len(caplog.records) == CLIENT_LOGS_PER_SECOND
