"""DMARC-safe forwarding through the pipeline: predict the receiver's verdict, then act.

A sender whose only aligned authentication is SPF fails DMARC once forwarded. With
``[forward] dmarc = "rewrite-from"`` its From becomes ours (signed, aligned); "keep"
sends it as it is; "reject" refuses it. Through the shipped example and the project's
DNS server on loopback; dkimpy checks what leaves.
"""

from __future__ import annotations

import shutil
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner

from srsfwd.cli import cli
from srsfwd.config import load_config
from srsfwd.dkim.arc import dkimpy_dnsfunc
from srsfwd.errors import ConfigError
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.orgdomain import aligned
from srsfwd.pool import Action, Pool
from tests.dnsserver import ZoneServer

EXAMPLES = Path(__file__).parents[2] / "examples"
# Senders that publish SPF but do not sign; their mail comes from 198.51.100.25.
SENDERS = """
spfonly.example.        IN A   198.51.100.30
spfonly.example.        IN MX  10 mail.example.org.
spfonly.example.        IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
_dmarc.spfonly.example. IN TXT "v=DMARC1; p=reject"
relaxed.example.        IN A   198.51.100.31
relaxed.example.        IN MX  10 mail.example.org.
relaxed.example.        IN TXT "v=spf1 ip4:198.51.100.0/24 -all"
_dmarc.relaxed.example. IN TXT "v=DMARC1; p=none"
_dmarc.example.org.     IN TXT "v=DMARC1; p=reject"
"""
UNSIGNED = (
    b"From: Alice <alice@spfonly.example>\r\nTo: bob@example.net\r\nSubject: hi\r\n"
    b"Date: Wed, 25 Nov 2026 09:14:00 +0000\r\nMessage-ID: <1@spfonly.example>\r\n\r\nhello\r\n"
)
SIGNED = (EXAMPLES / "messages" / "normal.eml").read_bytes()  # example.org's signature


def example_copy(tmp_path: Path, dmarc: str | None) -> Path:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    for key in copy.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (copy / "srs.secret").chmod(0o600)
    if dmarc is not None:
        config = copy / "srsfwd.toml"
        text = config.read_text().replace("[forward]\n", f'[forward]\ndmarc = "{dmarc}"\n')
        config.write_text(text)
    return copy


@pytest.fixture
def dns(dns_server: ZoneServer) -> ZoneServer:
    dns_server.load((EXAMPLES / "example.zone").read_text() + SENDERS)
    return dns_server


def forwarder(tmp_path: Path, dns: ZoneServer, dmarc: str | None = None) -> Forwarder:
    config = load_config(example_copy(tmp_path, dmarc) / "srsfwd.toml")
    return Forwarder.from_config(config, resolver=dns.resolver())


def send(forwarder: Forwarder, message: bytes, sender: str) -> ForwardResult:
    return forwarder.forward(
        message,
        client_ip="198.51.100.25",
        helo="mail.example.org",
        mail_from=sender,
        rcpts=("bob@receiver.example",),
    )


def header(message: bytes, name: str) -> object:
    return message_from_bytes(message, policy=default)[name]


def test_spf_only_mail_under_a_reject_policy_has_its_from_rewritten_by_default(
    tmp_path: Path, dns: ZoneServer
) -> None:
    result = send(forwarder(tmp_path, dns), UNSIGNED, "alice@spfonly.example")
    assert result.forwarded and result.pool is Pool.NORMAL
    assert "dmarc-from-rewritten" in result.reasons
    assert result.message is not None
    (new_from,) = header(result.message, "From").addresses  # type: ignore[attr-defined]
    assert new_from.display_name == "Alice via fwd.example.net"
    assert new_from.domain == "fwd.example.net"
    assert str(header(result.message, "Reply-To")) == "Alice <alice@spfonly.example>"


def test_the_rewritten_copy_carries_our_valid_signature_aligned_with_the_new_from(
    tmp_path: Path, dns: ZoneServer
) -> None:
    result = send(forwarder(tmp_path, dns), UNSIGNED, "alice@spfonly.example")
    assert result.message is not None
    verifier = dkim.DKIM(result.message)
    assert verifier.verify(dnsfunc=dkimpy_dnsfunc(dns.resolver()))
    (new_from,) = header(result.message, "From").addresses  # type: ignore[attr-defined]
    assert aligned(verifier.domain.decode(), new_from.domain)


def test_replies_to_the_rewritten_from_reverse_to_the_author(
    tmp_path: Path, dns: ZoneServer
) -> None:
    fwd = forwarder(tmp_path, dns)
    result = send(fwd, UNSIGNED, "alice@spfonly.example")
    assert result.message is not None
    (new_from,) = header(result.message, "From").addresses  # type: ignore[attr-defined]
    assert fwd.rewriter.reverse(new_from.addr_spec) == "alice@spfonly.example"


def test_the_json_reports_what_the_dmarc_step_did(tmp_path: Path, dns: ZoneServer) -> None:
    result = send(forwarder(tmp_path, dns), UNSIGNED, "alice@spfonly.example")
    assert result.dmarc is not None
    report = result.dmarc.as_dict()
    assert report["result"] == "dmarc-from-rewritten"
    assert report["policy_domain"] == "spfonly.example"
    assert report["disposition"] == "reject"
    assert report["author"] == "alice@spfonly.example"


