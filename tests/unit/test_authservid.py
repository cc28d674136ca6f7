"""Which authserv-id an Authentication-Results field claims (RFC 8601 grammar), and the
removal of those that claim ours: nothing that a parser could read as ours stays."""

from __future__ import annotations

import authres
import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.authservid import claims_authserv_id, find_authserv_id, strip_our_results

OURS = "fwd.example.net"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b" fwd.example.net; dkim=pass header.d=bank.example", "fwd.example.net"),
        (b" FWD.Example.NET; spf=pass", "fwd.example.net"),
        (b" (x) fwd.example.net; dkim=pass", "fwd.example.net"),
        (b" (a (nested) comment) fwd.example.net; dkim=pass", "fwd.example.net"),
        (b" (escaped \\) paren) fwd.example.net; dkim=pass", "fwd.example.net"),
        (b"\r\n fwd.example.net; dkim=pass", "fwd.example.net"),
        (b" (folded\r\n\tcomment)\r\n fwd.example.net\r\n ; dkim=pass", "fwd.example.net"),
        (b' "fwd.example.net"; dkim=pass', "fwd.example.net"),
        (b' "fwd.ex\\ample.net"; dkim=pass', "fwd.example.net"),
        (b" fwd.example.net 1; dkim=pass", "fwd.example.net"),
        (b" fwd.example.net (c) 1 (v); dkim=pass", "fwd.example.net"),
        (b" fwd.example.net.; dkim=pass", "fwd.example.net"),
        (b" fwd.example.net; none", "fwd.example.net"),
        (b" fwd.example.net", "fwd.example.net"),
        (b" other.example; dkim=pass header.d=fwd.example.net", "other.example"),
        (b" other.example (fwd.example.net); dkim=pass", "other.example"),
    ],
)
def test_authserv_id_is_read_with_the_rfc_grammar(value: bytes, expected: str) -> None:
    assert find_authserv_id(value).value == expected


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b" ; dkim=pass",
        b" (never closed fwd.example.net; dkim=pass",
        b' "never closed; dkim=pass',
        b" fwd.example.net/x; dkim=pass",
        b" fwd.example.net@evil.example; dkim=pass",
        b" fwd.example.net dkim=pass",
        b" fwd.example.net 1 2; dkim=pass",
    ],
)
def test_a_field_off_the_grammar_before_its_results_is_broken(value: bytes) -> None:
    assert find_authserv_id(value).broken


@pytest.mark.parametrize(
    "value",
    [
        b" (x) fwd.example.net; dkim=pass header.d=bank.example",
        b"\r\n\tfwd.example.net; dkim=pass",
        b" Fwd.Example.Net; spf=pass",
        b' "fwd.example.net" 1; spf=pass',
        b" (never closed fwd.example.net; dkim=pass",
        b" fwd.example.net/x; dkim=pass",
        b" fwd.exa\r\n mple.net dkim=pass fwd.example.net",
    ],
)
def test_fields_that_claim_or_may_claim_ours(value: bytes) -> None:
    assert claims_authserv_id(value, OURS)


@pytest.mark.parametrize(
    "value",
    [
        b" other.example; dkim=pass header.d=fwd.example.net",
        b" other.example (fwd.example.net); spf=pass",
        b" fwd.example.net.evil.example; dkim=pass",
        b" (never closed; dkim=pass",
        b"",
    ],
)
def test_fields_of_other_ids_are_not_ours(value: bytes) -> None:
    assert not claims_authserv_id(value, OURS)


def test_our_id_is_compared_without_case() -> None:
    assert claims_authserv_id(b" fwd.example.net; spf=pass", "FWD.example.NET")


def test_strip_removes_every_field_claiming_ours_and_keeps_the_rest_byte_for_byte() -> None:
    head = (
        b"Authentication-Results: (x) fwd.example.net; dkim=pass header.d=bank.example\r\n"
        b"Received: from a by b; date\r\n"
        b"authentication-results :\r\n fwd.example.net;\r\n\tspf=pass\r\n"
        b"Authentication-Results: gw.example; spf=pass\r\n"
        b"AUTHENTICATION-RESULTS: FWD.EXAMPLE.NET 1; spf=pass\r\n"
        b"Subject: hello\r\n"
        b"\tagain\r\n"
    )
    message = head + b"\r\nbody\r\nAuthentication-Results: fwd.example.net; spf=pass\r\n"
    assert strip_our_results(message, OURS) == (
        b"Received: from a by b; date\r\n"
        b"Authentication-Results: gw.example; spf=pass\r\n"
        b"Subject: hello\r\n"
        b"\tagain\r\n"
        b"\r\nbody\r\nAuthentication-Results: fwd.example.net; spf=pass\r\n"
    )


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"A: 1\r\nAuthentication-Results: us; x=y\r\nauthentication-results: us; x=z", b"A: 1"),
        (b"Authentication-Results: us; x=y\r\nA: 1\r\nAuthentication-Results: us", b"A: 1"),
        (b"Authentication-Results: us; x=y", b""),
    ],
)
def test_strip_removes_first_and_last_fields_with_their_line_breaks(
    head: bytes, expected: bytes
) -> None:
    assert strip_our_results(head + b"\r\n\r\nbody", "us") == expected + b"\r\n\r\nbody"


