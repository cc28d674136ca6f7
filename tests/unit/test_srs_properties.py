"""Properties of SRS over generated senders, tampering and arbitrary input."""

from __future__ import annotations

import string

from hypothesis import assume, given
from hypothesis import strategies as st

from srsfwd import FrozenClock, SRSError, SrsfwdError, SRSLengthError, SRSRewriter

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~.-"
labels = st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=12)
domains = st.lists(labels, min_size=1, max_size=3).map(".".join).filter(lambda d: d != "1")
locals_ = st.text(ATEXT, min_size=1, max_size=20)
senders = st.builds(lambda local, domain: f"{local}@{domain}", locals_, domains)
times = st.integers(0, 4_000_000_000)
separators = st.sampled_from("=+-")


def fits(srs: SRSRewriter, sender: str) -> str:
    """Forward ``sender``, skipping the example when the result would be over 64 octets."""
    try:
        return srs.forward(sender)
    except SRSLengthError:
        assume(False)
        raise


def make(now: int, separator: str = "=", hash_length: int = 4) -> SRSRewriter:
    return SRSRewriter(
        ["secret-one", "secret-two"],
        "fwd.example",
        separator=separator,
        hash_length=hash_length,
        clock=FrozenClock(now),
    )


@given(senders, times, separators)
def test_reverse_undoes_forward(sender: str, now: int, separator: str) -> None:
    srs = make(now, separator)
    assume(not srs.is_srs(sender))
    assert srs.reverse(fits(srs, sender)) == sender


@given(senders, times)
def test_reverse_undoes_forward_after_case_smashing(sender: str, now: int) -> None:
    srs = make(now)
    assume(not srs.is_srs(sender))
    assert srs.reverse(fits(srs, sender).lower()).lower() == sender.lower()


@given(senders, senders, times)
def test_srs0_from_another_forwarder_reverses_to_it(sender: str, hop: str, now: int) -> None:
    first = SRSRewriter(["other-secret"], hop.split("@")[1], clock=FrozenClock(now))
    srs = make(now)
    assume(not srs.is_srs(sender) and hop.split("@")[1].lower() != "fwd.example")
    srs0 = fits(first, sender)
    assume(srs0 != sender)
    assert srs.reverse(fits(srs, srs0)).lower() == srs0.lower()


@given(senders, times, st.integers(0, 3), st.data())
def test_any_tampering_is_refused(sender: str, now: int, field: int, data: st.DataObject) -> None:
    srs = make(now, hash_length=8)
    assume(not srs.is_srs(sender))
    local, _, domain = fits(srs, sender).rpartition("@")
    tag, rest = local[:5], local[5:].split("=", 3)
    original = rest[field].lower()
    changed = data.draw(st.text(ATEXT.replace("=", ""), min_size=1, max_size=10))
    assume(changed.lower() != original and not (field == 0 and _same_hash(changed, original)))
    rest[field] = changed
    try:
        srs.reverse(tag + "=".join(rest) + "@" + domain)
    except SRSError:
        return
    raise AssertionError("tampered address was accepted")


def _same_hash(a: str, b: str) -> bool:
    fold = str.maketrans("+/", "-_")
    return a.lower().translate(fold) == b.lower().translate(fold)


#: Any text, and SRS-shaped text with line breaks, NULs, backticks or non-ASCII inside.
hostile = st.one_of(
    st.text(max_size=300),
    st.builds(
        lambda junk, domain: f"SRS0=HHH=TT={junk}=a@{domain}",
        st.text(st.sampled_from("ab=\r\n\0`é\u2028 "), max_size=20),
        st.sampled_from(["fwd.example", "FWD.example", "fwd.example\n", "x\u2028.example"]),
    ),
)


@given(hostile)
def test_forward_raises_nothing_but_one_line_srsfwd_errors(text: str) -> None:
    error = ""
    try:
        make(1_700_000_000).forward(text)
    except SrsfwdError as exc:
        error = str(exc)
    assert len(error.splitlines()) <= 1, error


@given(hostile)
def test_reverse_raises_nothing_but_one_line_srsfwd_errors(text: str) -> None:
    error = ""
    try:
        make(1_700_000_000).reverse(text)
    except SrsfwdError as exc:
        error = str(exc)
    assert len(error.splitlines()) <= 1, error


@given(st.from_regex(r"(?i)SRS[01][=+-][A-Za-z0-9+/=_.@-]{0,60}", fullmatch=True))
def test_reverse_of_srs_shaped_garbage_raises_only_srs_errors(text: str) -> None:
    try:
        make(1_700_000_000).reverse(text)
    except SrsfwdError:
        pass


#: Senders of every kind: plain, SRS0/SRS1 in any case, bracketed, local, long, hostile.
any_senders = st.one_of(
    senders,
    st.builds(
        lambda tag, sep, rest, domain: f"{tag}{sep}{rest}@{domain}",
        st.sampled_from(["SRS0", "srs1", "Srs0", "SRS1", "SRS2", "SRS"]),
        st.sampled_from("=+-_"),
        st.text(ATEXT, max_size=30),
        domains,
    ),
    st.builds(lambda local, domain: f"<{local}@{domain}>", locals_, domains),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        locals_,
        st.sampled_from(["local.example", "Sub.Local.Example", "FWD.example", "1"]),
    ),
    st.builds(lambda local, domain: f"{local * 4}@{domain}", locals_, domains),
    st.text(max_size=80),
)


@given(
    any_senders,
    times,
    separators,
    st.integers(1, 27),
    st.sampled_from(["url", "classic"]),
    st.booleans(),
    st.sampled_from([64, 100, 600]),
)
def test_straight_path_forwards_as_the_general_path_does(
    sender: str,
    now: int,
    separator: str,
    hash_length: int,
    alphabet: str,
    always_rewrite: bool,
    max_local_part: int,
) -> None:
    srs = SRSRewriter(
        ["secret-one", "secret-two"],
        "fwd.example",
        separator=separator,
        hash_length=hash_length,
        hash_alphabet="url" if alphabet == "url" else "classic",
        hash_min=1,
        local_domains=["local.example", ".local.example"],
        always_rewrite=always_rewrite,
        max_local_part=max_local_part,
        clock=FrozenClock(now),
    )
    straight = srs.forward_plain(sender, srs.today())
    assume(straight is not None)
    assert straight == srs._forward_any(sender, dry_run=False)
