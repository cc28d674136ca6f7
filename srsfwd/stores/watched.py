"""An SRS alias store that says in the log when it stops answering and when it is back.

The lookup daemon answers "try again" while its alias store is down and counts each such
answer; this wrapper adds the two lines an operator tailing the log needs: one warning
when the store starts failing, one info line when it answers again. Not one per lookup:
while the store fails and recovers over and over, at most one warning (and one info
line) per ``QUIET_SECONDS``, and a failure left unannounced is announced at the first
failing call after that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from srsfwd.errors import StoreError
from srsfwd.logtext import one_line, without_password
from srsfwd.srs import AliasStore

log = logging.getLogger(__name__)

#: Shortest time between two warnings about the same store.
QUIET_SECONDS = 60.0


class WatchedStore:
    """``store`` (an ``AliasStore``), logging its outages: ``where`` names it in the log
    (its password, if any, is left out). ``clock`` is monotonic seconds."""

    def __init__(
        self,
        store: AliasStore,
        where: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        quiet_seconds: float = QUIET_SECONDS,
    ) -> None:
        self._store = store
        self._where = one_line(without_password(where))
        self._clock = clock
        self._quiet = quiet_seconds
        self._lock = threading.Lock()
        self._failing = False  # the last call failed
        self._announced = False  # ... and a warning says so
        self._warned_at: float | None = None

    def get(self, key: str, *, now: float) -> str | None:
        """The store's ``get``; a failure is logged, as is the first success after one."""
        try:
            value = self._store.get(key, now=now)
        except StoreError as exc:
            self._failed(exc)
            raise
        if self._failing:
            self._answered()
        return value

    def put(self, key: str, value: str, *, ttl: int, now: float) -> None:
        """The store's ``put``; a failure is logged, as is the first success after one."""
        try:
            self._store.put(key, value, ttl=ttl, now=now)
        except StoreError as exc:
            self._failed(exc)
            raise
        if self._failing:
            self._answered()

    def _failed(self, exc: StoreError) -> None:
        with self._lock:
            self._failing = True
            now = self._clock()
            if self._announced or (
                self._warned_at is not None and now - self._warned_at < self._quiet
            ):
                return
            self._announced, self._warned_at = True, now
        reason = one_line(without_password(str(exc)))
        log.warning(
            "SRS alias store %s is not answering (%s): lookups that need it answer"
            " 'try again' until it does",
            self._where,
            reason,
        )

    def _answered(self) -> None:
        with self._lock:
            announced = self._announced
            self._failing = self._announced = False
        if announced:
            log.info("SRS alias store %s answers again", self._where)
