"""Attacks on what srsfwd vouches for: SRS, the normal pool and our DKIM signatures.

Each attack runs twice, through ``Forwarder`` and as a message through the milter inside
the real Postfix of the integration tests, on the shipped example configuration:

* a DKIM signing oracle: relay-pool mail, or a From domain nobody authenticated, signed
  with our keys (the SRS domain's, or the users' domain's of an OpenDKIM migration);
* SRS for a forged envelope: SPF fails for MAIL FROM, a signature of an unrelated From
  domain passes;
* a second From above a signature whose ``h=`` covers one;
* an ``l=`` signature with text appended after the signed length;
* SRS aligned with a forged From: the attacker's envelope passes SPF, the From is in our
  SRS domain's organizational domain, so our SRS sender would make DMARC pass for it;
* a forged envelope in our accepted domains, which would leave from the addresses their
  own SPF record lists.

Controls show that refusing everything cannot pass: an SPF-pass forward and an aligned
DKIM-signed sender (SPF failing) still get SRS, the normal pool and a signature that
dkimpy verifies; a From domain that arrived authenticated is signed with its own key and
keeps SRS; a trusted submission and a SASL login of our users keep the normal pool.
"""

from __future__ import annotations

import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest

from srsfwd.config import load_config
from srsfwd.dkim.arc import dkimpy_dnsfunc
from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import (
    DkimKey,
    SigningKey,
    generate_key,
    load_private_key,
    private_key_pem,
    zone_line,
)
from srsfwd.dkim.keys import key_record_text as record_of
from srsfwd.dkim.sign import DkimSigner
from srsfwd.dkim.tags import parse_tag_list
from srsfwd.dns.resolver import Resolver
from srsfwd.forward import Forwarder, ForwardResult
from srsfwd.keystore import KeyStore
from srsfwd.orgdomain import aligned
from srsfwd.pool import Action, Pool
from tests.dnsserver import ZoneServer
from tests.integration.peers import need
from tests.integration.postfix import world_readable_tempdir
from tests.integration.test_milter_postfix import Rig, running_rig

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parent.parent.parent / "examples"
ZONE = (EXAMPLES / "example.zone").read_text()

ATTACKER = ("198.18.0.66", "mx.evil.example")  # in evil.example's SPF, nobody else's
ROAMING_USER = ("203.0.113.77", "laptop")  # in nobody's SPF: a user of ours on the road
VICTIM_HOST = ("198.51.100.25", "mail.example.org")  # in example.org's SPF
USERS_HOST = ("192.0.2.99", "mx.unsigned.example")  # in example.net's SPF (192.0.2.0/24)
SUBMISSION = ("10.1.2.3", "submit.example.net")  # one of trusted_relays

EVIL_ZONE = """
evil.example.      IN A   198.18.0.66
evil.example.      IN MX  10 mx.evil.example.
mx.evil.example.   IN A   198.18.0.66
evil.example.      IN TXT "v=spf1 ip4:198.18.0.66 -all"
"""

KEY_CREATED = 1_790_000_000  # an earlier date, so the key is active
BODY = b"\r\nPlease pay the attached invoice today.\r\n"


def headers(**fields: str) -> bytes:
    lines = [f"{name.replace('_', '-')}: {value}" for name, value in fields.items()]
    return "\r\n".join(lines).encode() + b"\r\n"


def letter(author: str, subject: str = "Invoice") -> bytes:
    return (
        headers(
            From=author,
            To="bob@example.net",
            Subject=subject,
            Date="Wed, 25 Nov 2026 09:14:00 +0000",
            Message_ID=f"<{subject.replace(' ', '-')}@attack.example>",
        )
        + BODY
    )


class Keys:
    """The attacker's key, the victim's (the example's sender key) and our users' domain's."""

    def __init__(self) -> None:
        self.evil = SigningKey("evil.example", "sel", generate_key("rsa-2048"))
        # Read without the store's 0600 check: git does not keep file modes.
        victim = load_private_key(
            (EXAMPLES / "sender-keys" / "example.org" / "mail2026.key").read_bytes()
        )
        self.victim = SigningKey("example.org", "mail2026", victim)
        self.users: DkimKey = generate_key("rsa-2048")

    def zone(self) -> str:
        return (
            ZONE
            + EVIL_ZONE
            + zone_line("sel", "evil.example", record_of(self.evil.key))
            + zone_line("users", "example.net", record_of(self.users))
        )

    def install_users_key(self, keys_dir: Path) -> None:
        """The users' domain key in our store, as after an OpenDKIM migration."""
        KeyStore(keys_dir).create(
            "example.net",
            "users",
            self.users,
            pem=private_key_pem(self.users),
            now=KEY_CREATED,
        )


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


