"""Pieces both test systems use: timers on the kernel's clock, the SUT's log for reports."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Optional

from slac.testing.netns import Netns, unique_name

#: Names of the suites' network namespaces begin with this (slac.testing.netns.unique_name):
#: tests that count the machine's namespaces while the suites run beside them leave these out.
NETNS_PREFIX = "slaccf"


def new_netns() -> Netns:
    """A network namespace of the conformance suites, created."""
    return Netns(unique_name(NETNS_PREFIX)).create()


class Timer:
    """A running timer of the test system (the catalogue's ``tc_...->start(d)``).

    Times are epoch seconds, the clock of the kernel's receive timestamps."""

    def __init__(self, duration: float, name: str = "", start: Optional[float] = None) -> None:
        self.name = name
        self.duration = duration
        #: ``start``: when it started (a kernel timestamp), if not now
        self.started = time.time() if start is None else start
        self.expiry = self.started + duration
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True

    @property
    def running(self) -> bool:
        return not self.stopped and time.time() < self.expiry

    def expired_at(self, moment: float) -> bool:
        """Whether the timer (not stopped) had run out at ``moment``."""
        return not self.stopped and moment >= self.expiry

    async def wait(self) -> None:
        """Until the timer runs out (``timer.timeout`` with nothing else to do)."""
        left = self.expiry - time.time()
        if left > 0:
            await asyncio.sleep(left)


def earliest(*timers: Optional[Timer]) -> float:
    """The first expiry of the timers that run (and were not stopped)."""
    running = [t.expiry for t in timers if t is not None and not t.stopped]
    return min(running) if running else time.time()


class LogTail(logging.Handler):
    """The last log lines of the SUT (its ``slac`` loggers), for failure reports."""

    def __init__(self, lines: int = 200) -> None:
        super().__init__(logging.DEBUG)
        self.lines: collections.deque[str] = collections.deque(maxlen=lines)
        self.started = time.time()
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:  # a report helper must never break the SUT
            text = record.getMessage()
        self.lines.append(f"{record.created - self.started:9.3f} s {text}")

    def note(self, text: str) -> None:
        self.lines.append(f"{time.time() - self.started:9.3f} s {text}")

    def __str__(self) -> str:
        return "\n".join(self.lines)
