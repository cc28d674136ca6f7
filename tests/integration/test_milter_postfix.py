"""The srsfwd milter inside a real Postfix, with one smtp transport per pool.

A private Postfix (loopback, its own configuration directory) calls ``srsfwd serve``'s
milter; the milter's ``X-Srsfwd-Pool`` header is routed by ``milter_header_checks`` to
the pool's transport, which binds the pool's source address (127.0.0.2 normal,
127.0.0.3 relay, 127.0.0.4 high-risk) and says the pool's HELO. The aiosmtpd sink
records the peer address and HELO of every delivery. Clients are presented with XCLIENT
as the outside hosts of the example, so SPF is checked as on the Internet. The main.cf,
master.cf and table lines here are the ones docs/postfix.md (part 2) shows.
"""

from __future__ import annotations

import shutil
import signal
import smtplib
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest

from srsfwd.config import load_config
from srsfwd.dkim.arc import dkimpy_dnsfunc
from srsfwd.dns.resolver import Resolver
from srsfwd.forward import Forwarder
from tests.dnsserver import ZoneServer
from tests.integration.postfix import Postfix, private_postfix, world_readable_tempdir
from tests.ports import free_port
from tests.serving import serve_process
from tests.smtp_sink import Received, Sink, smtp_sink
from tests.spam_milter import spam_milter

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parent.parent.parent / "examples"
ZONE = (EXAMPLES / "example.zone").read_text()

#: master.cf: one smtp transport per pool (the normal pool is the default "smtp").
POOL_TRANSPORTS = [
    "relay-pool unix - - n - - smtp"
    " -o smtp_bind_address=127.0.0.3 -o smtp_helo_name=rly1.fwd.example.net",
    "high-risk-pool unix - - n - - smtp"
    " -o smtp_bind_address=127.0.0.4 -o smtp_helo_name=hr1.fwd.example.net",
]
#: milter_header_checks: the pool header to the pool's transport. In production the next
#: hop stays empty (the recipient's MX); here it is the sink, as Postfix has no DNS.
MILTER_HEADER_CHECKS = (
    "/^X-Srsfwd-Pool:[[:space:]]*relay$/ FILTER relay-pool:{nexthop}\n"
    "/^X-Srsfwd-Pool:[[:space:]]*high-risk$/ FILTER high-risk-pool:{nexthop}\n"
)
#: smtp_header_checks: the pool header stays inside.
SMTP_HEADER_CHECKS = "/^X-Srsfwd-Pool:/ IGNORE\n"
#: header_checks: a spam verdict counts only from our filter, never from the client.
HEADER_CHECKS = "/^X-Spam-Flag:/ IGNORE\n"
#: The after-queue set-up: the public smtpd expands aliases and queues; this loopback
#: smtpd (no second expansion) runs the milters; XFORWARD names the original client.
AFTER_QUEUE = [
    "srsfwd-loop unix - - n - - smtp -o smtp_send_xforward_command=yes -o smtp_bind_address=",
    "127.0.0.1:{port} inet n - n - - smtpd -o content_filter="
    " -o receive_override_options=no_address_mappings -o smtpd_milters={milters}"
    " -o smtpd_authorized_xforward_hosts=127.0.0.0/8",
]
#: ... and srsfwd takes SPF from the Received line of the first, untrusted, hop.
ACCEPTED = 'accepted_domains = ["example.net", "*.example.net"]\n'
TRUSTED_LOOPBACK = ACCEPTED + 'trusted_relays = ["127.0.0.1"]\n'
RELAY_CLIENT = ("192.0.2.99", "mx.unsigned.example")
#: Bounces Postfix makes itself never pass the milter: send them high-risk too.
NULL_SENDER_TRANSPORT = '/^"?<>"?$/ high-risk-pool:{nexthop}\n'


