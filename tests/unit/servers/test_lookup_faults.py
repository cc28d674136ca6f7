"""The lookup maps of ``srsfwd serve`` when their store fails mid-run (database mode).

A real redis-server holds the aliases of senders too long to embed; it is killed while
the daemon serves. Postfix must be told to try again (socketmap TEMP, tcp_table 400),
never that the address is unknown, and the daemon keeps serving the same connections;
the log says once that the store stopped answering and once that it answers again.
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from pathlib import Path

import pytest

from srsfwd.protocols.socketmap import Status
from srsfwd.servers.settings import Endpoint
from tests.ports import free_port
from tests.redis_server import redis_server
from tests.serving import SocketmapClient, TcpTableClient, running
from tests.unit.servers.test_milter_server import example_copy, loader

pytestmark = pytest.mark.integration  # starts a real redis-server

LONG_SENDER = "a" * 60 + "@example.org"  # too long to embed: kept under an alias


def test_a_killed_alias_store_gets_try_again_answers_then_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    forward, reverse, metrics = free_port(), free_port(), free_port()
    with redis_server(tmp_path) as server:
        config = example_copy(
            tmp_path,
            f'socketmap = ["unix:{tmp_path}/srs.sock"]\n'
            f'tcp-table-forward = "inet:127.0.0.1:{forward}"\n'
            f'tcp-table-reverse = "inet:127.0.0.1:{reverse}"\n'
            f'metrics = "127.0.0.1:{metrics}"\n',
        )
        config.write_text(
            config.read_text().replace(
                'original_envelope = "embedded"',
                f'original_envelope = "database"\nenvelope_database = "{server.url}"',
            )
        )

        async def scenario() -> tuple[list[str], str]:
            async with running(loader(config)):
                sm = await SocketmapClient.open(Endpoint(path=str(tmp_path / "srs.sock")))
                tcp = await TcpTableClient.open(Endpoint(host="127.0.0.1", port=reverse))
                alias = await sm.ask(f"forward {LONG_SENDER}")
                assert alias.status is Status.OK
                await asyncio.to_thread(server.stop)
                seen = [
                    (await sm.ask(f"forward {LONG_SENDER.upper()}")).status.value,
                    (await sm.ask(f"reverse {alias.text}")).status.value,
                    str(int((await tcp.ask(alias.text)).code)),
                ]
                await asyncio.to_thread(server.start)
                back = await sm.ask(f"reverse {alias.text}")
                seen += [back.status.value, back.text]
                sm.close()
                tcp.close()
                url = f"http://127.0.0.1:{metrics}/metrics"
                text = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(url, timeout=5).read().decode()
                )
                return seen, text

        with caplog.at_level("INFO"):
            seen, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    # the store restarted empty: the alias is unknown now, which is NOTFOUND, not TEMP
    assert seen == ["TEMP", "TEMP", "400", "NOTFOUND", "Unknown alias."]
    assert re.search(r'srsfwd_lookups_total\{map="forward",result="TEMP"\} 1.0', text)
    assert re.search(r'srsfwd_lookups_total\{map="reverse",result="TEMP"\} 2.0', text)
    assert "srsfwd_errors_total{" not in text
    assert all(r.exc_info is None for r in caplog.records)
    # three lookups failed: one warning; the first that reached the store again: one line
    store_lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if "alias store" in r.getMessage()
    ]
    assert [level for level, _ in store_lines] == ["WARNING", "INFO"]
    assert all(server.url in line and "\n" not in line for _, line in store_lines)
