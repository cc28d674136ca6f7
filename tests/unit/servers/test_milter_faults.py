"""The milter of ``srsfwd serve`` when a dependency or the MTA fails mid-message.

Each test runs the daemon in this process on the shipped example and checks what the
MTA is told (a 4xx deferral, never a 5xx or an accept of a message we could not
process), that nothing is half-applied, that the sending limits count only what was
handed over, and what the metrics and the log say.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from pathlib import Path

import pytest

from srsfwd.cli.serve import load
from srsfwd.protocols.milter import ActionFlag, Continue, MilterMessage, MilterReply, SmtpReply
from srsfwd.protocols.milter.mta import MtaClient
from srsfwd.protocols.milter.wire import ALL_ACTIONS
from srsfwd.servers.milter import MilterService, Verdict
from srsfwd.servers.runtime import Daemon
from tests.ports import free_port
from tests.serving import MilterClient, running, split_message
from tests.unit.servers.test_milter_server import OUTSIDE, eml, endpoint, example_copy, loader

FORGED = b"Authentication-Results: fwd.example.net; spf=pass smtp.mailfrom=example.org\r\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return example_copy(
        tmp_path,
        f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n'
        f'metrics = "127.0.0.1:{free_port()}"\n',
    )


def one_a_day(config: Path) -> None:
    """alice@example.org may send to one recipient a day: a second copy counted is refused."""
    config.write_text(config.read_text().replace("per_day = 1000", "per_day = 1"))


async def metrics_text(config: Path) -> str:
    port = load(config, None, notes=print).settings.metrics
    assert port is not None
    url = f"http://127.0.0.1:{port.port}/metrics"
    return await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())


def normal(config: Path) -> tuple[list[tuple[str, bytes]], bytes]:
    return split_message(eml(config, "normal"))


async def send_normal(config: Path) -> tuple[list[MilterReply], MilterReply | None]:
    client = await MilterClient.open(endpoint(config))
    await client.start()
    outcome = await client.transaction("alice@example.org", [OUTSIDE], eml(config, "normal"))
    client.close()
    return outcome.actions, outcome.final


def hold_decisions(daemon: Daemon) -> tuple[threading.Event, threading.Event]:
    """Make the milter's decisions wait until the returned ``release`` is set; ``entered``
    is set when one is waiting."""
    milter = daemon.context.milter
    assert isinstance(milter, MilterService)
    entered, release = threading.Event(), threading.Event()
    decide = milter.decide

    def held(message: MilterMessage, *, leading_space: bool) -> Verdict:
        entered.set()
        release.wait(30)
        return decide(message, leading_space=leading_space)

    milter.decide = held  # type: ignore[method-assign]
    return entered, release


def test_an_mta_gone_before_the_verdict_does_not_use_up_the_senders_limits(config: Path) -> None:
    # Postfix never saw our answer (it applies its milter_default_action): the client will
    # send the message again, and that copy must not be refused for the first.
    one_a_day(config)

    async def scenario() -> tuple[MilterReply | None, str]:
        async with running(loader(config)) as daemon:
            entered, release = hold_decisions(daemon)
            gone = await MilterClient.open(endpoint(config))
            await gone.start()
            await gone.write(*gone.mta.message("alice@example.org", [OUTSIDE], *normal(config)))
            await asyncio.to_thread(entered.wait, 10)
            gone.writer.transport.abort()
            await asyncio.sleep(0.1)
            release.set()
            await asyncio.sleep(0.5)  # the verdict of the vanished connection is done
            _, final = await send_normal(config)
            return final, await metrics_text(config)

    final, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert final == Continue()
    forwarded = 'srsfwd_milter_messages_total{action="forward",pool="normal"'
    assert text.count(forwarded) == 1
    assert f'{forwarded},reason="forward-authenticated"}} 1.0' in text


def test_an_mta_gone_before_the_verdict_is_counted_as_abandoned(config: Path) -> None:
    async def scenario() -> str:
        async with running(loader(config)) as daemon:
            entered, release = hold_decisions(daemon)
            gone = await MilterClient.open(endpoint(config))
            await gone.start()
            await gone.write(*gone.mta.message("alice@example.org", [OUTSIDE], *normal(config)))
            await asyncio.to_thread(entered.wait, 10)
            gone.writer.transport.abort()
            await asyncio.sleep(0.1)
            release.set()
            await asyncio.sleep(0.5)
            return await metrics_text(config)

    text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert 'action="abandoned",pool="-",reason="mta-gone"} 1.0' in text
    assert 'action="forward"' not in text


def test_actions_the_mta_does_not_allow_defer_without_using_up_the_limits(
    config: Path,
) -> None:
    # An MTA that does not let us delete header fields cannot have our forged-results
    # deletion: the message is deferred whole, and not counted against its sender.
    one_a_day(config)
    forged = FORGED + eml(config, "normal")

    async def scenario() -> tuple[MilterReply | None, list[MilterReply], MilterReply | None, str]:
        async with running(loader(config)):
            client = MilterClient(*await asyncio.open_unix_connection(endpoint(config).path))
            client.mta = MtaClient(actions=ALL_ACTIONS & ~ActionFlag.CHGHDRS)
            await client.start()
            outcome = await client.transaction("alice@example.org", [OUTSIDE], forged)
            client.close()
            _, final = await send_normal(config)
            return outcome.final, outcome.actions, final, await metrics_text(config)

    refused, actions, final, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert actions == []
    assert isinstance(refused, SmtpReply) and refused.code // 100 == 4
    assert final == Continue()
    assert 'srsfwd_errors_total{kind="milter-internal"} 1.0' in text
    assert 'action="error",pool="-",reason="internal-error"} 1.0' in text


@pytest.mark.parametrize("step", ["envelope_changes", "header_actions"])
def test_an_error_after_the_decision_defers_without_using_up_the_limits(
    config: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from srsfwd.servers import milter as milter_module

    one_a_day(config)
    real = getattr(milter_module, step)
    calls = {"n": 0}

    def failing_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ValueError("broken on purpose")
        return real(*args, **kwargs)

    monkeypatch.setattr(milter_module, step, failing_once)

    async def scenario() -> tuple[list[MilterReply], MilterReply | None, MilterReply | None]:
        async with running(loader(config)):
            actions, refused = await send_normal(config)
            _, final = await send_normal(config)
            return actions, refused, final

    actions, refused, final = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert actions == []
    assert isinstance(refused, SmtpReply) and refused.line.startswith("451 4.3.0")
    assert final == Continue()
