"""DKIM verification (RFC 6376 §6) of every signature, with the stricter RFC rules dkimpy skips.

One ``SignatureResult`` per DKIM-Signature field, top first, each with the reason. Stricter
than dkimpy 1.1.8, as the RFCs ask:

* ``a=rsa-sha1`` fails (RFC 8301 §3.1), and so do RSA keys under 1024 bits (RFC 8301 §3.2);
* a signature whose ``h=`` omits From fails (RFC 6376 §6.1.1);
* the key record's ``h=`` (acceptable hashes) and ``t=s`` (no subdomain in ``i=``) are honoured
  (RFC 6376 §3.6.1);
* an ``x=`` in the past fails, as does an ``x=`` before ``t=`` (RFC 6376 §3.5);
* a signature that verifies but whose ``l=`` leaves part of the body unsigned, or whose
  ``h=`` covers fewer From fields than the message has (RFC 6376 §8.2, §8.15), does not
  authenticate: its result is ``policy`` (RFC 8601 §2.7.1).

Written on our own canonicalisation and ``cryptography`` rather than wrapping dkimpy:
dkimpy returns a bool for the top signature only, reads ``time.time()`` itself, and hides
the reason; the parts we would keep from it are the canonicalisation and the key parsing,
which srsfwd has for signing anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, utils

from srsfwd.clock import Clock, SystemClock
from srsfwd.dkim.canon import (
    BODY_CANONICALISATIONS,
    Header,
    Message,
    body_digest,
    parse_message,
    relaxed_header,
    select_headers,
    simple_header,
)
from srsfwd.dkim.keys import (
    MIN_VERIFY_BITS,
    KeyRecord,
    load_public_key,
    parse_key_record,
)
from srsfwd.dkim.tags import parse_tag_list, without_whitespace
from srsfwd.dns.resolver import DNSResolver
from srsfwd.errors import DNSTempError, KeyFormatError, SrsfwdError, TagListError

#: How far in the future ``t=`` may be before the signature is refused (dkimpy's 10 hours).
FUTURE_SLOP = 36_000
#: Signatures checked per message at most; more are reported as permerror without DNS.
MAX_SIGNATURES = 10

_REQUIRED = ("v", "a", "b", "bh", "d", "h", "s")


class Result(StrEnum):
    """RFC 8601 §2.7.1 DKIM results."""

    PASS = "pass"  # noqa: S105 (a result, not a password)
    FAIL = "fail"
    NEUTRAL = "neutral"
    POLICY = "policy"
    TEMPERROR = "temperror"
    PERMERROR = "permerror"


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """The verdict on one DKIM-Signature field."""

    result: Result
    reason: str
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    key_bits: int | None = None
    identity: str = ""
    testing: bool = False  # the key record says t=y

    @property
    def passed(self) -> bool:
        """``result`` is pass."""
        return self.result is Result.PASS

    def describe(self) -> str:
        """One line for people: ``pass d=example.com s=sel a=rsa-sha256 2048 bits (reason)``."""
        bits = f" {self.key_bits}-bit" if self.key_bits else ""
        testing = " testing" if self.testing else ""
        return (
            f"{self.result} d={self.domain or '?'} s={self.selector or '?'}"
            f" a={self.algorithm or '?'}{bits}{testing}: {self.reason}"
        )


class _Verdict(SrsfwdError):  # noqa: N818 (control flow, not an error)
    """Ends the checks of one signature with a result (internal control flow)."""

    def __init__(self, result: Result, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


@dataclass
class _Facts:
    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    identity: str = ""
    key_bits: int | None = None
    testing: bool = False


class DkimVerifier:
    """Checks every DKIM signature of a message; DNS through the one ``Resolver``."""

    def __init__(
        self,
        resolver: DNSResolver,
        *,
        clock: Clock | None = None,
        min_rsa_bits: int = MIN_VERIFY_BITS,
        max_signatures: int = MAX_SIGNATURES,
    ) -> None:
        """A verifier asking ``resolver`` for keys.

        Args:
            clock: the time ``x=`` and ``t=`` are compared with.
            min_rsa_bits: smaller RSA keys fail (RFC 8301 says 1024).
            max_signatures: check at most this many signatures per message.
        """
        self._resolver = resolver
        self._clock = clock or SystemClock()
        self._min_rsa_bits = min_rsa_bits
        self._max_signatures = max_signatures

    def verify(self, message: bytes) -> list[SignatureResult]:
        """One result per DKIM-Signature field, top first; empty when there is none.

        Raises:
            srsfwd.errors.SignatureError: ``message`` is not a mail message at all.
        """
        return self.verify_parsed(parse_message(message))

    def verify_parsed(self, message: Message) -> list[SignatureResult]:
        """``verify`` for a message parsed already."""
        fields = message.find("dkim-signature")
        now = int(self._clock.now())
        bodies: dict[tuple[str, int | None], tuple[bytes, int]] = {}
        results = []
        for number, field in enumerate(fields):
            if number >= self._max_signatures:
                results.append(
                    SignatureResult(
                        Result.PERMERROR, f"more than {self._max_signatures} signatures"
                    )
                )
                continue
            facts = _Facts()
            try:
                self._check(message, field, now, facts, bodies)
                verdict = _Verdict(Result.PASS, "signature verifies")
            except _Verdict as stop:
                verdict = stop
            results.append(
                SignatureResult(
                    verdict.result,
                    verdict.reason,
                    domain=facts.domain,
                    selector=facts.selector,
                    algorithm=facts.algorithm,
                    key_bits=facts.key_bits,
                    identity=facts.identity,
                    testing=facts.testing,
                )
            )
        return results

    def _check(
        self,
        message: Message,
        field: Header,
        now: int,
        facts: _Facts,
        bodies: dict[tuple[str, int | None], tuple[bytes, int]],
    ) -> None:
        try:
            tags = parse_tag_list(field.value)
        except TagListError as exc:
            raise _Verdict(Result.PERMERROR, f"signature: {exc}") from None
        text = {k: v.decode("ascii", "replace") for k, v in tags.items()}
        facts.domain = _plain(text.get("d", "")).lower()
        facts.selector = _plain(text.get("s", ""))
        facts.algorithm = _plain(text.get("a", "")).lower()
        missing = [t for t in _REQUIRED if t not in tags]
        if missing:
            raise _Verdict(
                Result.PERMERROR, f"signature lacks {', '.join(t + '=' for t in missing)}"
            )
        if text["v"].strip() != "1":
            raise _Verdict(Result.PERMERROR, f"unknown version v={text['v']}")
        if facts.algorithm == "rsa-sha1":
            raise _Verdict(Result.FAIL, "rsa-sha1 is not acceptable (RFC 8301)")
        if facts.algorithm not in ("rsa-sha256", "ed25519-sha256"):
            raise _Verdict(Result.PERMERROR, f"unknown algorithm a={facts.algorithm}")
        if not _is_name(facts.domain) or not _is_name(facts.selector):
            raise _Verdict(Result.PERMERROR, "d= or s= is not a DNS name")
        facts.identity = _plain(text.get("i", "@" + facts.domain))
        identity_domain = facts.identity.rpartition("@")[2].lower()
        if identity_domain != facts.domain and not identity_domain.endswith("." + facts.domain):
            raise _Verdict(Result.PERMERROR, "i= is not in the d= domain")
        header_canon, body_canon = _canonicalisation(text.get("c", "simple/simple"))
        names = [n.strip().lower().encode("ascii") for n in _plain_keep(text["h"]).split(":")]
        if b"from" not in names:
            raise _Verdict(Result.FAIL, "h= does not include From (RFC 6376 §6.1.1)")
        expire = _number(text, "x")
        signed_at = _number(text, "t")
        if expire is not None:
            if signed_at is not None and expire < signed_at:
                raise _Verdict(Result.PERMERROR, "x= is before t=")
            if expire < now:
                raise _Verdict(Result.FAIL, "signature expired (x=)")
        if signed_at is not None and signed_at > now + FUTURE_SLOP:
            raise _Verdict(Result.PERMERROR, "t= is in the future")
        if "q" in tags and "dns/txt" not in _plain(text["q"]).lower().split(":"):
            raise _Verdict(Result.PERMERROR, "no supported query method in q=")
        length = _number(text, "l")
        try:
            signature = base64.b64decode(without_whitespace(tags["b"]), validate=True)
            claimed_bh = base64.b64decode(without_whitespace(tags["bh"]), validate=True)
        except (binascii.Error, ValueError):
            raise _Verdict(Result.PERMERROR, "b= or bh= is not base64") from None

        record = self._key_record(facts)
        facts.testing = record.testing
        key_type = "ed25519" if facts.algorithm == "ed25519-sha256" else "rsa"
        if record.key_type != key_type:
            raise _Verdict(
                Result.PERMERROR, f"key is k={record.key_type}, signature a={facts.algorithm}"
            )
        if record.hashes is not None and "sha256" not in record.hashes:
            raise _Verdict(Result.FAIL, "key record h= does not allow sha256")
        if not set(record.services) & {"*", "email"}:
            raise _Verdict(Result.PERMERROR, "key record s= is not for email")
        if record.strict and identity_domain != facts.domain:
            raise _Verdict(Result.FAIL, "key record t=s forbids a subdomain in i=")
        try:
            public, bits = load_public_key(record)
        except KeyFormatError as exc:
            raise _Verdict(Result.PERMERROR, str(exc)) from None
        facts.key_bits = bits
        if key_type == "rsa" and bits < self._min_rsa_bits:
            raise _Verdict(Result.FAIL, f"{bits}-bit RSA key is too short (RFC 8301)")

        # Hashed as it is canonicalised, once per c= and l= (no copy of the body kept).
        hashed = bodies.get((body_canon, length))
        if hashed is None:
            chunks = BODY_CANONICALISATIONS[body_canon](message.body)
            hashed = bodies[(body_canon, length)] = body_digest(chunks, length)
        body_hash, body_length = hashed
        if length is not None and length > body_length:
            raise _Verdict(Result.PERMERROR, "l= is longer than the body")
        if body_hash != claimed_bh:
            raise _Verdict(Result.FAIL, "body hash does not match (body changed)")

        canon: Callable[[bytes, bytes], bytes] = (
            relaxed_header if header_canon == "relaxed" else simple_header
        )
        digest = hashlib.sha256()
        for header in select_headers(message.headers, names):
            digest.update(canon(header.name, header.value) + b"\r\n")
        digest.update(canon(field.name, _without_b(field.value)))
        try:
            if isinstance(public, ed25519.Ed25519PublicKey):
                public.verify(signature, digest.digest())
            else:
                public.verify(
                    signature, digest.digest(), padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
                )
        except InvalidSignature:
            raise _Verdict(Result.FAIL, "signature does not verify (headers changed)") from None
        unsigned = 0 if length is None else body_length - length
        _check_coverage(message, names, unsigned)

    def _key_record(self, facts: _Facts) -> KeyRecord:
        name = f"{facts.selector}._domainkey.{facts.domain}"
        try:
            answers = self._resolver.txt(name)
        except DNSTempError as exc:
            raise _Verdict(Result.TEMPERROR, str(exc)) from None
        if not answers:
            raise _Verdict(Result.PERMERROR, f"no key record at {name}")
        errors = []
        for answer in answers:
            try:
                return parse_key_record(answer)
            except KeyFormatError as exc:
                errors.append(str(exc))
        raise _Verdict(Result.PERMERROR, f"{name}: {errors[0]}")


def _check_coverage(message: Message, names: list[bytes], unsigned: int) -> None:
    """Refuse (``policy``) a verified signature that leaves content outside it.

    Anyone may append text after an ``l=`` length (RFC 6376 §8.2) or add a From field
    above a signature that covers one (§8.15: the reader sees the new one); dkimpy fails
    the latter, and neither can authenticate the message as it is.
    """
    if unsigned:
        raise _Verdict(Result.POLICY, f"l= leaves {unsigned} bytes of the body unsigned")
    froms = len(message.find("from"))
    covered = names.count(b"from")
    if froms > covered:
        raise _Verdict(Result.POLICY, f"the message has {froms} From fields, h= covers {covered}")


def _plain(value: str) -> str:
    return "".join(value.split())


def _plain_keep(value: str) -> str:
    return value.replace("\r", "").replace("\n", "")


def _number(text: dict[str, str], tag: str) -> int | None:
    if tag not in text:
        return None
    value = _plain(text[tag])
    if not value.isdigit() or len(value) > 12:
        raise _Verdict(Result.PERMERROR, f"{tag}= is not a number")
    return int(value)


def _is_name(value: str) -> bool:
    return bool(value) and value.isascii() and all(c.isalnum() or c in "-._" for c in value)


def _canonicalisation(value: str) -> tuple[str, str]:
    parts = _plain(value).lower().split("/")
    if len(parts) == 1:
        parts.append("simple")
    if len(parts) != 2 or not set(parts) <= {"simple", "relaxed"}:
        raise _Verdict(Result.PERMERROR, f"unknown canonicalisation c={value}")
    return parts[0], parts[1]


def _without_b(value: bytes) -> bytes:
    """The signature field's value with the ``b=`` value emptied (RFC 6376 §3.5, b= tag)."""
    parts = value.split(b";")
    for index, part in enumerate(parts):
        name, eq, _ = part.partition(b"=")
        if eq and name.strip(b" \t\r\n") == b"b":
            parts[index] = name + eq
            break
    return b";".join(parts)
