"""Sender Rewriting Scheme: SRS0/SRS1 addresses as postsrsd and Mail::SRS make them.

The algorithm (HMAC-SHA1, base64, day stamps) follows the Guarded scheme of Mail::SRS
and postsrsd byte for byte; ``docs/srs.md`` lists where the two disagree and which way
srsfwd goes. Pure: time comes from the injected clock, aliases from an injected store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from typing import Literal, Protocol

from srsfwd.address import (
    ADDRESS_PATTERN,
    MAX_ADDRESS_LENGTH,
    MAX_LOCAL_PART,
    DomainSet,
    check_domain,
    check_text,
    split_address,
    strip_brackets,
)
from srsfwd.clock import Clock, SystemClock
from srsfwd.errors import (
    AddressError,
    SRSAliasError,
    SRSExpiredError,
    SRSFormatError,
    SRSHashError,
    SRSLengthError,
)

HashAlphabet = Literal["classic", "url"]

SEPARATORS = "=+-"
SECONDS_PER_DAY = 86_400
#: The stamp holds the day number in 10 bits, so it wraps every 1024 days.
STAMP_PERIOD = 1024
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_BASE32_VALUES = {c: i for i, c in enumerate(_BASE32)} | {
    c.lower(): i for i, c in enumerate(_BASE32)
}
#: Characters of an SHA-1 digest in base64 without padding: the longest hash there is.
MAX_HASH_LENGTH = 27
_TO_URL = bytes.maketrans(b"+/", b"-_")
# Hashes are compared case-insensitively with both alphabets folded together, as
# postsrsd 2.x does: Postfix lower-cases lookup keys, and peers emit either alphabet.
_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ+/", b"abcdefghijklmnopqrstuvwxyz-_")
_NOT_HASH_CHARS = bytes(set(range(256)) - set(b"abcdefghijklmnopqrstuvwxyz0123456789-_"))
#: postsrsd's database mode marks an alias with this host (``<b32hex>@1``).
ALIAS_HOST = "1"
_STD_TO_B32HEX = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHIJKLMNOPQRSTUV"
)
#: The common sender: ``local@domain`` as ``split_address`` accepts it at once, the local
#: part not SRS0/SRS1 (any case) and a separator. ``forward`` takes it on a straight path.
_PLAIN_SENDER = re.compile(f"(?!(?i:SRS[01])[{SEPARATORS}]){ADDRESS_PATTERN}")
#: Characters of an SRS0 local part besides the hash, host and local part.
_SRS0_OVERHEAD = len("SRS0=") + len("=XX==")


class AliasStore(Protocol):
    """Where database mode keeps the senders too long to embed (see ``srsfwd.stores``)."""

    def put(self, key: str, value: str, *, ttl: int, now: float) -> None: ...

    def get(self, key: str, *, now: float) -> str | None: ...


def timestamp(now: float) -> str:
    """The two-character SRS day stamp for the Unix time ``now``."""
    day = int(now // SECONDS_PER_DAY)
    return _BASE32[(day >> 5) & 31] + _BASE32[day & 31]


def stamp_age(stamp: str, now: float) -> int:
    """Days between the SRS stamp and ``now``, modulo the 1024-day period.

    A stamp from the future comes out as an age near 1024, so an age check refuses it.

    Raises:
        SRSFormatError: the stamp is not two base32 characters. The length is checked
            before anything is decoded (CVE-2020-35573 in postsrsd was a long stamp).
    """
    if len(stamp) != 2:
        raise SRSFormatError("Time stamp is not two characters.")
    try:
        then = _BASE32_VALUES[stamp[0]] << 5 | _BASE32_VALUES[stamp[1]]
    except KeyError:
        raise SRSFormatError("Bad base32 character in timestamp.") from None
    today = int(now // SECONDS_PER_DAY) % STAMP_PERIOD
    return (today - then) % STAMP_PERIOD


def alias_for(sender: str) -> str:
    """postsrsd's database alias: base32hex of SHA-1 of the sender, without padding."""
    digest = hashlib.sha1(sender.encode(), usedforsecurity=False).digest()
    return base64.b32encode(digest).translate(_STD_TO_B32HEX).decode()


