"""Text from clients made safe for one log line or one reply line.

A line break in a sender address, a macro or a header value must not start a new line in
our log or our SMTP reply: whoever sent it could forge log lines or reply lines.
"""

from __future__ import annotations

import logging
import re

#: The password of a URL (``scheme://user:password@host``).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@/\s]*(?=@)")


def one_line(text: str) -> str:
    """``text`` with every character that is not printable escaped (``\\n``, ``\\u2028``).

    Printable text is returned as it is; escaped text stays readable and unambiguous enough
    for a person, and no line break (CR, LF, VT, FF, NEL, U+2028, U+2029) remains.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def without_password(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``(redacted)``: a store
    URL goes into error messages, and those are logged."""
    return _URL_PASSWORD.sub(r"\g<head>(redacted)", text)


class OneLineFormatter(logging.Formatter):
    """A formatter whose message part is always one line; a traceback still follows it."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        return one_line(super().formatMessage(record))
