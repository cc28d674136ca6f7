"""The milter of ``srsfwd serve`` when a dependency or the MTA fails mid-message.

Each test runs the daemon in this process on the shipped example and checks what the
MTA is told (a 4xx deferral, never a 5xx or an accept of a message we could not
process), that nothing is half-applied, that the sending limits count only what was
handed over, and what the metrics and the log say.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import threading
import urllib.request
from pathlib import Path

import pytest

from srsfwd.forward import Forwarder
from srsfwd.protocols.milter import (
    ActionFlag,
    ChangeHeader,
    Continue,
    InsertHeader,
    MilterMessage,
    MilterReply,
    SmtpReply,
)
from srsfwd.protocols.milter.mta import MtaClient
from srsfwd.protocols.milter.wire import ALL_ACTIONS
from srsfwd.servers.milter import MilterService, Verdict
from srsfwd.servers.runtime import Daemon
from tests.dnsserver import ZoneServer
from tests.ports import free_port
from tests.redis_server import redis_server
from tests.serving import MilterClient, running, split_message
from tests.unit.servers.test_milter_server import OUTSIDE, ZONE, eml, endpoint, example_copy, loader

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
    port = re.search(r'metrics = "127.0.0.1:([0-9]+)"', config.read_text())  # noqa: ASYNC240
    assert port is not None
    url = f"http://127.0.0.1:{port[1]}/metrics"
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
    is set when one is waiting. The decisions go to the worker threads: one held on the
    event loop would hold the whole daemon."""
    milter = daemon.context.milter
    assert isinstance(milter, MilterService)
    milter.inline = False
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


# -- a dependency failing mid-run -------------------------------------------------------

SECRET = "example-secret-published-with-srsfwd-never-use-it"


def assert_one_line_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = record.getMessage()
        assert "\n" not in text and record.exc_info is None, text
        assert SECRET not in text and "PRIVATE KEY" not in text


