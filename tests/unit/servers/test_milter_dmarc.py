"""The milter actions for a From rewritten by DMARC-safe forwarding."""

from __future__ import annotations

from srsfwd.dkim.canon import Header
from srsfwd.message import FieldChange, MessageChanges
from srsfwd.protocols.milter import AddHeader, ChangeHeader, InsertHeader
from srsfwd.servers.milter import header_actions

NEW_FROM = b' "Alice via fwd.example.net" <SRS0=h=t=example.org=a@fwd.example.net>'
REWRITTEN = MessageChanges(
    changed=(FieldChange("From", 1, NEW_FROM),),
    appended=(Header(b"Reply-To", b" Alice <a@example.org>"),),
    inserted=(Header(b"DKIM-Signature", b" v=1; b=abc"),),
)


def test_a_rewritten_from_is_a_chgheader_and_the_reply_to_an_addheader() -> None:
    actions = header_actions(REWRITTEN, leading_space=False)
    assert actions == [
        ChangeHeader(1, "From", NEW_FROM[1:]),
        AddHeader("Reply-To", b"Alice <a@example.org>"),
        InsertHeader(0, "DKIM-Signature", b"v=1; b=abc"),
    ]


def test_a_from_kept_as_it_was_gives_no_from_action() -> None:
    changes = MessageChanges(inserted=(Header(b"DKIM-Signature", b" v=1"),))
    actions = header_actions(changes, leading_space=False)
    assert not any(getattr(a, "name", "") in ("From", "Reply-To") for a in actions)