def sign(message: bytes, key: SigningKey, names: list[str] | None = None) -> bytes:
    return DkimSigner([key], headers=names).sign(message)


def sign_with_length(message: bytes, key: SigningKey) -> bytes:
    """dkimpy's signature with ``l=`` (srsfwd never makes one)."""
    return (
        bytes(
            dkim.sign(
                message,
                key.selector.encode(),
                key.domain.encode(),
                private_key_pem(key.key),
                length=True,
            )
        )
        + message
    )


# -- the messages -------------------------------------------------------------------


def forged_from_our_domain() -> bytes:
    """Attack 2: our own SRS domain in From, relayed from an unauthenticated sender."""
    return letter("Postmaster <postmaster@fwd.example.net>", "Account suspended")


def forged_from_users_domain() -> bytes:
    """Attack 2: the users' domain in From, sent by someone else."""
    return letter("CEO <ceo@example.net>", "Wire transfer")


def unrelated_signature(keys: Keys) -> bytes:
    """Attack 3: a passing signature of the attacker's From domain over a forged envelope."""
    return sign(letter("M <m@evil.example>", "Refund"), keys.evil)


def second_from(keys: Keys) -> bytes:
    """Attack 5: the victim signed From once; a second From is added above."""
    signed = sign(
        letter("Alice <alice@example.org>", "Minutes"),
        keys.victim,
        ["from", "to", "subject", "date", "message-id"],
    )
    return b"From: CEO <ceo@bank.example>\r\n" + signed


def appended_after_length(keys: Keys) -> bytes:
    """Attack 6: the victim's ``l=`` signature with the attacker's text appended."""
    signed = sign_with_length(letter("Alice <alice@example.org>", "Newsletter"), keys.victim)
    return signed + b"\r\nUPDATE: pay to IBAN XX00 0000 0000 instead.\r\n"


def forged_envelope_in_accepted_domain() -> bytes:
    """An accepted domain in MAIL FROM and From, sent from the attacker's host."""
    return letter("Alice <alice@example.net>", "Password reset")


def users_post_signed(keys: Keys) -> bytes:
    """Control: our user's own signed post, forwarded by a list whose envelope passes SPF."""
    users = SigningKey("example.net", "users", keys.users)
    return sign(letter("Frank <frank@example.net>", "List post"), users)


def spf_pass_forward() -> bytes:
    return (EXAMPLES / "messages" / "normal.eml").read_bytes()


# -- what leaves ----------------------------------------------------------------------


def signatures(message: bytes) -> list[bytes]:
    return [h.raw for h in parse_message(message).find("dkim-signature")]


def new_signatures(before: bytes, after: bytes) -> list[dict[str, bytes]]:
    """The tags of the DKIM-Signature fields in ``after`` that ``before`` did not have."""
    old = {b"".join(s.split()) for s in signatures(before)}
    return [
        parse_tag_list(s.partition(b":")[2])
        for s in signatures(after)
        if b"".join(s.split()) not in old
    ]


def signing_domains(before: bytes, after: bytes) -> list[str]:
    return [t["d"].decode() for t in new_signatures(before, after)]


def assert_signed_by(message: bytes, before: bytes, domain: str, resolver: Resolver) -> None:
    """Exactly one new signature, of ``domain``, and dkimpy verifies it."""
    old = {b"".join(s.split()) for s in signatures(before)}
    fields = signatures(message)
    new = [i for i, s in enumerate(fields) if b"".join(s.split()) not in old]
    assert len(new) == 1, new
    assert parse_tag_list(fields[new[0]].partition(b":")[2])["d"] == domain.encode()
    assert dkim.DKIM(message).verify(idx=new[0], dnsfunc=dkimpy_dnsfunc(resolver))


