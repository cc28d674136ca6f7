"""``srsfwd decide --mailbox``: which paths are mailboxes, --since, the summary for people
and for scripts. Decisions come from zone files through the production resolver."""

from __future__ import annotations

import json
import mailbox
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.cli import cli
from srsfwd.cli.mailbox import (
    header_fields,
    mailbox_kind,
    message_date,
)

ZONE = """
$TTL 300
sender.example.        IN A    203.0.113.1
sender.example.        IN MX   10 mx.sender.example.
sender.example.        IN TXT  "v=spf1 ip4:192.0.2.0/24 -all"
soft.example.          IN A    203.0.113.3
soft.example.          IN TXT  "v=spf1 ~all"
"""
NOVEMBER = "Thu, 26 Nov 2026 10:00:00 +0000"
OCTOBER = "Mon, 26 Oct 2026 10:00:00 +0000"


def stored(sender: str, ip: str, date: str | None = NOVEMBER) -> bytes:
    dated = f"Date: {date}\r\n" if date else ""
    return (
        f"Return-Path: <{sender}>\r\n"
        f"Received: from mx.x.example (mx.x.example [{ip}])\r\n"
        f"\tby mx.fwd.example (Postfix) with ESMTP id 1; {NOVEMBER}\r\n"
        f"From: {sender or 'MAILER-DAEMON@x.example'}\r\n{dated}Subject: hi\r\n\r\nbody\r\n"
    ).encode()


GOOD = stored("alice@sender.example", "192.0.2.10")
RELAYED = stored("a@soft.example", "198.51.100.1")
BOUNCE = stored("", "198.51.100.3")


@pytest.fixture
def zone(tmp_path: Path) -> Path:
    path = tmp_path / "test.zone"
    path.write_text(ZONE)
    return path


def make_box(path: Path, kind: str, messages: list[bytes]) -> Path:
    box: mailbox.Mailbox = {
        "mbox": mailbox.mbox,
        "maildir": mailbox.Maildir,
        "mh": mailbox.MH,
    }[kind](str(path))
    for message in messages:
        box.add(message)
    box.close()
    return path


def run(zone: Path, box: Path, *extra: str) -> Result:
    args = ["decide", "--zone", str(zone), "--mailbox", str(box), *extra]
    return CliRunner().invoke(cli, args)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


# ------------------------------------------------------------------- what is a mailbox


@pytest.mark.parametrize("kind", ["mbox", "maildir", "mh"])
def test_each_kind_of_mailbox_is_read(zone: Path, tmp_path: Path, kind: str) -> None:
    box = make_box(tmp_path / kind, kind, [GOOD, RELAYED])
    assert mailbox_kind(box) == kind
    summary = json_lines(run(zone, box, "--json"))[-1]
    assert (summary["messages"], summary["decided"]) == (2, 2)


def test_an_empty_file_is_an_empty_mbox(zone: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    result = run(zone, tmp_path / "empty", "--json")
    assert result.exit_code == 0
    assert json_lines(result)[-1]["messages"] == 0


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_bytes(GOOD), "not an mbox file"),
        (lambda p: p.mkdir(), "a folder but not a mailbox"),
        (lambda p: None, "does not exist"),
    ],
    ids=["one-message-file", "plain-folder", "missing"],
)
def test_a_path_that_is_not_a_mailbox_is_refused_in_words(
    zone: Path, tmp_path: Path, make: Any, words: str
) -> None:
    path = tmp_path / "thing"
    make(path)
    result = run(zone, path)
    assert result.exit_code == 2
    assert words in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_not_a_mailbox_error_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "msg.eml").write_bytes(GOOD)
    with pytest.raises(click.BadParameter, match=r"msg\.eml"):
        mailbox_kind(tmp_path / "msg.eml")


# ------------------------------------------------------------------------------ --since


def test_since_skips_older_messages(zone: Path, tmp_path: Path) -> None:
    old = stored("alice@sender.example", "192.0.2.10", OCTOBER)
    box = make_box(tmp_path / "mbox", "mbox", [old, GOOD])
    summary = json_lines(run(zone, box, "--since", "2026-11-01", "--json"))[-1]
    assert (summary["decided"], summary["skipped"]) == (1, {"older than --since": 1})
    assert summary["since"] == "2026-11-01T00:00:00+00:00"


