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
import functools
import hashlib
import re
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
    PublicKey,
    load_public_key,
    parse_key_record,
)
from srsfwd.dkim.tags import parse_tag_list, without_whitespace
from srsfwd.dns.resolver import DNSResolver
from srsfwd.errors import DNSTempError, KeyFormatError, TagListError

#: How far in the future ``t=`` may be before the signature is refused (dkimpy's 10 hours).
FUTURE_SLOP = 36_000
#: Signatures checked per message at most; more are reported as permerror without DNS.
MAX_SIGNATURES = 10

_REQUIRED = ("v", "a", "b", "bh", "d", "h", "s")
#: What ``d=`` and ``s=`` may hold here: ASCII letters, digits, '-', '.', '_'.
_NAME = re.compile(r"[A-Za-z0-9._-]+")


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


@dataclass(frozen=True, slots=True)
class _Verdict:
    """Where the checks of one signature end: the result and why."""

    result: Result
    reason: str


_VERIFIES = _Verdict(Result.PASS, "signature verifies")


@dataclass
class _Facts:
    """What is known of one signature so far; its result reports what was reached."""

    domain: str = ""
    selector: str = ""
    algorithm: str = ""
    identity: str = ""
    key_bits: int | None = None
    testing: bool = False


@dataclass(frozen=True, slots=True)
class _Tags:
    """The checked tags of one DKIM-Signature field: what hashing and verifying need."""

    names: list[bytes]  # h=, lower case
    header_canon: str
    body_canon: str
    length: int | None  # l=
    signature: bytes  # b=, decoded
    body_hash: bytes  # bh=, decoded
    identity_domain: str  # the domain of i=
    key_type: str  # rsa or ed25519, from a=


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
            verdict = self._check(message, field, now, facts, bodies)
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
    ) -> _Verdict:
        """The steps, in order; the first that does not pass gives the verdict."""
        tags = _parse_tags(field)
        if isinstance(tags, _Verdict):
            return tags
        checked = _check_tags(tags, now, facts)
        if isinstance(checked, _Verdict):
            return checked
        record = self._fetch_key(facts)
        if isinstance(record, _Verdict):
            return record
        public = self._check_key(record, checked, facts)
        if isinstance(public, _Verdict):
            return public
        body_length = _verify_body_hash(message, checked, bodies)
        if isinstance(body_length, _Verdict):
            return body_length
        return (
            _verify_signature(message, field, checked, public)
            or _check_coverage(message, checked, body_length)
            or _VERIFIES
        )

    def _fetch_key(self, facts: _Facts) -> KeyRecord | _Verdict:
        """The first usable key record at ``selector._domainkey.domain``."""
        name = f"{facts.selector}._domainkey.{facts.domain}"
        try:
            answers = self._resolver.txt(name)
        except DNSTempError as exc:
            return _Verdict(Result.TEMPERROR, str(exc))
        if not answers:
            return _Verdict(Result.PERMERROR, f"no key record at {name}")
        errors = []
        for answer in answers:
            try:
                return _key_record(answer)
            except KeyFormatError as exc:
                errors.append(str(exc))
        return _Verdict(Result.PERMERROR, f"{name}: {errors[0]}")

    def _check_key(self, record: KeyRecord, tags: _Tags, facts: _Facts) -> PublicKey | _Verdict:
        """The public key, if the record allows this signature and the key is strong enough."""
        facts.testing = record.testing
        if record.key_type != tags.key_type:
            return _Verdict(
                Result.PERMERROR, f"key is k={record.key_type}, signature a={facts.algorithm}"
            )
        if record.hashes is not None and "sha256" not in record.hashes:
            return _Verdict(Result.FAIL, "key record h= does not allow sha256")
        if not set(record.services) & {"*", "email"}:
            return _Verdict(Result.PERMERROR, "key record s= is not for email")
        if record.strict and tags.identity_domain != facts.domain:
            return _Verdict(Result.FAIL, "key record t=s forbids a subdomain in i=")
        try:
            public, bits = _public_key(record)
        except KeyFormatError as exc:
            return _Verdict(Result.PERMERROR, str(exc))
        facts.key_bits = bits
        if tags.key_type == "rsa" and bits < self._min_rsa_bits:
            return _Verdict(Result.FAIL, f"{bits}-bit RSA key is too short (RFC 8301)")
        return public