class _Signer:
    """HMAC-SHA1 under one secret, with the padded key hashed once (RFC 2104 §2).

    Copying the two prepared SHA-1 states is about twice as fast as ``hmac.digest``
    per call, and SRS costs one HMAC per address, so this is the whole budget.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes) -> None:
        # SHA-1 is what SRS specifies; as an HMAC it is still sound (RFC 6194 §3).
        if len(secret) > 64:
            secret = hashlib.sha1(secret).digest()  # noqa: S324
        key = secret.ljust(64, b"\0")
        self._inner = hashlib.sha1(bytes(b ^ 0x36 for b in key))  # noqa: S324
        self._outer = hashlib.sha1(bytes(b ^ 0x5C for b in key))  # noqa: S324

    @property
    def states(self) -> tuple[hashlib._Hash, hashlib._Hash]:
        """The prepared inner and outer SHA-1 states (copy them, never update them)."""
        return self._inner, self._outer

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class SRSRewriter:
    """Makes and reverses SRS addresses for one forwarding domain.

    Args:
        secrets: the first signs, every one verifies (rotation without lost bounces).
        domain: our SRS domain, the domain of every address we make.
        separator: ``=``, ``+`` or ``-``, written after the SRS0/SRS1 tag.
        hash_length: hash characters we write.
        hash_alphabet: ``url`` (``-_``, postsrsd 2.2.6+) or ``classic`` (``+/``,
            Mail::SRS and older postsrsd). Reverse accepts both.
        hash_min: fewest hash characters a reversed address may carry.
        max_age_days: oldest stamp reverse accepts (0..max_age_days days).
        local_domains: senders in these (postsrsd rules, see ``DomainSet``) and in the
            SRS domain are never rewritten.
        always_rewrite: rewrite even senders in local domains (postsrsd's option).
        max_local_part: longest local part forward writes without an alias store; RFC
            5321's 64 by default. postsrsd checks nothing, so a compatibility setting may
            raise it to rewrite as postsrsd does.
        alias_store: database mode; senders too long to embed are kept here under a
            short alias as postsrsd 2.x does. Without it they are an ``SRSLengthError``.
        clock: where the time comes from; the system clock by default.
    """

    def __init__(
        self,
        secrets: Sequence[bytes | str],
        domain: str,
        *,
        separator: str = "=",
        hash_length: int = 4,
        hash_alphabet: HashAlphabet = "url",
        hash_min: int = 4,
        max_age_days: int = 21,
        local_domains: Iterable[str] = (),
        always_rewrite: bool = False,
        max_local_part: int = MAX_LOCAL_PART,
        alias_store: AliasStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        keys = [s.encode() if isinstance(s, str) else bytes(s) for s in secrets]
        if not keys or not all(keys):
            raise ValueError("SRS needs at least one secret, and no secret may be empty")
        if separator not in SEPARATORS or len(separator) != 1:
            raise ValueError(f"separator must be one of {SEPARATORS!r}, not {separator!r}")
        if not 1 <= hash_length <= MAX_HASH_LENGTH:
            raise ValueError(f"hash_length must be 1..{MAX_HASH_LENGTH}")
        if not 1 <= hash_min <= hash_length:
            raise ValueError("hash_min must be 1..hash_length")
        if hash_alphabet not in ("classic", "url"):
            raise ValueError("hash_alphabet must be 'classic' or 'url'")
        if not 0 <= max_age_days < STAMP_PERIOD:
            raise ValueError(f"max_age_days must be 0..{STAMP_PERIOD - 1}")
        try:
            check_domain(domain)
        except AddressError as exc:
            raise ValueError(f"SRS domain: {exc}") from None
        self.domain = domain
        self.separator = separator
        self.hash_length = hash_length
        self.hash_alphabet: HashAlphabet = hash_alphabet
        self._url = hash_alphabet == "url"
        self.hash_min = hash_min
        self.max_age_days = max_age_days
        self.always_rewrite = always_rewrite
        if max_local_part < MAX_LOCAL_PART:
            raise ValueError(f"max_local_part must be at least {MAX_LOCAL_PART}")
        self.max_local_part = max_local_part
        self.local_domains = DomainSet(local_domains)
        self.local_domains.add(domain)
        self._signers = tuple(_Signer(k) for k in keys)
        self._inner, self._outer = self._signers[0].states
        self._alias_store = alias_store
        self._clock: Clock = clock or SystemClock()
        # The day ``_stamp`` is for, as Unix times: a clock reading inside it needs no
        # division to know the stamp.
        self._stamp_from = self._stamp_until = 0.0
        self._stamp = ""
        self._srs0_tag = f"SRS0{separator}"
        # Longest host plus local part whose SRS0 local part stays within the limit.
        self._plain_room = max_local_part - _SRS0_OVERHEAD - hash_length

    # -- forward ----------------------------------------------------------------

    def forward(self, sender: str, *, dry_run: bool = False) -> str:
        """The envelope sender to use when forwarding mail from ``sender``.

        The null sender and senders in local domains come back unchanged; an SRS0
        sender from another forwarder becomes SRS1, an SRS1 sender a fresh SRS1. With
        ``dry_run``, database mode names the alias without storing it.

        Raises:
            AddressError: ``sender`` is not an address SRS can carry.
            SRSFormatError: an SRS1 sender with a part missing.
            SRSLengthError: the result would exceed 64 octets and there is no alias store.
            StoreError: database mode, and the store could not be written.
        """
        rewritten = self.forward_plain(sender, self.today())
        if rewritten is not None:
            return rewritten
        return self._forward_any(sender, dry_run=dry_run)

    def _forward_any(self, sender: str, *, dry_run: bool) -> str:
        """``forward`` for every sender, the general way: checks, SRS0/SRS1, aliases."""
        address = strip_brackets(sender)
        if not address:
            return sender
        local, host = split_address(address)
        if host == ALIAS_HOST:
            # No real domain is "1", and reverse reads it as a database alias.
            raise AddressError("domain '1' is not a mail domain")
        if not self.always_rewrite and host in self.local_domains:
            return sender
        new_local = self._rewrite_local(local, host)
        if len(new_local) > self.max_local_part:
            new_local = self._aliased_local(address, new_local, store=not dry_run)
        return f"{new_local}@{self.domain}"

    def forward_plain(self, sender: str, stamp: str) -> str | None:
        """``forward(sender)`` for the common sender, or None: then ``forward`` decides.

        Common: ``local@domain`` with no brackets, not SRS already, and short enough
        that no alias is needed. ``stamp`` must be ``today()``, read once by the caller.
        Everything else (brackets, SRS0/SRS1, the null sender, anything to refuse or
        alias) is None, so the checks and their error messages live in one place.
        """
        if len(sender) > MAX_ADDRESS_LENGTH or (match := _PLAIN_SENDER.fullmatch(sender)) is None:
            return None
        local, host = match.groups()
        if host == ALIAS_HOST or len(local) + len(host) > self._plain_room:
            return None
        if not self.always_rewrite and host in self.local_domains:
            return sender
        # _hash, inlined: this is the lookup daemon's whole per-sender cost.
        inner = self._inner.copy()
        # The pattern let through ASCII only: encode() is its fastest, UTF-8 spelling.
        inner.update(f"{stamp}{host}{local}".lower().encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        digest = binascii.b2a_base64(outer.digest(), newline=False)[: self.hash_length]
        if self._url:
            digest = digest.translate(_TO_URL)
        return f"{self._srs0_tag}{digest.decode()}={stamp}={host}={local}@{self.domain}"

    def _rewrite_local(self, local: str, host: str) -> str:
        sep = self.separator
        if len(local) > 4 and local[4] in SEPARATORS:
            tag = local[:4].upper()
            if tag == "SRS0":
                # An SRS0 sender from another forwarder: keep its host and its whole
                # local part after the tag, incoming separator included.
                return self._srs1(host, local[4:])
            if tag == "SRS1":
                # Already SRS1: keep the first hop, drop the old hash, hash anew.
                _, srs_host, srs_user = _split_srs1(local)
                return self._srs1(srs_host, srs_user)
        stamp = self.today()
        digest = self._hash(stamp + host + local)
        return f"SRS0{sep}{digest}={stamp}={host}={local}"

    def _srs1(self, srs_host: str, srs_user: str) -> str:
        digest = self._hash(srs_host + srs_user)
        return f"SRS1{self.separator}{digest}={srs_host}={srs_user}"

    def _aliased_local(self, address: str, too_long: str, *, store: bool) -> str:
        if self._alias_store is None:
            raise SRSLengthError(
                f"rewritten local part would be {len(too_long)} octets, over the limit of"
                f" {self.max_local_part}; set original_envelope = database to forward it"
            )
        alias = alias_for(address)
        if store:
            self._alias_store.put(
                f"{alias}@{ALIAS_HOST}",
                address,
                ttl=(self.max_age_days + 1) * SECONDS_PER_DAY,
                now=self._clock.now(),
            )
        return self._rewrite_local(alias, ALIAS_HOST)

    def today(self) -> str:
        """Today's day stamp: every SRS0 address ``forward`` makes today carries it."""
        now = self._clock.now()
        if not self._stamp_from <= now < self._stamp_until:
            start = now // SECONDS_PER_DAY * SECONDS_PER_DAY
            self._stamp = timestamp(start)
            self._stamp_from, self._stamp_until = start, start + SECONDS_PER_DAY
        return self._stamp

    def _hash(self, fields: str) -> str:
        mac = self._signers[0].digest(fields.lower().encode("ascii"))
        text = binascii.b2a_base64(mac, newline=False)[: self.hash_length]
        return (text.translate(_TO_URL) if self._url else text).decode("ascii")

    # -- reverse ----------------------------------------------------------------

    def reverse(self, address: str, *, require_domain: bool = False) -> str:
        """The original sender of the SRS ``address``, after verifying it.

        Args:
            require_domain: also require the address to be in our SRS domain.
                Off by default: bounces may come back to any of our names.

        Raises:
            SRSFormatError: not an SRS address, or one with a part missing.
            SRSHashError: the hash does not verify: forged or tampered.
            SRSExpiredError: the stamp is older than ``max_age_days`` or in the future.
            SRSAliasError: database mode and the alias is unknown.
            StoreError: database mode, and the store could not be read.
        """
        text = strip_brackets(address)
        try:
            check_text(text)
        except AddressError as exc:
            raise SRSFormatError(str(exc)) from None
        local, at, domain = text.rpartition("@")
        if not at:
            local, domain = text, ""
        if "@" in local:
            raise SRSFormatError("more than one @ in address")
        if len(local) < 5 or local[:3].upper() != "SRS" or local[4] not in SEPARATORS:
            raise SRSFormatError("Not an SRS address.")
        if require_domain and domain.lower() != self.domain.lower():
            raise SRSFormatError(f"not in our SRS domain {self.domain}")
        kind = local[3]
        if kind == "0":
            return self._reverse_srs0(local)
        if kind == "1":
            given, srs_host, srs_user = _split_srs1(local)
            self._verify(given, srs_host + srs_user)
            return f"SRS0{srs_user}@{srs_host}"
        raise SRSFormatError("Not an SRS address.")

    def _reverse_srs0(self, local: str) -> str:
        parts = local[5:].split("=", 3)
        if len(parts) != 4 or not all(parts):
            for index, name in enumerate(("hash", "timestamp", "host", "user")):
                if len(parts) <= index or not parts[index]:
                    raise SRSFormatError(f"No {name} in SRS0 address.")
        given, stamp, host, user = parts
        # The stamp first, as postsrsd does: it costs no HMAC to refuse an old address.
        if stamp_age(stamp, self._clock.now()) > self.max_age_days:
            raise SRSExpiredError("Time stamp out of date.")
        self._verify(given, stamp + host + user)
        if host == ALIAS_HOST:
            return self._resolve_alias(user)
        return f"{user}@{host}"

    def _resolve_alias(self, alias: str) -> str:
        if self._alias_store is None:
            raise SRSAliasError("No database for alias.")
        sender = self._alias_store.get(f"{alias.upper()}@{ALIAS_HOST}", now=self._clock.now())
        if sender is None:
            raise SRSAliasError("Unknown alias.")
        return sender

    def _verify(self, given: str, fields: str) -> None:
        """Check ``given`` against the hash of ``fields`` under every secret.

        Every given character must match (Mail::SRS's rule; postsrsd ignores characters
        past its hash length), so an address has one valid spelling up to case.
        """
        if len(given) < self.hash_min:
            raise SRSHashError("Hash too short in SRS address.")
        wanted = given.encode("ascii").translate(_FOLD)
        if len(given) > MAX_HASH_LENGTH or wanted.translate(None, _NOT_HASH_CHARS) != wanted:
            raise SRSHashError("Hash invalid in SRS address.")
        message = fields.lower().encode("ascii")
        valid = False
        for signer in self._signers:
            text = binascii.b2a_base64(signer.digest(message), newline=False)[: len(given)]
            valid |= hmac.compare_digest(text.translate(_FOLD), wanted)
        if not valid:
            raise SRSHashError("Hash invalid in SRS address.")

    @property
    def database_mode(self) -> bool:
        """Whether long senders go to an alias store (postsrsd's ``database`` mode)."""
        return self._alias_store is not None

    def is_srs(self, address: str) -> bool:
        """Whether ``address`` looks like SRS (``SRS0``/``SRS1`` and a separator)."""
        return looks_like_srs(address)


def looks_like_srs(address: str) -> bool:
    """Whether ``address`` looks like SRS (``SRS0``/``SRS1`` and a separator): a pure
    string check, the same for every rewriter."""
    local = strip_brackets(address).rpartition("@")[0] or address
    return (
        len(local) > 4
        and local[:3].upper() == "SRS"
        and local[3] in "01"
        and local[4] in SEPARATORS
    )


def _split_srs1(local: str) -> tuple[str, str, str]:
    """The hash, first-hop host and first-hop user of an SRS1 local part."""
    parts = local[5:].split("=", 2)
    for index, name in enumerate(("hash", "host", "user")):
        if len(parts) <= index or not parts[index]:
            raise SRSFormatError(f"No {name} in SRS1 address.")
    return parts[0], parts[1], parts[2]
