"""The one shape of every sans-IO machine here (EVSE, EV, the local modem, the hosts).

A machine is driven by three kinds of input, each with the current time ``now`` (seconds,
any monotonic origin): ``receive_frame(frame, now)``, ``handle_timer(now)`` and its own API
calls. Its outputs are pulled, as aioquic's ``QuicConnection`` has them:
:meth:`Machine.frames_to_send`, :meth:`Machine.events` and :attr:`Machine.deadline` (when
``handle_timer`` must be called next). Nothing here awaits, sleeps or reads a clock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Generic, Optional, Protocol, TypeVar, Union

from slac.messages import Frame, Message
from slac.utils import MacAddress

Log = Union[logging.Logger, "logging.LoggerAdapter[logging.Logger]"]
E = TypeVar("E")
M = TypeVar("M", bound=Message)
#: a handler of one message type: (frame, message, now)
FrameHandler = Callable[[Frame, Any, float], None]


@dataclass(frozen=True)
class Outgoing:
    """A message to send to ``dst`` (the driver adds its own MAC as the source)."""

    dst: MacAddress
    message: Message


class Machine(Generic[E]):
    """The outbox every machine shares: frames to send and events, pulled by the driver."""

    def __init__(self) -> None:
        self._outgoing: list[Outgoing] = []
        self._events: list[E] = []

    # --- outputs -----------------------------------------------------------------------------

    def frames_to_send(self) -> list[Outgoing]:
        """The messages to send since the last call, in order."""
        out, self._outgoing = self._outgoing, []
        return out

    def events(self) -> list[E]:
        """The events since the last call, in order."""
        out, self._events = self._events, []
        return out

    @property
    def deadline(self) -> Optional[float]:
        """When :meth:`handle_timer` must be called next (None: no timer runs)."""
        raise NotImplementedError

    # inputs: each machine has its own receive_frame(frame, now), handle_timer(now) and API

    # --- for the machine's own code ----------------------------------------------------------

    def _send(self, dst: MacAddress, message: Message) -> None:
        self._outgoing.append(Outgoing(dst, message))

    def _emit(self, event: E) -> None:
        self._events.append(event)


class AnyMachine(Protocol):
    """What a driver needs of a machine (:class:`slac.driver.Driver` runs any of them)."""

    def receive_frame(self, frame: Frame, now: float) -> object: ...

    def handle_timer(self, now: float) -> None: ...

    def frames_to_send(self) -> list[Outgoing]: ...

    def events(self) -> list[Any]: ...

    @property
    def deadline(self) -> Optional[float]: ...


S = TypeVar("S")


def entry(
    state: S, kind: type[M], handler: Callable[[Frame, M, float], None]
) -> tuple[tuple[S, type], FrameHandler]:
    """One entry of a handler table: (state, message type) and the bound method that takes
    that message. mypy checks that ``handler`` takes a ``kind`` message, so the handler
    needs no ``isinstance`` of its own."""
    return (state, kind), handler


def earliest(*deadlines: Optional[float]) -> Optional[float]:
    """The earliest of some deadlines (None where none is set)."""
    times = [d for d in deadlines if d is not None]
    return min(times) if times else None
