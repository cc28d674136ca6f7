"""Header fields a client writes in our name, through the milter of ``srsfwd serve``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from srsfwd.protocols.milter import AddHeader, ChangeHeader, Continue, MilterReply
from tests.serving import MilterClient, running
from tests.unit.servers.test_milter_server import OUTSIDE, eml, endpoint, example_copy, loader


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return example_copy(tmp_path, f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n')


async def forward(config: Path, extra: bytes) -> tuple[list[MilterReply], MilterReply | None]:
    async with running(loader(config)):
        client = await MilterClient.open(endpoint(config))
        await client.start()
        outcome = await client.transaction(
            "alice@example.org", [OUTSIDE], extra + eml(config, "normal")
        )
        client.close()
    return outcome.actions, outcome.final


def test_pool_headers_from_the_client_are_deleted_before_ours_is_added(config: Path) -> None:
    extra = b"X-Srsfwd-Pool: relay\r\nx-srsfwd-pool: high-risk\r\n"
    actions, final = asyncio.run(asyncio.wait_for(forward(config, extra), 60))
    assert final == Continue()
    tail = [a for a in actions if isinstance(a, ChangeHeader | AddHeader)][-3:]
    assert tail == [
        ChangeHeader(2, "X-Srsfwd-Pool", b""),
        ChangeHeader(1, "X-Srsfwd-Pool", b""),
        AddHeader("X-Srsfwd-Pool", b" normal"),
    ]


def test_a_message_without_a_pool_header_gets_only_ours(config: Path) -> None:
    actions, _ = asyncio.run(asyncio.wait_for(forward(config, b""), 60))
    assert not [a for a in actions if isinstance(a, ChangeHeader) and a.name == "X-Srsfwd-Pool"]
    assert [a for a in actions if isinstance(a, AddHeader)] == [
        AddHeader("X-Srsfwd-Pool", b" normal")
    ]
