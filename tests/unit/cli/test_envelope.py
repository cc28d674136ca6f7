"""The envelope options of decide and forward, taken together."""

from __future__ import annotations

import click
import pytest

from srsfwd.cli.envelope import EnvelopeOptions
from srsfwd.facts import Envelope


def options(
    client_ip: str | None = "192.0.2.1",
    helo: str | None = "mx.example",
    mail_from: str | None = "<alice@example.org> ",
    rcpts: tuple[str, ...] = ("bob@example.net",),
) -> EnvelopeOptions:
    return EnvelopeOptions(client_ip, helo, mail_from, rcpts, spam=False, sasl_user=None)


def test_nothing_is_missing_when_all_four_are_given() -> None:
    assert options().missing() == []


def test_missing_names_each_option_not_given_by_its_flag() -> None:
    assert options(helo=None, rcpts=()).missing() == ["--helo", "--rcpt"]


def test_an_empty_sender_is_given_not_missing() -> None:
    assert options(mail_from="").missing() == []


def test_the_envelope_keeps_the_sender_as_given() -> None:
    assert options().envelope() == Envelope(
        "192.0.2.1", "mx.example", "<alice@example.org> ", ("bob@example.net",)
    )


def test_the_inbound_envelope_has_the_bare_sender() -> None:
    assert options().inbound().mail_from == "alice@example.org"


def test_an_envelope_with_an_option_missing_is_a_usage_error() -> None:
    with pytest.raises(click.UsageError, match="missing --client-ip"):
        options(client_ip=None).envelope()
