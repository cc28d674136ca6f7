"""Key generation, PEM loading and DNS key records."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from srsfwd.dkim.keys import (
    DkimKey,
    default_selector,
    generate_key,
    key_record_text,
    load_private_key,
    load_public_key,
    parse_key_record,
    private_key_pem,
    txt_strings,
    zone_line,
)
from srsfwd.errors import KeyFormatError
from tests.dkimhelp import RFC8463


@pytest.mark.parametrize("spec", ["rsa-2048", "rsa-3072", "rsa-4096", "ed25519"])
def test_pem_round_trip_keeps_the_key(dkim_keys: dict[str, DkimKey], spec: str) -> None:
    key = dkim_keys[spec]
    pem = private_key_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8
    again = load_private_key(pem)
    assert again.spec == spec
    assert key_record_text(again) == key_record_text(key)


def test_the_same_pem_is_parsed_once(dkim_keys: dict[str, DkimKey]) -> None:
    pem = private_key_pem(dkim_keys["rsa-2048"])
    assert load_private_key(pem) is load_private_key(bytes(pem))


def test_unknown_algorithm_is_refused() -> None:
    with pytest.raises(KeyFormatError, match="unknown key algorithm"):
        generate_key("rsa-1024")


def test_pkcs1_rsa_key_loads() -> None:
    key = load_private_key((RFC8463 / "rsa.key").read_bytes())
    assert (key.key_type, key.bits) == ("rsa", 1024)


def test_dkimpy_ed25519_seed_loads_and_gives_the_rfc_public_key() -> None:
    key = load_private_key((RFC8463 / "ed25519.seed").read_bytes())
    assert key_record_text(key).endswith("p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        base64.b64encode(b"x" * 31),
    ],
)
def test_malformed_key_is_a_key_format_error(data: bytes) -> None:
    with pytest.raises(KeyFormatError):
        load_private_key(data)


def test_ec_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyFormatError, match="RSA or Ed25519"):
        load_private_key(pem)


def test_encrypted_key_is_refused(dkim_keys: dict[str, DkimKey]) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = dkim_keys["ed25519"].private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pw"),
    )
    with pytest.raises(KeyFormatError, match="encrypted"):
        load_private_key(pem)


def test_record_text_has_flags_when_asked(dkim_keys: dict[str, DkimKey]) -> None:
    text = key_record_text(dkim_keys["ed25519"], testing=True, strict=True)
    assert text.startswith("v=DKIM1; k=ed25519; t=y:s; p=")


def test_txt_strings_are_at_most_255_bytes(dkim_keys: dict[str, DkimKey]) -> None:
    text = key_record_text(dkim_keys["rsa-4096"])
    parts = txt_strings(text)
    assert all(len(p) <= 255 for p in parts)
    assert "".join(parts) == text
    assert len(parts) == 3


def test_zone_line_is_a_parenthesised_txt_record(dkim_keys: dict[str, DkimKey]) -> None:
    line = zone_line("s1", "example.com.", key_record_text(dkim_keys["rsa-2048"]))
    assert line.startswith('s1._domainkey.example.com. IN TXT (\n    "v=DKIM1; k=rsa; p=')
    assert line.endswith('" )\n')


def test_default_selector_is_dated() -> None:
    assert default_selector(1_795_000_000) == "s202611"


def test_key_record_round_trip(dkim_keys: dict[str, DkimKey]) -> None:
    record = parse_key_record(key_record_text(dkim_keys["rsa-3072"], testing=True).encode())
    _public, bits = load_public_key(record)
    assert bits == 3072
    assert record.testing
    assert not record.strict
    assert record.hashes is None


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (b"v=DKIM1; k=rsa", "no p= tag"),
        (b"k=rsa; v=DKIM1; p=AAAA", "come first"),
        (b"v=DKIM2; p=AAAA", "DKIM1"),
        (b"v=DKIM1; p=not base64!", "not base64"),
        (b"v=DKIM1; p=AAAA; p=BBBB", "twice"),
        (b"v=DKIM1; =x; p=AAAA", "bad tag name"),
    ],
)
def test_bad_key_record_is_a_key_format_error(record: bytes, message: str) -> None:
    with pytest.raises(KeyFormatError, match=message):
        parse_key_record(record)


def test_revoked_key_cannot_be_loaded() -> None:
    record = parse_key_record(b"v=DKIM1; k=rsa; p=")
    assert record.revoked
    with pytest.raises(KeyFormatError, match="revoked"):
        load_public_key(record)


def test_bare_pkcs1_public_key_is_accepted(dkim_keys: dict[str, DkimKey]) -> None:
    from cryptography.hazmat.primitives import serialization

    der = (
        dkim_keys["rsa-2048"]
        .private.public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    )
    record = parse_key_record(b"v=DKIM1; p=" + base64.b64encode(der))
    assert load_public_key(record)[1] == 2048


def test_wrong_length_ed25519_record_is_refused() -> None:
    with pytest.raises(KeyFormatError, match="32 bytes"):
        load_public_key(parse_key_record(b"v=DKIM1; k=ed25519; p=AAAA"))
