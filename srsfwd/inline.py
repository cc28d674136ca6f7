"""One attempt to finish a message on the thread that received it, without waiting.

The milter first runs a message on its event loop with every DNS question answered from
the resolver's cache only; a question the cache cannot answer ends the attempt, and the
message goes to a worker thread, which asks the network. The attempt is per thread
(``threading.local``): worker threads keep doing real look-ups meanwhile.

    with inline.attempt() as state:
        try:
            verdict = work()
        except inline.NotInline:
            verdict = None              # hand the message to a worker
        if state.missed:
            verdict = None              # a miss that something swallowed

An abandoned attempt must leave nothing behind that the worker's run would see, so the
pipeline calls ``commit()`` right before each side effect that must happen once per
message (blocking a sender that passed a limit, counting the sender's limits): an
attempt that missed stops there, and one that did not becomes final. A look-up after
that point asks the network on the calling thread, as a worker would; the forward makes
one only when the count found the sender's limits changed since its peek (concurrent
messages) and the new decision needs a DMARC record that the first did not. A block
refuses the message: no look-up follows it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class NotInline(BaseException):
    """The attempt cannot finish without waiting or without a side effect it could not
    take back: hand the message to a worker.

    A ``BaseException``, like ``KeyboardInterrupt``: the ``except Exception`` of
    libraries on the way (SPF, DKIM, DMARC) must not turn it into a verdict. Those that
    catch everything are covered by ``Attempt.missed``.
    """


@dataclass(slots=True)
class Attempt:
    """The state of this thread's attempt."""

    missed: str = ""  # the first question not answered from the cache
    committed: bool = False  # past the first side effect that must happen once


_local = threading.local()


def current() -> Attempt | None:
    """This thread's attempt, or None when the thread is not making one."""
    found: Attempt | None = getattr(_local, "attempt", None)
    return found


@contextmanager
def attempt() -> Iterator[Attempt]:
    """Make an attempt on this thread: DNS from the cache only until ``commit``."""
    if current() is not None:
        raise RuntimeError("an inline attempt is already running on this thread")
    state = Attempt()
    _local.attempt = state
    try:
        yield state
    finally:
        _local.attempt = None


def cached_only() -> bool:
    """True while DNS questions on this thread must be answered from a cache."""
    state = current()
    return state is not None and not state.committed


def miss(question: str) -> None:
    """``question`` is not in the cache: end the attempt (when one is cached-only).

    Raises:
        NotInline: always, when this thread's attempt is cached-only.
    """
    state = current()
    if state is None or state.committed:
        return
    state.missed = state.missed or question
    raise NotInline(f"not cached: {question}")


def missed() -> bool:
    """True when this thread's attempt has met a question it could not answer."""
    state = current()
    return state is not None and bool(state.missed)


def commit() -> None:
    """Right before a side effect that must happen once per message.

    Raises:
        NotInline: this thread's attempt met a miss (swallowed on the way): stop here.
    """
    state = current()
    if state is None or state.committed:
        return
    if state.missed:
        raise NotInline(f"not cached: {state.missed}")
    state.committed = True
