"""SRSRewriter: the vectors the peers agree on, and srsfwd's choices where they do not."""

from __future__ import annotations

import pytest

from srsfwd import (
    AddressError,
    FrozenClock,
    SRSExpiredError,
    SRSFormatError,
    SRSHashError,
    SRSLengthError,
    SRSRewriter,
)
from srsfwd.srs import stamp_age, timestamp

NEW_YEAR_2020 = 1577836860  # 2020-01-01 00:01 UTC, stamp 2W
SECRET = "tops3cr3t"


def rewriter(**options: object) -> SRSRewriter:
    options.setdefault("clock", FrozenClock(NEW_YEAR_2020))
    return SRSRewriter([SECRET], "example.com", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ("test@otherdomain.com", "SRS0=vmyz=2W=otherdomain.com=test@example.com"),
        (
            "SRS0=opaque+string@otherdomain.com",
            "SRS1=chaI=otherdomain.com==opaque+string@example.com",
        ),
        (
            "SRS1=X=thirddomain.com==opaque+string@otherdomain.com",
            "SRS1=JIBX=thirddomain.com==opaque+string@example.com",
        ),
    ],
)
def test_forward_matches_postsrsd_test_vectors(sender: str, expected: str) -> None:
    assert rewriter().forward(sender) == expected


def test_forward_writes_url_alphabet_by_default() -> None:
    assert (
        rewriter().forward("hash234@somedomain.com")
        == "SRS0=-3_5=2W=somedomain.com=hash234@example.com"
    )


def test_forward_writes_classic_alphabet_when_asked() -> None:
    assert (
        rewriter(hash_alphabet="classic").forward("hash234@somedomain.com")
        == "SRS0=+3/5=2W=somedomain.com=hash234@example.com"
    )


def test_forward_keeps_case_and_hashes_lower_case() -> None:
    srs = SRSRewriter(
        ["s3cr3t-example"], "fwd.example.net", separator="+", clock=FrozenClock(1700000000)
    )
    assert (
        srs.forward("Alice.Smith@Example.ORG")
        == "SRS0+4bk4=G3=Example.ORG=Alice.Smith@fwd.example.net"
    )


def test_forward_of_srs0_with_plus_separator_keeps_incoming_separator() -> None:
    srs = SRSRewriter([SECRET], "forwarder.net", separator="+", clock=FrozenClock(NEW_YEAR_2020))
    assert (
        srs.forward("SRS0+vmyz=2W=otherdomain.com=test@example.com")
        == "SRS1+VLN_=example.com=+vmyz=2W=otherdomain.com=test@forwarder.net"
    )


def test_forward_of_srs1_and_of_its_srs0_give_the_same_address() -> None:
    srs = SRSRewriter(["s3cr3t-example"], "fwd.example.net", clock=FrozenClock(1700000000))
    from_srs0 = srs.forward("SRS0=abcd=XY=orig.example=bob@hop1.example")
    from_srs1 = srs.forward("SRS1=zzzz=hop1.example==abcd=XY=orig.example=bob@hop2.example")
    assert (
        from_srs0 == from_srs1 == "SRS1=XT7X=hop1.example==abcd=XY=orig.example=bob@fwd.example.net"
    )


def test_hash_length_sets_hash_characters() -> None:
    srs = SRSRewriter(
        ["s3cr3t-example"], "fwd.example.net", hash_length=6, clock=FrozenClock(1700000000)
    )
    assert srs.forward("alice@example.org").startswith("SRS0=aNbMi6=G3=")


def test_long_secret_is_hashed_first_as_rfc_2104_says() -> None:
    secret = "x" * 119
    srs = SRSRewriter([secret], "example.com", clock=FrozenClock(NEW_YEAR_2020))
    import hashlib
    import hmac

    expected = hmac.new(secret.encode(), b"2wotherdomain.comtest", hashlib.sha1).digest()
    import base64

    assert srs.forward("test@otherdomain.com").split("=")[1] == base64.b64encode(expected)[
        :4
    ].decode().translate(str.maketrans("+/", "-_"))


@pytest.mark.parametrize("sender", ["", "<>"])
def test_null_sender_is_returned_unchanged(sender: str) -> None:
    assert rewriter().forward(sender) == sender


def test_sender_in_srs_domain_is_returned_unchanged() -> None:
    assert rewriter().forward("test@EXAMPLE.com") == "test@EXAMPLE.com"


def test_own_srs_address_is_not_wrapped_again() -> None:
    own = "SRS0=XjO9=2V=otherdomain.com=test@example.com"
    assert rewriter().forward(own) == own


@pytest.mark.parametrize(
    ("sender", "rewritten"),
    [
        ("a@local.example", False),
        ("a@sub.local.example", False),
        ("a@deep.sub.local.example", False),
        ("a@other.example", True),
        ("a@parent.example", True),
        ("a@x.parent.example", False),
    ],
)
def test_local_domains_follow_postsrsd_rules(sender: str, rewritten: bool) -> None:
    srs = rewriter(local_domains=["local.example", ".local.example", ".parent.example"])
    assert (srs.forward(sender) != sender) is rewritten


