"""Authentication-Results (RFC 8601): read a trusted gateway's, write our own for the hop.

The ``authres`` library parses and builds the header; this module only chooses which
headers to trust and maps results to and from srsfwd's facts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import authres

from srsfwd.pool import DKIMCheck

#: RFC 8601 §2.7.2 SPF result words we accept from a gateway.
_SPF_WORDS = frozenset({"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"})
_OLD_WORDS = {"hardfail": "fail", "error": "temperror", "unknown": "permerror"}


@dataclass(frozen=True, slots=True)
class GatewaySPF:
    """An SPF result stated by a trusted gateway."""

    result: str
    authserv_id: str
    mail_from: str | None
    helo: str | None


def _text(value: bytes) -> str:
    return value.replace(b"\r\n", b"").decode("utf-8", "replace").strip()


def gateway_spf(values: Iterable[bytes], trusted_ids: Iterable[str]) -> GatewaySPF | None:
    """The SPF result of the topmost Authentication-Results field from a trusted authserv-id.

    ``values`` are the field values, top first. Fields that do not parse, or that carry
    another authserv-id, are ignored (RFC 8601 §5: only trusted ids count).
    """
    trusted = {t.lower() for t in trusted_ids}
    if not trusted:
        return None
    for raw in values:
        try:
            header = authres.AuthenticationResultsHeader.parse_value(_text(raw))
        except Exception:  # noqa: BLE001, S112 (authres raises assorted errors on junk)
            continue
        if str(header.authserv_id).lower() not in trusted:
            continue
        for result in header.results:
            if str(result.method).lower() != "spf":
                continue
            word = str(result.result).lower()
            word = _OLD_WORDS.get(word, word)
            if word not in _SPF_WORDS:
                continue
            props = {(p.type, p.name): str(p.value) for p in result.properties}
            return GatewaySPF(
                result=word,
                authserv_id=str(header.authserv_id),
                mail_from=props.get(("smtp", "mailfrom")),
                helo=props.get(("smtp", "helo")),
            )
    return None


def build_header(
    authserv_id: str,
    *,
    spf: str,
    mail_from: str,
    helo: str,
    spf_reason: str = "",
    dkim: Iterable[DKIMCheck] = (),
    arc: str | None = None,
    folded: bool = False,
) -> str:
    """The ``Authentication-Results:`` field (name included, no line end) for this hop.

    ``arc`` adds the ARC chain's state (none, pass, fail) when we seal. ``folded`` puts
    each result on its own continuation line, as it should go on the wire.
    """
    results: list[object] = []
    spf_kwargs: dict[str, str] = {"result": spf}
    if mail_from:
        spf_kwargs["smtp_mailfrom"] = mail_from
    elif helo:
        spf_kwargs["smtp_helo"] = helo
    if spf_reason:
        spf_kwargs["reason"] = _printable(spf_reason)
    results.append(authres.SPFAuthenticationResult(**spf_kwargs))
    checks = list(dkim)
    for check in checks:
        kwargs: dict[str, str] = {"result": check.result}
        if check.reason and check.result != "pass":
            kwargs["reason"] = _printable(check.reason)
        if check.domain:
            kwargs["header_d"] = check.domain
        if check.selector:
            kwargs["header_s"] = check.selector
        results.append(authres.DKIMAuthenticationResult(**kwargs))
    if not checks:
        results.append(authres.DKIMAuthenticationResult(result="none"))
    if arc is not None:
        results.append(authres.AuthenticationResult(method="arc", result=arc))
    header = authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=results)
    text = str(header)
    # Reasons hold no ";" (see _printable), so "; " only ever separates results here.
    return ";\r\n\t".join(text.split("; ")) if folded else text


def _printable(text: str) -> str:
    """``text`` as one short printable line, safe inside a quoted reason."""
    clean = "".join(c if c.isprintable() and c not in '";\\' else " " for c in text)
    return " ".join(clean.split())[:200]
