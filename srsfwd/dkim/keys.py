"""DKIM keys without files: generate, load from PEM, and the DNS key record (RFC 6376 §3.6).

Pure: bytes in, key objects and text out; ``srsfwd.keystore`` does the file I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from srsfwd.dkim.tags import parse_tag_list, without_whitespace
from srsfwd.errors import KeyFormatError, TagListError

#: What ``srsfwd keygen --algorithm`` accepts.
KeySpec = Literal["rsa-2048", "rsa-3072", "rsa-4096", "ed25519"]
KEY_SPECS: tuple[str, ...] = get_args(KeySpec)
DEFAULT_KEY_SPEC: KeySpec = "rsa-2048"

#: The key type as DNS names it (``k=``): RFC 6376 §3.6.1, RFC 8463 §4.2.
KeyType = Literal["rsa", "ed25519"]

#: RFC 8301 §3.2: signers MUST use at least 1024 bits and SHOULD use 2048; we refuse less.
MIN_SIGNING_BITS = 2048
#: RFC 8301 §3.2: verifiers MUST reject keys under 1024 bits.
MIN_VERIFY_BITS = 1024

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

#: The longest character-string a TXT record can hold (RFC 1035 §3.3).
TXT_STRING_MAX = 255


@dataclass(frozen=True, slots=True)
class DkimKey:
    """A loaded private key with what DKIM needs to know about it."""

    private: PrivateKey
    key_type: KeyType
    bits: int

    @property
    def algorithm(self) -> str:
        """The signature's ``a=`` tag for this key."""
        return "rsa-sha256" if self.key_type == "rsa" else "ed25519-sha256"

    @property
    def spec(self) -> str:
        """``rsa-2048`` … or ``ed25519``."""
        return f"rsa-{self.bits}" if self.key_type == "rsa" else "ed25519"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A key chosen to sign: the ``d=`` domain, the ``s=`` selector and the loaded key."""

    domain: str
    selector: str
    key: DkimKey


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A parsed DKIM key record from DNS (RFC 6376 §3.6.1)."""

    key_type: str
    public: bytes  # decoded p=; empty means revoked
    hashes: tuple[str, ...] | None  # h=; None means any
    services: tuple[str, ...]  # s=
    flags: tuple[str, ...]  # t=
    notes: str = ""

    @property
    def revoked(self) -> bool:
        """``p=`` is empty: the key was withdrawn (RFC 6376 §3.6.1)."""
        return not self.public

    @property
    def testing(self) -> bool:
        """``t=y``: the domain is testing DKIM."""
        return "y" in self.flags

    @property
    def strict(self) -> bool:
        """``t=s``: ``i=`` must be exactly ``d=``, not a subdomain."""
        return "s" in self.flags


def generate_key(spec: str = DEFAULT_KEY_SPEC) -> DkimKey:
    """A new private key (RSA with e=65537, or Ed25519).

    Raises:
        KeyFormatError: ``spec`` is not one of ``KEY_SPECS``.
    """
    if spec == "ed25519":
        return DkimKey(ed25519.Ed25519PrivateKey.generate(), "ed25519", 256)
    if spec not in KEY_SPECS:
        raise KeyFormatError(f"unknown key algorithm {spec!r}; use one of {', '.join(KEY_SPECS)}")
    bits = int(spec.removeprefix("rsa-"))
    return DkimKey(rsa.generate_private_key(public_exponent=65537, key_size=bits), "rsa", bits)


def private_key_pem(key: DkimKey) -> bytes:
    """The private key as an unencrypted PKCS#8 PEM (what OpenSSL 3 and OpenDKIM read)."""
    return key.private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def load_private_key(data: bytes, *, name: str = "key") -> DkimKey:
    """A key from PEM (PKCS#8, or PKCS#1 for RSA) or dkimpy's base64 Ed25519 seed.

    The same bytes give the same (immutable, thread-safe) key object: parsing and checking
    an RSA-2048 key costs tens of milliseconds, and every forwarder (one per milter worker,
    and again on each reload) loads the same few keys.

    Raises:
        KeyFormatError: not a key, an encrypted key, or a type DKIM cannot use.
    """
    return _parsed_key(data, name)


@functools.lru_cache(maxsize=64)
def _parsed_key(data: bytes, name: str) -> DkimKey:
    stripped = data.strip()
    if not stripped.startswith(b"-----BEGIN"):
        # dknewkey writes an Ed25519 key as the base64 of its 32-byte seed.
        try:
            seed = base64.b64decode(stripped, validate=True)
        except (binascii.Error, ValueError):
            seed = b""
        if len(seed) != 32:
            raise KeyFormatError(f"{name} is not a PEM private key")
        return DkimKey(ed25519.Ed25519PrivateKey.from_private_bytes(seed), "ed25519", 256)
    try:
        loaded = serialization.load_pem_private_key(stripped, password=None)
    except TypeError:
        raise KeyFormatError(f"{name} is encrypted; DKIM keys must be unencrypted") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"{name} is not a usable private key: {exc}") from None
    if isinstance(loaded, rsa.RSAPrivateKey):
        return DkimKey(loaded, "rsa", loaded.key_size)
    if isinstance(loaded, ed25519.Ed25519PrivateKey):
        return DkimKey(loaded, "ed25519", 256)
    raise KeyFormatError(f"{name} is a {type(loaded).__name__}; DKIM signs with RSA or Ed25519")


