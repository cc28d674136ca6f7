"""Helpers for DKIM tests: keys made once per session, zone text and dkimpy's DNS hook."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from srsfwd.dkim.canon import parse_message
from srsfwd.dkim.keys import DkimKey, SigningKey, key_record_text, private_key_pem, zone_line
from srsfwd.dkim.sign import default_header_list

DATA = Path(__file__).parent / "data"
RFC8463 = DATA / "rfc8463"
RFC8463_TIME = 1528637909

MESSAGE = (
    b"From: Alice Example <alice@example.com>\r\n"
    b"To: Bob <bob@example.org>\r\n"
    b"Subject: Lunch\r\n"
    b"Date: Thu, 26 Nov 2026 12:00:00 +0000\r\n"
    b"Message-ID: <lunch-1@example.com>\r\n"
    b"Received: from mx.example.com by fwd.example.net; Thu, 26 Nov 2026 12:00:01 +0000\r\n"
    b"\r\n"
    b"Shall we meet at noon?\r\n"
    b"\r\n"
    b"Alice\r\n"
)


def zone_for(keys: Iterable[SigningKey], **flags: bool) -> str:
    """Master-file text publishing the public half of ``keys``."""
    return "".join(zone_line(k.selector, k.domain, key_record_text(k.key, **flags)) for k in keys)


def dnsfunc_for(keys: Iterable[SigningKey], **flags: bool) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc`` answering for ``keys``."""
    records = {
        f"{k.selector}._domainkey.{k.domain}.".encode(): key_record_text(k.key, **flags).encode()
        for k in keys
    }

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


def dkimpy_private(key: DkimKey) -> bytes:
    """The private key in the form dkimpy's ``sign`` takes (PEM, or a base64 Ed25519 seed)."""
    if isinstance(key.private, ed25519.Ed25519PrivateKey):
        raw = key.private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return base64.b64encode(raw)
    return private_key_pem(key)


def dkimpy_arc_set(below: bytes, signing: SigningKey, authserv_id: str, timestamp: int) -> bytes:
    """What ``dkim.ARC.sign`` adds to ``below`` (which carries this hop's results on top),
    with srsfwd's header list (every DKIM-Signature included); b"" when it adds nothing.

    Raises:
        dkim.DKIMException: dkimpy refuses to seal (e.g. ``cv=fail`` with no numbered set).
    """
    parsed = parse_message(below)
    names = default_header_list(parsed.headers)
    names += [b"dkim-signature"] * len(parsed.find("dkim-signature"))
    arc = dkim.ARC(below, signature_algorithm=b"rsa-sha256")
    arc.should_not_sign.discard(b"dkim-signature")
    lines = arc.sign(
        signing.selector.encode(),
        signing.domain.encode(),
        private_key_pem(signing.key),
        authserv_id.encode(),
        include_headers=names,
        timestamp=timestamp,
    )
    return b"".join(lines)
