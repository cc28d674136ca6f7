"""srsfwd serve behind a real Postfix: forwarded mail, bounces, postsrsd 1.10's addresses.

One private Postfix, one aiosmtpd sink and one ``srsfwd serve`` per protocol: Postfix's
canonical maps ask srsfwd over socketmap (a unix socket, as postsrsd 2.x) or tcp_table
(TCP ports, as postsrsd 1.x).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from srsfwd import SystemClock
from tests.integration.peers import postsrsd
from tests.integration.postfix import (
    Envelope,
    Postfix,
    Sink,
    private_postfix,
    sink,
    world_readable_tempdir,
)
from tests.ports import free_port
from tests.serving import serve_process

pytestmark = pytest.mark.integration

SECRET = "integration-test-secret"
SRS_DOMAIN = "fwd.example"


@dataclass
class Forwarder:
    postfix: Postfix
    sink: Sink
    work: Path


@pytest.fixture(scope="module", params=["socketmap", "tcp_table"])
def forwarder(request: pytest.FixtureRequest) -> Iterator[Forwarder]:
    work = world_readable_tempdir("srsfwd-serve-")
    try:
        secret = work / "srs.secret"
        secret.write_text(SECRET + "\n")
        secret.chmod(0o600)
        socket_path = work / "srs.sock"
        forward_port, reverse_port = free_port(), free_port()
        if request.param == "socketmap":
            serve = f'socketmap = "unix:{socket_path}"\n'
            maps = {
                "sender_canonical_maps": f"socketmap:unix:{socket_path}:forward",
                "recipient_canonical_maps": f"socketmap:unix:{socket_path}:reverse",
            }
        else:
            serve = (
                "socketmap = []\n"
                f'tcp-table-forward = "inet:127.0.0.1:{forward_port}"\n'
                f'tcp-table-reverse = "inet:127.0.0.1:{reverse_port}"\n'
            )
            maps = {
                "sender_canonical_maps": f"tcp:127.0.0.1:{forward_port}",
                "recipient_canonical_maps": f"tcp:127.0.0.1:{reverse_port}",
            }
        maps["sender_canonical_classes"] = "envelope_sender"
        maps["recipient_canonical_classes"] = "envelope_recipient"
        config = work / "srsfwd.toml"
        config.write_text(
            f'[srs]\nsrs-domain = "{SRS_DOMAIN}"\n'
            f'domains = ["{SRS_DOMAIN}", ".{SRS_DOMAIN}"]\n'
            f'secrets-file = "{secret}"\n[serve]\n{serve}'
        )
        with (
            serve_process("--config", str(config), tmp=work) as (daemon, _),
            sink() as smtp_sink,
            private_postfix(relay_port=smtp_sink.port, maps=maps) as postfix,
        ):
            yield Forwarder(postfix, smtp_sink, work)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(10) == 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def to(recipient: str) -> object:
    return lambda e: recipient in [r.lower() for r in e.rcpt_tos]


def test_forwarded_mail_leaves_with_an_srs_sender(forwarder: Forwarder) -> None:
    forwarder.postfix.send("alice@orig.example", ["bob@dest.example"])
    got: Envelope = forwarder.sink.wait_for(to("bob@dest.example"))
    local, _, domain = got.mail_from.partition("@")
    assert domain == SRS_DOMAIN
    assert local.startswith("SRS0=") and local.endswith("=orig.example=alice")


def test_a_bounce_to_the_srs_address_reaches_the_original_sender(forwarder: Forwarder) -> None:
    # The sink refuses reject@…: Postfix bounces to the SRS sender, which srsfwd reverses.
    forwarder.postfix.send("carol@orig.example", ["reject@dest.example"], subject="bounce me")
    bounce = forwarder.sink.wait_for(to("carol@orig.example"))
    assert bounce.mail_from in ("", "<>")
    assert b"no such user here" in bounce.content


def test_a_bounce_sent_by_another_server_is_reversed(forwarder: Forwarder) -> None:
    forwarder.postfix.send("dave@orig.example", ["erin@dest.example"])
    srs_sender = forwarder.sink.wait_for(to("erin@dest.example")).mail_from
    forwarder.postfix.send("", [srs_sender], subject="remote bounce")
    got = forwarder.sink.wait_for(to("dave@orig.example"))
    assert got.mail_from in ("", "<>")


def test_an_address_made_by_postsrsd_1_10_is_reversed(forwarder: Forwarder, tmp_path: Path) -> None:
    now = int(SystemClock().now())
    with postsrsd(tmp_path, domain=SRS_DOMAIN, secrets=[SECRET], now=now) as old_daemon:
        made_by_postsrsd = old_daemon.forward("frank@orig.example")
    assert made_by_postsrsd.startswith("SRS0=")
    forwarder.postfix.send("", [made_by_postsrsd], subject="bounce of old mail")
    forwarder.sink.wait_for(to("frank@orig.example"))


def test_a_forged_srs_address_is_not_reversed(forwarder: Forwarder) -> None:
    forged = f"SRS0=AAAA=AA=orig.example=grace@{SRS_DOMAIN}"
    forwarder.postfix.send("", [forged], subject="forged bounce")
    got = forwarder.sink.wait_for(to(forged.lower()))
    assert "grace@orig.example" not in [r.lower() for r in got.rcpt_tos]


def test_local_senders_are_left_alone(forwarder: Forwarder) -> None:
    forwarder.postfix.send(f"henry@{SRS_DOMAIN}", ["ivy@dest.example"])
    assert forwarder.sink.wait_for(to("ivy@dest.example")).mail_from == f"henry@{SRS_DOMAIN}"
    forwarder.postfix.send("jack@mx.fwd.example", ["kim@dest.example"])
    assert forwarder.sink.wait_for(to("kim@dest.example")).mail_from == "jack@mx.fwd.example"


def test_postfixs_double_bounce_sender_is_left_alone(forwarder: Forwarder) -> None:
    # A bounce that cannot be delivered either: Postfix tells the postmaster, as
    # double-bounce@$myhostname, and that sender must stay as it is.
    forwarder.postfix.send("reject-lena@orig.example", ["reject@dest.example"])
    notice = forwarder.sink.wait_for(
        lambda e: (
            e.mail_from.startswith("double-bounce@")
            and "reject-lena" in e.content.decode(errors="replace")
        )
    )
    assert notice.mail_from == "double-bounce@mx.fwd.example"


def test_postmap_queries_as_docs_postfix_md_shows(forwarder: Forwarder) -> None:
    table = forwarder.postfix.tables()
    postmap = ["postmap", "-c", str(forwarder.postfix.root / "etc"), "-q"]
    found = subprocess.run(
        [*postmap, "nina@orig.example", table["forward"]],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    assert found.startswith("SRS0=") and found.endswith(f"=orig.example=nina@{SRS_DOMAIN}")
    back = subprocess.run(
        [*postmap, found, table["reverse"]], capture_output=True, text=True, timeout=30, check=True
    )
    assert back.stdout.strip() == "nina@orig.example"
    local = subprocess.run(
        [*postmap, f"oscar@{SRS_DOMAIN}", table["forward"]],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert local.returncode == 1  # not found: left alone
