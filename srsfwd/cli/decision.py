"""The decision as ``decide`` and ``forward`` both report it: one JSON document
(``srsfwd/schemas/decision.schema.json``, docs/json.md) and one rendering for people."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from srsfwd.authresults import build_header
from srsfwd.cli.group import EXIT_FAILED, EXIT_OK, EXIT_TEMPFAIL
from srsfwd.errors import SrsfwdError
from srsfwd.facts import Envelope
from srsfwd.forward import ForwardResult
from srsfwd.logtext import one_line
from srsfwd.pool import Action, Decision, Pool, PoolSettings
from srsfwd.srs import SRSRewriter

#: The exit status of ``decide`` and ``forward`` for each action of the decision.
ACTION_STATUS = {
    Action.FORWARD: EXIT_OK,
    Action.REJECT: EXIT_FAILED,
    Action.TEMPFAIL: EXIT_TEMPFAIL,
}


@dataclass(frozen=True, slots=True)
class Outbound:
    """The envelope and route of the copy that leaves; ``mail_from`` is None when it is
    not known (SRS without an SRS domain and secrets to rewrite with)."""

    mail_from: str | None
    rcpts: tuple[str, ...]
    transport: str | None
    source_address: str | None
    helo: str | None


def from_forward_result(
    result: ForwardResult,
    inbound: Envelope,
    *,
    authserv_id: str,
    delivery: str | None = None,
) -> dict[str, Any]:
    """The document for what ``Forwarder.forward`` returned for ``inbound``."""
    outbound = None
    if result.forwarded:
        outbound = Outbound(
            result.mail_from, result.rcpts, result.transport, result.source_address, result.helo
        )
    return decision_document(
        inbound,
        result,
        notes=result.notes,
        outbound=outbound,
        decision=result.decision,
        authserv_id=authserv_id,
        dmarc=None if result.dmarc is None else result.dmarc.as_dict(),
        delivery=delivery,
        limits=None if result.limits is None else result.limits.as_dict(),
    )


def from_decision(
    decision: Decision,
    inbound: Envelope,
    *,
    pools: Mapping[Any, PoolSettings],
    authserv_id: str,
    rewriter: SRSRewriter | None = None,
) -> dict[str, Any]:
    """The document for the pool decision alone; the SRS address of a message that gets
    SRS comes from ``rewriter`` (nothing is stored), and is None without one."""
    outbound = None
    notes = list(decision.facts.notes)
    chosen = pools.get(decision.pool) if decision.pool is not None else None
    if decision.action is Action.FORWARD:
        sender: str | None = inbound.mail_from
        if decision.srs:
            sender, note = _srs_address(rewriter, inbound.mail_from)
            notes += [note] if note else []
        outbound = Outbound(
            sender,
            inbound.rcpts,
            chosen.transport if chosen else None,
            chosen.source_addresses[0] if chosen and chosen.source_addresses else None,
            (chosen.helo or None) if chosen else None,
        )
    return decision_document(
        inbound,
        decision,
        notes=tuple(notes),
        outbound=outbound,
        decision=decision,
        authserv_id=authserv_id,
    )


def _srs_address(rewriter: SRSRewriter | None, sender: str) -> tuple[str | None, str | None]:
    """The SRS address for ``sender``, or None and why not."""
    if rewriter is None:
        return None, "no [srs] domain and secrets file: the SRS address is not shown"
    try:
        return rewriter.forward(sender, dry_run=True), None
    except SrsfwdError as exc:
        return None, f"SRS rewrite failed: {exc}"


class Verdict(Protocol):
    """What a forward result and a pool decision both say: the action, pool, SRS or
    not, why, and the SMTP reply."""

    @property
    def action(self) -> Action: ...
    @property
    def pool(self) -> Pool | None: ...
    @property
    def srs(self) -> bool: ...
    @property
    def reasons(self) -> tuple[str, ...]: ...
    @property
    def smtp_reply(self) -> str | None: ...


def decision_document(
    inbound: Envelope,
    verdict: Verdict,
    *,
    notes: tuple[str, ...],
    outbound: Outbound | None,
    decision: Decision | None,
    authserv_id: str,
    dmarc: dict[str, Any] | None = None,
    delivery: str | None = None,
    limits: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The one JSON form of a decision; every key is always there (``null`` when absent)."""
    checked: dict[str, Any] = {
        "spf": None,
        "dkim": [],
        "dkim_match": None,
        "checked": None,
        "facts": None,
        "from_authenticated": None,
        "authentication_results": None,
    }
    if decision is not None:  # a message refused before any look-up has none
        core = decision.as_dict()
        checked = {key: core.get(key) for key in checked}
        checked["authentication_results"] = _hop_results(authserv_id, decision)
    return {
        "action": str(verdict.action),
        "pool": None if verdict.pool is None else str(verdict.pool),
        "srs": verdict.srs,
        "reasons": list(verdict.reasons),
        "smtp_reply": verdict.smtp_reply,
        "notes": list(notes),
        "inbound": {
            "client_ip": inbound.client_ip,
            "helo": inbound.helo,
            "mail_from": inbound.mail_from,
            "rcpts": list(inbound.rcpts),
        },
        "outbound": None
        if outbound is None
        else {
            "mail_from": outbound.mail_from,
            "rcpts": list(outbound.rcpts),
            "transport": outbound.transport,
            "source_address": outbound.source_address,
            "helo": outbound.helo,
        },
        **checked,
        "dmarc": dmarc,
        "delivery": delivery,
        "limits": limits,
    }