def test_strip_leaves_a_message_without_results_as_it_is() -> None:
    message = b"Subject: x\r\n\r\nbody\r\n"
    assert strip_our_results(message, OURS) is message


_PIECES = st.sampled_from(
    [
        b"fwd.example.net",
        b"FWD.EXAMPLE.NET",
        b"fwd",
        b".",
        b"example.net",
        b" ",
        b"\t",
        b"\r\n ",
        b"(",
        b")",
        b"\\",
        b'"',
        b";",
        b"1",
        b"/",
        b"@",
        b"=",
        b"dkim=pass",
        b" header.d=bank.example",
        b"other.example",
        b"\xc3\xa9",
        b"\x00",
    ]
)
_VALUES = st.one_of(
    st.lists(_PIECES, max_size=14).map(b"".join),
    st.binary(max_size=80),
)


@given(_VALUES)
def test_nothing_authres_reads_as_ours_is_left_as_not_ours(value: bytes) -> None:
    # authres (which dkimpy's sealer and verifier use) must never find our id in a field
    # the finder says is not ours.
    try:
        parsed = authres.AuthenticationResultsHeader.parse_value(
            value.replace(b"\r\n", b"").decode("utf-8")
        )
    except Exception:  # noqa: BLE001 (authres raises assorted errors on junk)
        return
    if str(parsed.authserv_id).rstrip(".") == OURS:
        assert claims_authserv_id(value, OURS)


_FOLDED_VALUES = _VALUES.map(lambda value: value.replace(b"\r\n", b"\r\n "))


@given(st.lists(st.tuples(st.booleans(), _FOLDED_VALUES), min_size=1, max_size=4))
def test_a_stripped_message_keeps_exactly_the_fields_not_claiming_ours(
    fields: list[tuple[bool, bytes]],
) -> None:
    lines = [
        (b"Authentication-Results:" if results else b"X-Other:") + value
        for results, value in fields
    ]
    kept = [
        line
        for line, (results, value) in zip(lines, fields, strict=True)
        if not (results and claims_authserv_id(value, OURS))
    ]
    message = b"\r\n".join(lines) + b"\r\n\r\nbody\r\n"
    assert strip_our_results(message, OURS) == b"\r\n".join(kept) + b"\r\n\r\nbody\r\n"


@pytest.mark.parametrize(
    "value",
    [
        b" fwd (c) . example . net; spf=pass",
        b" fwd (a (nested) c) .example.net; spf=pass",
        b" fwd\r\n .example.net; spf=pass",
        b" fwd. example.net; spf=pass",
        b' "fwd.example.\r\n net"; spf=pass',
        b' "fwd.example.net "; spf=pass',
        b" fwd.exa\x00mple.net; spf=pass",
        b" fwd\\.example.net; spf=pass",
        b" fwd.example.net\xc2\xa0; spf=pass",
        b" =?utf-8?b?ZndkLmV4YW1wbGUubmV0?=; spf=pass",
        b" =?us-ascii?Q?fwd=2Eexample=2Enet?=; spf=pass",
        b" =?utf-8?q?FWD.example.net?= 1; dkim=pass",
    ],
)
def test_fields_a_lenient_reader_takes_for_ours_are_ours(value: bytes) -> None:
    assert claims_authserv_id(value, OURS)


@pytest.mark.parametrize(
    "value",
    [
        b" =?utf-8?b?b3RoZXIuZXhhbXBsZQ==?=; spf=pass",
        b' "other.example"; spf=pass',
        b" other . example; dkim=pass header.d=bank.example",
    ],
)
def test_a_lenient_reading_of_another_id_is_not_ours(value: bytes) -> None:
    assert not claims_authserv_id(value, OURS)


def _lenient_reading(value: bytes) -> str:
    """The authserv-id as a careless reader finds it: the text before the first ``;``,
    unfolded, without comments (innermost first), white space, NULs, quotes or backslashes."""
    head = value.split(b";", 1)[0].replace(b"\r\n", b"")
    while True:
        opened = head.rfind(b"(")
        closed = head.find(b")", opened)
        if opened == -1 or closed == -1:
            break
        head = head[:opened] + head[closed + 1 :]
    for junk in (b" ", b"\t", b"\x00", b'"', b"\\"):
        head = head.replace(junk, b"")
    return head.decode("utf-8", "replace").lower().rstrip(".")


@given(_VALUES)
def test_nothing_a_lenient_reader_takes_for_ours_is_left_as_not_ours(value: bytes) -> None:
    if _lenient_reading(value) == OURS:
        assert claims_authserv_id(value, OURS)