def our_results(message: bytes) -> bytes:
    """This hop's Authentication-Results and ARC-Authentication-Results, unfolded."""
    fields = parse_message(message).headers
    values = [
        h.value
        for h in fields
        if h.key in (b"authentication-results", b"arc-authentication-results")
        and b"fwd.example.net" in h.value
    ]
    return b" ".join(b" ".join(v.split()) for v in values)


# -- through Forwarder ----------------------------------------------------------------


@pytest.fixture
def example(tmp_path: Path, keys: Keys) -> Path:
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    for key in copy.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (copy / "srs.secret").chmod(0o600)
    keys.install_users_key(copy / "keys")
    return copy


@pytest.fixture
def resolver(dns_server: ZoneServer, keys: Keys) -> Resolver:
    dns_server.load(keys.zone())
    return dns_server.resolver()


def build(example: Path, resolver: Resolver, **changes: str) -> Forwarder:
    config = example / "srsfwd.toml"
    text = config.read_text()
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    return Forwarder.from_config(load_config(config), resolver=resolver)


@pytest.fixture
def forwarder(example: Path, resolver: Resolver) -> Forwarder:
    return build(example, resolver)


def forward(
    forwarder: Forwarder, message: bytes, client: tuple[str, str], mail_from: str
) -> ForwardResult:
    result = forwarder.forward(
        message,
        client_ip=client[0],
        helo=client[1],
        mail_from=mail_from,
        rcpts=["bob@receiver.example"],
    )
    assert result.action is Action.FORWARD, result.smtp_reply
    assert result.message is not None
    return result


def test_relay_mail_from_our_domain_is_not_signed(forwarder: Forwarder) -> None:
    message = forged_from_our_domain()
    result = forward(forwarder, message, ("192.0.2.99", "h"), "carol@unsigned.example")
    assert (result.pool, result.reasons[0]) == (Pool.RELAY, "relay-unauthenticated")
    assert result.message is not None
    assert signing_domains(message, result.message) == []


def test_users_domain_from_sent_by_someone_else_gets_no_aligned_signature(
    forwarder: Forwarder,
) -> None:
    message = forged_from_users_domain()
    result = forward(forwarder, message, ATTACKER, "m@evil.example")
    assert result.message is not None
    domains = signing_domains(message, result.message)
    assert not [d for d in domains if aligned(d, "example.net")]


def test_users_domain_from_gets_no_srs_for_an_spf_passing_envelope(forwarder: Forwarder) -> None:
    # SRS0=…@fwd.example.net would pass SPF at the receiver, aligned with example.net.
    result = forward(forwarder, forged_from_users_domain(), ATTACKER, "m@evil.example")
    assert (result.pool, result.srs) == (Pool.RELAY, False)
    assert result.reasons[:2] == ("from-aligned-with-srs-domain", "spf-pass")
    assert result.mail_from == "m@evil.example"


def test_srs_domain_from_gets_no_srs_for_an_spf_passing_envelope(forwarder: Forwarder) -> None:
    message = forged_from_our_domain()
    result = forward(forwarder, message, ATTACKER, "m@evil.example")
    assert (result.pool, result.srs) == (Pool.RELAY, False)
    assert result.reasons[0] == "from-aligned-with-srs-domain"
    assert result.mail_from == "m@evil.example"
    assert result.message is not None
    assert signing_domains(message, result.message) == []


def test_forged_envelope_in_an_accepted_domain_goes_through_the_relay_pool(
    forwarder: Forwarder,
) -> None:
    message = forged_envelope_in_accepted_domain()
    result = forward(forwarder, message, ATTACKER, "alice@example.net")
    assert (result.pool, result.srs) == (Pool.RELAY, False)
    assert result.reasons == ("accepted-domain-unauthenticated",)
    assert result.mail_from == "alice@example.net"
    assert result.message is not None
    assert signing_domains(message, result.message) == []


def test_users_domain_from_sent_by_someone_else_on_the_relay_pool_is_not_signed(
    forwarder: Forwarder,
) -> None:
    message = forged_from_users_domain()
    result = forward(forwarder, message, ("192.0.2.99", "h"), "carol@unsigned.example")
    assert result.pool is Pool.RELAY
    assert result.message is not None
    assert signing_domains(message, result.message) == []


