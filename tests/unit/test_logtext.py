"""One log line per event, one reply line per reply, whatever a client sends."""

from __future__ import annotations

import io
import logging

from hypothesis import example, given
from hypothesis import strategies as st

from srsfwd.logtext import OneLineFormatter, one_line

LINE_BREAKS = ["\n", "\r", "\r\n", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
_HOSTILE = st.one_of(
    st.text(),
    st.lists(st.sampled_from([*LINE_BREAKS, "a", "`", "\0", "\\", "é", "\udcff"])).map("".join),
    st.binary().map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)


@given(_HOSTILE)
@example("sender\nforged: log line")
@example("x\u2028y")
def test_any_text_becomes_one_line(text: str) -> None:
    line = one_line(text)
    assert len(line.splitlines()) <= 1
    assert line.isprintable()


@given(st.text().filter(str.isprintable))
def test_printable_text_is_kept_as_it_is(text: str) -> None:
    assert one_line(text) == text


def test_a_line_break_is_shown_escaped() -> None:
    assert one_line("a\r\nb\u2028c") == "a\\r\\nb\\u2028c"


def _formatted(message: str, *args: object) -> str:
    record = logging.LogRecord("srsfwd", logging.INFO, __file__, 1, message, args, None)
    return OneLineFormatter("srsfwd: %(levelname)s: %(message)s").format(record)


@given(_HOSTILE)
def test_a_logged_client_value_stays_on_its_line(value: str) -> None:
    line = _formatted("deferring message from <%s>: %s", value, ValueError(value))
    assert len(line.splitlines()) == 1
    assert line.startswith("srsfwd: INFO: deferring message from <")


def test_the_daemon_log_handler_writes_one_line_per_event() -> None:
    from srsfwd.cli.serve import setup_logging

    logger = logging.getLogger("srsfwd")
    before, level = list(logger.handlers), logger.level
    setup_logging("stderr", "info")
    (handler,) = [h for h in logger.handlers if h not in before]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream := io.StringIO())
    try:
        logger.info("milter: from=<%s>", "a@b.example>\nsrsfwd: INFO: milter: forged")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert stream.getvalue().count("\n") == 1
