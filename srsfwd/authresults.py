"""Authentication-Results (RFC 8601): read a trusted gateway's, write our own for the hop.

In: only fields whose authserv-id (read by ``srsfwd.authservid``) is one of our own
gateways' are believed, parsed with ``authres``; nothing of them is copied into what we
write but the result word.

Out: this hop's field is written here, not with ``authres``' writer, which puts any value
holding ``@`` on the wire unquoted and passes reason texts as they are: a reason echoing
an attacker's signature tag (``v=x@y spf=pass smtp.mailfrom=ceo@bank.example``) or a DNS
error (``127.0.0.1@53``) would then read as extra results or break the field. Every value
written here is well-formed: result words are checked keywords, a ``reason=`` is a
quoted-string of plain printable text, and identities (``smtp.mailfrom``, ``smtp.helo``,
``header.d``, ``header.s``, ``header.i``, ``header.a``) are checked as addresses, domains
or tokens, or left out. What is written reads back, through ``authres`` and its writer (the
ARC sealer consolidates with them), as exactly the results computed.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import authres

from srsfwd.authservid import find_authserv_id
from srsfwd.pool import DKIMCheck

#: RFC 8601 §2.7.2 SPF result words we accept from a gateway.
_SPF_WORDS = frozenset({"pass", "fail", "softfail", "neutral", "none", "permerror", "temperror"})
_OLD_WORDS = {"hardfail": "fail", "error": "temperror", "unknown": "permerror"}

#: Longest reason text written; the rest of a long one is cut.
MAX_REASON = 200
#: Method names, result words, ``header.a`` values: RFC 8601 keywords.
_KEYWORD = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
#: A domain name (or selector) label: letters, digits, hyphens inside, underscores too
#: (seen in selectors and HELO names); checked by hand as no library checks exactly this.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
#: RFC 5322 atext: a dot-atom local part is runs of these joined by single dots.
_ATEXT = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
#: RFC 2045 token characters (an unquoted value).
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]+")
#: What a reason keeps: printable ASCII but the characters that end or escape a
#: quoted-string, comments, ``;`` and ``@`` (``authres`` writes values with ``@`` unquoted).
_REASON_DROPPED = re.compile(r'[^\x20-\x7e]|["\\();@]')


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
    another authserv-id, are ignored (RFC 8601 §5: only trusted ids count). The id is read
    with the RFC 8601 grammar; the results with ``authres``. ``mail_from`` and ``helo`` are
    given only when they are a well-formed address or domain.
    """
    trusted = {t.lower().rstrip("."): t for t in trusted_ids}
    if not trusted:
        return None
    for raw in values:
        stated = find_authserv_id(raw)
        if stated.value is None or stated.value not in trusted:
            continue
        try:
            # The id as read above (authres reads no quoted-string id), then the results.
            text = "gateway" + _text(raw[stated.results_at :])
            header = authres.AuthenticationResultsHeader.parse_value(text)
        except Exception:  # noqa: BLE001, S112 (authres raises assorted errors on junk)
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
                authserv_id=trusted[stated.value],
                mail_from=address_value(props.get(("smtp", "mailfrom"), "")),
                helo=helo_value(props.get(("smtp", "helo"), "")),
            )
    return None


# -- writing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResultClause:
    """One ``method=result`` of our field, its reason and properties, all checked.

    Build with ``spf_clause``, ``dkim_clause`` or ``arc_clause``; ``properties`` hold
    ``(ptype.property, value)`` pairs whose values are already checked.
    """

    method: str
    result: str
    reason: str = ""
    properties: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        parts = [f"{self.method}={self.result}"]
        if self.reason:
            parts.append(f'reason="{self.reason}"')
        parts.extend(f"{name}={_pvalue(value)}" for name, value in self.properties)
        return " ".join(parts)

    def as_authres_writes_it(self) -> str:
        """The clause as ``authres`` writes it back after parsing (the reason quoted only
        when it must be): what dkimpy puts into an ARC-Authentication-Results."""
        parts = [f"{self.method}={self.result}"]
        if self.reason:
            parts.append(f"reason={_pvalue(self.reason)}")
        parts.extend(f"{name}={_pvalue(value)}" for name, value in self.properties)
        return " ".join(parts)


def spf_clause(
    result: str, *, mail_from: str = "", helo: str = "", reason: str = ""
) -> ResultClause:
    """``spf=``: ``smtp.mailfrom`` for a sender (or its domain), else ``smtp.helo``.

    Raises:
        ValueError: ``result`` is not an SPF result word.
    """
    properties: list[tuple[str, str]] = []
    sender = address_value(mail_from) if mail_from else None
    if sender:
        properties.append(("smtp.mailfrom", sender))
    elif not mail_from:
        checked_helo = helo_value(helo)
        if checked_helo:
            properties.append(("smtp.helo", checked_helo))
    return ResultClause("spf", _keyword(result), reason_value(reason), tuple(properties))