#: Key records and public keys kept, least recently used dropped first.
KEY_CACHE_SIZE = 1024


# Both are pure functions of the record's bytes, so they are kept per record: loading an RSA
# public key costs more than verifying with it. The DNS answer itself is only reused for its
# TTL (the resolver's cache); a changed or revoked record is other bytes, parsed afresh.
@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _key_record(answer: bytes) -> KeyRecord:
    return parse_key_record(answer)


@functools.lru_cache(maxsize=KEY_CACHE_SIZE)
def _public_key(record: KeyRecord) -> tuple[PublicKey, int]:
    return load_public_key(record)


def _parse_tags(field: Header) -> dict[str, bytes] | _Verdict:
    """The tag list of the DKIM-Signature field."""
    try:
        return parse_tag_list(field.value)
    except TagListError as exc:
        return _Verdict(Result.PERMERROR, f"signature: {exc}")


def _check_tags(tags: dict[str, bytes], now: int, facts: _Facts) -> _Tags | _Verdict:
    """The signature's own tags, checked before any DNS: RFC 6376 §3.5 and §6.1.1."""
    text = {k: v.decode("ascii", "replace") for k, v in tags.items()}
    facts.domain = _plain(text.get("d", "")).lower()
    facts.selector = _plain(text.get("s", ""))
    facts.algorithm = _plain(text.get("a", "")).lower()
    verdict = _check_signer(tags, text, facts)
    if verdict:
        return verdict
    identity_domain = facts.identity.rpartition("@")[2].lower()
    canonicalisation = _canonicalisation(text.get("c", "simple/simple"))
    if isinstance(canonicalisation, _Verdict):
        return canonicalisation
    names = [n.strip().lower().encode("ascii") for n in _plain_keep(text["h"]).split(":")]
    if b"from" not in names:
        return _Verdict(Result.FAIL, "h= does not include From (RFC 6376 §6.1.1)")
    verdict = _check_times(text, now)
    if verdict:
        return verdict
    if "q" in tags and "dns/txt" not in _plain(text["q"]).lower().split(":"):
        return _Verdict(Result.PERMERROR, "no supported query method in q=")
    length = _number(text, "l")
    if isinstance(length, _Verdict):
        return length
    try:
        signature = base64.b64decode(without_whitespace(tags["b"]), validate=True)
        body_hash = base64.b64decode(without_whitespace(tags["bh"]), validate=True)
    except (binascii.Error, ValueError):
        return _Verdict(Result.PERMERROR, "b= or bh= is not base64")
    return _Tags(
        names=names,
        header_canon=canonicalisation[0],
        body_canon=canonicalisation[1],
        length=length,
        signature=signature,
        body_hash=body_hash,
        identity_domain=identity_domain,
        key_type="ed25519" if facts.algorithm == "ed25519-sha256" else "rsa",
    )


def _check_signer(tags: dict[str, bytes], text: dict[str, str], facts: _Facts) -> _Verdict | None:
    """Required tags, version, algorithm, and who signs (``d=``, ``s=``, ``i=``)."""
    missing = [t for t in _REQUIRED if t not in tags]
    if missing:
        return _Verdict(Result.PERMERROR, f"signature lacks {', '.join(t + '=' for t in missing)}")
    if text["v"].strip() != "1":
        return _Verdict(Result.PERMERROR, f"unknown version v={text['v']}")
    if facts.algorithm == "rsa-sha1":
        return _Verdict(Result.FAIL, "rsa-sha1 is not acceptable (RFC 8301)")
    if facts.algorithm not in ("rsa-sha256", "ed25519-sha256"):
        return _Verdict(Result.PERMERROR, f"unknown algorithm a={facts.algorithm}")
    if not _is_name(facts.domain) or not _is_name(facts.selector):
        return _Verdict(Result.PERMERROR, "d= or s= is not a DNS name")
    facts.identity = _plain(text.get("i", "@" + facts.domain))
    identity_domain = facts.identity.rpartition("@")[2].lower()
    if identity_domain != facts.domain and not identity_domain.endswith("." + facts.domain):
        return _Verdict(Result.PERMERROR, "i= is not in the d= domain")
    return None