def test_users_domain_forged_in_envelope_and_from_is_not_signed(forwarder: Forwarder) -> None:
    message = forged_from_users_domain()
    result = forward(forwarder, message, ATTACKER, "ceo@example.net")
    assert (result.pool, result.reasons[0]) == (Pool.RELAY, "accepted-domain-unauthenticated")
    assert result.message is not None
    assert signing_domains(message, result.message) == []


def test_unrelated_from_signature_gives_no_srs_for_a_failing_envelope(
    forwarder: Forwarder, keys: Keys
) -> None:
    message = unrelated_signature(keys)
    result = forward(forwarder, message, ATTACKER, "victim@example.org")
    assert (result.pool, result.srs) == (Pool.RELAY, False)
    assert result.reasons[:2] == ("envelope-not-authenticated", "dkim-pass-header-from")
    assert result.mail_from == "victim@example.org"
    assert result.message is not None
    assert signing_domains(message, result.message) == []


def test_second_from_above_a_signature_does_not_authenticate(
    example: Path, resolver: Resolver, keys: Keys
) -> None:
    forwarder = build(
        example,
        resolver,
        **{'dkim_sign = "auto"': 'dkim_sign = "none"', "arc = true": "arc = false"},
    )
    # RFC 5322 allows one From: a message with two is refused for good, even when we
    # would neither sign nor seal it, so nothing vouches for it.
    result = forwarder.forward(
        second_from(keys),
        client_ip=ATTACKER[0],
        helo=ATTACKER[1],
        mail_from="alice@example.org",
        rcpts=["bob@receiver.example"],
    )
    assert (result.action, result.reasons, result.message) == (
        Action.REJECT,
        ("several-from",),
        None,
    )
    assert result.smtp_reply is not None and result.smtp_reply.startswith("550 5.6.0")


def test_text_after_an_l_length_does_not_authenticate(forwarder: Forwarder, keys: Keys) -> None:
    result = forward(forwarder, appended_after_length(keys), ATTACKER, "alice@example.org")
    assert (result.pool, result.srs) == (Pool.RELAY, False)
    assert result.reasons == ("relay-unauthenticated", "dkim-policy")
    assert result.message is not None
    results = our_results(result.message)
    assert b"dkim=policy" in results and b"dkim=pass" not in results


def test_control_spf_pass_forward_gets_srs_normal_pool_and_our_signature(
    forwarder: Forwarder, resolver: Resolver
) -> None:
    message = spf_pass_forward()
    result = forward(forwarder, message, VICTIM_HOST, "alice@example.org")
    assert (result.pool, result.srs) == (Pool.NORMAL, True)
    assert result.mail_from.startswith("SRS0=")
    assert result.message is not None
    assert_signed_by(result.message, message, "fwd.example.net", resolver)


def test_control_aligned_dkim_sender_gets_srs_with_spf_failing(
    forwarder: Forwarder, resolver: Resolver
) -> None:
    message = spf_pass_forward()
    result = forward(forwarder, message, ATTACKER, "alice@example.org")
    assert (result.pool, result.srs) == (Pool.NORMAL, True)
    assert "dkim-pass-mail-from" in result.reasons
    assert result.message is not None
    assert_signed_by(result.message, message, "fwd.example.net", resolver)


def test_control_authenticated_from_domain_is_signed_with_its_own_key(
    forwarder: Forwarder, resolver: Resolver
) -> None:
    message = letter("Frank <frank@example.net>", "Agenda")
    result = forward(forwarder, message, USERS_HOST, "frank@example.net")
    assert (result.pool, result.srs) == (Pool.NORMAL, False)
    assert result.message is not None
    assert_signed_by(result.message, message, "example.net", resolver)


def test_control_users_signed_post_keeps_srs_under_a_foreign_envelope(
    forwarder: Forwarder, keys: Keys
) -> None:
    result = forward(forwarder, users_post_signed(keys), ATTACKER, "m@evil.example")
    assert (result.pool, result.srs) == (Pool.NORMAL, True)
    assert result.mail_from.startswith("SRS0=")
    assert result.decision is not None and result.decision.from_authenticated


