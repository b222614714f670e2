"""Waiting for an EVSE's interface that does not exist yet or is down (issue 15 item 1), as a
sans-IO schedule: when to look again and what to say, with no sockets and no clock.

``slac evse`` (:class:`slac.app.service.EvseService`) and
:meth:`slac.session.SlacEvseSession.wait_open` try to open the interface; each failure goes to
:meth:`InterfaceWait.failed` with ``now`` and says when to try next: after ``first`` seconds,
the wait doubling up to ``longest``. The first failure is an INFO line, waiting longer than
``warn_after`` one WARNING line, the other tries DEBUG lines; :meth:`InterfaceWait.opened` ends
the wait with one INFO line (how long it took). Meanwhile the EVSE is reported
``unavailable`` and the other EVSEs of the station run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

from slac.fsm.base import Log

logger = logging.getLogger(__name__)

#: the first pause after a failed try (s)
FIRST_RETRY = 0.5
#: the longest pause between tries (s)
LONGEST_RETRY = 30.0
#: waiting longer than this is a WARNING (s)
WARN_AFTER = 30.0


@dataclass
class InterfaceWait:
    """The backoff and the log lines of one interface's wait."""

    interface: str
    log: Log = field(default=logger, repr=False)
    first: float = FIRST_RETRY
    longest: float = LONGEST_RETRY
    warn_after: float = WARN_AFTER
    #: when the first try failed (None: not waiting)
    since: Optional[float] = None
    #: failed tries so far
    tries: int = 0
    #: why the last try failed
    reason: str = ""
    _pause: float = 0.0
    _warned: bool = False

    @property
    def waiting(self) -> bool:
        return self.since is not None

    def failed(self, now: float, reason: str) -> float:
        """A try failed for ``reason``: when (``now``-based) to try again."""
        self.tries += 1
        self.reason = reason
        if self.since is None:
            self.since = now
            self._pause = self.first
            self.log.info(
                "%s; waiting for the interface (the EVSE is unavailable meanwhile)", reason
            )
        else:
            self._pause = min(self.longest, self._pause * 2)
            waited = now - self.since
            if not self._warned and waited >= self.warn_after:
                self._warned = True
                self.log.warning(
                    "still waiting for %s after %.0f s (%d tries): %s",
                    self.interface,
                    waited,
                    self.tries,
                    reason,
                )
            else:
                self.log.debug(
                    "%s still unavailable (try %d): %s", self.interface, self.tries, reason
                )
        return now + self._pause

    def opened(self, now: float) -> Optional[float]:
        """The interface opened: how long the wait was (None: there was none)."""
        if self.since is None:
            return None
        waited = now - self.since
        self.log.info("%s is there after %.1f s: the EVSE is available", self.interface, waited)
        self.since, self.tries, self._warned, self.reason = None, 0, False, ""
        return waited
