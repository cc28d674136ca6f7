"""ARC sealing (RFC 8617) for forwarded mail: verify the chain, write this hop's
Authentication-Results, add an ARC set (AAR, AMS, AS) with the right ``i=`` and ``cv=``.

The set is built here and signed with ``cryptography`` (``srsfwd.dkim.sign.sign_digest``,
canonicalisation from ``srsfwd.dkim.canon``): a seal is two RSA signatures, a fraction of a
millisecond each through OpenSSL instead of about 6 ms each in dkimpy's pure-Python ``pow``
(which also held the GIL). The bytes are the ones dkimpy's ``ARC.sign`` builds, step for
step: the same consolidation of this authserv-id's Authentication-Results into the AAR, the
same ``i=`` (one above the highest ``i=`` on any ARC field), the same tag order and folding,
the same ``h=`` list, and an AS over the ARC fields of every set (relaxed header
canonicalisation, in dkimpy's order), or only over the new set when ``cv=fail``. RSA
PKCS#1 v1.5 is deterministic, so tests/unit/dkim/test_arc_identity.py checks byte identity
with ``dkim.ARC.sign`` for the same key, message and ``t=``.

Verification of the chain that arrived still goes through dkimpy's ``arc_verify`` (RSA
verification with e=65537 is cheap even in pure Python): DNS through our ``Resolver`` (its
``dnsfunc`` hook), its exceptions become ``SignatureError``; it reads ``time.time()`` itself.

Order (RFC 8617 §5.1): seal last, after every other change, DKIM signing included; a chain
whose latest seal already says ``cv=fail`` is not continued (§5.1.2 step 2); a chain found
broken here gets one more set with ``cv=fail`` covering only that set. A chain is present as
soon as any ARC field is (§5.2): a missing, unparseable or duplicated ARC-Seal, or an ARC
field without a usable ``i=``, makes it broken (``cv=fail``), never "no chain".
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import authres
import dkim

from srsfwd.authresults import arc_clause, dkim_clause, results_field
from srsfwd.authservid import claims_authserv_id, strip_our_results
from srsfwd.clock import Clock, SystemClock
from srsfwd.dkim.canon import (
    Header,
    Message,
    body_start,
    parse_crlf,
    relaxed_header,
    select_headers,
    to_crlf,
)
from srsfwd.dkim.keys import SigningKey
from srsfwd.dkim.sign import body_hash_in, default_header_list, fold, sign_digest
from srsfwd.dkim.tags import parse_tag_list
from srsfwd.dkim.verify import DkimVerifier, SignatureResult
from srsfwd.dns.resolver import DNSResolver
from srsfwd.errors import SignatureError, TagListError

log = logging.getLogger(__name__)

#: RFC 8617 §4.2.1: instances run from 1 to 50.
MAX_INSTANCE = 50

#: The ARC header fields (lower case), whose ``i=`` counts for the next instance.
_ARC_FIELDS = frozenset((b"arc-seal", b"arc-message-signature", b"arc-authentication-results"))
#: dkimpy's ``ARC.INSTANCE_RE``: the first ``i=`` of a field's relaxed value is its instance.
_INSTANCE_RE = re.compile(rb"[\s;]?i\s*=\s*(\d+)", re.MULTILINE | re.IGNORECASE)
#: dkimpy consolidates only fields spelled exactly so (its comparison is case-sensitive).
_AR_NAME = b"Authentication-Results"
_AAR_NAME = b"ARC-Authentication-Results"
_AMS_NAME = b"ARC-Message-Signature"
_AS_NAME = b"ARC-Seal"
#: dkimpy's placeholder for b= while a field is folded for hashing (forces b= onto its own line).
_B_PLACEHOLDER = b"0" * 60


@dataclass(frozen=True, slots=True)
class SealResult:
    """What ``ArcSealer.seal`` did."""

    message: bytes  # the message out: sealed, or unchanged when ``sealed`` is false
    sealed: bool
    cv: str  # the chain as found: none / pass / fail
    instance: int  # i= of the new set (0 when not sealed)
    reason: str
    dkim: tuple[SignatureResult, ...] = field(default=())
    #: From ``seal_lines`` only: the lines to prepend (``message`` is then the rest).
    lines: tuple[bytes, ...] = ()


def dkimpy_dnsfunc(resolver: DNSResolver) -> Callable[..., bytes | None]:
    """A dkimpy ``dnsfunc`` asking ``resolver``: the first TXT record or None.

    ``DNSTempError`` passes through dkimpy (it catches only its own exceptions).
    """

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        answers = resolver.txt(name.decode("ascii", "replace"))
        return answers[0] if answers else None

    return lookup


class ArcSealer:
    """Seals messages for one ADMD with one RSA key (RFC 8617 sets use rsa-sha256)."""

    def __init__(
        self,
        signing: SigningKey,
        authserv_id: str,
        resolver: DNSResolver,
        *,
        clock: Clock | None = None,
    ) -> None:
        """A sealer signing as ``signing`` and writing results under ``authserv_id``.

        Raises:
            SignatureError: not an RSA key, or an authserv-id that cannot go in a header.
        """
        if signing.key.key_type != "rsa":
            raise SignatureError("ARC seals use rsa-sha256: give an RSA key (RFC 8617 §4.1.3)")
        if not authserv_id or not authserv_id.isascii() or any(c in authserv_id for c in " ;\r\n"):
            raise SignatureError(f"{authserv_id!r} is not an authserv-id")
        self._signing = signing
        self._authserv_id = authserv_id
        self._resolver = resolver
        self._clock = clock or SystemClock()
        self._dkim = DkimVerifier(resolver, clock=self._clock)

    def seal(self, message: bytes, *, results: Callable[[str], str] | None = None) -> SealResult:
        """Verify, add Authentication-Results and an ARC set on top of ``message``.

        Args:
            results: this hop's Authentication-Results field for a chain state (none,
                pass, fail), when the caller has already checked what arrived (SPF, DKIM
                before our own signature). Without it the sealer verifies the DKIM
                signatures it finds and writes the field itself.

        Raises:
            SignatureError: not a message, no From, or more than 50 sets.
            DNSTempError: DNS failed while checking the chain or the signatures.
        """
        data = to_crlf(message)
        if not data.endswith(b"\r\n"):
            data += b"\r\n"
        start = body_start(data)
        head = parse_crlf(data[:start])  # the header section: the body is hashed in place
        new = self.seal_lines(data, head, bh=body_hash_in(data, start), results=results)
        return SealResult(
            b"".join([*new.lines, new.message]) if new.sealed else data,
            new.sealed,
            new.cv,
            new.instance,
            new.reason,
            new.dkim,
        )

    def seal_lines(
        self,
        message: bytes,
        head: Message,
        *,
        bh: bytes,
        above: Sequence[bytes] = (),
        results: Callable[[str], str] | None = None,
    ) -> SealResult:
        """``seal`` for a message already parsed and hashed, without joining the result.

        Args:
            message: the message (CRLF form, ending in CRLF) as it arrived here.
            head: ``message``'s header section, parsed.
            bh: the relaxed body hash of ``message`` (the one a DKIM signature computed).
            above: whole header lines (CRLF-terminated) the caller puts on top of
                ``message`` before these, such as our DKIM-Signature.
            results: as for ``seal``.

        Returns:
            In ``lines``, this hop's Authentication-Results and the ARC set, to go above
            ``above``; in ``message``, ``message`` less any Authentication-Results claiming
            our authserv-id (the same object when it had none). Not sealed: no lines.

        Raises:
            SignatureError: not a message, no From, or more than 50 sets.
            DNSTempError: DNS failed while checking the chain or the signatures.
        """
        on_top = parse_crlf(b"".join(above)).headers if above else ()
        fields = on_top + head.headers
        # dkimpy checks the chain on the whole message as it will leave (a copy, made only
        # when there is a chain to check).
        state = self._chain_state(fields, lambda: b"".join([*above, message]))
        if isinstance(state, SealResult):
            return dataclasses.replace(state, message=message)
        # RFC 8601 §5: results that arrived claiming our authserv-id are not ours. They do
        # not leave on a sealed message, so only this hop's field is consolidated.
        kept = strip_our_results(message, self._authserv_id)
        if len(kept) != len(message):
            message = kept
            fields = on_top + parse_crlf(kept[: body_start(kept)]).headers
        sealed = self._new_set(
            fields, state, bh=bh, results=results, whole=lambda: b"".join([*above, message])
        )
        return dataclasses.replace(sealed, message=message)

    def seal_headers(
        self,
        fields: tuple[Header, ...],
        *,
        bh: bytes,
        whole: Callable[[], bytes],
        results: Callable[[str], str] | None = None,
        clauses: Callable[[str], Sequence[str]] | None = None,
    ) -> SealResult:
        """``seal`` for a message its caller parsed, hashed and changed already.

        Args:
            fields: every header field of the message as it will leave, but for this
                hop's Authentication-Results and the new set (our DKIM-Signature on top),
                none claiming our authserv-id.
            bh: the relaxed body hash of the message.
            whole: the message as it will leave, in wire form; called only when a chain
                arrived (dkimpy checks it) or without ``results``.
            results: as for ``seal``.
            clauses: with ``results``, the results of that field for a chain state, each
                as ``authres`` writes it: they go into the AAR as they are, where dkimpy
                would parse the field again.

        Returns:
            The lines to prepend in ``lines`` (none when not sealed); ``message`` is empty.

        Raises:
            SignatureError: no From, or more than 50 sets.
            DNSTempError: DNS failed while checking the chain or the signatures.
        """
        state = self._chain_state(fields, whole)
        if isinstance(state, SealResult):
            return state
        return self._new_set(fields, state, bh=bh, results=results, whole=whole, clauses=clauses)

    def _chain_state(
        self, fields: tuple[Header, ...], whole: Callable[[], bytes]
    ) -> tuple[str, str] | SealResult:
        """The chain's state (cv, reason), or the unsealed result when it cannot go on.

        Raises:
            SignatureError: no From field or several.
            DNSTempError: DNS failed while checking the chain.
        """
        parsed = Message(fields, b"")
        if len(parsed.find("from")) != 1:
            raise SignatureError("cannot seal a message without exactly one From field")
        latest, latest_cv = _latest_seal(parsed.find("arc-seal"))
        if latest_cv == "fail":
            why = f"ARC-Seal i={latest} says cv=fail: not sealed"
            return SealResult(b"", False, "fail", 0, why)
        arc_fields = [f for f in fields if f.key in _ARC_FIELDS]
        highest = max((i for i in map(_instance, arc_fields) if i is not None), default=0)
        if highest >= MAX_INSTANCE:
            # No room for another set (RFC 8617 §4.2.1): the chain ends here, failed.
            why = f"an ARC field has i={highest}: no room for a new set"
            return SealResult(b"", False, "fail", 0, why)
        cv, why = self._chain(whole() if arc_fields else b"", arc_fields)
        if cv == "terminated":
            return SealResult(b"", False, "fail", 0, f"chain already failed: {why}")
        return cv, why

    def _new_set(
        self,
        fields: tuple[Header, ...],
        state: tuple[str, str],
        *,
        bh: bytes,
        results: Callable[[str], str] | None,
        whole: Callable[[], bytes],
        clauses: Callable[[str], Sequence[str]] | None = None,
    ) -> SealResult:
        """This hop's Authentication-Results and the new ARC set over ``fields``."""
        cv, why = state
        checked: tuple[SignatureResult, ...] = ()
        texts = None
        if results is None:
            checked = tuple(self._dkim.verify(whole()))
            header = self._authentication_results(checked, cv)
        else:
            header = results(cv).encode("utf-8").rstrip(b"\r\n") + b"\r\n"
            texts = None if clauses is None else clauses(cv)
        parsed = Message(fields, b"")
        names = default_header_list(fields)
        names += [b"dkim-signature"] * len(parsed.find("dkim-signature"))
        # What dkimpy parsed: this hop's field on top of the message's header fields.
        fields = parse_crlf(to_crlf(header)).headers + fields
        arc_set, instance = self._arc_set(fields, bh, names, int(self._clock.now()), texts)
        return SealResult(b"", True, cv, instance, why, checked, (*arc_set, header))

    def _our_results(self, fields: tuple[Header, ...]) -> list[str]:
        """The results of the Authentication-Results claiming our authserv-id, each as
        ``authres`` writes it (what dkimpy puts into the AAR).

        Raises:
            SignatureError: none, or one that does not parse.
        """
        found_ar = False
        results: list[str] = []
        for ar in fields:
            if ar.name != _AR_NAME or not claims_authserv_id(ar.value, self._authserv_id):
                continue
            # Only this hop's field is left (seal strips the others), and it parses: one
            # that claims our id but does not parse must not be skipped, as dkimpy would.
            try:
                parsed_ar = authres.AuthenticationResultsHeader.parse(
                    "Authentication-Results: " + ar.value.strip().decode("utf-8")
                )
            except (UnicodeDecodeError, authres.AuthResError) as exc:
                raise SignatureError(f"cannot seal: our Authentication-Results: {exc}") from None
            found_ar = True
            results.extend(str(r) for r in parsed_ar.results)
        if not found_ar:
            raise SignatureError("cannot seal: no usable Authentication-Results")
        return results

    def _arc_set(
        self,
        fields: tuple[Header, ...],
        bh: bytes,
        names: Sequence[bytes],
        now: int,
        clauses: Sequence[str] | None = None,
    ) -> tuple[list[bytes], int]:
        """The new set's lines (AS, AMS, AAR, in the order to prepend them) and its ``i=``,
        ``bh`` being the body hash for the AMS and ``clauses`` this hop's results as
        ``authres`` writes them, when the caller has them (else read from ``fields``).

        Built as dkimpy's ``ARC.sign`` builds it, so the bytes are the same.

        Raises:
            SignatureError: no usable Authentication-Results for our authserv-id, an ``arc=``
                result that does not fit the chain, or ``i=`` over 50.
        """
        srv_id = self._authserv_id
        texts = list(clauses) if clauses is not None else self._our_results(fields)
        arc_results = [t.partition("=")[2] for t in texts if t.partition("=")[0] == "arc"]
        if not arc_results:
            cv = b"none"
        elif len(arc_results) > 1:
            cv = b"fail"  # several arc= results for us: dkimpy fails the chain
        else:
            cv = arc_results[0].split(None, 1)[0].lower().encode("utf-8")

        present: list[tuple[int, bytes]] = []
        for arc in fields:
            if arc.key in _ARC_FIELDS:
                value = relaxed_header(arc.name, arc.value).partition(b":")[2]
                match = _INSTANCE_RE.search(value)
                if match is not None:
                    present.append((int(match.group(1)), arc.key))
        present.sort()
        instance = present[-1][0] + 1 if present else 1
        if instance > MAX_INSTANCE:
            raise SignatureError(f"cannot seal: i={instance} is over the limit of 50")
        if instance == 1 and cv not in (b"none", b"fail"):
            # dkimpy refuses fail here too; we seal it: ARC fields none of which has a
            # usable i= are a broken chain, not "no chain" (RFC 8617 §5.2).
            raise SignatureError("cannot seal: no chain on the message, but arc= is not none")
        if instance != 1 and cv == b"none":
            raise SignatureError("cannot seal: no usable Authentication-Results (no arc= result)")

        auth_results = srv_id.encode("ascii") + b"".join(
            b";\r\n " + text.encode("utf-8") for text in texts
        )
        aar_value = b"i=%d; " % instance + auth_results.rstrip() + b"\r\n"
        aar = Header(_AAR_NAME, b" " + aar_value[:-2])
        i_tag = str(instance).encode("ascii")
        domain = self._signing.domain.encode("ascii")
        selector = self._signing.selector.encode("ascii")
        t_tag = str(now).encode("ascii")
        ams_value = self._signed_value(
            _AMS_NAME,
            [
                (b"i", i_tag),
                (b"a", b"rsa-sha256"),
                (b"c", b"relaxed/relaxed"),
                (b"d", domain),
                (b"s", selector),
                (b"t", t_tag),
                (b"h", b" : ".join(names)),
                (b"bh", bh),
            ],
            select_headers((aar, *fields), list(names)),
        )
        ams = Header(_AMS_NAME, b" " + ams_value[:-2])
        # The AS covers the ARC fields from i=1 up, AAR/AMS/AS each, then the new AAR and
        # AMS; each name is taken from the bottom up among the fields (RFC 8617 §5.1.1).
        # A failed chain: only the new set, taken from the top (dkimpy reverses the list).
        pool: tuple[Header, ...] = (ams, aar, *fields)
        if cv == b"fail":
            seal_names = [b"arc-authentication-results", b"arc-message-signature"]
            pool = pool[::-1]
        else:
            seal_names = [name for _, name in present]
            seal_names += [b"arc-authentication-results", b"arc-message-signature"]
        as_value = self._signed_value(
            _AS_NAME,
            [
                (b"i", i_tag),
                (b"cv", cv),
                (b"a", b"rsa-sha256"),
                (b"d", domain),
                (b"s", selector),
                (b"t", t_tag),
            ],
            select_headers(pool, seal_names),
        )
        lines = [
            _AS_NAME + b": " + as_value,
            _AMS_NAME + b": " + ams_value,
            _AAR_NAME + b": " + aar_value,
        ]
        return lines, instance

    def _signed_value(
        self, name: bytes, tags: list[tuple[bytes, bytes]], signed: list[Header]
    ) -> bytes:
        """The value (folded, with its CRLF) of an AMS or AS: ``tags`` then ``b=``.

        The hash covers ``signed`` in relaxed form, then the field itself as dkimpy folds it
        with a placeholder ``b=``, emptied (RFC 6376 §3.7, RFC 8617 §4.1.2 and §4.1.3).
        """
        prefix = b"; ".join(tag + b"=" + value for tag, value in tags) + b"; b="
        width = 72 - len(name)
        hashed_form = fold(prefix + _B_PLACEHOLDER, width)[: -len(_B_PLACEHOLDER)]
        digest = hashlib.sha256()
        for covered in signed:
            digest.update(relaxed_header(covered.name, covered.value) + b"\r\n")
        digest.update(relaxed_header(name, b" " + hashed_form))
        signature = sign_digest(self._signing.key, digest.digest())
        return fold(prefix + base64.b64encode(signature) + b"\r\n", width)

    def _chain(self, data: bytes, arc_fields: Sequence[Header]) -> tuple[str, str]:
        """The chain's state: none / pass / fail, or terminated.

        ``arc_fields`` are the message's ARC fields: none of them is "no chain"; any of them
        is a chain for dkimpy's ``arc_verify`` to check, and fails where dkimpy passes over
        a field it cannot number (it ignores fields without ``i=``).
        """
        if not arc_fields:
            return "none", "no ARC chain"
        try:
            cv, _, reason = dkim.arc_verify(data, dnsfunc=dkimpy_dnsfunc(self._resolver))
        except dkim.MessageFormatError as exc:
            # dkimpy refuses what we parse (a field with white space before its colon,
            # RFC 5322 obsolete syntax): a chain nobody here can check is not a pass.
            return "fail", f"dkimpy cannot read the chain: {exc}"
        if cv is None:
            return "terminated", str(reason)
        unnumbered = next((f for f in arc_fields if not _instance(f)), None)
        if unnumbered is not None and cv != b"fail":
            name = unnumbered.name.decode("ascii", "replace")
            return "fail", f"{name} without a usable i= (RFC 8617 §4.2.1)"
        return cv.decode("ascii"), str(reason)

    def _authentication_results(self, results: tuple[SignatureResult, ...], cv: str) -> bytes:
        """This hop's Authentication-Results field (RFC 8601), with its CRLF."""
        clauses = [
            dkim_clause(
                str(result.result),
                domain=result.domain,
                selector=result.selector,
                identity=result.identity,
                algorithm=result.algorithm,
                reason="" if result.passed else result.reason,
            )
            for result in results
        ] or [dkim_clause("none")]
        clauses.append(arc_clause(cv))
        field = results_field(self._authserv_id, clauses, folded=True)
        return (field + "\r\n").encode("utf-8")


def _instance(arc_field: Header) -> int | None:
    """An ARC field's ``i=`` as dkimpy reads it (the first ``i=`` of its relaxed value).

    None when it has none; 0 and values over 50 are returned as they are (both unusable).
    """
    value = relaxed_header(arc_field.name, arc_field.value).partition(b":")[2]
    match = _INSTANCE_RE.search(value)
    return None if match is None else int(match.group(1))


def _latest_seal(seals: list[Header]) -> tuple[int, str]:
    """The highest i= among ARC-Seal fields and its cv= (0, "none" without any)."""
    latest, cv = 0, "none"
    for seal_field in seals:
        try:
            tags = parse_tag_list(seal_field.value)
            instance = int(tags.get("i", b"0"))
        except (TagListError, ValueError):
            continue  # a broken seal is for the chain check to fail on
        if instance > latest:
            latest, cv = instance, tags.get("cv", b"").decode("ascii", "replace").lower()
    return latest, cv