def test_control_sasl_login_of_an_accepted_sender_keeps_the_normal_pool(
    forwarder: Forwarder,
) -> None:
    result = forwarder.forward(
        forged_envelope_in_accepted_domain(),
        client_ip=ROAMING_USER[0],
        helo=ROAMING_USER[1],
        mail_from="alice@example.net",
        rcpts=["bob@receiver.example"],
        sasl_user="alice",
    )
    assert (result.pool, result.srs) == (Pool.NORMAL, False)
    assert result.reasons == ("accepted-domain", "sasl-authenticated")


TRUSTED = 'authserv_id = "fwd.example.net"\n\n# The outbound'


def with_submission_host(example: Path, resolver: Resolver) -> Forwarder:
    return build(
        example,
        resolver,
        **{
            TRUSTED: 'authserv_id = "fwd.example.net"\ntrusted_relays = ["10.0.0.0/8"]\n\n'
            "# The outbound"
        },
    )


def test_control_trusted_submission_is_signed_with_the_from_domains_key(
    example: Path, resolver: Resolver
) -> None:
    forwarder = with_submission_host(example, resolver)
    message = (
        b"Received: from app1 (app1.example.net [10.1.2.4]) by submit.example.net;"
        b" Wed, 25 Nov 2026 09:14:01 +0000\r\n" + letter("Frank <frank@example.net>", "Report")
    )
    result = forward(forwarder, message, SUBMISSION, "frank@example.net")
    assert result.pool is Pool.NORMAL
    assert result.message is not None
    assert_signed_by(result.message, message, "example.net", resolver)


def test_control_trusted_submission_of_an_accepted_sender_keeps_the_normal_pool(
    example: Path, resolver: Resolver
) -> None:
    forwarder = with_submission_host(example, resolver)
    message = (
        b"Received: from app1 (app1.example.net [10.1.2.4]) by submit.example.net;"
        b" Wed, 25 Nov 2026 09:14:01 +0000\r\n" + forged_envelope_in_accepted_domain()
    )
    result = forward(forwarder, message, SUBMISSION, "alice@example.net")
    assert (result.pool, result.srs) == (Pool.NORMAL, False)
    assert result.reasons == ("accepted-domain", "trusted-submission")


def test_accepted_requires_auth_sends_even_a_trusted_submission_through_the_relay_pool(
    example: Path, resolver: Resolver
) -> None:
    forwarder = build(
        example,
        resolver,
        **{
            TRUSTED: 'authserv_id = "fwd.example.net"\ntrusted_relays = ["10.0.0.0/8"]\n'
            "accepted_requires_auth = true\n\n# The outbound"
        },
    )
    message = (
        b"Received: from app1 (app1.example.net [10.1.2.4]) by submit.example.net;"
        b" Wed, 25 Nov 2026 09:14:01 +0000\r\n" + forged_envelope_in_accepted_domain()
    )
    result = forward(forwarder, message, SUBMISSION, "alice@example.net")
    assert (result.pool, result.reasons[0]) == (Pool.RELAY, "relay-unauthenticated")


def test_mail_relayed_from_outside_by_a_trusted_relay_is_not_a_submission(
    example: Path, resolver: Resolver
) -> None:
    forwarder = with_submission_host(example, resolver)
    message = (
        b"Received: from mx.evil.example (mx.evil.example [198.18.0.66]) by gw.example.net;"
        b" Wed, 25 Nov 2026 09:14:01 +0000\r\n"
        b"Received: from app1 (app1.example.net [10.1.2.4]) by forged.example;"
        b" Wed, 25 Nov 2026 09:14:00 +0000\r\n" + forged_from_users_domain()
    )
    result = forward(forwarder, message, SUBMISSION, "m@evil.example")
    assert result.message is not None
    domains = signing_domains(message, result.message)
    assert not [d for d in domains if aligned(d, "example.net")]


def test_a_pool_may_let_the_srs_domain_sign_relay_mail(example: Path, resolver: Resolver) -> None:
    forwarder = build(
        example,
        resolver,
        **{'transport = "relay-pool"': 'transport = "relay-pool"\ndkim_sign = "srs-domain"'},
    )
    message = (EXAMPLES / "messages" / "relay.eml").read_bytes()
    result = forward(forwarder, message, ("192.0.2.99", "h"), "carol@unsigned.example")
    assert result.pool is Pool.RELAY
    assert result.message is not None
    assert_signed_by(result.message, message, "fwd.example.net", resolver)


