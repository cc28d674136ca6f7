"""DKIM signing (RFC 6376 §5, RFC 8463): relaxed/relaxed, no ``l=``, ``t=`` always.

The framing (tag order, ``i=@domain``, folding at 72 columns with ``b=`` last) is the same as
dkimpy's, so for the same key, header list and time the output is byte-identical to
``dkim.sign(..., canonicalize=(b"relaxed", b"relaxed"))``; tests/integration checks that.
The RSA step goes through ``cryptography`` (OpenSSL) instead of dkimpy's pure-Python
``pow()``, and canonicalisation uses ``srsfwd.dkim.canon``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from srsfwd.clock import Clock, SystemClock
from srsfwd.dkim.canon import (
    Header,
    Message,
    body_digest,
    body_start,
    parse_crlf,
    relaxed_body_chunks,
    relaxed_header,
    select_headers,
    to_crlf,
)
from srsfwd.dkim.keys import MIN_SIGNING_BITS, DkimKey, SigningKey
from srsfwd.errors import SignatureError

#: RFC 6376 §5.4.1's list of fields that SHOULD be signed, plus List-Unsubscribe-Post
#: (RFC 8058 §4 asks for it to be signed). Signed when present.
SIGNED_HEADERS: frozenset[bytes] = frozenset(
    b"""from reply-to subject date to cc resent-date resent-from resent-sender resent-to
    resent-cc in-reply-to references list-id list-help list-unsubscribe list-subscribe
    list-post list-owner list-archive list-unsubscribe-post message-id sender mime-version
    content-type content-transfer-encoding content-id content-description""".split()
)
#: Listed once more than they appear, even when absent, so one added later breaks the
#: signature (RFC 6376 §8.15): what mail clients show as the author and subject.
OVERSIGN_ALWAYS: tuple[bytes, ...] = (b"from", b"to", b"cc", b"subject", b"reply-to")
#: Listed once more than they appear when present (an MTA may add a missing one).
OVERSIGN_IF_PRESENT: tuple[bytes, ...] = (
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
    b"in-reply-to",
    b"references",
    b"sender",
)
#: Never signed: changed in transit (RFC 6376 §5.4), or trace and ARC fields (RFC 8617 §4.1.2).
NEVER_SIGNED: frozenset[bytes] = frozenset(
    b"""return-path received comments keywords bcc resent-bcc dkim-signature
    authentication-results arc-seal arc-message-signature arc-authentication-results""".split()
)

_HEADER_NAME = b"DKIM-Signature"
#: dkimpy's placeholder for b= while the header is folded for hashing.
_B_PLACEHOLDER = b"0" * 60
_PKCS1 = padding.PKCS1v15()
_PREHASHED_SHA256 = utils.Prehashed(hashes.SHA256())


def default_header_list(headers: Iterable[Header]) -> list[bytes]:
    """The ``h=`` list for a message: signable fields top to bottom, then the oversigned ones."""
    names = [h.key for h in headers]
    listed = [n for n in names if n in SIGNED_HEADERS]
    present = set(names)
    listed += list(OVERSIGN_ALWAYS)
    listed += [n for n in OVERSIGN_IF_PRESENT if n in present]
    return listed


def fold(value: bytes, first_width: int) -> bytes:
    """Fold a tag list as dkimpy does: lines of at most 72 columns, breaking at spaces.

    ``first_width`` is what the first line leaves after the field name. A run with no space
    (the base64 of ``b=``) is cut anywhere, which RFC 6376 §3.5 allows inside ``b=``.
    Unlike dkimpy, a cut never separates the CR from the LF of a final CRLF.
    """
    if len(value) <= first_width or (value.endswith(b"\r\n") and len(value) <= first_width + 2):
        return value
    lines: list[bytes] = []
    width = first_width
    rest = value
    while len(rest) > width:
        cut = rest.rfind(b" ", 0, width)
        if cut == -1:
            if rest.endswith(b"\r\n") and len(rest) - 2 <= width:
                break
            lines.append(rest[:width])
            rest = rest[width:]
        else:
            lines.append(rest[:cut])
            rest = rest[cut + 1 :]
        width = 71
    lines.append(rest)
    return b"\r\n ".join(lines)


def body_hash(message: Message) -> bytes:
    """The ``bh=`` value: base64 SHA-256 of the relaxed body, hashed as it is made."""
    return base64.b64encode(body_digest(relaxed_body_chunks(message.body))[0])


def body_hash_in(data: bytes, start: int) -> bytes:
    """``body_hash`` of the body that starts at ``start`` in the whole message ``data``,
    hashed where it lies (a large body is not copied out)."""
    return base64.b64encode(body_digest(relaxed_body_chunks(data, start=start))[0])


def wire_form(message: bytes) -> bytes:
    """``message`` as it is signed and sent: CRLF lines, no mbox envelope line, and a
    CRLF at the end (what goes on the wire is what was hashed). No copy when it is so."""
    data = to_crlf(message)
    if data.startswith(b"From "):  # an mbox envelope line is not part of the message
        data = data.partition(b"\r\n")[2]
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def signature_header(
    message: Message,
    signing: SigningKey,
    *,
    now: int,
    header_names: Sequence[bytes],
    expire_at: int | None = None,
    identity: str | None = None,
    bh: bytes | None = None,
) -> bytes:
    """The ``DKIM-Signature: ...`` line (with its CRLF) for ``message``.

    Args:
        now: the ``t=`` value.
        header_names: the ``h=`` list, lower case, repeats meaning what RFC 6376 §5.4.2 says.
        expire_at: the ``x=`` value, or None for none.
        identity: ``i=``; ``@domain`` when None.
        bh: a body hash already computed (dual signing hashes the body once).
    """
    domain = signing.domain.encode("ascii")
    tags: list[tuple[bytes, bytes]] = [
        (b"v", b"1"),
        (b"a", signing.key.algorithm.encode("ascii")),
        (b"c", b"relaxed/relaxed"),
        (b"d", domain),
        (b"i", identity.encode("ascii") if identity else b"@" + domain),
        (b"q", b"dns/txt"),
        (b"s", signing.selector.encode("ascii")),
        (b"t", str(now).encode("ascii")),
    ]
    if expire_at is not None:
        tags.append((b"x", str(expire_at).encode("ascii")))
    tags += [
        (b"h", b" : ".join(header_names)),
        (b"bh", bh if bh is not None else body_hash(message)),
    ]
    prefix = b"; ".join(t + b"=" + v for t, v in tags) + b"; b="
    width = 72 - len(_HEADER_NAME)
    # Hash the header as dkimpy folds it with a placeholder b=, then emptied (RFC 6376 §3.7).
    hashed_form = fold(prefix + _B_PLACEHOLDER, width)[: -len(_B_PLACEHOLDER)]
    digest = hashlib.sha256()
    for header in select_headers(message.headers, list(header_names)):
        digest.update(relaxed_header(header.name, header.value) + b"\r\n")
    digest.update(relaxed_header(_HEADER_NAME, b" " + hashed_form))
    signature = sign_digest(signing.key, digest.digest())
    value = fold(prefix + base64.b64encode(signature) + b"\r\n", width)
    return _HEADER_NAME + b": " + value


def sign_digest(key: DkimKey, digest: bytes) -> bytes:
    """``b=`` before base64: RSASSA-PKCS1-v1_5 (deterministic) or Ed25519 over a SHA-256 digest.

    Raises:
        SignatureError: a key of another kind.
    """
    private = key.private
    if isinstance(private, ed25519.Ed25519PrivateKey):
        # RFC 8463 §3: PureEdDSA over the SHA-256 hash of the canonical header data.
        return private.sign(digest)
    if not isinstance(private, rsa.RSAPrivateKey):
        raise SignatureError(f"cannot sign with a {type(private).__name__}")
    return private.sign(digest, _PKCS1, _PREHASHED_SHA256)


class DkimSigner:
    """Signs messages with one or more keys, built once (no file reads per message).

    Several keys give several signatures (RSA + Ed25519 dual signing); the RSA one goes on
    top, since naive verifiers check only the first.
    """

    def __init__(
        self,
        keys: Sequence[SigningKey],
        *,
        clock: Clock | None = None,
        expire_after: int | None = None,
        headers: Sequence[str] | None = None,
        allow_weak_keys: bool = False,
    ) -> None:
        """A signer for ``keys``.

        Args:
            clock: the source of ``t=``.
            expire_after: seconds from ``t=`` to ``x=``; None for no ``x=``.
            headers: an exact ``h=`` list instead of the default with oversigning.
            allow_weak_keys: accept RSA keys under 2048 bits (test vectors only).

        Raises:
            SignatureError: no key, a weak RSA key, a bad header list, a bad expiry.
        """
        if not keys:
            raise SignatureError("no key to sign with")
        for signing in keys:
            weak = signing.key.key_type == "rsa" and signing.key.bits < MIN_SIGNING_BITS
            if weak and not allow_weak_keys:
                raise SignatureError(
                    f"refusing to sign with a {signing.key.bits}-bit RSA key"
                    f" ({signing.selector}._domainkey.{signing.domain});"
                    f" RFC 8301 wants at least {MIN_SIGNING_BITS}"
                )
            for text in (signing.domain, signing.selector):
                if not text.isascii() or not text or any(c in text for c in " ;\t\r\n"):
                    raise SignatureError(f"{text!r} cannot go into a DKIM-Signature")
        if expire_after is not None and expire_after <= 0:
            raise SignatureError("expire_after must be a positive number of seconds")
        self._header_list: list[bytes] | None = None
        if headers is not None:
            names = [h.strip().lower().encode("ascii") for h in headers]
            if b"from" not in names:
                raise SignatureError("the header list must include From (RFC 6376 §5.4)")
            refused = sorted({n.decode() for n in names} & {n.decode() for n in NEVER_SIGNED})
            if refused:
                raise SignatureError(f"refusing to sign {', '.join(refused)}")
            self._header_list = names
        self._keys = sorted(keys, key=lambda k: k.key.key_type == "rsa")
        self._clock = clock or SystemClock()
        self._expire_after = expire_after

    def sign(self, message: bytes, *, unsigned_above: bytes = b"") -> bytes:
        """``message`` (CRLF or LF lines) in CRLF form with the new DKIM-Signature(s) on top.

        A last line without CRLF gets one first: what goes on the wire is what was hashed.

        Args:
            unsigned_above: header fields (CRLF-terminated) to put between the signatures
                and the message, such as this hop's Authentication-Results, which is never
                signed; one copy of a large message is made instead of two.

        Raises:
            SignatureError: not a message, or a message with no or several From fields.
        """
        data = wire_form(message)
        # The header section is parsed alone and the body hashed where it lies: a large
        # message is never copied but once, into the signed result.
        start = body_start(data)
        head = parse_crlf(data[:start])
        lines = self.signature_lines(head, bh=body_hash_in(data, start))
        return b"".join([*lines, unsigned_above, data])

    def signature_lines(self, message: Message, *, bh: bytes | None = None) -> list[bytes]:
        """The DKIM-Signature lines for a parsed message, in the order to prepend them.

        Args:
            bh: the body hash, when the caller has it (then ``message.body`` is not read).

        Raises:
            SignatureError: no From field, or more than one.
        """
        froms = message.find("from")
        if len(froms) != 1:
            what = "no From field" if not froms else f"{len(froms)} From fields"
            raise SignatureError(f"cannot sign a message with {what} (RFC 5322 §3.6)")
        now = int(self._clock.now())
        expire_at = now + self._expire_after if self._expire_after is not None else None
        names = self._header_list or default_header_list(message.headers)
        if bh is None:
            bh = body_hash(message)
        lines = [
            signature_header(
                message, signing, now=now, header_names=names, expire_at=expire_at, bh=bh
            )
            for signing in self._keys
        ]
        lines.reverse()  # the last made (RSA) goes on top
        return lines
