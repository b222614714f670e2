"""Frames a test's scripted station received, waiting for the test to ask for them."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Optional, Union

from slac.messages import Frame


class Inbox:
    """Received frames with their arrival times; :meth:`expect` takes the next of a type."""

    def __init__(self) -> None:
        self._frames: collections.deque[tuple[Frame, float]] = collections.deque()
        self._arrived: Optional[asyncio.Event] = None  # made in the loop (Python 3.9 binds it)

    def _event(self) -> asyncio.Event:
        if self._arrived is None:
            self._arrived = asyncio.Event()
        return self._arrived

    def put(self, frame: Frame, at: float) -> None:
        self._frames.append((frame, at))
        self._event().set()

    async def expect(
        self, kind: Union[type, tuple[type, ...]], timeout: float
    ) -> tuple[Frame, float]:
        """The next frame of this message type and its arrival time (others are dropped)."""
        deadline = time.monotonic() + timeout
        arrived = self._event()
        while True:
            while self._frames:
                frame, at = self._frames.popleft()
                if isinstance(frame.message, kind):
                    return frame, at
            left = deadline - time.monotonic()
            if left <= 0:
                name = kind.__name__ if isinstance(kind, type) else repr(kind)
                raise AssertionError(f"no {name} within {timeout} s")
            arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(arrived.wait(), left)

    def drain(self) -> None:
        self._frames.clear()