def test_always_rewrite_rewrites_local_domains() -> None:
    assert rewriter(always_rewrite=True).forward("a@example.com").startswith("SRS0=")


def test_angle_brackets_are_taken_off() -> None:
    assert rewriter().forward("<test@otherdomain.com>") == (
        "SRS0=vmyz=2W=otherdomain.com=test@example.com"
    )


@pytest.mark.parametrize(
    "sender",
    [
        "no-at-sign",
        "a@b@c.com",
        '"quoted user"@example.org',
        '"a@b"@example.org',
        "spa ce@example.org",
        "ctl\x01@example.org",
        "crlf\r\n@example.org",
        "nul\x00@example.org",
        "ünïcode@example.org",
        "user@",
        "@example.org",
        "user@bad..domain",
        "user@bad domain",
        "user@1",
        "x" * 1_000_000 + "@example.org",
    ],
)
def test_forward_refuses_what_is_not_an_address(sender: str) -> None:
    with pytest.raises(AddressError):
        rewriter().forward(sender)


@pytest.mark.parametrize(
    "sender",
    [
        "SRS1=@x.example",
        "SRS1=hash@x.example",
        "SRS1=hash=host@x.example",
        "SRS1==host=user@x.example",
        "SRS1=hash==user@x.example",
    ],
)
def test_forward_refuses_srs1_with_a_part_missing(sender: str) -> None:
    with pytest.raises(SRSFormatError):
        rewriter().forward(sender)


def test_forward_refuses_a_result_over_64_octets() -> None:
    with pytest.raises(SRSLengthError, match="64"):
        rewriter().forward("a" * 40 + "@" + "b" * 20 + ".example")


def test_forward_accepts_a_result_of_exactly_64_octets() -> None:
    local = "a" * (64 - len("SRS0=vmyz=2W=") - len("=") - len("b.example"))
    result = rewriter().forward(f"{local}@b.example")
    assert len(result.split("@")[0]) == 64


def test_address_literal_sender_is_rewritten_and_reversed() -> None:
    srs = rewriter()
    assert srs.reverse(srs.forward("postmaster@[192.0.2.1]")) == "postmaster@[192.0.2.1]"


# -- reverse ------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "SRS0=XjO9=2V=otherdomain.com=test@example.com",
        "srs0=xjo9=2v=otherdomain.com=test@example.com",
        "<SRS0=XjO9=2V=otherdomain.com=test@example.com>",
        "SRS0=XjO9=2V=otherdomain.com=test@any.other.name",
        "SRS0=XjO9=2V=otherdomain.com=test",
    ],
)
def test_reverse_of_postsrsd_address(address: str) -> None:
    assert rewriter().reverse(address).lower() == "test@otherdomain.com"


def test_reverse_of_upper_cased_address_keeps_upper_case() -> None:
    assert rewriter().reverse("SRS0=XJO9=2V=OTHERDOMAIN.COM=TEST@EXAMPLE.COM") == (
        "TEST@OTHERDOMAIN.COM"
    )


def test_reverse_of_srs1_gives_first_hop_srs0() -> None:
    assert rewriter().reverse("SRS1=JIBX=thirddomain.com==opaque+string@example.com") == (
        "SRS0=opaque+string@thirddomain.com"
    )


@pytest.mark.parametrize("digest", ["+3/5", "-3_5"])
def test_reverse_accepts_both_alphabets(digest: str) -> None:
    assert rewriter().reverse(f"SRS0={digest}=2W=somedomain.com=hash234@example.com") == (
        "hash234@somedomain.com"
    )


def test_reverse_verifies_with_every_secret() -> None:
    srs = SRSRewriter(["newsecret", SECRET], "example.com", clock=FrozenClock(NEW_YEAR_2020))
    assert srs.reverse("SRS0=vmyz=2W=otherdomain.com=test@example.com") == "test@otherdomain.com"


def test_forward_signs_with_the_first_secret_only() -> None:
    old = SRSRewriter([SECRET], "example.com", clock=FrozenClock(NEW_YEAR_2020))
    rotated = SRSRewriter(["newsecret", SECRET], "example.com", clock=FrozenClock(NEW_YEAR_2020))
    with pytest.raises(SRSHashError):
        old.reverse(rotated.forward("test@otherdomain.com"))


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("SRS0=@example.com", "No hash in SRS0"),
        ("SRS0=XjO9@example.com", "No timestamp in SRS0"),
        ("SRS0=XjO9=2V@example.com", "No host in SRS0"),
        ("SRS0=XjO9=2V=otherdomain.com@example.com", "No user in SRS0"),
        ("SRS0=XjO9=2V==test@example.com", "No host in SRS0"),
        ("SRS1=@example.com", "No hash in SRS1"),
        ("SRS1=JIBX=thirddomain.com@example.com", "No user in SRS1"),
        ("test@example.com", "Not an SRS address"),
        ("SRS2=XjO9=2V=otherdomain.com=test@example.com", "Not an SRS address"),
        ("SRS0XjO9=2V=otherdomain.com=test@example.com", "Not an SRS address"),
        ("", "Not an SRS address"),
        ("SRS0=a@b@example.com", "more than one @"),
    ],
)
def test_reverse_refuses_malformed_address_with_reason(address: str, message: str) -> None:
    with pytest.raises(SRSFormatError, match=message):
        rewriter().reverse(address)