# -- through the milter, inside Postfix ---------------------------------------------


SASL_LOGIN = ("alice@example.net", "correct horse battery")


def sasl_settings(work: Path) -> tuple[dict[str, str], dict[str, str]]:
    """main.cf settings and Postfix's ``sasl/smtpd.conf`` for SMTP AUTH: Cyrus SASL with
    a sasldb in ``work`` holding ``SASL_LOGIN``."""
    database = work / "sasldb2"
    user, realm = SASL_LOGIN[0].split("@")
    subprocess.run(
        [need("saslpasswd2"), "-p", "-c", "-f", str(database), "-u", realm, user],
        input=SASL_LOGIN[1].encode(),
        check=True,
        capture_output=True,
        timeout=30,
    )
    database.chmod(0o644)  # Postfix's smtpd reads it as the postfix user
    main_cf = {
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_sasl_type": "cyrus",
        "smtpd_sasl_path": "smtpd",
        # Debian's Postfix reads $config_directory/sasl/smtpd.conf whatever this says.
        "cyrus_sasl_config_path": "$config_directory/sasl",
    }
    smtpd_conf = (
        f"pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN\n"
        f"sasldb_path: {database}\n"
    )
    return main_cf, {"sasl/smtpd.conf": smtpd_conf}


@pytest.fixture(scope="module")
def rig(_dns_server_process: ZoneServer, keys: Keys) -> Iterator[Rig]:
    sasl = world_readable_tempdir("srsfwd-sasl-")
    main_cf, etc_files = sasl_settings(sasl)
    try:
        with running_rig(_dns_server_process, main_cf=main_cf, etc_files=etc_files) as running:
            running.dns.load(keys.zone()[len(ZONE) :])
            keys.install_users_key(running.config.parent / "keys")
            yield running
    finally:
        shutil.rmtree(sasl, ignore_errors=True)


def send_logged_in(rig: Rig, sender: str, rcpt: str, message: bytes) -> None:
    """Submit ``message`` from ``ROAMING_USER`` after logging in with ``SASL_LOGIN``."""
    with smtplib.SMTP("127.0.0.1", rig.postfix.port, timeout=60) as smtp:
        smtp.ehlo("test.client")
        addr, helo = ROAMING_USER
        code, text = smtp.docmd("XCLIENT", f"ADDR={addr} NAME=[UNAVAILABLE] HELO={helo}")
        assert code == 220, text
        smtp.ehlo(helo)
        smtp.login(*SASL_LOGIN)
        smtp.sendmail(sender, [rcpt], message)


@pytest.fixture(scope="module")
def zone_resolver(keys: Keys) -> Resolver:
    return Resolver.from_zone_text(keys.zone())


def test_milter_relay_mail_from_our_domain_is_not_signed(rig: Rig) -> None:
    message = forged_from_our_domain()
    rig.send(
        "",
        "carol@unsigned.example",
        ["a2a@receiver.example"],
        client=("192.0.2.99", "h"),
        message=message,
    )
    got = rig.wait_for("a2a@receiver.example")
    assert got.peer_ip == "127.0.0.3"
    assert signing_domains(message, got.data) == []


def test_milter_users_domain_from_sent_by_someone_else_gets_no_aligned_signature(
    rig: Rig,
) -> None:
    message = forged_from_users_domain()
    rig.send("", "m@evil.example", ["a2b@receiver.example"], client=ATTACKER, message=message)
    got = rig.wait_for("a2b@receiver.example")
    assert (got.peer_ip, got.mail_from) == ("127.0.0.3", "m@evil.example")
    assert not [d for d in signing_domains(message, got.data) if aligned(d, "example.net")]


def test_milter_srs_domain_from_gets_no_srs_for_an_spf_passing_envelope(rig: Rig) -> None:
    message = forged_from_our_domain()
    rig.send("", "m@evil.example", ["a8@receiver.example"], client=ATTACKER, message=message)
    got = rig.wait_for("a8@receiver.example")
    assert (got.peer_ip, got.mail_from) == ("127.0.0.3", "m@evil.example")
    assert signing_domains(message, got.data) == []