@dataclass
class Rig:
    postfix: Postfix
    sink: Sink
    config: Path
    dns: ZoneServer

    def send(
        self,
        name: str,
        sender: str,
        rcpts: list[str],
        *,
        client: tuple[str, str] = ("198.51.100.25", "mail.example.org"),
        extra: bytes = b"",
        message: bytes | None = None,
    ) -> None:
        """Submit an example message as if ``client`` (IP, HELO) sent it."""
        data = message or extra + (EXAMPLES / "messages" / f"{name}.eml").read_bytes()
        with smtplib.SMTP("127.0.0.1", self.postfix.port, timeout=60) as smtp:
            smtp.ehlo("test.client")
            code, text = smtp.docmd(
                "XCLIENT", f"ADDR={client[0]} NAME=[UNAVAILABLE] HELO={client[1]}"
            )
            assert code == 220, text
            smtp.ehlo(client[1])
            smtp.sendmail(sender, rcpts, data)

    def wait_for(self, rcpt: str, timeout: float = 30, sender: str | None = None) -> Received:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for received in list(self.sink.messages):
                if rcpt in [r.lower() for r in received.rcpts] and (
                    sender is None or received.mail_from == sender
                ):
                    return received
            time.sleep(0.05)
        log = self.postfix.log()[-3000:]
        pytest.fail(f"nothing for {rcpt} at the sink within {timeout}s; Postfix log:\n{log}")


def example_config(work: Path, dns: ZoneServer) -> Path:
    copy = work / "examples"
    shutil.copytree(EXAMPLES, copy)
    for key in copy.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (copy / "srs.secret").chmod(0o600)
    config = copy / "srsfwd.toml"
    text = config.read_text()
    text = text.replace(
        'zone_files = ["example.zone"]', f'nameservers = ["127.0.0.1"]\nport = {dns.port}'
    ).replace("timeout = 5.0", "timeout = 2.0")
    text = text.replace("per_day = 1000", "per_day = 6")
    config.write_text(
        text[: text.index("[serve]")] + "[serve]\nsocketmap = []\n"
        f'milter = ["unix:{work}/milter.sock"]\n'
        'milter-spam-header = "X-Spam-Flag"\n'
    )
    return config


@contextmanager
def running_rig(
    dns: ZoneServer,
    *,
    after_queue: bool = False,
    main_cf: dict[str, str] | None = None,
    etc_files: dict[str, str] | None = None,
) -> Iterator[Rig]:
    """srsfwd serve, the spam filter, the sink and Postfix, as docs/postfix.md part 2 says.

    ``main_cf`` and ``etc_files``: more main.cf settings and files in Postfix's
    configuration directory (SMTP AUTH, for instance).

    ``after_queue``: the milter runs on a loopback smtpd after Postfix expanded
    ``virtual_alias_maps`` (alias@example.net forwards to bob@receiver.example), the
    original client passed on with XFORWARD and found in Received by ``trusted_relays``.
    """
    dns.clear()
    dns.load(ZONE)
    work = world_readable_tempdir("srsfwd-milter-")
    try:
        config = example_config(work, dns)
        if after_queue:
            text = config.read_text()
            assert ACCEPTED in text
            config.write_text(text.replace(ACCEPTED, TRUSTED_LOOPBACK))
        etc = "$config_directory"
        milters = f"unix:{work}/spam.sock,unix:{work}/milter.sock"  # one master.cf word
        loop_port = free_port()
        main = {
            # Our spam filter first: srsfwd sees the header it adds.
            "smtpd_milters": "" if after_queue else milters,
            "header_checks": f"regexp:{etc}/header_checks",
            "milter_default_action": "tempfail",
            "milter_header_checks": f"regexp:{etc}/milter_header_checks",
            "smtp_header_checks": f"regexp:{etc}/smtp_header_checks",
            "sender_dependent_default_transport_maps": f"regexp:{etc}/null_sender",
            "smtp_bind_address": "127.0.0.2",
            "smtp_helo_name": "mta1.fwd.example.net",
            "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
            # Forwarded recipients' domain, and the SRS domain for bounces.
            "relay_domains": "receiver.example, fwd.example.net",
            "disable_mime_output_conversion": "yes",
        }
        main |= main_cf or {}
        services = list(POOL_TRANSPORTS)
        if after_queue:
            main |= {
                "virtual_alias_domains": "example.net",
                "virtual_alias_maps": "inline:{ alias@example.net=bob@receiver.example }",
                "content_filter": f"srsfwd-loop:[127.0.0.1]:{loop_port}",
            }
            services += [line.format(port=loop_port, milters=milters) for line in AFTER_QUEUE]
        with (
            serve_process("--config", str(config), tmp=work) as (daemon, _),
            spam_milter(work / "spam.sock"),
            smtp_sink() as sink,
        ):
            nexthop = f"[127.0.0.1]:{sink.port}"
            files = {
                "milter_header_checks": MILTER_HEADER_CHECKS.format(nexthop=nexthop),
                "smtp_header_checks": SMTP_HEADER_CHECKS,
                "header_checks": HEADER_CHECKS,
                "null_sender": NULL_SENDER_TRANSPORT.format(nexthop=nexthop),
                **(etc_files or {}),
            }
            with private_postfix(
                relay_port=sink.port, maps=main, services=services, files=files
            ) as postfix:
                yield Rig(postfix, sink, config, dns)
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(10) == 0
    finally:
        dns.mode = "answer"
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def rig(_dns_server_process: ZoneServer) -> Iterator[Rig]:
    with running_rig(_dns_server_process) as running:
        yield running


