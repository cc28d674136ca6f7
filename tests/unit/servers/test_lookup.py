"""The lookup connections served by a thread each (``srsfwd serve --lookup-threads``):
the daemon's lookup scenarios again, with the same answers, limits and timeouts."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from srsfwd.protocols.socketmap import Status
from srsfwd.protocols.tcptable import Code
from tests import serving
from tests.serving import SocketmapClient, TcpTableClient, running, settings_for
from tests.unit.servers.test_runtime import (  # noqa: F401 - collected again here
    fixed,
    run,
    test_a_bug_in_a_lookup_is_a_temporary_failure,
    test_a_bug_in_a_tcp_table_lookup_is_a_temporary_failure,
    test_a_client_that_never_reads_is_held_back_not_buffered,
    test_clients_that_vanish_mid_request_disturb_nobody,
    test_connections_over_the_limit_are_closed_and_the_others_served,
    test_idle_connections_are_closed_and_slow_clients_too,
    test_pipelined_requests_are_answered_in_order,
    test_postsrsd_black_box_queries_over_one_unix_connection,
    test_protocol_violations_are_answered_and_closed,
    test_reload_swaps_secrets_without_dropping_connections,
    test_tcp_table_forward_and_reverse,
    until_open,
)


@pytest.fixture(autouse=True)
def lookup_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "LOOKUP_THREADS", True)


def test_each_lookup_connection_has_a_thread_of_its_own(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)

    def lookup_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith("srsfwd ")]

    async def scenario() -> None:
        async with running(fixed(settings)) as daemon:
            one = await SocketmapClient.open(settings.socketmap[0])
            other = await TcpTableClient.open(settings.tcp_table_forward[0])
            assert (await one.ask("forward a@b.example")).status is Status.OK
            assert (await other.ask("a@b.example")).code is Code.FOUND
            assert sorted(lookup_threads()) == ["srsfwd socketmap", "srsfwd tcp_table forward"]
            for client in (one, other):
                client.close()
            await until_open(daemon, 0)
        for _ in range(100):  # the threads end once their clients have gone
            if not lookup_threads():
                break
            await asyncio.sleep(0.05)
        assert not lookup_threads()

    run(scenario)
