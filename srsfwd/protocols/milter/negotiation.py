"""Option negotiation: what we ask Postfix for, and what was agreed.

Postfix (``milter8_connect``) offers version 6, every action (0x1FF) and every protocol
flag of version 6 (0x1FFFFF). We answer with the subset we want; Postfix then skips the
events we declined, does not wait for replies we said we would not send (``NR_*``), and
uses our macro lists instead of its ``milter_*_macros`` settings. Postfix sends the macros
of a stage even when it skips the event itself, so declining DATA or EOH costs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from srsfwd.errors import ProtocolError
from srsfwd.protocols.milter.commands import OptionNegotiation
from srsfwd.protocols.milter.replies import OptionsReply
from srsfwd.protocols.milter.wire import VERSION, ActionFlag, Command, MacroStage, ProtocolFlag

#: The end-of-message actions the forwarding pipeline uses: headers (Authentication-Results,
#: ARC, DKIM-Signature, the pool marker), the SRS sender, recipients, and HOLD.
DEFAULT_ACTIONS = (
    ActionFlag.ADDHDRS
    | ActionFlag.CHGHDRS
    | ActionFlag.ADDRCPT
    | ActionFlag.DELRCPT
    | ActionFlag.CHGFROM
    | ActionFlag.QUARANTINE
)

#: Skip what we never look at (unknown commands, DATA, EOH) and answer only where a
#: decision can be made early: MAIL (sender over its limit), RCPT (forged SRS bounce)
#: and end of message. HDR_LEADSPC keeps header values byte-exact for DKIM and ARC.
DEFAULT_PROTOCOL = (
    ProtocolFlag.NOUNKNOWN
    | ProtocolFlag.NODATA
    | ProtocolFlag.NOEOH
    | ProtocolFlag.NR_CONN
    | ProtocolFlag.NR_HELO
    | ProtocolFlag.NR_DATA
    | ProtocolFlag.NR_UNKN
    | ProtocolFlag.NR_HDR
    | ProtocolFlag.NR_EOH
    | ProtocolFlag.NR_BODY
    | ProtocolFlag.HDR_LEADSPC
)

#: Macros per stage. Postfix allocates the queue id (``i``) at the first accepted RCPT
#: when ``smtpd_delay_open_until_valid_rcpt = yes`` (its default), so we ask for it there
#: and at end of message, not at MAIL.
DEFAULT_MACROS: Mapping[MacroStage, tuple[str, ...]] = MappingProxyType(
    {
        MacroStage.CONNECT: ("j", "{daemon_name}", "{client_addr}", "{client_name}"),
        MacroStage.MAIL: ("{auth_authen}", "{mail_addr}"),
        MacroStage.RCPT: ("i", "{rcpt_addr}"),
        MacroStage.END_OF_MESSAGE: ("i",),
    }
)

#: Protocol flags that stop the MTA from sending a command.
_SKIP_FLAG: dict[Command, ProtocolFlag] = {
    Command.CONNECT: ProtocolFlag.NOCONNECT,
    Command.HELO: ProtocolFlag.NOHELO,
    Command.MAIL: ProtocolFlag.NOMAIL,
    Command.RCPT: ProtocolFlag.NORCPT,
    Command.DATA: ProtocolFlag.NODATA,
    Command.HEADER: ProtocolFlag.NOHDRS,
    Command.END_OF_HEADERS: ProtocolFlag.NOEOH,
    Command.BODY: ProtocolFlag.NOBODY,
    Command.UNKNOWN: ProtocolFlag.NOUNKNOWN,
}

#: Protocol flags that tell the MTA not to wait for a reply.
_NO_REPLY_FLAG: dict[Command, ProtocolFlag] = {
    Command.CONNECT: ProtocolFlag.NR_CONN,
    Command.HELO: ProtocolFlag.NR_HELO,
    Command.MAIL: ProtocolFlag.NR_MAIL,
    Command.RCPT: ProtocolFlag.NR_RCPT,
    Command.DATA: ProtocolFlag.NR_DATA,
    Command.HEADER: ProtocolFlag.NR_HDR,
    Command.END_OF_HEADERS: ProtocolFlag.NR_EOH,
    Command.BODY: ProtocolFlag.NR_BODY,
    Command.UNKNOWN: ProtocolFlag.NR_UNKN,
}

#: Commands the MTA never waits on: macros, abort and the two quits.
_NEVER_REPLIED = frozenset({Command.MACRO, Command.ABORT, Command.QUIT, Command.QUIT_NC})


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both sides agreed on; fixed for the life of the milter connection."""

    version: int
    actions: ActionFlag
    protocol: ProtocolFlag
    macros: Mapping[MacroStage, tuple[str, ...]]

    def sends(self, command: Command) -> bool:
        """Whether the MTA will send ``command`` (not declined with a ``NO*`` flag)."""
        flag = _SKIP_FLAG.get(command)
        return flag is None or not self.protocol & flag

    def replies_to(self, command: Command) -> bool:
        """Whether the MTA waits for our reply after ``command``."""
        if command in _NEVER_REPLIED:
            return False
        flag = _NO_REPLY_FLAG.get(command)
        return flag is None or not self.protocol & flag


@dataclass(frozen=True, slots=True)
class Negotiation:
    """What we ask for. ``required`` actions must be offered, or the MTA is refused.

    Args:
        actions: end-of-message actions we may use; we get those the MTA offers.
        protocol: ``NO*``/``NR_*``/``HDR_LEADSPC`` flags; we get those the MTA offers.
        macros: macro names per stage, sent as symbol lists (SETSYMLIST).
        required: actions without which we cannot work (e.g. CHGFROM for SRS).
    """

    actions: ActionFlag = DEFAULT_ACTIONS
    protocol: ProtocolFlag = DEFAULT_PROTOCOL
    macros: Mapping[MacroStage, tuple[str, ...]] = field(default_factory=lambda: DEFAULT_MACROS)
    required: ActionFlag = ActionFlag.NONE

    def answer(self, offer: OptionNegotiation) -> tuple[OptionsReply, Negotiated]:
        """Our OPTNEG reply to the MTA's offer, and the agreement it makes.

        Raises:
            ProtocolError: the MTA speaks a version below 6 or lacks a required action.
        """
        if offer.version < VERSION:
            raise ProtocolError(
                f"milter protocol version {offer.version} offered; we need {VERSION}"
                " (Postfix: milter_protocol = 6)"
            )
        missing = self.required & ~offer.actions
        if missing:
            raise ProtocolError(f"the MTA does not allow milter actions {missing!r}")
        actions = self.actions & offer.actions
        protocol = self.protocol & offer.protocol
        macros = dict(self.macros) if offer.actions & ActionFlag.SETSYMLIST else {}
        if macros:
            actions |= ActionFlag.SETSYMLIST
        reply = OptionsReply(actions, protocol, macros, VERSION)
        return reply, Negotiated(VERSION, actions, protocol, MappingProxyType(macros))
