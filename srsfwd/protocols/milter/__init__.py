"""The milter protocol, version 6 as Postfix speaks it: a pure codec and state machine.

Written by hand rather than on a library: pymilter needs a C toolchain and libmilter and
runs one thread per connection, and the pure-Python milter libraries are alpha (see
``docs/milter-protocol.md``). Layers, bottom up:

* ``wire``: constants and framing (``PacketDecoder``, ``encode_packet``);
* ``commands``: one event per MTA command and ``decode_command``;
* ``replies``: one value per filter reply or action, each with ``encode()``;
* ``negotiation``: what we ask for (``Negotiation``) and what was agreed (``Negotiated``);
* ``codec``: ``MilterCodec``, the order of commands and the ``MilterMessage`` built
  for the pipeline;
* ``mta``: the MTA side (``MtaClient``) for tests, integration tests and benchmarks.
"""

from __future__ import annotations

from srsfwd.protocols.milter.codec import MAX_MACROS as MAX_MACROS
from srsfwd.protocols.milter.codec import MAX_MESSAGE as MAX_MESSAGE
from srsfwd.protocols.milter.codec import MilterCodec as MilterCodec
from srsfwd.protocols.milter.codec import MilterMessage as MilterMessage
from srsfwd.protocols.milter.codec import Stage as Stage
from srsfwd.protocols.milter.commands import Abort as Abort
from srsfwd.protocols.milter.commands import Body as Body
from srsfwd.protocols.milter.commands import Connect as Connect
from srsfwd.protocols.milter.commands import Data as Data
from srsfwd.protocols.milter.commands import DefineMacros as DefineMacros
from srsfwd.protocols.milter.commands import EndOfHeaders as EndOfHeaders
from srsfwd.protocols.milter.commands import EndOfMessage as EndOfMessage
from srsfwd.protocols.milter.commands import Event as Event
from srsfwd.protocols.milter.commands import Helo as Helo
from srsfwd.protocols.milter.commands import Mail as Mail
from srsfwd.protocols.milter.commands import MilterHeaderField as MilterHeaderField
from srsfwd.protocols.milter.commands import OptionNegotiation as OptionNegotiation
from srsfwd.protocols.milter.commands import Quit as Quit
from srsfwd.protocols.milter.commands import QuitNewConnection as QuitNewConnection
from srsfwd.protocols.milter.commands import Rcpt as Rcpt
from srsfwd.protocols.milter.commands import Unknown as Unknown
from srsfwd.protocols.milter.commands import decode_command as decode_command
from srsfwd.protocols.milter.negotiation import DEFAULT_ACTIONS as DEFAULT_ACTIONS
from srsfwd.protocols.milter.negotiation import DEFAULT_MACROS as DEFAULT_MACROS
from srsfwd.protocols.milter.negotiation import DEFAULT_PROTOCOL as DEFAULT_PROTOCOL
from srsfwd.protocols.milter.negotiation import Negotiated as Negotiated
from srsfwd.protocols.milter.negotiation import Negotiation as Negotiation
from srsfwd.protocols.milter.replies import Accept as Accept
from srsfwd.protocols.milter.replies import AddHeader as AddHeader
from srsfwd.protocols.milter.replies import AddRecipient as AddRecipient
from srsfwd.protocols.milter.replies import ChangeFrom as ChangeFrom
from srsfwd.protocols.milter.replies import ChangeHeader as ChangeHeader
from srsfwd.protocols.milter.replies import Continue as Continue
from srsfwd.protocols.milter.replies import DeleteRecipient as DeleteRecipient
from srsfwd.protocols.milter.replies import Discard as Discard
from srsfwd.protocols.milter.replies import InsertHeader as InsertHeader
from srsfwd.protocols.milter.replies import MilterReply as MilterReply
from srsfwd.protocols.milter.replies import OptionsReply as OptionsReply
from srsfwd.protocols.milter.replies import Progress as Progress
from srsfwd.protocols.milter.replies import Quarantine as Quarantine
from srsfwd.protocols.milter.replies import Reject as Reject
from srsfwd.protocols.milter.replies import ReplaceBody as ReplaceBody
from srsfwd.protocols.milter.replies import Skip as Skip
from srsfwd.protocols.milter.replies import SmtpReply as SmtpReply
from srsfwd.protocols.milter.replies import Tempfail as Tempfail
from srsfwd.protocols.milter.wire import CHUNK_SIZE as CHUNK_SIZE
from srsfwd.protocols.milter.wire import MAX_PACKET as MAX_PACKET
from srsfwd.protocols.milter.wire import VERSION as VERSION
from srsfwd.protocols.milter.wire import ActionFlag as ActionFlag
from srsfwd.protocols.milter.wire import Command as Command
from srsfwd.protocols.milter.wire import Family as Family
from srsfwd.protocols.milter.wire import MacroStage as MacroStage
from srsfwd.protocols.milter.wire import PacketDecoder as PacketDecoder
from srsfwd.protocols.milter.wire import ProtocolFlag as ProtocolFlag

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_ACTIONS",
    "DEFAULT_MACROS",
    "DEFAULT_PROTOCOL",
    "MAX_MACROS",
    "MAX_MESSAGE",
    "MAX_PACKET",
    "VERSION",
    "Abort",
    "Accept",
    "ActionFlag",
    "AddHeader",
    "AddRecipient",
    "Body",
    "ChangeFrom",
    "ChangeHeader",
    "Command",
    "Connect",
    "Continue",
    "Data",
    "DefineMacros",
    "DeleteRecipient",
    "Discard",
    "EndOfHeaders",
    "EndOfMessage",
    "Event",
    "Family",
    "Helo",
    "InsertHeader",
    "MacroStage",
    "Mail",
    "MilterCodec",
    "MilterHeaderField",
    "MilterMessage",
    "MilterReply",
    "Negotiated",
    "Negotiation",
    "OptionNegotiation",
    "OptionsReply",
    "PacketDecoder",
    "Progress",
    "ProtocolFlag",
    "Quarantine",
    "Quit",
    "QuitNewConnection",
    "Rcpt",
    "Reject",
    "ReplaceBody",
    "Skip",
    "SmtpReply",
    "Tempfail",
    "Unknown",
    "decode_command",
]
