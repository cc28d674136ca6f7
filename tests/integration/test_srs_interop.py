"""Byte-for-byte interoperability with the real peers: Mail::SRS 0.31 and postsrsd 1.10.

For many senders, times, separators and hash lengths: what a peer writes srsfwd writes,
what srsfwd writes the peer reverses, and what the peer writes srsfwd reverses.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from srsfwd import FrozenClock, SRSError, SRSRewriter
from srsfwd.srs import HashAlphabet
from srsfwd.srsmaps import SRSMaps, to_tcp_table
from tests.integration.peers import MailSRS, PeerRefusedError, PostSRSd, postsrsd

pytestmark = pytest.mark.integration

DAY = 86_400
TIMES = [
    1_577_880_000,  # 2020-01-01 12:00, the peers' own test vectors' day
    1_700_049_600,  # 2023-11-15 12:00
    (20 * 1024 - 1) * DAY + 43_200,  # the last day before the stamp wraps
    20 * 1024 * DAY + 43_200,  # the day it wraps to AA
]
SECRETS = ["tops3cr3t"]
DOMAIN = "example.com"


def sender_corpus() -> list[str]:
    """Distinct senders: plain, odd characters, mixed case, and SRS from other hops."""
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    specials = "+-%!&=._'~#$*/?^`{|}"
    corpus = [
        "test@otherdomain.com",
        "hash234@somedomain.com",
        "Alice.Smith@Example.ORG",
        "user+tag@sub.domain.example",
        "a=b=c@eq.example",
        "x%y!z&w@odd.example",
        "postmaster@[192.0.2.1]",
        "SRS0=opaque+string@otherdomain.com",
        "SRS0=abcd=XY=orig.example=bob@hop1.example",
        "SRS0+vmyz=2W=otherdomain.com=test@hop2.example",
        "SRS0-vmyz=2W=otherdomain.com=test@hop3.example",
        "SRS1=X=thirddomain.com==opaque+string@otherdomain.com",
        "SRS1+zzzz=hop1.example==abcd=XY=orig.example=bob@hop2.example",
        "me@example.com",
    ]
    for n in range(80):
        local = "".join(
            rng.choice(alphabet + specials * (n % 2)) for _ in range(rng.randint(1, 16))
        )
        local = local.strip(".") or "x"
        host = ".".join(
            "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8)))
            for _ in range(rng.randint(1, 3))
        )
        corpus.append(f"{local}@{host}.example")
    return corpus


SENDERS = sender_corpus()
SETTINGS = [(now, sep, length) for now in TIMES for sep, length in (("=", 4), ("+", 4), ("-", 6))]


def ours(
    now: int,
    separator: str = "=",
    hash_length: int = 4,
    alphabet: HashAlphabet = "classic",
    secrets: list[str] = SECRETS,
) -> SRSRewriter:
    return SRSRewriter(
        secrets,
        DOMAIN,
        separator=separator,
        hash_length=hash_length,
        hash_alphabet=alphabet,
        clock=FrozenClock(now),
    )


@pytest.fixture(scope="module")
def mail_srs() -> Iterator[MailSRS]:
    peer = MailSRS()
    yield peer
    peer.close()


# -- Mail::SRS ------------------------------------------------------------------


@pytest.mark.parametrize(("now", "separator", "hash_length"), SETTINGS)
def test_forward_is_byte_identical_to_mail_srs(
    mail_srs: MailSRS, now: int, separator: str, hash_length: int
) -> None:
    srs = ours(now, separator, hash_length)
    for sender in SENDERS:
        theirs = mail_srs.ask(
            "F",
            sender,
            now=now,
            secrets=SECRETS,
            separator=separator,
            hash_length=hash_length,
            alias=DOMAIN,
        )
        assert srs.forward(sender) == theirs, sender


@pytest.mark.parametrize(("now", "separator", "hash_length"), SETTINGS)
def test_mail_srs_reverses_what_srsfwd_writes(
    mail_srs: MailSRS, now: int, separator: str, hash_length: int
) -> None:
    srs = ours(now, separator, hash_length)
    for sender in SENDERS:
        address = srs.forward(sender)
        if address == sender:
            continue
        assert mail_srs.ask(
            "R", address, now=now + 5 * DAY, secrets=SECRETS, hash_length=hash_length
        ) == srs.reverse(address)


@pytest.mark.parametrize(("now", "separator", "hash_length"), SETTINGS)
def test_srsfwd_reverses_what_mail_srs_writes(
    mail_srs: MailSRS, now: int, separator: str, hash_length: int
) -> None:
    srs = ours(now + 21 * DAY, alphabet="url")  # the default alphabet reads both
    for sender in SENDERS:
        address = mail_srs.ask(
            "F",
            sender,
            now=now,
            secrets=SECRETS,
            separator=separator,
            hash_length=hash_length,
            alias=DOMAIN,
        )
        if address == sender:
            continue
        expected = mail_srs.ask("R", address, now=now, secrets=SECRETS, hash_length=hash_length)
        assert srs.reverse(address) == expected


def test_both_refuse_the_same_forgeries(mail_srs: MailSRS) -> None:
    now = TIMES[1]
    srs = ours(now)
    for sender in SENDERS[:40]:
        address = srs.forward(sender)
        if address == sender:
            continue
        forged = address.replace(address[5:9], "AAAA", 1)
        if forged[5:9].lower() == address[5:9].lower():
            continue
        with pytest.raises(SRSError):
            srs.reverse(forged)
        with pytest.raises(PeerRefusedError):
            mail_srs.ask("R", forged, now=now, secrets=SECRETS)


def test_both_refuse_expired_addresses(mail_srs: MailSRS) -> None:
    address = ours(TIMES[1]).forward("test@otherdomain.com")
    later = TIMES[1] + 22 * DAY
    with pytest.raises(SRSError, match="out of date"):
        ours(later).reverse(address)
    with pytest.raises(PeerRefusedError):
        mail_srs.ask("R", address, now=later, secrets=SECRETS)


def test_rotated_secret_interoperates(mail_srs: MailSRS) -> None:
    secrets = ["brand-new", "tops3cr3t"]
    old_address = mail_srs.ask(
        "F", "test@otherdomain.com", now=TIMES[0], secrets=SECRETS, alias=DOMAIN
    )
    srs = ours(TIMES[0], secrets=secrets)
    assert srs.reverse(old_address) == "test@otherdomain.com"
    new_address = srs.forward("test@otherdomain.com")
    assert (
        mail_srs.ask("F", "test@otherdomain.com", now=TIMES[0], secrets=secrets, alias=DOMAIN)
        == new_address
    )


# -- postsrsd 1.10 --------------------------------------------------------------


@pytest.fixture(scope="module", params=SETTINGS[:6], ids=lambda s: f"t{s[0]}{s[1]}{s[2]}")
def running_postsrsd(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PostSRSd, tuple[int, str, int]]]:
    now, separator, hash_length = request.param
    with postsrsd(
        tmp_path_factory.mktemp("postsrsd"),
        domain=DOMAIN,
        secrets=SECRETS,
        now=now,
        separator=separator,
        hash_length=hash_length,
    ) as peer:
        yield peer, request.param


def _not_ours(sender: str) -> bool:
    """Senders postsrsd rewrites: not in its domain, and not an SRS address it can
    reverse itself under any domain (it answers "Already rewritten" to those, where
    srsfwd wraps them in SRS1 like any other forwarder's)."""
    if sender.lower().endswith("@example.com"):
        return False
    try:
        ours(TIMES[0]).reverse(sender)
    except SRSError:
        return True
    return False


def test_forward_is_byte_identical_to_postsrsd(
    running_postsrsd: tuple[PostSRSd, tuple[int, str, int]],
) -> None:
    peer, (now, separator, hash_length) = running_postsrsd
    srs = ours(now, separator, hash_length)
    for sender in filter(_not_ours, SENDERS):
        assert srs.forward(sender) == peer.forward(sender), sender


def test_postsrsd_reverses_what_srsfwd_writes(
    running_postsrsd: tuple[PostSRSd, tuple[int, str, int]],
) -> None:
    peer, (now, separator, hash_length) = running_postsrsd
    srs = ours(now, separator, hash_length)
    for sender in filter(_not_ours, SENDERS):
        address = srs.forward(sender)
        assert (
            peer.reverse(address)
            == srs.reverse(address)
            == (sender if not srs.is_srs(sender) else peer.reverse(address))
        )


def test_srsfwd_reverses_what_postsrsd_writes(
    running_postsrsd: tuple[PostSRSd, tuple[int, str, int]],
) -> None:
    peer, (now, _, _) = running_postsrsd
    srs = ours(now + 3 * DAY, alphabet="url")
    for sender in filter(_not_ours, SENDERS):
        address = peer.forward(sender)
        assert srs.reverse(address) == peer.reverse(address)


def test_postsrsd_and_srsfwd_refuse_a_forged_address(
    running_postsrsd: tuple[PostSRSd, tuple[int, str, int]],
) -> None:
    peer, (now, _, _) = running_postsrsd
    other = SRSRewriter(["not-our-secret"], DOMAIN, clock=FrozenClock(now), hash_alphabet="classic")
    forged = other.forward("victim@target.example")
    with pytest.raises(PeerRefusedError, match="Hash invalid"):
        peer.reverse(forged)
    with pytest.raises(SRSError, match="Hash invalid"):
        ours(now).reverse(forged)


def test_postsrsd_with_two_secrets_reverses_srsfwd_rotation(tmp_path: Path) -> None:
    now = TIMES[1]
    with postsrsd(tmp_path, domain=DOMAIN, secrets=["new-one", "tops3cr3t"], now=now) as peer:
        old = ours(now).forward("test@otherdomain.com")
        new = ours(now, secrets=["new-one", "tops3cr3t"]).forward("test@otherdomain.com")
        assert peer.reverse(old) == peer.reverse(new) == "test@otherdomain.com"
        assert peer.forward("test@otherdomain.com") == new


def test_postsrsd_leaves_no_faketime_shared_memory_behind(tmp_path: Path) -> None:
    with postsrsd(tmp_path, domain=DOMAIN, secrets=SECRETS, now=TIMES[0]) as peer:
        assert peer.forward("test@otherdomain.com")
    assert not list(Path("/dev/shm").glob(f"*faketime_*_{peer.pid}"))


def hostile_reverse_keys(now: int) -> list[str]:
    """Reverse keys as an attacker writes them: case-smashed hashes and tags, extra
    ``=``, forged SRS1 hashes, stamps either side of the 10-bit wrap, non-ASCII, overlong."""
    srs = ours(now)
    good = srs.forward("test@otherdomain.com")
    srs1 = srs.forward("SRS0=abcd=XY=orig.example=bob@hop1.example")
    return [
        good,
        good.lower(),
        good.upper(),
        good[:5] + good[5:9].swapcase() + good[9:],
        ours(now - 21 * DAY).forward("test@otherdomain.com"),
        ours(now - 22 * DAY).forward("test@otherdomain.com"),
        ours(now + DAY).forward("test@otherdomain.com"),
        ours(now - 1024 * DAY).forward("test@otherdomain.com"),
        good.replace("=test@", "=te=st@"),
        good.replace("SRS0=", "SRS0=="),
        good.replace("SRS0=", "SRS0+"),
        srs1,
        srs1.lower(),
        srs1[:5] + "AAAA" + srs1[9:],
        "SRS1=AAAA=hop1.example==abcd=XY=orig.example=bob@example.com",
        good.replace("test", "t\u00e9st"),
        "SRS0=\u00c4\u00c4\u00c4\u00c4=AA=x.org=y@example.com",
        "SRS0=" + "a" * 600 + "@example.com",
        "SRS0=xxxx=AA=ex.org=" + "b" * 400 + "@example.com",
        "SRS0==@example.com",
        "SRS0=a=b=c=@example.com",
        "SRS0=aaaa=A=x.org=y@example.com",
        "SRS0=aaaa=A!=x.org=y@example.com",
        "SRS2=aaaa=AA=x.org=y@example.com",
        "@",
    ]


@pytest.mark.parametrize("now", [*TIMES[1:], 20 * 1024 * DAY + 5 * DAY], ids=str)
def test_hostile_reverse_keys_get_postsrsds_tcp_table_codes(tmp_path: Path, now: int) -> None:
    # Anything postsrsd does not reverse is 500 (never 400: Postfix would defer the mail);
    # what it reverses, srsfwd reverses to the same address.
    maps = SRSMaps(ours(now))
    with postsrsd(tmp_path, domain=DOMAIN, secrets=SECRETS, now=now) as peer:
        for key in hostile_reverse_keys(now):
            code, text = peer.lookup(peer.reverse_port, key)
            reply = to_tcp_table(maps.reverse(key))
            assert int(reply.code) == code, key
            if code == 200:
                assert reply.text == text, key
