"""ARC sealing (RFC 8617) for forwarded mail: verify the chain, write this hop's
Authentication-Results, add an ARC set (AAR, AMS, AS) with the right ``i=`` and ``cv=``.

An adapter over dkimpy's ``ARC`` class, which implements the set construction correctly;
its habits stay in here: DNS goes through our ``Resolver`` (its ``dnsfunc`` hook), the seal's
``t=`` comes from our ``Clock``, its exceptions become ``SignatureError``. Two things dkimpy
cannot be told, and which hold for the chain verification only: it reads ``time.time()``
itself and signs RSA in pure Python (a seal is two RSA signatures, a few milliseconds).

Order (RFC 8617 §5.1): seal last, after every other change, DKIM signing included; a chain
whose latest seal already says ``cv=fail`` is not continued (§5.1.2 step 2); a chain found
broken here gets one more set with ``cv=fail`` covering only that set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import authres
import dkim

from srsfwd.clock import Clock, SystemClock
from srsfwd.dkim.canon import Header, parse_message, to_crlf
from srsfwd.dkim.keys import SigningKey, private_key_pem
from srsfwd.dkim.sign import default_header_list
from srsfwd.dkim.tags import TagListError, parse_tag_list
from srsfwd.dkim.verify import DkimVerifier, SignatureResult
from srsfwd.dnscheck.resolver import DNSResolver
from srsfwd.errors import SignatureError

log = logging.getLogger(__name__)

#: RFC 8617 §4.2.1: instances run from 1 to 50.
MAX_INSTANCE = 50


@dataclass(frozen=True, slots=True)
class SealResult:
    """What ``ArcSealer.seal`` did."""

    message: bytes  # the message out: sealed, or unchanged when ``sealed`` is false
    sealed: bool
    cv: str  # the chain as found: none / pass / fail
    instance: int  # i= of the new set (0 when not sealed)
    reason: str
    dkim: tuple[SignatureResult, ...] = field(default=())


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
        self._pem = private_key_pem(signing.key)
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
        parsed = parse_message(data)
        if len(parsed.find("from")) != 1:
            raise SignatureError("cannot seal a message without exactly one From field")
        latest, latest_cv = _latest_seal(parsed.find("arc-seal"))
        if latest_cv == "fail":
            return SealResult(
                data, False, "fail", 0, f"ARC-Seal i={latest} says cv=fail: not sealed"
            )
        if latest >= MAX_INSTANCE:
            raise SignatureError(f"the chain already has {latest} sets (RFC 8617 limit: 50)")
        cv, why = self._chain(data, latest)
        if cv == "terminated":
            return SealResult(data, False, "fail", 0, f"chain already failed: {why}")
        checked: tuple[SignatureResult, ...] = ()
        if results is None:
            checked = tuple(self._dkim.verify_parsed(parsed))
            header = self._authentication_results(checked, cv)
        else:
            header = results(cv).encode("utf-8").rstrip(b"\r\n") + b"\r\n"
        names = default_header_list(parsed.headers)
        names += [b"dkim-signature"] * len(parsed.find("dkim-signature"))
        try:
            sealer = dkim.ARC(header + data, signature_algorithm=b"rsa-sha256")
            # RFC 8617 §4.1.2: the AMS SHOULD cover the DKIM-Signature fields present.
            sealer.should_not_sign.discard(b"dkim-signature")
            arc_set = sealer.sign(
                self._signing.selector.encode("ascii"),
                self._signing.domain.encode("ascii"),
                self._pem,
                self._authserv_id.encode("ascii"),
                include_headers=names,
                timestamp=int(self._clock.now()),
            )
        except dkim.DKIMException as exc:
            raise SignatureError(f"cannot seal: {exc}") from None
        if not arc_set:
            raise SignatureError("cannot seal: dkimpy found no usable Authentication-Results")
        sealed = b"".join(arc_set) + header + data
        return SealResult(sealed, True, cv, latest + 1, why, checked)

    def _chain(self, data: bytes, latest: int) -> tuple[str, str]:
        """The chain's state: none / pass / fail, or terminated."""
        if latest == 0:
            return "none", "no ARC chain"
        cv, _, reason = dkim.arc_verify(data, dnsfunc=dkimpy_dnsfunc(self._resolver))
        if cv is None:
            return "terminated", str(reason)
        return cv.decode("ascii"), str(reason)

    def _authentication_results(self, results: tuple[SignatureResult, ...], cv: str) -> bytes:
        """This hop's Authentication-Results field (RFC 8601), with its CRLF."""
        found: list[authres.BaseAuthenticationResult] = []
        for result in results:
            found.append(
                authres.DKIMAuthenticationResult(
                    result=str(result.result),
                    reason=None if result.passed else result.reason,
                    header_d=result.domain or None,
                    header_i=result.identity or None,
                    header_s=result.selector or None,
                    header_a=result.algorithm or None,
                )
            )
        if not results:
            found.append(authres.DKIMAuthenticationResult(result="none"))
        found.append(authres.AuthenticationResult(method="arc", result=cv))
        header = authres.AuthenticationResultsHeader(authserv_id=self._authserv_id, results=found)
        text = str(header).replace("Authentication-Results: ", "", 1)
        lines = text.split("; ")
        return ("Authentication-Results: " + ";\r\n\t".join(lines) + "\r\n").encode("utf-8")


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