def verify(data: bytes) -> None:
    dnsfunc = dkimpy_dnsfunc(Resolver.from_zone_text(ZONE))
    assert dkim.verify(data, dnsfunc=dnsfunc)
    cv, _, reason = dkim.arc_verify(data, dnsfunc=dnsfunc)
    assert cv == b"pass", reason


def verify_unsigned(data: bytes) -> None:
    """Relay and high-risk mail: sealed with ARC, but no DKIM signature of ours."""
    assert b"\nDKIM-Signature:" not in b"\n" + data.split(b"\r\n\r\n")[0]
    cv, _, reason = dkim.arc_verify(data, dnsfunc=dkimpy_dnsfunc(Resolver.from_zone_text(ZONE)))
    assert cv == b"pass", reason


def test_authenticated_forward_leaves_srs_signed_through_the_normal_pool(rig: Rig) -> None:
    rig.send("normal", "alice@example.org", ["bob@receiver.example"])
    got = rig.wait_for("bob@receiver.example")
    assert got.mail_from.startswith("SRS0=") and got.mail_from.endswith("@fwd.example.net")
    assert (got.peer_ip, got.helo) == ("127.0.0.2", "mta1.fwd.example.net")
    assert b"X-Srsfwd-Pool" not in got.data
    verify(got.data)
    srs = Forwarder.from_config(load_config(rig.config)).rewriter
    assert srs.reverse(got.mail_from) == "alice@example.org"


def test_unauthenticated_forward_goes_through_the_relay_pool_unrewritten(rig: Rig) -> None:
    rig.send(
        "relay",
        "carol@unsigned.example",
        ["carl@receiver.example"],
        client=("192.0.2.99", "mx.unsigned.example"),
    )
    got = rig.wait_for("carl@receiver.example")
    assert got.mail_from == "carol@unsigned.example"
    assert (got.peer_ip, got.helo) == ("127.0.0.3", "rly1.fwd.example.net")
    verify_unsigned(got.data)


def test_spam_goes_through_the_high_risk_pool(rig: Rig) -> None:
    rig.send("spam", "alice@example.org", ["sam@receiver.example"])
    got = rig.wait_for("sam@receiver.example")
    assert (got.peer_ip, got.helo) == ("127.0.0.4", "hr1.fwd.example.net")
    assert got.mail_from.startswith("SRS0=")  # authenticated: SRS as in the normal pool
    verify(got.data)


