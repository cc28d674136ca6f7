"""The asyncio event loop ``srsfwd serve`` runs on: uvloop when it is installed.

uvloop (libuv under the asyncio API) does a lookup's socket work in C; the plain
asyncio loop does it in Python. The daemon runs the same on both, and picks uvloop on
its own when ``pip install 'srsfwd[fast]'`` (or Debian's python3-uvloop) put it there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Literal

from srsfwd.errors import ConfigError

log = logging.getLogger(__name__)

LoopChoice = Literal["auto", "uvloop", "asyncio"]
LOOP_CHOICES: tuple[LoopChoice, ...] = ("auto", "uvloop", "asyncio")
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def loop_factory(
    choice: LoopChoice = "auto",
) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The name and the factory of the loop ``choice`` means.

    ``auto`` is uvloop when importable, else asyncio's own loop.

    Raises:
        ConfigError: ``uvloop`` was asked for and is not installed.
    """
    if choice != "asyncio":
        try:
            import uvloop  # optional: the "fast" extra
        except ImportError:
            if choice == "uvloop":
                raise ConfigError(
                    "uvloop is not installed: pip install 'srsfwd[fast]'"
                    " or apt-get install python3-uvloop"
                ) from None
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def run(main: Coroutine[Any, Any, None], choice: LoopChoice = "auto") -> None:
    """Run ``main`` to completion on the loop ``choice`` means, and say which one.

    Raises:
        ConfigError: ``uvloop`` was asked for and is not installed.
    """
    try:
        name, factory = loop_factory(choice)
    except ConfigError:
        main.close()
        raise
    log.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