def test_since_skips_messages_without_a_readable_date(zone: Path, tmp_path: Path) -> None:
    undated = stored("alice@sender.example", "192.0.2.10", None)
    garbled = stored("alice@sender.example", "192.0.2.10", "not a date")
    box = make_box(tmp_path / "mbox", "mbox", [undated, garbled, GOOD])
    summary = json_lines(run(zone, box, "--since", "2026-11-01", "--json"))[-1]
    assert summary["skipped"] == {"no readable Date field": 2}


def test_since_takes_a_time_with_an_offset(zone: Path, tmp_path: Path) -> None:
    box = make_box(tmp_path / "mbox", "mbox", [GOOD])  # 10:00 UTC
    before = json_lines(run(zone, box, "--since", "2026-11-26T10:30+01:00", "--json"))[-1]
    assert before["decided"] == 1  # 09:30 UTC
    after = json_lines(run(zone, box, "--since", "2026-11-26T10:30", "--json"))[-1]
    assert after["decided"] == 0  # 10:30 UTC


def test_a_bad_since_is_a_usage_error(zone: Path, tmp_path: Path) -> None:
    box = make_box(tmp_path / "mbox", "mbox", [GOOD])
    result = run(zone, box, "--since", "last week")
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.stderr


def test_since_without_a_mailbox_is_a_usage_error(zone: Path) -> None:
    result = CliRunner().invoke(cli, ["decide", "--zone", str(zone), "--since", "2026-11-01"])
    assert result.exit_code == 2
    assert "--since goes with --mailbox" in result.stderr


def test_the_help_says_the_date_format() -> None:
    result = CliRunner().invoke(cli, ["decide", "--help"])
    assert "--since DATE" in result.stdout and "YYYY-MM-DD" in result.stdout


@given(st.binary(max_size=300))
def test_reading_the_date_never_raises(data: bytes) -> None:
    when = message_date(header_fields(b"Date: " + data + b"\r\n\r\n"))
    assert when is None or when.tzinfo is not None


# ----------------------------------------------------------------------- the summary


def test_the_summary_counts_srs_yes_and_no_and_reasons_per_pool(zone: Path, tmp_path: Path) -> None:
    box = make_box(tmp_path / "mbox", "mbox", [GOOD, GOOD, RELAYED, BOUNCE])
    summary = json_lines(run(zone, box, "--json"))[-1]
    assert summary["srs"] == {"yes": 2, "no": 2}
    outcomes = summary["outcomes"]
    assert outcomes["normal"]["srs"] == {"yes": 2, "no": 0}
    assert outcomes["normal"]["reasons"]["forward-authenticated"] == 2
    assert outcomes["relay"]["reasons"] == {"relay-unauthenticated": 1}
    assert outcomes["high-risk"] == {
        "messages": 1,
        "srs": {"yes": 0, "no": 1},
        "reasons": {"ndr": 1},
    }


def test_json_gives_one_line_per_message_then_the_summary(zone: Path, tmp_path: Path) -> None:
    unknown = b"Subject: no envelope\r\n\r\nbody\r\n"
    box = make_box(tmp_path / "mbox", "mbox", [GOOD, unknown, RELAYED])
    lines = json_lines(run(zone, box, "--json"))
    assert [line["type"] for line in lines] == ["decision", "skipped", "decision", "summary"]
    summary = lines[-1]
    assert summary["messages"] == summary["decided"] + sum(summary["skipped"].values())
    assert [line["key"] for line in lines[:3]] == ["0", "1", "2"]
    assert lines[0]["decision"]["pool"] == "normal"
    assert lines[1]["reason"] == "no Received hop with a client address"


def test_the_summary_for_people_is_aligned_tables(zone: Path, tmp_path: Path) -> None:
    box = make_box(tmp_path / "mbox", "mbox", [GOOD, RELAYED, BOUNCE])
    out = run(zone, box).stdout
    assert out.startswith("3 messages read, 3 decided, 0 skipped; SRS: 1 yes, 2 no\n")
    assert re.search(r"^pool +messages +SRS yes +SRS no$", out, re.M)
    assert re.search(r"^normal +1 +1 +0$", out, re.M)
    assert re.search(r"^relay +relay-unauthenticated +1$", out, re.M)
    assert re.search(r"^a@soft\.example +1$", out, re.M)


def test_no_colour_codes_or_progress_in_a_pipe(zone: Path, tmp_path: Path) -> None:
    box = make_box(tmp_path / "mbox", "mbox", [GOOD, RELAYED])
    result = run(zone, box)
    assert "\x1b" not in result.output
    assert result.stderr == ""
