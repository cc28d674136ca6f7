"""The signer: dkimpy-identical output, RFC 8463 golden values, sound defaults, refusals."""

from __future__ import annotations

from unittest import mock

import dkim
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from srsfwd.clock import FrozenClock
from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import DkimKey, SigningKey, load_private_key
from srsfwd.dkim.sign import DkimSigner, default_header_list, fold
from srsfwd.dkim.tags import parse_tag_list
from srsfwd.errors import SignatureError
from tests.dkimhelp import MESSAGE, RFC8463, RFC8463_TIME, dkimpy_private, dnsfunc_for
from tests.hypothesis_profiles import budget

NOW = 1_795_000_000


def signer(key: DkimKey, **options: object) -> DkimSigner:
    return DkimSigner(
        [SigningKey("example.com", "sel", key)],
        clock=FrozenClock(NOW),
        **options,  # type: ignore[arg-type]
    )


def tags_of(signed: bytes, index: int = 0) -> dict[str, bytes]:
    field = parse_message(signed).find("dkim-signature")[index]
    return parse_tag_list(field.value)


def dkimpy_sign(message: bytes, key: DkimKey, names: list[bytes], now: int = NOW) -> bytes:
    with mock.patch("time.time", return_value=now):
        result: bytes = dkim.sign(
            message,
            b"sel",
            b"example.com",
            dkimpy_private(key),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=names,
            signature_algorithm=key.algorithm.encode(),
        )
    return result


@pytest.mark.parametrize("spec", ["rsa-2048", "rsa-3072", "rsa-4096", "ed25519"])
def test_output_is_byte_identical_to_dkimpy(dkim_keys: dict[str, DkimKey], spec: str) -> None:
    key = dkim_keys[spec]
    signed = signer(key).sign(MESSAGE)
    names = default_header_list(parse_message(MESSAGE).headers)
    assert signed == dkimpy_sign(MESSAGE, key, names) + MESSAGE


@settings(max_examples=budget(60))
@given(
    subject=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
    domain_len=st.integers(1, 50),
    body=st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r\n")),
)
def test_any_message_is_signed_as_dkimpy_signs_it(
    dkim_keys: dict[str, DkimKey], subject: str, domain_len: int, body: bytes
) -> None:
    key = dkim_keys["ed25519"]
    domain = "d" * domain_len + ".example"
    message = f"From: a@{domain}\r\nSubject: {subject}\r\n\r\n".encode() + body + b"\r\n"
    ours = DkimSigner([SigningKey(domain, "sel", key)], clock=FrozenClock(NOW)).sign(message)
    names = default_header_list(parse_message(message).headers)
    with mock.patch("time.time", return_value=NOW):
        theirs = dkim.sign(
            message,
            b"sel",
            domain.encode(),
            dkimpy_private(key),
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=names,
            signature_algorithm=b"ed25519-sha256",
        )
    assert ours == theirs + message


def test_rfc8463_signatures_are_reproduced_exactly() -> None:
    signed = (RFC8463 / "signed.eml").read_bytes()
    original = signed[signed.index(b"From: Joe") :]
    names = ["from", "to", "subject", "date", "message-id", "from", "subject", "date"]
    for index, (selector, keyfile) in enumerate(
        [("brisbane", "ed25519.seed"), ("test", "rsa.key")]
    ):
        key = load_private_key((RFC8463 / keyfile).read_bytes())
        ours = DkimSigner(
            [SigningKey("football.example.com", selector, key)],
            clock=FrozenClock(RFC8463_TIME),
            headers=names,
            allow_weak_keys=True,
        ).sign(original)
        assert tags_of(ours)["b"].replace(b"\r\n ", b"") == tags_of(signed, index)["b"].replace(
            b"\r\n ", b""
        )
        assert tags_of(ours)["bh"] == b"2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="


def test_default_tags_relaxed_no_l_t_always(dkim_keys: dict[str, DkimKey]) -> None:
    tags = tags_of(signer(dkim_keys["rsa-2048"]).sign(MESSAGE))
    assert tags["c"] == b"relaxed/relaxed"
    assert tags["t"] == str(NOW).encode()
    assert "l" not in tags
    assert "x" not in tags


def test_x_tag_when_expiry_configured(dkim_keys: dict[str, DkimKey]) -> None:
    tags = tags_of(signer(dkim_keys["ed25519"], expire_after=86400).sign(MESSAGE))
    assert tags["x"] == str(NOW + 86400).encode()


def test_default_header_list_oversigns_and_skips_trace_fields(
    dkim_keys: dict[str, DkimKey],
) -> None:
    tags = tags_of(signer(dkim_keys["ed25519"]).sign(MESSAGE))
    names = [n.strip() for n in tags["h"].decode().split(":")]
    assert names == [
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "from",
        "to",
        "cc",
        "subject",
        "reply-to",
        "date",
        "message-id",
    ]
    assert "received" not in names


