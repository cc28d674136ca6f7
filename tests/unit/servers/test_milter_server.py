"""The milter of ``srsfwd serve`` over real unix sockets, driven by the pure MTA side.

The daemon runs in this process on the shipped example (its DNS from example.zone);
each test speaks the milter protocol as Postfix does and checks the actions: the SRS
sender, the inserted headers (verified with dkimpy after applying them as Postfix
does), the pool header, bounces reversed, refusals and deferrals.
"""

from __future__ import annotations

import asyncio
import shutil
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import dkim
import pytest

from srsfwd.cli.serve import load
from srsfwd.dkim.arc import dkimpy_dnsfunc
from srsfwd.dkim.canon import Header
from srsfwd.dns.resolver import Resolver
from srsfwd.errors import SignatureError
from srsfwd.forward import Forwarder
from srsfwd.message import FieldRef, MessageChanges
from srsfwd.protocols.milter import (
    Abort,
    AddHeader,
    AddRecipient,
    Body,
    ChangeFrom,
    ChangeHeader,
    Continue,
    DeleteRecipient,
    InsertHeader,
    Mail,
    MilterHeaderField,
    MilterMessage,
    MilterReply,
    Progress,
    Rcpt,
    SmtpReply,
)
from srsfwd.servers import milter_connection
from srsfwd.servers.milter import header_actions, received_message
from srsfwd.servers.runtime import Loaded
from srsfwd.servers.settings import Endpoint
from tests.dnsserver import ZoneServer
from tests.ports import free_port
from tests.serving import MilterClient, apply_actions, running, split_message

EXAMPLES = Path(__file__).parent.parent.parent.parent / "examples"
ZONE = (EXAMPLES / "example.zone").read_text()
OUTSIDE = "bob@receiver.example"


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 120))


def example_copy(tmp_path: Path, serve: str) -> Path:
    """A private copy of examples/ whose [serve] table is ``serve``."""
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    for key in copy.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (copy / "srs.secret").chmod(0o600)
    config = copy / "srsfwd.toml"
    text = config.read_text()
    config.write_text(text[: text.index("[serve]")] + "[serve]\n" + serve)
    return config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return example_copy(
        tmp_path,
        f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n'
        'milter-spam-header = "X-Spam-Flag"\n'
        f'metrics = "127.0.0.1:{free_port()}"\n',
    )


def loader(config: Path) -> Callable[[], Loaded]:
    return lambda: load(config, None, notes=print)


def endpoint(config: Path) -> Endpoint:
    return Endpoint(path=str(config.parent.parent / "milter.sock"))


def eml(config: Path, name: str) -> bytes:
    return (config.parent / "messages" / f"{name}.eml").read_bytes()


async def one_message(
    config: Path,
    name: str,
    sender: str,
    rcpts: list[str],
    *,
    client_ip: str = "198.51.100.25",
    helo: str = "mail.example.org",
    message: bytes | None = None,
) -> tuple[list[MilterReply], list[MilterReply], MilterReply | None]:
    client = await MilterClient.open(endpoint(config))
    await client.start(client_ip, helo)
    outcome = await client.transaction(sender, rcpts, message or eml(config, name))
    client.close()
    return outcome.rcpt_replies, outcome.actions, outcome.final


def of(kind: type[MilterReply], actions: list[MilterReply]) -> list[MilterReply]:
    return [a for a in actions if isinstance(a, kind)]


