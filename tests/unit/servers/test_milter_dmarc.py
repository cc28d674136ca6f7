"""The milter actions for a From rewritten by DMARC-safe forwarding."""

from __future__ import annotations

import pytest

from srsfwd.protocols.milter import AddHeader, ChangeHeader, InsertHeader
from srsfwd.servers.milter import header_changes

ORIGINAL = b"Received: x\r\nFrom: Alice <a@example.org>\r\nSubject: s\r\n\r\nbody\r\n"
REWRITTEN = (
    b"DKIM-Signature: v=1; b=abc\r\nReceived: x\r\n"
    b'From: "Alice via fwd.example.net" <SRS0=h=t=example.org=a@fwd.example.net>\r\n'
    b"Subject: s\r\nReply-To: Alice <a@example.org>\r\n\r\nbody\r\n"
)


def test_a_rewritten_from_is_a_chgheader_and_the_reply_to_an_addheader() -> None:
    actions, names = header_changes(ORIGINAL, REWRITTEN, leading_space=False)
    assert AddHeader("Reply-To", b"Alice <a@example.org>") in actions
    new_from = REWRITTEN.split(b"\r\n")[2].partition(b": ")[2]
    assert ChangeHeader(1, "From", new_from) in actions
    assert InsertHeader(0, "DKIM-Signature", b"v=1; b=abc") in actions
    assert names == ["DKIM-Signature"]


def test_a_from_kept_as_it_was_gives_no_from_action() -> None:
    prepared = b"DKIM-Signature: v=1\r\n" + ORIGINAL
    actions, _ = header_changes(ORIGINAL, prepared, leading_space=False)
    assert not any(getattr(a, "name", "") in ("From", "Reply-To") for a in actions)


def test_a_changed_field_other_than_from_is_still_refused() -> None:
    prepared = ORIGINAL.replace(b"Subject: s", b"Subject: changed")
    with pytest.raises(ValueError, match="the pipeline"):
        header_changes(ORIGINAL, prepared, leading_space=False)