def test_keep_sends_the_copy_unchanged_and_says_so(tmp_path: Path, dns: ZoneServer) -> None:
    result = send(forwarder(tmp_path, dns, "keep"), UNSIGNED, "alice@spfonly.example")
    assert result.forwarded and "dmarc-kept" in result.reasons
    assert result.message is not None
    assert str(header(result.message, "From")) == "Alice <alice@spfonly.example>"
    assert header(result.message, "Reply-To") is None


def test_reject_refuses_the_forward_with_a_5xx_and_the_reason(
    tmp_path: Path, dns: ZoneServer
) -> None:
    result = send(forwarder(tmp_path, dns, "reject"), UNSIGNED, "alice@spfonly.example")
    assert result.action is Action.REJECT and result.message is None
    assert "dmarc-refused" in result.reasons
    assert result.smtp_reply is not None and result.smtp_reply.startswith("550 5.7.1 ")
    assert "spfonly.example" in result.smtp_reply


def test_a_sender_with_a_surviving_aligned_signature_is_never_rewritten(
    tmp_path: Path, dns: ZoneServer
) -> None:
    result = send(forwarder(tmp_path, dns), SIGNED, "alice@example.org")
    assert result.forwarded and result.dmarc is not None
    assert result.dmarc.result == "dmarc-pass-expected"
    assert result.message is not None
    assert str(header(result.message, "From")) == "Alice <alice@example.org>"
    assert ("_dmarc.example.org.", "TXT") not in dns.queries  # no look-up was needed


def test_a_p_none_sender_is_never_rewritten(tmp_path: Path, dns: ZoneServer) -> None:
    message = UNSIGNED.replace(b"spfonly.example", b"relaxed.example")
    result = send(forwarder(tmp_path, dns), message, "alice@relaxed.example")
    assert result.forwarded and result.dmarc is not None
    assert result.dmarc.result == "dmarc-policy-none"
    assert result.message is not None
    assert str(header(result.message, "From")) == "Alice <alice@relaxed.example>"


def test_a_from_domain_without_a_policy_is_left_alone(tmp_path: Path, dns: ZoneServer) -> None:
    dns.load(
        'nopolicy.example. IN TXT "v=spf1 ip4:198.51.100.0/24 -all"\n'
        "nopolicy.example. IN A 198.51.100.32\n"
    )
    message = UNSIGNED.replace(b"spfonly.example", b"nopolicy.example")
    result = send(forwarder(tmp_path, dns), message, "alice@nopolicy.example")
    assert result.forwarded and result.dmarc is not None
    assert result.dmarc.result == "dmarc-no-policy"


def test_a_from_that_was_never_authenticated_is_not_rewritten_in_our_name(
    tmp_path: Path, dns: ZoneServer
) -> None:
    # The envelope is example.org's (SPF pass); the From claims spfonly.example unsigned.
    result = send(forwarder(tmp_path, dns), UNSIGNED, "alice@example.org")
    assert result.forwarded and result.dmarc is not None
    assert result.dmarc.result == "dmarc-failed-on-arrival"
    assert result.message is not None
    assert str(header(result.message, "From")) == "Alice <alice@spfonly.example>"


def test_a_failing_dmarc_lookup_defers_rather_than_guess(tmp_path: Path, dns: ZoneServer) -> None:
    dns.failing.add("_dmarc.spfonly.example.")
    result = send(forwarder(tmp_path, dns), UNSIGNED, "alice@spfonly.example")
    assert result.action is Action.TEMPFAIL and "dmarc-temperror" in result.reasons
    assert result.smtp_reply is not None and result.smtp_reply.startswith("451 ")


def test_a_failing_lookup_that_could_change_nothing_does_not_defer(
    tmp_path: Path, dns: ZoneServer
) -> None:
    dns.failing.add("_dmarc.spfonly.example.")
    result = send(forwarder(tmp_path, dns, "keep"), UNSIGNED, "alice@spfonly.example")
    assert result.forwarded and result.dmarc is not None
    assert result.dmarc.result == "dmarc-unknown"


def test_a_deferred_or_refused_forward_is_not_counted(tmp_path: Path, dns: ZoneServer) -> None:
    fwd = forwarder(tmp_path, dns, "reject")
    assert send(fwd, UNSIGNED, "alice@spfonly.example").counted is None


def test_an_unknown_dmarc_mode_is_a_config_error(tmp_path: Path, dns: ZoneServer) -> None:
    with pytest.raises(ConfigError, match="dmarc"):
        forwarder(tmp_path, dns, "munge")


def test_the_cli_json_shows_the_rewrite(tmp_path: Path, dns: ZoneServer) -> None:
    copy = example_copy(tmp_path, None)
    zone = copy / "example.zone"
    zone.write_text(zone.read_text() + SENDERS)
    message = tmp_path / "m.eml"
    message.write_bytes(UNSIGNED)
    out = CliRunner().invoke(
        cli,
        [
            "forward",
            "--config",
            str(copy / "srsfwd.toml"),
            "--json",
            "--client-ip",
            "198.51.100.25",
            "--helo",
            "mail.example.org",
            "--mail-from",
            "alice@spfonly.example",
            "--rcpt",
            "bob@receiver.example",
            str(message),
        ],
    )
    assert '"dmarc-from-rewritten"' in out.output, out.output