def test_authenticated_forward_gets_srs_signatures_and_the_normal_pool(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            _, actions, final = await one_message(config, "normal", "alice@example.org", [OUTSIDE])
        assert final == Continue()
        (change,) = of(ChangeFrom, actions)
        assert isinstance(change, ChangeFrom)
        assert change.sender.startswith("SRS0=") and change.sender.endswith("@fwd.example.net")
        assert of(AddHeader, actions) == [AddHeader("X-Srsfwd-Pool", b" normal")]
        names = [a.name for a in of(InsertHeader, actions) if isinstance(a, InsertHeader)]
        assert set(names) == {
            "ARC-Seal",
            "ARC-Message-Signature",
            "ARC-Authentication-Results",
            "Authentication-Results",
            "DKIM-Signature",
        }
        delivered = apply_actions(eml(config, "normal"), actions)
        dnsfunc = dkimpy_dnsfunc(Resolver.from_zone_text(ZONE))
        assert dkim.verify(delivered, dnsfunc=dnsfunc)
        assert dkim.arc_verify(delivered, dnsfunc=dnsfunc)[0] == b"pass"

    run(scenario)


def test_a_milter_on_tcp_forwards_several_messages_on_one_connection(tmp_path: Path) -> None:
    port = free_port()
    config = example_copy(tmp_path, f'socketmap = []\nmilter = ["inet:127.0.0.1:{port}"]\n')

    async def scenario() -> None:
        async with running(loader(config)):
            client = await MilterClient.open(Endpoint(host="127.0.0.1", port=port))
            await client.start("198.51.100.25", "mail.example.org")
            outcomes = [
                await client.transaction(f"alice{n}@example.org", [OUTSIDE], eml(config, "normal"))
                for n in range(3)
            ]
            client.close()
        for outcome in outcomes:
            assert outcome.final == Continue()
            assert of(AddHeader, outcome.actions) == [AddHeader("X-Srsfwd-Pool", b" normal")]

    run(scenario)


def test_unauthenticated_forward_goes_relay_unrewritten(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            _, actions, final = await one_message(
                config,
                "relay",
                "carol@unsigned.example",
                [OUTSIDE],
                client_ip="192.0.2.99",
                helo="mx.unsigned.example",
            )
        assert final == Continue()
        assert of(ChangeFrom, actions) == []
        assert of(AddHeader, actions) == [AddHeader("X-Srsfwd-Pool", b" relay")]

    run(scenario)


OWN_LETTER = (
    b"From: Alice <alice@example.net>\r\nTo: bob@receiver.example\r\nSubject: Notes\r\n"
    b"Date: Wed, 25 Nov 2026 09:14:00 +0000\r\nMessage-ID: <notes@example.net>\r\n"
    b"\r\nSee you tomorrow.\r\n"
)


async def own_domain_message(config: Path, mail_macros: list[tuple[str, str]]) -> list[MilterReply]:
    """alice@example.net (an accepted domain) from an address in nobody's SPF record."""
    client = await MilterClient.open(endpoint(config))
    await client.start("203.0.113.77", "laptop")
    outcome = await client.transaction(
        "alice@example.net", [OUTSIDE], OWN_LETTER, mail_macros=mail_macros
    )
    client.close()
    assert outcome.final == Continue()
    return outcome.actions


def test_sasl_login_vouches_for_an_accepted_sender(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            actions = await own_domain_message(config, [("{auth_authen}", "alice")])
        assert of(ChangeFrom, actions) == []
        assert of(AddHeader, actions) == [AddHeader("X-Srsfwd-Pool", b" normal")]

    run(scenario)


def test_accepted_sender_without_a_login_goes_relay(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            actions = await own_domain_message(config, [("{mail_addr}", "alice@example.net")])
        assert of(ChangeFrom, actions) == []
        assert of(AddHeader, actions) == [AddHeader("X-Srsfwd-Pool", b" relay")]

    run(scenario)


def test_spam_header_and_no_a_no_mx_go_high_risk(config: Path) -> None:
    spam = b"X-Spam-Flag: YES\r\n" + eml(config, "normal")

    async def scenario() -> None:
        async with running(loader(config)):
            _, actions, _ = await one_message(
                config, "normal", "alice@example.org", [OUTSIDE], message=spam
            )
            assert of(AddHeader, actions) == [AddHeader("X-Srsfwd-Pool", b" high-risk")]
            _, actions, _ = await one_message(
                config,
                "no-a-no-mx",
                "dave@nowhere.example",
                [OUTSIDE],
                client_ip="192.0.2.98",
                helo="mail.nowhere.example",
            )
            assert of(AddHeader, actions) == [AddHeader("X-Srsfwd-Pool", b" high-risk")]

    run(scenario)


def srs_address(config: Path) -> str:
    from srsfwd.config import load_config

    return Forwarder.from_config(load_config(config)).rewriter.forward("alice@example.org")


def test_bounce_is_reversed_with_delrcpt_and_addrcpt(config: Path) -> None:
    address = srs_address(config)

    async def scenario() -> None:
        async with running(loader(config)):
            replies, actions, final = await one_message(
                config,
                "bounce",
                "",
                [address],
                client_ip="203.0.113.201",
                helo="mx.receiver.example",
            )
        assert replies == [Continue()] and final == Continue()
        assert of(DeleteRecipient, actions) == [DeleteRecipient(address)]
        assert of(AddRecipient, actions) == [AddRecipient("alice@example.org")]
        assert of(ChangeFrom, actions) == []
        assert of(AddHeader, actions) == [AddHeader("X-Srsfwd-Pool", b" high-risk")]

    run(scenario)


def test_forged_bounce_is_refused_at_rcpt(config: Path) -> None:
    forged = "SRS0=AAAA=AA=example.org=alice@fwd.example.net"

    async def scenario() -> None:
        async with running(loader(config)):
            client = await MilterClient.open(endpoint(config))
            await client.start("203.0.113.201", "mx.receiver.example")
            await client.write(Mail(""), Rcpt(forged))
            assert await client.final() == ([], Continue())
            _, reply = await client.final()
            assert isinstance(reply, SmtpReply) and reply.line.startswith("550 5.7.1 <")
            client.close()

    run(scenario)


@pytest.mark.parametrize("inline", ["true", "false"], ids=["event-loop", "worker"])
def test_a_forged_bounce_refused_at_rcpt_is_counted_once(config: Path, inline: str) -> None:
    config.write_text(config.read_text() + f"milter-inline = {inline}\n")
    forged = "SRS0=AAAA=AA=example.org=alice@fwd.example.net"

    async def scenario() -> float | None:
        async with running(loader(config)) as daemon:
            client = await MilterClient.open(endpoint(config))
            await client.start("203.0.113.201", "mx.receiver.example")
            outcome = await client.transaction("", [forged, OUTSIDE], eml(config, "normal"))
            client.close()
            (refused, passed) = outcome.rcpt_replies
            assert isinstance(refused, SmtpReply) and refused.code == 550
            assert passed == Continue()
            assert daemon.context.metrics is not None
            return daemon.context.metrics.registry.get_sample_value(
                "srsfwd_milter_recipients_total",
                {"action": "reject", "reason": "srs-bounce-invalid"},
            )

    assert asyncio.run(scenario()) == 1.0


def test_local_recipients_only_are_left_alone(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            _, actions, final = await one_message(
                config, "normal", "alice@example.org", ["bob@example.net"]
            )
        assert (actions, final) == ([], Continue())

    run(scenario)


FORGED = b"Authentication-Results: (x) fwd.example.net; dkim=pass header.d=bank.example\r\n"


def test_forged_results_are_deleted_and_ours_stay_on_a_forward(config: Path) -> None:
    message = FORGED + eml(config, "normal")

    async def scenario() -> None:
        async with running(loader(config)):
            _, actions, final = await one_message(
                config, "normal", "alice@example.org", [OUTSIDE], message=message
            )
        assert final == Continue()
        delivered = apply_actions(message, actions)
        assert b"bank.example" not in delivered
        assert delivered.count(b"Authentication-Results: fwd.example.net;") == 1
        dnsfunc = dkimpy_dnsfunc(Resolver.from_zone_text(ZONE))
        assert dkim.arc_verify(delivered, dnsfunc=dnsfunc)[0] == b"pass"

    run(scenario)


def test_forged_results_are_deleted_for_local_recipients_too(config: Path) -> None:
    message = FORGED + eml(config, "normal")

    async def scenario() -> None:
        async with running(loader(config)):
            _, actions, final = await one_message(
                config, "normal", "alice@example.org", ["bob@example.net"], message=message
            )
        assert (actions, final) == ([ChangeHeader(1, "Authentication-Results", b"")], Continue())
        assert apply_actions(message, actions) == apply_actions(eml(config, "normal"), [])

    run(scenario)


def test_sender_over_its_limit_is_refused_with_the_pipelines_reply(config: Path) -> None:
    config.write_text(config.read_text().replace("per_day = 1000", "per_day = 2"))

    async def scenario() -> None:
        async with running(loader(config)):
            rcpts = ["a@r.example", "b@r.example"]
            _, _, final = await one_message(config, "normal", "alice@example.org", rcpts)
            assert final == Continue()
            _, actions, final = await one_message(config, "normal", "alice@example.org", rcpts)
        assert actions == []
        assert isinstance(final, SmtpReply) and final.line.startswith("550 5.7.1")

    run(scenario)


def test_several_messages_and_an_abort_on_one_connection(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            client = await MilterClient.open(endpoint(config))
            await client.start()
            await client.write(Mail("alice@example.org"))
            await client.final()
            await client.write(Rcpt(OUTSIDE))
            await client.final()
            await client.write(Body(b"half a message"), Abort())
            for _ in range(3):
                outcome = await client.transaction(
                    "alice@example.org", [OUTSIDE], eml(config, "normal")
                )
                assert outcome.final == Continue()
                assert of(AddHeader, outcome.actions) == [AddHeader("X-Srsfwd-Pool", b" normal")]
            client.close()

    run(scenario)


def test_garbage_and_a_vanishing_client_do_not_disturb_others(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            reader, writer = await asyncio.open_unix_connection(endpoint(config).path)
            writer.write(b"\x00\x00\x00\x05Xjunk")
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()
            gone = await MilterClient.open(endpoint(config))
            await gone.start()
            await gone.write(*gone.mta.message("a@example.org", [OUTSIDE], [], b"x")[:3])
            gone.writer.transport.abort()
            _, _, final = await one_message(config, "normal", "alice@example.org", [OUTSIDE])
            assert final == Continue()

    run(scenario)


def test_many_concurrent_connections_are_all_served(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            results = await asyncio.gather(
                *(
                    one_message(config, "normal", "alice@example.org", [f"u{n}@r.example"])
                    for n in range(40)
                )
            )
        assert all(final == Continue() for _, _, final in results)

    run(scenario)


def test_too_big_message_is_refused_not_signed(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)) as daemon:
            milter = daemon.context.milter
            assert milter is not None
            milter.max_message = 10_000
            huge = eml(config, "relay") + (b"y" * 998 + b"\r\n") * 100
            _, actions, final = await one_message(
                config, "relay", "carol@unsigned.example", [OUTSIDE], message=huge
            )
        assert actions == []
        assert isinstance(final, SmtpReply) and final.line.startswith("552 5.3.4")

    run(scenario)


def test_internal_error_defers_or_accepts_as_configured(config: Path) -> None:
    def broken() -> Forwarder:
        raise RuntimeError("broken on purpose")

    async def scenario(action: str) -> MilterReply | None:
        async with running(loader(config)) as daemon:
            milter = daemon.context.milter
            assert milter is not None
            milter.forwarders._idle.clear()
            milter.forwarders._factory = broken
            _, actions, final = await one_message(config, "normal", "alice@example.org", [OUTSIDE])
            assert actions == []
            return final

    text = config.read_text()
    config.write_text(text + 'milter-default-action = "tempfail"\n')
    final = asyncio.run(scenario("tempfail"))
    assert isinstance(final, SmtpReply) and final.line.startswith("451 4.3.0")
    config.write_text(text + 'milter-default-action = "accept"\n')
    assert asyncio.run(scenario("accept")) == Continue()


def test_metrics_count_decisions_and_signatures(config: Path) -> None:
    async def scenario() -> str:
        async with running(loader(config)) as daemon:
            await one_message(config, "normal", "alice@example.org", [OUTSIDE])
            metrics = daemon.context.metrics
            assert metrics is not None
            port = load(config, None, notes=print).settings.metrics
            assert port is not None
            url = f"http://127.0.0.1:{port.port}/metrics"
            return await asyncio.to_thread(
                lambda: urllib.request.urlopen(url, timeout=5).read().decode()
            )

    text = asyncio.run(scenario())
    decided = 'action="forward",pool="normal",reason="forward-authenticated"'
    assert f"srsfwd_milter_messages_total{{{decided}}} 1.0" in text
    assert 'srsfwd_milter_signatures_total{kind="dkim"} 1.0' in text
    assert 'srsfwd_milter_signatures_total{kind="arc"} 1.0' in text


def test_one_log_line_per_message(config: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            await one_message(config, "normal", "alice@example.org", [OUTSIDE])

    with caplog.at_level("INFO", logger="srsfwd.servers.milter_connection"):
        run(scenario)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("milter:")]
    assert "queue_id=QID1 action=forward pool=normal srs=yes" in line
    assert "signed=arc,dkim" in line or "signed=dkim,arc" in line


# -- the pure part -------------------------------------------------------------------


def milter_message(headers: list[MilterHeaderField], body: bytes) -> MilterMessage:
    return MilterMessage(None, None, None, (), (), tuple(headers), body, len(body), False)


def test_header_actions_delete_forged_results_before_inserting_on_top() -> None:
    # Once this hop's field is inserted on top, CHGHEADER index 1 would name it instead.
    changes = MessageChanges(
        deleted=(FieldRef("Authentication-Results", 2), FieldRef("Authentication-Results", 1)),
        inserted=(
            Header(b"Authentication-Results", b" us; spf=none"),
            Header(b"DKIM-Signature", b" v=1;\r\n\tb=abc"),
        ),
    )
    assert header_actions(changes, leading_space=True) == [
        ChangeHeader(2, "Authentication-Results", b""),
        ChangeHeader(1, "Authentication-Results", b""),
        InsertHeader(0, "DKIM-Signature", b" v=1;\n\tb=abc"),
        InsertHeader(0, "Authentication-Results", b" us; spf=none"),
    ]


def test_header_actions_drop_the_leading_space_the_mta_does_not_keep() -> None:
    changes = MessageChanges(inserted=(Header(b"X-Sig", b" 1"),))
    assert header_actions(changes, leading_space=False) == [InsertHeader(0, "X-Sig", b"1")]


def test_received_message_keeps_each_field_as_the_mta_sent_it() -> None:
    message = milter_message(
        [MilterHeaderField("Subject", b" a\n\tb"), MilterHeaderField("From", b" x@example.org")],
        b"body\r\n",
    )
    parsed = received_message(message, leading_space=True)
    assert [h.raw for h in parsed.headers] == [b"Subject: a\r\n\tb", b"From: x@example.org"]
    assert parsed.to_bytes() == b"Subject: a\r\n\tb\r\nFrom: x@example.org\r\n\r\nbody\r\n"


@pytest.mark.parametrize("name", ["Bad Name", "Caf\u00e9", ""])
def test_received_message_refuses_a_field_name_that_is_not_one(name: str) -> None:
    message = milter_message([MilterHeaderField(name, b" x")], b"")
    with pytest.raises(SignatureError):
        received_message(message, leading_space=True)


def test_silent_dns_gets_progress_then_a_deferral(
    tmp_path: Path, dns_server: ZoneServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    dns_server.load(ZONE)
    dns_server.mode = "silent"
    config = example_copy(tmp_path, f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n')
    text = config.read_text().replace(
        'zone_files = ["example.zone"]', f'nameservers = ["127.0.0.1"]\nport = {dns_server.port}'
    )
    config.write_text(text.replace("timeout = 5.0", "timeout = 1.0"))
    monkeypatch.setattr(milter_connection, "PROGRESS_EVERY", 0.1)

    async def scenario() -> list[MilterReply]:
        async with running(loader(config)):
            client = await MilterClient.open(endpoint(config))
            await client.start()
            headers, body = split_message(eml(config, "normal"))
            events = client.mta.message("alice@example.org", [OUTSIDE], headers, body)
            await client.write(*events[:-1])
            for _ in range(2):  # MAIL and RCPT
                assert await client.reply() == Continue()
            await client.write(events[-1])
            replies = [await client.reply()]
            while isinstance(replies[-1], Progress):
                replies.append(await client.reply())
            client.close()
            return replies

    replies = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert replies.count(Progress()) >= 2
    final = replies[-1]
    assert isinstance(final, SmtpReply) and final.code // 100 == 4


def test_reload_swaps_the_pipeline_under_open_connections(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)) as daemon:
            client = await MilterClient.open(endpoint(config))
            await client.start()
            before = daemon.context.milter
            await daemon.reload()
            assert daemon.context.milter is not before
            outcome = await client.transaction(
                "alice@example.org", [OUTSIDE], eml(config, "normal")
            )
            assert outcome.final == Continue()
            client.close()
            _, _, final = await one_message(config, "normal", "alice@example.org", [OUTSIDE])
            assert final == Continue()

    run(scenario)


def test_every_worker_shares_one_resolver_and_its_dns_cache(config: Path) -> None:
    milter = load(config, None, notes=print).milter
    assert milter is not None
    try:
        with milter.forwarders.borrow() as one, milter.forwarders.borrow() as other:
            assert one is not other
            assert one.gatherer.resolver is other.gatherer.resolver
    finally:
        milter.close()


def test_shutdown_answers_the_message_in_the_pipeline_first(
    tmp_path: Path, dns_server: ZoneServer
) -> None:
    dns_server.load(ZONE)
    dns_server.mode = "silent"  # the pipeline waits for DNS: the message is in flight
    config = example_copy(tmp_path, f'socketmap = []\nmilter = ["unix:{tmp_path}/milter.sock"]\n')
    text = config.read_text().replace(
        'zone_files = ["example.zone"]', f'nameservers = ["127.0.0.1"]\nport = {dns_server.port}'
    )
    config.write_text(text.replace("timeout = 5.0", "timeout = 0.2"))

    async def scenario() -> MilterReply:
        async with running(loader(config)) as daemon:
            client = await MilterClient.open(endpoint(config))
            await client.start()
            headers, body = split_message(eml(config, "relay"))
            events = client.mta.message("carol@unsigned.example", [OUTSIDE], headers, body)
            await client.write(*events)
            for _ in range(2):  # MAIL and RCPT
                assert await client.reply() == Continue()
            await asyncio.sleep(0.05)
            daemon.stop()
            _, final = await client.final()
            client.close()
            return final

    final = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert isinstance(final, SmtpReply) and final.code // 100 == 4