def test_added_subject_breaks_the_signature(dkim_keys: dict[str, DkimKey]) -> None:
    key = dkim_keys["rsa-2048"]
    signed = signer(key).sign(MESSAGE)
    dnsfunc = dnsfunc_for([SigningKey("example.com", "sel", key)])
    assert dkim.verify(signed, dnsfunc=dnsfunc)
    assert not dkim.verify(b"Subject: Free money\r\n" + signed, dnsfunc=dnsfunc)


def test_lf_input_is_signed_as_crlf(dkim_keys: dict[str, DkimKey]) -> None:
    lf = MESSAGE.replace(b"\r\n", b"\n")
    assert signer(dkim_keys["ed25519"]).sign(lf) == signer(dkim_keys["ed25519"]).sign(MESSAGE)


def test_last_line_without_crlf_gets_one_before_signing(dkim_keys: dict[str, DkimKey]) -> None:
    signed = signer(dkim_keys["ed25519"]).sign(MESSAGE + b"trailing  ")
    assert signed.endswith(b"trailing  \r\n")


def test_dual_signing_puts_rsa_on_top(dkim_keys: dict[str, DkimKey]) -> None:
    both = DkimSigner(
        [
            SigningKey("example.com", "ed", dkim_keys["ed25519"]),
            SigningKey("example.com", "rsa", dkim_keys["rsa-2048"]),
        ],
        clock=FrozenClock(NOW),
    ).sign(MESSAGE)
    assert tags_of(both, 0)["a"] == b"rsa-sha256"
    assert tags_of(both, 1)["a"] == b"ed25519-sha256"


def test_short_rsa_key_is_refused() -> None:
    key = load_private_key((RFC8463 / "rsa.key").read_bytes())
    with pytest.raises(SignatureError, match="1024-bit"):
        signer(key)


def test_header_list_without_from_is_refused(dkim_keys: dict[str, DkimKey]) -> None:
    with pytest.raises(SignatureError, match="From"):
        signer(dkim_keys["ed25519"], headers=["subject"])


def test_trace_fields_are_never_signed(dkim_keys: dict[str, DkimKey]) -> None:
    with pytest.raises(SignatureError, match="received"):
        signer(dkim_keys["ed25519"], headers=["from", "Received"])


def test_message_without_from_is_refused(dkim_keys: dict[str, DkimKey]) -> None:
    with pytest.raises(SignatureError, match="no From"):
        signer(dkim_keys["ed25519"]).sign(b"Subject: x\r\n\r\nbody\r\n")


def test_message_with_two_from_fields_is_refused(dkim_keys: dict[str, DkimKey]) -> None:
    with pytest.raises(SignatureError, match="2 From"):
        signer(dkim_keys["ed25519"]).sign(b"From: a@x\r\nFrom: b@y\r\n\r\nbody\r\n")


def test_garbage_is_a_signature_error(dkim_keys: dict[str, DkimKey]) -> None:
    with pytest.raises(SignatureError):
        signer(dkim_keys["ed25519"]).sign(b"\x00\xff garbage without any header\r\n\r\n")


def test_fold_never_splits_the_final_crlf() -> None:
    for n in range(1, 200):
        folded = fold(b"b=" + b"A" * n + b"\r\n", 58)
        assert folded.endswith(b"\r\n")
        assert b"\r\r" not in folded
        assert b" \r\n" not in folded[-4:]


def test_unsigned_fields_go_between_the_signature_and_the_message(
    dkim_keys: dict[str, DkimKey],
) -> None:
    results = b"Authentication-Results: fwd.example.net; spf=pass\r\n"
    plain = signer(dkim_keys["rsa-2048"]).sign(MESSAGE)
    signature = plain[: len(plain) - len(MESSAGE)]
    signed = signer(dkim_keys["rsa-2048"]).sign(MESSAGE, unsigned_above=results)
    assert signed == signature + results + MESSAGE


def test_a_large_body_signs_as_dkimpy_signs_it(dkim_keys: dict[str, DkimKey]) -> None:
    body = b"".join(b"line %d  with\t runs  \r\n" % i for i in range(200_000)) + b"\r\n" * 5
    message = MESSAGE.partition(b"\r\n\r\n")[0] + b"\r\n\r\n" + body  # over 4 MiB: 5 pieces
    key = dkim_keys["rsa-2048"]
    names = default_header_list(parse_message(message).headers)
    assert signer(key).sign(message) == dkimpy_sign(message, key, names) + message