def test_a_spam_verdict_from_the_client_does_not_count(rig: Rig) -> None:
    rig.send("normal", "alice@example.org", ["sid@receiver.example"], extra=b"X-Spam-Flag: YES\r\n")
    got = rig.wait_for("sid@receiver.example")
    assert got.peer_ip == "127.0.0.2"
    assert b"X-Spam-Flag" not in got.data


def test_sender_domain_without_a_or_mx_goes_through_the_high_risk_pool(rig: Rig) -> None:
    rig.send(
        "no-a-no-mx",
        "dave@nowhere.example",
        ["dora@receiver.example"],
        client=("192.0.2.98", "mail.nowhere.example"),
    )
    got = rig.wait_for("dora@receiver.example")
    assert got.peer_ip == "127.0.0.4"


def test_bounce_to_an_srs_address_reaches_the_original_sender_high_risk(rig: Rig) -> None:
    rig.send("normal", "fred@example.org", ["fay@receiver.example"])
    srs_sender = rig.wait_for("fay@receiver.example").mail_from
    rig.send("bounce", "", [srs_sender], client=("203.0.113.201", "mx.receiver.example"))
    got = rig.wait_for("fred@example.org")
    assert got.mail_from in ("", "<>")
    assert got.peer_ip == "127.0.0.4"


def test_forged_bounce_is_refused(rig: Rig) -> None:
    forged = "SRS0=AAAA=AA=example.org=alice@fwd.example.net"
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        rig.send("bounce", "", [forged], client=("203.0.113.201", "mx.receiver.example"))
    code, text = refused.value.recipients[forged]
    assert code == 550 and text.startswith(b"5.7.1")


def test_sender_over_its_limit_is_refused(rig: Rig) -> None:
    rcpts = [f"l{n}@receiver.example" for n in range(6)]
    rig.send("normal", "lim@example.org", rcpts)
    rig.wait_for("l0@receiver.example")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        rig.send("normal", "lim@example.org", ["l9@receiver.example"])
    assert refused.value.smtp_code == 550


def test_mail_forged_past_the_limit_blocks_the_forger_not_the_victim(rig: Rig) -> None:
    # Unsigned, from a client in nobody's SPF: it counts against the client's address.
    forger = ("198.18.0.77", "mx.forger.example")
    rig.send(
        "relay", "vic@example.org", [f"v{n}@receiver.example" for n in range(6)], client=forger
    )
    rig.wait_for("v0@receiver.example")
    with pytest.raises(smtplib.SMTPDataError) as refused:
        rig.send("relay", "vic@example.org", ["v9@receiver.example"], client=forger)
    assert refused.value.smtp_code == 550
    rig.send("normal", "vic@example.org", ["real@receiver.example"])  # SPF pass: the victim
    assert rig.wait_for("real@receiver.example").mail_from.startswith("SRS0=")


def test_dns_that_stops_answering_defers_and_nothing_is_lost(rig: Rig) -> None:
    # A sender domain nobody asked about yet: nothing of it is in the resolver's cache.
    sender, rcpts = "eve@aaaa-only.example", ["dns@receiver.example"]
    client = ("192.0.2.99", "mx.unsigned.example")
    rig.dns.mode = "silent"
    try:
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            rig.send("relay", sender, rcpts, client=client)
        assert deferred.value.smtp_code // 100 == 4
    finally:
        rig.dns.mode = "answer"
    rig.send("relay", sender, rcpts, client=client)
    assert rig.wait_for("dns@receiver.example").peer_ip == "127.0.0.3"


def test_huge_body_is_forwarded_sealed(rig: Rig) -> None:
    head = (EXAMPLES / "messages" / "relay.eml").read_bytes().replace(b"\n", b"\r\n")
    big = head + (b"z" * 998 + b"\r\n") * 8_000  # 8 MB
    rig.send(
        "relay",
        "carol@unsigned.example",
        ["big@receiver.example"],
        client=("192.0.2.99", "mx.unsigned.example"),
        message=big,
    )
    got = rig.wait_for("big@receiver.example", timeout=60)
    assert len(got.data) > 8_000_000
    verify_unsigned(got.data)