def public_key_data(key: DkimKey | PublicKey) -> bytes:
    """The bytes ``p=`` carries: SubjectPublicKeyInfo DER for RSA, the raw 32 bytes for Ed25519."""
    public = key.private.public_key() if isinstance(key, DkimKey) else key
    if isinstance(public, ed25519.Ed25519PublicKey):
        # RFC 8463 §4.2: the bare public key, not wrapped in SubjectPublicKeyInfo.
        return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_record_text(key: DkimKey, *, testing: bool = False, strict: bool = False) -> str:
    """The TXT record text: ``v=DKIM1; k=rsa; p=…`` (with ``t=y`` / ``t=s`` when asked)."""
    tags = ["v=DKIM1", f"k={key.key_type}"]
    flags = ":".join(flag for flag, on in (("y", testing), ("s", strict)) if on)
    if flags:
        tags.append(f"t={flags}")
    tags.append("p=" + base64.b64encode(public_key_data(key)).decode("ascii"))
    return "; ".join(tags)


def txt_strings(text: str, limit: int = TXT_STRING_MAX) -> list[str]:
    """``text`` cut into character-strings of at most ``limit`` bytes (verifiers join them)."""
    data = text.encode("ascii")
    return [data[i : i + limit].decode("ascii") for i in range(0, len(data), limit)] or [""]


def zone_line(selector: str, domain: str, text: str) -> str:
    """The master-file entry to publish, e.g. ``s1._domainkey.example.com. IN TXT ( "…" "…" )``."""
    strings = "\n    ".join(f'"{part}"' for part in txt_strings(text))
    return f"{selector}._domainkey.{domain.rstrip('.')}. IN TXT (\n    {strings} )\n"


def default_selector(now: float, key_type: str = "rsa") -> str:
    """A dated selector for ``now``: ``s202611`` for RSA, ``e202611`` for Ed25519.

    The letter keeps an RSA and an Ed25519 key of the same month apart (dual signing).
    """
    letter = "e" if key_type == "ed25519" else "s"
    return letter + datetime.fromtimestamp(now, tz=UTC).strftime("%Y%m")


def parse_key_record(data: bytes) -> KeyRecord:
    """Parse a DKIM key record as served in DNS.

    Raises:
        KeyFormatError: not a tag list, ``v=`` other than DKIM1 or not first, no ``p=``,
            ``p=`` not base64.
    """
    try:
        tags = parse_tag_list(data)
    except TagListError as exc:
        raise KeyFormatError(f"key record: {exc}") from None
    if "v" in tags and (tags["v"] != b"DKIM1" or next(iter(tags)) != "v"):
        raise KeyFormatError("key record: v= must be DKIM1 and come first")
    if "p" not in tags:
        raise KeyFormatError("key record has no p= tag")
    try:
        public = base64.b64decode(without_whitespace(tags["p"]), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError("key record: p= is not base64") from None

    def colon_list(tag: str) -> tuple[str, ...]:
        raw = without_whitespace(tags.get(tag, b"")).decode("ascii").lower()
        return tuple(item for item in raw.split(":") if item)

    hashes = colon_list("h") if "h" in tags else None
    services = colon_list("s") if "s" in tags else ("*",)
    return KeyRecord(
        key_type=tags.get("k", b"rsa").decode("ascii").strip().lower(),
        public=public,
        hashes=hashes,
        services=services,
        flags=colon_list("t"),
        notes=tags.get("n", b"").decode("ascii", "replace"),
    )


def load_public_key(record: KeyRecord) -> tuple[PublicKey, int]:
    """The public key of a record and its size in bits.

    Raises:
        KeyFormatError: revoked, an unknown ``k=``, or ``p=`` that is not such a key.
    """
    if record.revoked:
        raise KeyFormatError("key revoked (empty p=)")
    if record.key_type == "ed25519":
        if len(record.public) != 32:
            raise KeyFormatError("ed25519 key record: p= is not 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(record.public), 256
    if record.key_type != "rsa":
        raise KeyFormatError(f"key record: unknown key type k={record.key_type}")
    try:
        public = serialization.load_der_public_key(record.public)
    except (ValueError, UnsupportedAlgorithm):
        # RFC 6376 §3.6.1 allows a bare RSAPublicKey too; some publishers use it.
        try:
            public = serialization.load_der_public_key(_wrap_pkcs1(record.public))
        except (ValueError, UnsupportedAlgorithm):
            raise KeyFormatError("key record: p= is not an RSA public key") from None
    if not isinstance(public, rsa.RSAPublicKey):
        raise KeyFormatError("key record: k=rsa but p= is another kind of key")
    return public, public.key_size


def _wrap_pkcs1(der: bytes) -> bytes:
    """SubjectPublicKeyInfo DER around a PKCS#1 RSAPublicKey."""
    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")
    bit_string = b"\x03" + _der_length(len(der) + 1) + b"\x00" + der
    body = algorithm + bit_string
    return b"\x30" + _der_length(len(body)) + body


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw
