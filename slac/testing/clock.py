"""One test harness for any sans-IO machine: a hand-moved clock, the real codec, a record.

:class:`MachineClock` drives whatever has the shape of :mod:`slac.fsm.base` (an EVSE or EV
matcher, the modem machine, a whole station): it feeds frames through ``to_frame`` and
``decode_frame`` as the socket would, moves the clock from deadline to deadline as the
driver's one timer would, and keeps what came out, in order, with the time it came out.
No sockets, no asyncio, no sleeps. The unit tests' harnesses (tests/unit) are thin
subclasses of it, and :mod:`slac.testing.pair` runs several on one clock.
"""

from __future__ import annotations

from typing import Any, Callable, Generic, Optional, TypeVar

from slac.fsm.base import AnyMachine, Outgoing
from slac.messages import Frame, Message, decode_frame
from slac.utils import MacAddress

MachineT = TypeVar("MachineT", bound=AnyMachine)
T = TypeVar("T")
E = TypeVar("E")


class MachineClock(Generic[MachineT]):
    """A machine, its clock, and everything it sent and reported.

    ``mac`` is the machine's own address (where :meth:`feed` sends by default).
    ``slack``: deadlines up to this much after the target of :meth:`advance_to` still fire
    (for float sums of timer values).
    """

    slack = 0.0

    def __init__(self, machine: MachineT, mac: MacAddress, now: float = 0.0) -> None:
        self.machine = machine
        self.mac = mac
        self.now = now
        #: (time, frame) for every frame the machine sent, in order
        self.sent_at: list[tuple[float, Outgoing]] = []
        #: every event, in order
        self.events: list[Any] = []
        #: (time, frame or event) in order, for checks of when something happened
        self.timeline: list[tuple[float, object]] = []

    # --- inputs -------------------------------------------------------------------------------

    def collect(self) -> None:
        """Take what the machine wants sent and reported (every input below calls this)."""
        sent, events = self.machine.frames_to_send(), self.machine.events()
        self.sent_at.extend((self.now, item) for item in sent)
        self.events.extend(events)
        self.timeline.extend((self.now, item) for item in [*sent, *events])

    def call(self, method: Callable[[float], T]) -> T:
        """An API call of the machine, with ``now``."""
        result = method(self.now)
        self.collect()
        return result

    def feed(
        self, message: Message, src: MacAddress, dst: Optional[MacAddress] = None
    ) -> list[Outgoing]:
        """Deliver a frame now (through the real codec); what the machine sent in answer."""
        return self.feed_bytes(message.to_frame(self.mac if dst is None else dst, src))

    def feed_bytes(self, data: bytes) -> list[Outgoing]:
        """Deliver the bytes of a whole frame now (decoded by the real codec)."""
        return self.feed_frame(decode_frame(data))

    def feed_frame(self, frame: Frame) -> list[Outgoing]:
        before = len(self.sent_at)
        self.machine.receive_frame(frame, self.now)
        self.collect()
        return [item for _, item in self.sent_at[before:]]

    def advance(self, seconds: float) -> list[Outgoing]:
        """Move the clock by ``seconds``, firing every deadline on the way, in order."""
        return self.advance_to(self.now + seconds)

    def advance_to(self, target: float) -> list[Outgoing]:
        before = len(self.sent_at)
        while True:
            deadline = self.machine.deadline
            if deadline is None or deadline > target + self.slack:
                break
            self.now = max(self.now, deadline)
            self.machine.handle_timer(self.now)
            self.collect()
        self.now = target
        return [item for _, item in self.sent_at[before:]]

    # --- what came out ------------------------------------------------------------------------

    def events_of(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def sent_of(self, kind: type, dst: Optional[MacAddress] = None) -> list[Outgoing]:
        return [
            o
            for _, o in self.sent_at
            if isinstance(o.message, kind) and (dst is None or o.dst == dst)
        ]

    def when(self, kind: type, dst: Optional[MacAddress] = None) -> list[float]:
        """When each frame (by message type, to ``dst``) or event of this type came out."""
        times = []
        for at, item in self.timeline:
            if isinstance(item, Outgoing):
                if isinstance(item.message, kind) and (dst is None or item.dst == dst):
                    times.append(at)
            elif isinstance(item, kind):
                times.append(at)
        return times
