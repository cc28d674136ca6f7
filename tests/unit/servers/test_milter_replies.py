"""The milter gives the pipeline's replies (a message that can never be forwarded is 5xx)
and counts a message against its sender's limits only when it lets it through."""

from __future__ import annotations

from pathlib import Path

import pytest

from srsfwd.app import build_limits
from srsfwd.config import load_config
from srsfwd.protocols.milter import Continue, SmtpReply
from srsfwd.servers import milter as milter_module
from tests.serving import running
from tests.unit.servers.test_milter_server import config, loader, one_message, run

__all__ = ["config"]  # the fixture, shared with the milter's other tests

NO_FROM = b"To: bob@receiver.example\r\nSubject: hi\r\n\r\nbody\r\n"
TWO_FROM = b"From: a@example.org\r\nFrom: c@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.mark.parametrize(("message", "reason"), [(NO_FROM, "no From"), (TWO_FROM, "2 From")])
def test_a_message_without_exactly_one_from_is_refused_with_5xx(
    config: Path, message: bytes, reason: str
) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            _, actions, final = await one_message(
                config, "normal", "alice@example.org", ["b@r.example"], message=message
            )
        assert actions == []
        assert isinstance(final, SmtpReply)
        assert final.line.startswith("550 5.6.0 ") and reason in final.line

    run(scenario)


def sent_today(config: Path) -> int:
    return build_limits(load_config(config)).status("alice@example.org")[0].today


def test_the_milter_counts_a_message_it_lets_through(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            rcpts = ["a@r.example", "b@r.example"]
            _, _, final = await one_message(config, "normal", "alice@example.org", rcpts)
        assert final == Continue()

    run(scenario)
    assert sent_today(config) == 2


def test_the_milter_counts_nothing_for_a_message_it_refuses(config: Path) -> None:
    async def scenario() -> None:
        async with running(loader(config)):
            _, _, final = await one_message(
                config, "normal", "alice@example.org", ["b@r.example"], message=NO_FROM
            )
        assert isinstance(final, SmtpReply)

    run(scenario)
    assert sent_today(config) == 0


def test_a_forward_the_milter_cannot_answer_is_uncounted(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(milter_module, "header_actions", broken)

    async def scenario() -> None:
        async with running(loader(config)):
            _, _, final = await one_message(config, "normal", "alice@example.org", ["b@r.example"])
        assert isinstance(final, SmtpReply) and final.line.startswith("451 4.3.0")

    run(scenario)
    assert sent_today(config) == 0