def test_a_locked_limits_store_defers_and_the_next_message_forwards(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> tuple[list[MilterReply], MilterReply | None, MilterReply | None, str]:
        async with running(loader(config)):
            await send_normal(config)  # the store exists
            blocker = sqlite3.connect(
                config.parent.parent / "state" / "limits.sqlite", isolation_level=None
            )
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                actions, deferred = await send_normal(config)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            _, final = await send_normal(config)
            return actions, deferred, final, await metrics_text(config)

    with caplog.at_level("INFO"):
        actions, deferred, final, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert actions == []
    assert isinstance(deferred, SmtpReply) and deferred.line.startswith("451 4.3.0")
    assert "sqlite" not in deferred.text and "state" not in deferred.text  # nothing of ours
    assert final == Continue()
    assert 'action="tempfail",pool="-",reason="temporary-failure"} 1.0' in text
    assert 'action="forward",pool="normal",reason="forward-authenticated"} 2.0' in text
    assert "srsfwd_errors_total{" not in text
    assert_one_line_without_secrets(caplog)


def test_dns_answering_servfail_defers_without_naming_our_resolver_and_keeps_serving(
    tmp_path: Path, dns_server: ZoneServer, caplog: pytest.LogCaptureFixture
) -> None:
    dns_server.load(ZONE)
    config = example_copy(
        tmp_path,
        f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n'
        f'metrics = "127.0.0.1:{free_port()}"\n',
    )
    text = config.read_text().replace(
        'zone_files = ["example.zone"]', f'nameservers = ["127.0.0.1"]\nport = {dns_server.port}'
    )
    config.write_text(text.replace("timeout = 5.0", "timeout = 1.0"))

    async def scenario() -> tuple[list[MilterReply], MilterReply | None, MilterReply | None, str]:
        async with running(loader(config)):
            dns_server.mode = "servfail"
            actions, deferred = await send_normal(config)
            dns_server.mode = "answer"
            _, final = await send_normal(config)
            return actions, deferred, final, await metrics_text(config)

    with caplog.at_level("INFO"):
        actions, deferred, final, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert actions == []
    assert isinstance(deferred, SmtpReply) and deferred.code // 100 == 4
    assert "127.0.0.1" not in deferred.text and "Do53" not in deferred.text, deferred.text
    assert final == Continue()
    assert 'action="tempfail"' in text and 'action="forward"' in text
    assert "srsfwd_errors_total{" not in text
    assert_one_line_without_secrets(caplog)


def test_garbage_secrets_and_reload_keep_the_old_secrets_serving(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets = config.parent / "srs.secret"

    async def scenario() -> tuple[MilterReply | None, str]:
        async with running(loader(config)) as daemon:
            secrets.write_bytes(b"\x00garbage " + SECRET.encode() + b"\xff\n")
            await daemon.reload()
            _, final = await send_normal(config)
            return final, await metrics_text(config)

    with caplog.at_level("INFO"):
        final, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert final == Continue()
    assert 'srsfwd_reloads_total{result="failed"} 1.0' in text
    assert "reload failed" in caplog.text
    assert_one_line_without_secrets(caplog)


def test_a_removed_signing_key_and_reload_keep_the_old_keys_signing(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (key,) = (config.parent / "keys" / "fwd.example.net").glob("*.key")

    async def scenario() -> tuple[list[MilterReply], MilterReply | None, str]:
        async with running(loader(config)) as daemon:
            key.unlink()
            await daemon.reload()
            actions, final = await send_normal(config)
            return actions, final, await metrics_text(config)

    with caplog.at_level("INFO"):
        actions, final, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert final == Continue()
    inserted = {a.name for a in actions if isinstance(a, InsertHeader)}
    assert {"DKIM-Signature", "ARC-Seal"} <= inserted
    assert 'srsfwd_reloads_total{result="failed"} 1.0' in text
    assert_one_line_without_secrets(caplog)


def test_a_key_file_spoiled_under_a_new_worker_defers_without_telling_the_client_where_it_is(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (key,) = (config.parent / "keys" / "fwd.example.net").glob("*.key")

    async def scenario() -> tuple[list[MilterReply], MilterReply | None, str]:
        async with running(loader(config)) as daemon:
            milter = daemon.context.milter
            assert milter is not None
            key.chmod(0o644)
            milter.forwarders._idle.clear()  # the next message needs a new forwarder
            actions, final = await send_normal(config)
            return actions, final, await metrics_text(config)

    with caplog.at_level("INFO"):
        actions, final, _ = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert actions == []
    assert isinstance(final, SmtpReply) and final.line.startswith("451 4.3.0")
    assert str(config.parent) not in final.text
    assert_one_line_without_secrets(caplog)


@pytest.mark.integration  # starts a real redis-server
def test_redis_killed_mid_run_defers_then_recovers(
    config: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path) as server:
        config.write_text(
            config.read_text().replace(
                '# store = "redis://127.0.0.1:6379/0"', f'store = "{server.url}"'
            )
        )

        async def scenario() -> tuple[MilterReply | None, MilterReply | None, str]:
            async with running(loader(config)):
                await send_normal(config)
                await asyncio.to_thread(server.stop)
                _, deferred = await send_normal(config)
                await asyncio.to_thread(server.start)
                _, final = await send_normal(config)
                return deferred, final, await metrics_text(config)

        with caplog.at_level("INFO"):
            deferred, final, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert isinstance(deferred, SmtpReply) and deferred.line.startswith("451 4.3.0")
    assert str(server.port) not in deferred.text and "Redis" not in deferred.text
    assert final == Continue()
    assert 'action="tempfail",pool="-",reason="temporary-failure"} 1.0' in text
    assert 'action="forward",pool="normal",reason="forward-authenticated"} 2.0' in text
    assert_one_line_without_secrets(caplog)


@pytest.mark.integration  # starts a real redis-server
def test_an_alias_store_down_at_rcpt_defers_that_recipient_in_one_log_line(
    config: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(tmp_path) as server:
        config.write_text(
            config.read_text().replace(
                'original_envelope = "embedded"',
                f'original_envelope = "database"\nenvelope_database = "{server.url}"',
            )
        )

        async def scenario() -> tuple[list[MilterReply], str]:
            async with running(loader(config)) as daemon:
                milter = daemon.context.milter
                assert milter is not None
                with milter.forwarders.borrow() as forwarder:
                    bounce = forwarder.rewriter.forward("a" * 60 + "@example.org")  # an alias
                assert bounce.endswith("@fwd.example.net")
                await asyncio.to_thread(server.stop)
                client = await MilterClient.open(endpoint(config))
                await client.start()
                outcome = await client.transaction("", [bounce], eml(config, "normal"))
                client.close()
                return outcome.rcpt_replies, await metrics_text(config)

        with caplog.at_level("INFO"):
            replies, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    (reply,) = replies
    assert isinstance(reply, SmtpReply) and reply.line.startswith("451 4.3.0")
    assert str(server.port) not in reply.text
    assert 'srsfwd_errors_total{kind="milter-internal"}' not in text
    deferred = 'srsfwd_milter_recipients_total{action="tempfail",reason="store-unavailable"}'
    assert f"{deferred} 1.0" in text
    assert_one_line_without_secrets(caplog)


def test_an_internal_error_passed_as_accept_still_deletes_results_forged_in_our_name(
    config: Path,
) -> None:
    # milter-default-action = "accept" lets the message through unchanged, but never with
    # a verdict in our name that we did not write.
    config.write_text(config.read_text() + 'milter-default-action = "accept"\n')

    def broken() -> Forwarder:
        raise RuntimeError("broken on purpose")

    async def scenario() -> tuple[list[MilterReply], MilterReply | None]:
        async with running(loader(config)) as daemon:
            milter = daemon.context.milter
            assert milter is not None
            milter.forwarders._idle.clear()
            milter.forwarders._factory = broken
            client = await MilterClient.open(endpoint(config))
            await client.start()
            outcome = await client.transaction(
                "alice@example.org", [OUTSIDE], FORGED + eml(config, "normal")
            )
            client.close()
            return outcome.actions, outcome.final

    actions, final = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert final == Continue()
    assert actions == [ChangeHeader(1, "Authentication-Results", b"")]


def test_a_stopped_dns_server_defers_in_one_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dns = ZoneServer(ZONE).start()
    config = example_copy(
        tmp_path,
        f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n'
        f'metrics = "127.0.0.1:{free_port()}"\n',
    )
    text = config.read_text().replace(
        'zone_files = ["example.zone"]', f'nameservers = ["127.0.0.1"]\nport = {dns.port}'
    )
    config.write_text(text.replace("timeout = 5.0", "timeout = 1.0"))

    async def scenario() -> tuple[list[MilterReply], MilterReply | None, str]:
        async with running(loader(config)):
            await asyncio.to_thread(dns.stop)  # port closed: refused, not silent
            actions, deferred = await send_normal(config)
            return actions, deferred, await metrics_text(config)

    with caplog.at_level("INFO"):
        actions, deferred, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert actions == []
    assert isinstance(deferred, SmtpReply) and deferred.code // 100 == 4
    assert "127.0.0.1" not in deferred.text and "Do53" not in deferred.text, deferred.text
    assert 'action="tempfail"' in text and "srsfwd_errors_total{" not in text
    assert_one_line_without_secrets(caplog)


def _immutable(paths: list[Path], on: bool) -> bool:
    """chattr +i (or -i) ``paths``: read-only even for root; False where it cannot."""
    flag = "+i" if on else "-i"
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return done.returncode == 0


def test_a_read_only_limits_store_defers_and_the_next_message_forwards(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = config.parent.parent / "state"

    async def scenario() -> tuple[list[MilterReply], MilterReply | None, MilterReply | None, str]:
        async with running(loader(config)):
            await send_normal(config)  # the store exists
            # Not the -shm file: SQLite maps it, and a mapping that cannot grow is SIGBUS.
            files = [state, *(f for f in state.iterdir() if not f.name.endswith("-shm"))]
            if not await asyncio.to_thread(_immutable, files, True):
                pytest.skip("chattr +i is not available here (needs CAP_LINUX_IMMUTABLE)")
            try:
                actions, deferred = await send_normal(config)
            finally:
                await asyncio.to_thread(_immutable, files, False)
            _, final = await send_normal(config)
            return actions, deferred, final, await metrics_text(config)

    with caplog.at_level("INFO"):
        actions, deferred, final, text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert actions == []
    assert isinstance(deferred, SmtpReply) and deferred.line.startswith("451 4.3.0")
    assert final == Continue()
    assert 'action="tempfail",pool="-",reason="temporary-failure"} 1.0' in text
    assert_one_line_without_secrets(caplog)


def test_a_recipient_check_without_a_forwarder_defers_in_one_log_line(
    config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (key,) = (config.parent / "keys" / "fwd.example.net").glob("*.key")

    async def scenario() -> tuple[list[MilterReply], str]:
        async with running(loader(config)) as daemon:
            milter = daemon.context.milter
            assert milter is not None
            with milter.forwarders.borrow() as forwarder:
                bounce = forwarder.rewriter.forward("alice@example.org")
            key.chmod(0o644)
            milter.forwarders._idle.clear()  # the check needs a new forwarder: none is built
            client = await MilterClient.open(endpoint(config))
            await client.start()
            outcome = await client.transaction("", [bounce], eml(config, "normal"))
            client.close()
            return outcome.rcpt_replies, await metrics_text(config)

    with caplog.at_level("INFO"):
        (reply,), text = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert isinstance(reply, SmtpReply) and reply.line.startswith("451 4.3.0")
    deferred = 'srsfwd_milter_recipients_total{action="error",reason="internal-error"}'
    assert f"{deferred} 1.0" in text
    assert_one_line_without_secrets(caplog)