def test_milter_forged_envelope_in_an_accepted_domain_goes_through_the_relay_pool(
    rig: Rig,
) -> None:
    message = forged_envelope_in_accepted_domain()
    rig.send("", "alice@example.net", ["a9@receiver.example"], client=ATTACKER, message=message)
    got = rig.wait_for("a9@receiver.example")
    assert (got.peer_ip, got.mail_from) == ("127.0.0.3", "alice@example.net")
    assert signing_domains(message, got.data) == []


def test_milter_unrelated_from_signature_gives_no_srs(rig: Rig, keys: Keys) -> None:
    message = unrelated_signature(keys)
    rig.send("", "victim@example.org", ["a3@receiver.example"], client=ATTACKER, message=message)
    got = rig.wait_for("a3@receiver.example")
    assert (got.peer_ip, got.mail_from) == ("127.0.0.3", "victim@example.org")
    assert signing_domains(message, got.data) == []


def test_milter_second_from_is_refused_not_vouched_for(rig: Rig, keys: Keys) -> None:
    # RFC 5322 allows one From field: a message with two is refused for good (550 5.6.0),
    # never sent unsigned and never retried for days.
    message = second_from(keys)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        rig.send("", "alice@example.org", ["a5@receiver.example"], client=ATTACKER, message=message)
    assert refused.value.smtp_code == 550
    assert all("a5@receiver.example" not in m.rcpts for m in rig.sink.messages)


def test_milter_text_after_an_l_length_does_not_authenticate(rig: Rig, keys: Keys) -> None:
    message = appended_after_length(keys)
    rig.send("", "alice@example.org", ["a6@receiver.example"], client=ATTACKER, message=message)
    got = rig.wait_for("a6@receiver.example")
    assert (got.peer_ip, got.mail_from) == ("127.0.0.3", "alice@example.org")
    results = our_results(got.data)
    assert b"dkim=policy" in results and b"dkim=pass" not in results


def test_milter_control_spf_pass_forward(rig: Rig, zone_resolver: Resolver) -> None:
    message = spf_pass_forward()
    rig.send("", "alice@example.org", ["c1@receiver.example"], client=VICTIM_HOST, message=message)
    got = rig.wait_for("c1@receiver.example")
    assert got.peer_ip == "127.0.0.2" and got.mail_from.startswith("SRS0=")
    assert_signed_by(got.data, message, "fwd.example.net", zone_resolver)


def test_milter_control_aligned_dkim_sender_with_spf_failing(
    rig: Rig, zone_resolver: Resolver
) -> None:
    message = spf_pass_forward()
    rig.send("", "alice@example.org", ["c2@receiver.example"], client=ATTACKER, message=message)
    got = rig.wait_for("c2@receiver.example")
    assert got.peer_ip == "127.0.0.2" and got.mail_from.startswith("SRS0=")
    assert_signed_by(got.data, message, "fwd.example.net", zone_resolver)


def test_milter_control_sasl_login_of_an_accepted_sender_keeps_the_normal_pool(
    rig: Rig,
) -> None:
    send_logged_in(
        rig, "alice@example.net", "c5@receiver.example", forged_envelope_in_accepted_domain()
    )
    got = rig.wait_for("c5@receiver.example")
    assert (got.peer_ip, got.mail_from) == ("127.0.0.2", "alice@example.net")


def test_milter_control_users_signed_post_keeps_srs(rig: Rig, keys: Keys) -> None:
    message = users_post_signed(keys)
    rig.send("", "m@evil.example", ["c4@receiver.example"], client=ATTACKER, message=message)
    got = rig.wait_for("c4@receiver.example")
    assert got.peer_ip == "127.0.0.2" and got.mail_from.startswith("SRS0=")


def test_milter_control_authenticated_from_domain_signed_with_its_key(
    rig: Rig, zone_resolver: Resolver
) -> None:
    message = letter("Frank <frank@example.net>", "Agenda")
    rig.send("", "frank@example.net", ["c3@receiver.example"], client=USERS_HOST, message=message)
    got = rig.wait_for("c3@receiver.example")
    assert got.peer_ip == "127.0.0.2"
    assert_signed_by(got.data, message, "example.net", zone_resolver)