def dkim_clause(
    result: str,
    *,
    domain: str = "",
    selector: str = "",
    identity: str = "",
    algorithm: str = "",
    reason: str = "",
) -> ResultClause:
    """``dkim=`` with ``header.d``/``.i``/``.s``/``.a`` where they are well-formed.

    Raises:
        ValueError: ``result`` is not a keyword.
    """
    properties: list[tuple[str, str]] = []
    for name, value in (
        ("header.d", domain_value(domain)),
        ("header.i", identity_value(identity)),
        ("header.s", domain_value(selector)),
        ("header.a", algorithm.lower() if _KEYWORD.fullmatch(algorithm.lower()) else None),
    ):
        if value:
            properties.append((name, value))
    return ResultClause("dkim", _keyword(result), reason_value(reason), tuple(properties))


def arc_clause(result: str) -> ResultClause:
    """``arc=`` with the chain's state (none, pass, fail).

    Raises:
        ValueError: ``result`` is not a keyword.
    """
    return ResultClause("arc", _keyword(result))


def results_field(authserv_id: str, clauses: Sequence[ResultClause], *, folded: bool) -> str:
    """``Authentication-Results: ID; clause; ...`` (no line end); ``none`` without clauses."""
    token = _TOKEN.fullmatch(authserv_id)
    head = f"Authentication-Results: {authserv_id if token else _quoted(authserv_id)}"
    body = [str(clause) for clause in clauses] or ["none"]
    separator = ";\r\n\t" if folded else "; "
    return separator.join([head, *body])


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
    each result on its own continuation line, as it should go on the wire. Reasons are
    written for every result but a DKIM pass; values that are not well-formed are cleaned
    (reasons) or left out (identities).
    """
    clauses = header_clauses(
        spf=spf, mail_from=mail_from, helo=helo, spf_reason=spf_reason, dkim=dkim, arc=arc
    )
    return results_field(authserv_id, clauses, folded=folded)


def header_clauses(
    *,
    spf: str,
    mail_from: str,
    helo: str,
    spf_reason: str = "",
    dkim: Iterable[DKIMCheck] = (),
    arc: str | None = None,
) -> list[ResultClause]:
    """The results of ``build_header``'s field, in order."""
    clauses = [spf_clause(spf, mail_from=mail_from, helo=helo, reason=spf_reason)]
    checks = list(dkim)
    for check in checks:
        reason = check.reason if check.result != "pass" else ""
        clauses.append(
            dkim_clause(check.result, domain=check.domain, selector=check.selector, reason=reason)
        )
    if not checks:
        clauses.append(dkim_clause("none"))
    if arc is not None:
        clauses.append(arc_clause(arc))
    return clauses


# -- checked values --------------------------------------------------------------------


def reason_value(text: str) -> str:
    """``text`` as one short line of plain printable ASCII, safe inside a quoted reason."""
    clean = " ".join(_REASON_DROPPED.sub(" ", text).split())
    return clean[:MAX_REASON].rstrip()


def domain_value(text: str) -> str | None:
    """``text`` if it is an ASCII domain name (a final dot dropped), else None."""
    name = text[:-1] if text.endswith(".") else text
    if not name or len(name) > 253 or not name.isascii():
        return None
    if all(_LABEL.fullmatch(label) for label in name.split(".")):
        return name
    return None


def address_value(text: str) -> str | None:
    """``local@domain`` with a dot-atom local part, else the domain alone, else None."""
    local, at, domain = text.rpartition("@")
    if not at:
        return None
    checked = domain_value(domain)
    if checked is None:
        return None
    if local and all(_ATEXT.fullmatch(part) for part in local.split(".")):
        return f"{local}@{checked}"
    return checked


def identity_value(text: str) -> str | None:
    """A DKIM ``i=`` (RFC 6376 §3.5: ``[local-part]@domain``) if well-formed, else None."""
    local, at, domain = text.rpartition("@")
    checked = domain_value(domain) if at else None
    if checked is None:
        return None
    if not local:
        return f"@{checked}"
    if all(_ATEXT.fullmatch(part) for part in local.split(".")):
        return f"{local}@{checked}"
    return None


def helo_value(text: str) -> str | None:
    """A HELO name: a domain name or an address literal (``[192.0.2.1]``), else None."""
    if text.startswith("[") and text.endswith("]"):
        literal = text[1:-1]
        literal = literal[5:] if literal.lower().startswith("ipv6:") else literal
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            return None
        return text
    return domain_value(text)


def _keyword(word: str) -> str:
    if not _KEYWORD.fullmatch(word):
        raise ValueError(f"{word!r} is not an Authentication-Results keyword")
    return word


def _pvalue(value: str) -> str:
    """A checked value as written: as it is when a token or an address, else quoted."""
    if _TOKEN.fullmatch(value) or "@" in value:
        return value
    return _quoted(value)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
