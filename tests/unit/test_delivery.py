"""Handing messages on: SMTP from a chosen source address and HELO, and sendmail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.delivery import deliver_sendmail, deliver_smtp, with_pool_header
from srsfwd.errors import DeliveryDeferredError, DeliveryError
from tests.ports import free_port
from tests.smtp_sink import Sink, smtp_sink

MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def sink() -> Iterator[Sink]:
    with smtp_sink() as running:
        yield running


@pytest.mark.parametrize(
    ("source", "helo"),
    [("127.0.0.2", "mta.fwd.example.net"), ("127.0.0.3", "rly1.fwd.example.net")],
)
def test_smtp_delivery_comes_from_the_pool_address_and_helo(
    sink: Sink, source: str, helo: str
) -> None:
    deliver_smtp(
        MESSAGE,
        mail_from="SRS0=x@fwd.example.net",
        rcpts=["b@example.net"],
        host=sink.host,
        port=sink.port,
        source_address=source,
        helo=helo,
    )
    (got,) = sink.messages
    assert (got.peer_ip, got.helo) == (source, helo)
    assert (got.mail_from, got.rcpts) == ("SRS0=x@fwd.example.net", ["b@example.net"])
    assert b"Subject: hi" in got.data


def test_smtp_null_sender_stays_null(sink: Sink) -> None:
    deliver_smtp(MESSAGE, mail_from="", rcpts=["b@example.net"], host=sink.host, port=sink.port)
    assert sink.messages[0].mail_from == "<>"  # aiosmtpd shows MAIL FROM:<> so


def test_smtp_4xx_is_deferred(sink: Sink) -> None:
    sink.rcpt_answer = "451 4.3.0 try later"
    with pytest.raises(DeliveryDeferredError, match="451"):
        deliver_smtp(
            MESSAGE,
            mail_from="a@x.example",
            rcpts=["b@example.net"],
            host=sink.host,
            port=sink.port,
        )


def test_smtp_5xx_is_refused(sink: Sink) -> None:
    sink.rcpt_answer = "550 5.1.1 no such user"
    with pytest.raises(DeliveryError, match="550"):
        deliver_smtp(
            MESSAGE,
            mail_from="a@x.example",
            rcpts=["b@example.net"],
            host=sink.host,
            port=sink.port,
        )


def test_smtp_no_server_is_deferred() -> None:
    with pytest.raises(DeliveryDeferredError):
        deliver_smtp(
            MESSAGE,
            mail_from="a@x.example",
            rcpts=["b@example.net"],
            host="127.0.0.1",
            port=free_port(),
            timeout=5,
        )


def test_sendmail_gets_sender_and_recipients(tmp_path: Path) -> None:
    log = tmp_path / "args"
    fake = tmp_path / "sendmail"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {log}\ncat > {tmp_path}/msg\n')
    fake.chmod(0o755)
    deliver_sendmail(
        MESSAGE, mail_from="", rcpts=["b@example.net", "c@example.net"], sendmail=str(fake)
    )
    assert log.read_text().split() == ["-i", "-f", "<>", "--", "b@example.net", "c@example.net"]
    assert (tmp_path / "msg").read_bytes() == MESSAGE


@pytest.mark.parametrize(("status", "error"), [(75, DeliveryDeferredError), (67, DeliveryError)])
def test_sendmail_exit_status(tmp_path: Path, status: int, error: type[Exception]) -> None:
    fake = tmp_path / "sendmail"
    fake.write_text(f"#!/bin/sh\ncat >/dev/null\necho nope >&2\nexit {status}\n")
    fake.chmod(0o755)
    with pytest.raises(error, match="nope"):
        deliver_sendmail(
            MESSAGE, mail_from="a@x.example", rcpts=["b@example.net"], sendmail=str(fake)
        )


def test_missing_sendmail_is_deferred(tmp_path: Path) -> None:
    with pytest.raises(DeliveryDeferredError):
        deliver_sendmail(MESSAGE, mail_from="a@x", rcpts=["b@y"], sendmail=str(tmp_path / "no"))


def test_the_pool_header_goes_first() -> None:
    assert with_pool_header(MESSAGE, "relay") == b"X-Srsfwd-Pool: relay\r\n" + MESSAGE


def test_a_pool_header_the_sender_wrote_is_replaced() -> None:
    forged = b"x-srsfwd-pool: normal\r\n\tfolded\r\nX-Srsfwd-Pool : relay\r\n" + MESSAGE
    assert with_pool_header(forged, "high-risk") == b"X-Srsfwd-Pool: high-risk\r\n" + MESSAGE


def test_a_message_with_lf_line_endings_keeps_them() -> None:
    message = b"From: a@example.org\nX-Srsfwd-Pool: x\n\nX-Srsfwd-Pool: body\n"
    assert with_pool_header(message, "relay") == (
        b"X-Srsfwd-Pool: relay\nFrom: a@example.org\n\nX-Srsfwd-Pool: body\n"
    )


@given(head=st.binary(max_size=300), body=st.binary(max_size=300))
def test_the_body_and_other_fields_stay_as_they_were(head: bytes, body: bytes) -> None:
    head = head.replace(b"\r", b"").replace(b"\n\n", b"\n").strip(b"\n")
    lines = [line for line in head.split(b"\n") if not line.lower().startswith(b"x-srsfwd-pool")]
    message = b"\r\n".join([b"From: a@example.org", *lines]) + b"\r\n\r\n" + body
    result = with_pool_header(message, "normal")
    assert result == b"X-Srsfwd-Pool: normal\r\n" + message