def _check_times(text: dict[str, str], now: int) -> _Verdict | None:
    """``x=`` (expiry) and ``t=`` (signing time) against each other and ``now``."""
    expire = _number(text, "x")
    if isinstance(expire, _Verdict):
        return expire
    signed_at = _number(text, "t")
    if isinstance(signed_at, _Verdict):
        return signed_at
    if expire is not None:
        if signed_at is not None and expire < signed_at:
            return _Verdict(Result.PERMERROR, "x= is before t=")
        if expire < now:
            return _Verdict(Result.FAIL, "signature expired (x=)")
    if signed_at is not None and signed_at > now + FUTURE_SLOP:
        return _Verdict(Result.PERMERROR, "t= is in the future")
    return None


def _verify_body_hash(
    message: Message, tags: _Tags, bodies: dict[tuple[str, int | None], tuple[bytes, int]]
) -> int | _Verdict:
    """The body's canonical length if its hash is ``bh=``.

    Hashed as it is canonicalised, once per ``c=`` and ``l=`` in ``bodies`` (no copy of the
    body kept).
    """
    hashed = bodies.get((tags.body_canon, tags.length))
    if hashed is None:
        chunks = BODY_CANONICALISATIONS[tags.body_canon](message.body)
        hashed = bodies[(tags.body_canon, tags.length)] = body_digest(chunks, tags.length)
    body_hash, body_length = hashed
    if tags.length is not None and tags.length > body_length:
        return _Verdict(Result.PERMERROR, "l= is longer than the body")
    if body_hash != tags.body_hash:
        return _Verdict(Result.FAIL, "body hash does not match (body changed)")
    return body_length


def _verify_signature(
    message: Message, field: Header, tags: _Tags, public: PublicKey
) -> _Verdict | None:
    """``b=`` over the signed header fields and the signature field itself."""
    canon: Callable[[bytes, bytes], bytes] = (
        relaxed_header if tags.header_canon == "relaxed" else simple_header
    )
    digest = hashlib.sha256()
    for header in select_headers(message.headers, tags.names):
        digest.update(canon(header.name, header.value) + b"\r\n")
    digest.update(canon(field.name, _without_b(field.value)))
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(tags.signature, digest.digest())
        else:
            public.verify(
                tags.signature,
                digest.digest(),
                padding.PKCS1v15(),
                utils.Prehashed(hashes.SHA256()),
            )
    except InvalidSignature:
        return _Verdict(Result.FAIL, "signature does not verify (headers changed)")
    return None


def _check_coverage(message: Message, tags: _Tags, body_length: int) -> _Verdict | None:
    """Refuse (``policy``) a verified signature that leaves content outside it.

    Anyone may append text after an ``l=`` length (RFC 6376 §8.2) or add a From field
    above a signature that covers one (§8.15: the reader sees the new one); dkimpy fails
    the latter, and neither can authenticate the message as it is.
    """
    unsigned = 0 if tags.length is None else body_length - tags.length
    if unsigned:
        return _Verdict(Result.POLICY, f"l= leaves {unsigned} bytes of the body unsigned")
    froms = len(message.find("from"))
    covered = tags.names.count(b"from")
    if froms > covered:
        return _Verdict(Result.POLICY, f"the message has {froms} From fields, h= covers {covered}")
    return None


def _plain(value: str) -> str:
    return "".join(value.split())


def _plain_keep(value: str) -> str:
    return value.replace("\r", "").replace("\n", "")


def _number(text: dict[str, str], tag: str) -> int | _Verdict | None:
    if tag not in text:
        return None
    value = _plain(text[tag])
    if not value.isdigit() or len(value) > 12:
        return _Verdict(Result.PERMERROR, f"{tag}= is not a number")
    return int(value)


def _is_name(value: str) -> bool:
    return _NAME.fullmatch(value) is not None


def _canonicalisation(value: str) -> tuple[str, str] | _Verdict:
    parts = _plain(value).lower().split("/")
    if len(parts) == 1:
        parts.append("simple")
    if len(parts) != 2 or not set(parts) <= {"simple", "relaxed"}:
        return _Verdict(Result.PERMERROR, f"unknown canonicalisation c={value}")
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