@pytest.mark.parametrize(
    "address",
    [
        "SRS0=FAKE=2W=otherdomain.com=test@example.com",
        "SRS0=vmyz=2W=otherdomain.com=tesT2@example.com",
        "SRS0=vmyz=2W=otherdomain.org=test@example.com",
        "SRS0=vmyz=2V=otherdomain.com=test@example.com",
        "SRS1=JIBX=thirddomain.org==opaque+string@example.com",
        "SRS0=vmy!=2W=otherdomain.com=test@example.com",
    ],
)
def test_reverse_refuses_forged_or_tampered_hash(address: str) -> None:
    with pytest.raises(SRSHashError, match="Hash invalid"):
        rewriter().reverse(address)


def test_reverse_refuses_hash_shorter_than_minimum() -> None:
    with pytest.raises(SRSHashError, match="too short"):
        rewriter().reverse("SRS0=vmy=2W=otherdomain.com=test@example.com")


def test_reverse_checks_every_given_hash_character() -> None:
    srs = rewriter()
    assert srs.reverse("SRS0=vmyz7B=2W=otherdomain.com=test@example.com")
    with pytest.raises(SRSHashError):
        srs.reverse("SRS0=vmyzXX=2W=otherdomain.com=test@example.com")


def test_reverse_with_require_domain_refuses_other_domains() -> None:
    with pytest.raises(SRSFormatError, match="not in our SRS domain"):
        rewriter().reverse(
            "SRS0=vmyz=2W=otherdomain.com=test@elsewhere.example", require_domain=True
        )


def test_reverse_with_require_domain_accepts_our_domain_in_any_case() -> None:
    assert rewriter().reverse("SRS0=vmyz=2W=otherdomain.com=test@EXAMPLE.COM", require_domain=True)


@pytest.mark.parametrize("age_days", [0, 1, 20, 21])
def test_reverse_accepts_ages_up_to_max_age(age_days: int) -> None:
    clock = FrozenClock(NEW_YEAR_2020)
    srs = rewriter(clock=clock)
    address = srs.forward("test@otherdomain.com")
    clock.advance(age_days * 86400)
    assert srs.reverse(address) == "test@otherdomain.com"


@pytest.mark.parametrize("age_days", [22, 200, -1, -30])
def test_reverse_refuses_old_and_future_stamps(age_days: int) -> None:
    clock = FrozenClock(NEW_YEAR_2020)
    srs = rewriter(clock=clock)
    address = srs.forward("test@otherdomain.com")
    clock.advance(age_days * 86400)
    with pytest.raises(SRSExpiredError, match="out of date"):
        srs.reverse(address)


def test_max_age_is_configurable() -> None:
    clock = FrozenClock(NEW_YEAR_2020)
    srs = rewriter(clock=clock, max_age_days=3)
    address = srs.forward("test@otherdomain.com")
    clock.advance(4 * 86400)
    with pytest.raises(SRSExpiredError):
        srs.reverse(address)


@pytest.mark.parametrize("stamp", ["2", "2W2", "2W" * 10_000, "1!", "01"])
def test_stamp_that_is_not_two_base32_characters_is_refused(stamp: str) -> None:
    with pytest.raises(SRSFormatError):
        rewriter().reverse(f"SRS0=vmyz={stamp}=otherdomain.com=test@example.com")


def test_stamp_of_new_year_2020_is_2w() -> None:
    assert timestamp(NEW_YEAR_2020) == "2W"


def test_stamp_age_wraps_every_1024_days() -> None:
    assert stamp_age("2W", NEW_YEAR_2020 + 1024 * 86400) == 0


@pytest.mark.parametrize("seconds", [-86_401, -1, 0, 86_399, 86_400, 5 * 86_400 + 7])
def test_today_is_the_stamp_of_the_clocks_day_whichever_way_it_moves(seconds: int) -> None:
    clock = FrozenClock(NEW_YEAR_2020 + 3600)
    srs = rewriter(clock=clock)
    assert srs.today() == "2W"
    clock.set(NEW_YEAR_2020 + seconds)
    assert srs.today() == timestamp(NEW_YEAR_2020 + seconds)


@pytest.mark.parametrize(
    "options",
    [
        {"separator": "/"},
        {"hash_length": 0},
        {"hash_length": 28},
        {"hash_min": 5},
        {"hash_alphabet": "hex"},
        {"max_age_days": 1024},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each message is tested in use
        rewriter(**options)


def test_no_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        SRSRewriter([], "example.com")


def test_bad_srs_domain_is_refused() -> None:
    with pytest.raises(ValueError, match="SRS domain"):
        SRSRewriter([SECRET], "bad domain")