def _hop_results(authserv_id: str, decision: Decision) -> str:
    facts = decision.facts
    return build_header(
        authserv_id,
        spf=facts.spf,
        mail_from=facts.mail_from,
        helo=facts.helo or "",
        spf_reason=facts.spf_reason,
        dkim=facts.dkim,
    )


LABEL_WIDTH = len("sender domain:") + 1

#: Why the sending limits count the key they count, in words (``limits.because``).
BECAUSE_WORDS = {
    "spf-pass": "SPF passed for the MAIL FROM",
    "dkim-pass": "a DKIM signature of the MAIL FROM's domain passed",
    "sasl-login": "SMTP AUTH login, MAIL FROM in our accepted domains",
    "trusted-submission": "a trusted submission",
    "client-address": "nothing vouched for the MAIL FROM: the client's address pays",
}


def describe(document: Mapping[str, Any]) -> list[str]:
    """The decision for people: ``label: value`` lines, the same for every command, and
    this hop's Authentication-Results field last."""
    return [
        f"{label + ':':<{LABEL_WIDTH}}{one_line(value)}".rstrip() if label else one_line(value)
        for label, value in _lines(document)
    ]


def _lines(doc: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    inbound, outbound = doc["inbound"], doc["outbound"]
    yield "action", doc["action"]
    if doc["pool"] is not None:
        yield "pool", f"{doc['pool']} (SRS: {'yes' if doc['srs'] else 'no'})"
    sender = f"<{inbound['mail_from']}>"
    if outbound is not None and outbound["mail_from"] != inbound["mail_from"]:
        sender += f" sent as <{outbound['mail_from'] or '?'}>"
    yield "mail from", sender
    rcpts = ", ".join(f"<{r}>" for r in inbound["rcpts"])
    if outbound is not None and outbound["rcpts"] != inbound["rcpts"]:
        rcpts += " sent to " + ", ".join(f"<{r}>" for r in outbound["rcpts"])
    yield "rcpt to", rcpts
    if outbound is not None and outbound["transport"]:
        where = outbound["source_address"] or "default address"
        yield "transport", f"{outbound['transport']} (from {where}, HELO {outbound['helo'] or '-'})"
    if doc["smtp_reply"]:
        yield "reply", doc["smtp_reply"]
    yield "reasons", ", ".join(doc["reasons"])
    if doc["limits"] is not None:
        limits = doc["limits"]
        because = BECAUSE_WORDS.get(limits["because"], limits["because"])
        yield "limits", f"counted as {limits['counted_as']} ({because})"
    if doc["dmarc"] is not None:
        dmarc = doc["dmarc"]
        yield "dmarc", f"{dmarc['result']} ({dmarc['policy_domain'] or '-'})"
    for note in doc["notes"]:
        yield "note", note
    if doc["delivery"]:
        yield "delivery", doc["delivery"]
    facts = doc["facts"]
    if facts is None:  # refused before any look-up
        return
    spf = facts["spf"]
    yield "spf", f"{spf['result']} ({spf['source']}; {spf['domain'] or '-'}) {spf['reason']}"
    for sig in doc["dkim"]:
        yield "dkim", f"{sig['result']} d={sig['domain']} s={sig['selector']} {sig['reason']}"
    if not doc["dkim"]:
        yield "dkim", "none (no signature)"
    if facts["from_domain"]:
        state = "authenticated" if doc["from_authenticated"] else "not authenticated"
        yield "header from", f"{facts['from_domain']} {state}"
    if facts["sender_domain"]:
        yield "sender domain", f"{facts['sender_domain']}: {_sender_dns(facts['sender_dns'])}"
    yield "", doc["authentication_results"]  # the field itself, name included


def _sender_dns(dns: Mapping[str, Any]) -> str:
    # A look-up that failed says nothing about the records: never "no A/AAAA/MX".
    if dns["temperror"]:
        return f"temperror ({dns['temperror']})"
    found = [key.upper() for key in ("a", "aaaa", "mx") if dns[key]]
    return ", ".join(found + (["null MX"] if dns["null_mx"] else [])) or "no A/AAAA/MX"