def test_client_gone_mid_message_and_many_at_once(rig: Rig) -> None:
    smtp = smtplib.SMTP("127.0.0.1", rig.postfix.port, timeout=30)
    smtp.ehlo("test.client")
    smtp.mail("gone@example.org")
    smtp.rcpt("gone@receiver.example")
    smtp.putcmd("DATA")
    assert smtp.getreply()[0] == 354
    smtp.send(b"Subject: half\r\n\r\nhalf a body")
    assert smtp.sock is not None
    smtp.sock.shutdown(socket.SHUT_RDWR)  # gone without a word
    smtp.close()
    with ThreadPoolExecutor(20) as pool:
        list(
            pool.map(
                lambda n: rig.send("normal", f"m{n}@example.org", [f"many{n}@receiver.example"]),
                range(20),
            )
        )
    for n in range(20):
        assert rig.wait_for(f"many{n}@receiver.example").peer_ip == "127.0.0.2"
    assert all("gone@receiver.example" not in m.rcpts for m in rig.sink.messages)


@pytest.fixture
def after_queue_rig(_dns_server_process: ZoneServer) -> Iterator[Rig]:
    with running_rig(_dns_server_process, after_queue=True) as running:
        yield running


def test_after_queue_milter_sees_aliases_expanded_and_the_original_client(
    after_queue_rig: Rig,
) -> None:
    rig = after_queue_rig
    # Authenticated by SPF alone (relay.eml has no signature): SPF was checked for
    # 198.51.100.25, found in Received, not for the loopback hop.
    rig.send("relay", "alice@example.org", ["alias@example.net"])
    got = rig.wait_for("bob@receiver.example")
    assert got.mail_from.startswith("SRS0=") and got.peer_ip == "127.0.0.2"
    verify(got.data)
    rig.send("relay", "carol@unsigned.example", ["alias@example.net"], client=RELAY_CLIENT)
    got = rig.wait_for("bob@receiver.example", sender="carol@unsigned.example")
    assert got.peer_ip == "127.0.0.3"


@pytest.mark.parametrize(
    "header",
    [
        b"X-Srsfwd-Pool: normal\r\n",
        b"x-srsfwd-pool:normal\r\n",
        b"X-Srsfwd-Pool :\r\n normal\r\n",
    ],
)
def test_a_pool_header_from_the_client_does_not_choose_the_normal_pool(
    rig: Rig, header: bytes
) -> None:
    # milter_header_checks sees only the fields milters add: the client's is not routed.
    rcpt = f"pool{len(header)}@receiver.example"
    client = (f"192.0.2.{160 + len(header)}", RELAY_CLIENT[1])  # limits count per client
    rig.send("relay", f"pool{len(header)}@unsigned.example", [rcpt], client=client, extra=header)
    got = rig.wait_for(rcpt)
    assert (got.peer_ip, got.helo) == ("127.0.0.3", "rly1.fwd.example.net")
    assert b"srsfwd-pool" not in got.data.lower()


@pytest.mark.parametrize("pool", [b"relay", b"high-risk"])
def test_a_pool_header_from_the_client_does_not_move_mail_off_the_normal_pool(
    rig: Rig, pool: bytes
) -> None:
    rcpt = f"pool-{pool.decode()}@receiver.example"
    sender = f"pool-{pool.decode()}@example.org"
    rig.send("normal", sender, [rcpt], extra=b"X-Srsfwd-Pool: " + pool + b"\r\n")
    got = rig.wait_for(rcpt)
    assert (got.peer_ip, got.helo) == ("127.0.0.2", "mta1.fwd.example.net")
    assert b"srsfwd-pool" not in got.data.lower()
