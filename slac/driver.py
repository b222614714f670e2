"""The one asyncio driver: any sans-IO machine over a :class:`~slac.host.ModemHost`.

Like aioquic's ``asyncio/protocol.py`` around ``QuicConnection``, :class:`Driver` decides
nothing: a decoded frame goes to ``machine.receive_frame(frame, now)``, the one timer to
``machine.handle_timer(now)``, an API call to the machine with ``now``; after each, it sends
``machine.frames_to_send()``, hands ``machine.events()`` to the session, and re-arms the
host's timer at ``machine.deadline``. EVSE (:class:`~slac.fsm.station.EvseStation`) and EV
(:class:`~slac.fsm.station.EvStation`) run on the same driver.

:class:`DrivenSession` is what both sessions (:class:`slac.session.SlacEvseSession`,
:class:`slac.ev.SlacEvSession`) share on top: the driver's life cycle, the state mirrored
from :class:`~slac.fsm.events.StateChanged` events, waiting for an event, and the queue of
events a task reads (:meth:`DrivenSession.next_event`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Callable, Generic, Optional, TypeVar

from slac.errors import TransportError, UsageError
from slac.fsm.base import AnyMachine
from slac.fsm.events import KeyNotSet, SessionState, SlacEvent, StateChanged
from slac.host import ModemHost
from slac.messages import Frame
from slac.utils import MacAddress

T = TypeVar("T")
MachineT = TypeVar("MachineT", bound=AnyMachine)
EventHandler = Callable[[Any], None]
ErrorHandler = Callable[[Exception], None]


class Driver(Generic[MachineT]):
    """Runs ``machine`` over ``host``: frames and timer in, frames, events and timer out."""

    def __init__(
        self, host: ModemHost, machine: MachineT, on_event: EventHandler, on_error: ErrorHandler
    ) -> None:
        self.host = host
        self.machine = machine
        self._on_event = on_event
        self._on_error = on_error
        host.on_frame = self._on_frame

    def now(self) -> float:
        return self.host.now()

    def call(self, method: Callable[[float], T]) -> T:
        """Call the machine's API with ``now``, then send and report what it asks."""
        result = method(self.host.now())
        self.flush()
        return result

    def flush(self) -> None:
        machine = self.machine
        for item in machine.frames_to_send():
            self.host.send(item.message, item.dst)
        for event in machine.events():
            self._on_event(event)
        self.host.arm_timer(machine.deadline, self._on_timer)

    def _on_frame(self, frame: Frame, now: float) -> None:
        try:
            self.machine.receive_frame(frame, now)
            self.flush()
        except Exception as exc:  # a bug must end the task loudly, not vanish in a callback
            self._on_error(exc)

    def _on_timer(self) -> None:
        try:
            self.machine.handle_timer(self.host.now())
            self.flush()
        except Exception as exc:
            self._on_error(exc)


class _Waiter:
    def __init__(self, kinds: tuple[type, ...], future: asyncio.Future[Any]) -> None:
        self.kinds = kinds
        self.future = future


class DrivenSession(Generic[MachineT]):
    """What the EVSE and the EV session share: a host, a driver, events, the state.

    Subclasses create the machine in :meth:`_new_machine` (once the interface's MAC is
    known) and name the events their task reads in ``TASK_EVENTS``.
    """

    #: the events :meth:`next_event` returns (the others are for waiters and the log)
    TASK_EVENTS: tuple[type, ...] = ()

    host: ModemHost
    network_interface: str
    state: SessionState
    ev_mac: Optional[MacAddress]
    run_id: Optional[bytes]

    def _init_driver(self) -> None:
        self.driver: Optional[Driver[MachineT]] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._queue: Optional[asyncio.Queue[Any]] = None
        self._waiters: list[_Waiter] = []
        self._changed: Optional[asyncio.Event] = None

    # --- to override -----------------------------------------------------------------------

    def _new_machine(self, mac: MacAddress) -> MachineT:
        raise NotImplementedError

    def _state_changed(self, event: StateChanged, changed: bool) -> None:
        """The mirrored state changed (``changed``: the state itself, not only the EV)."""

    # --- life cycle ------------------------------------------------------------------------

    @property
    def machine(self) -> Optional[MachineT]:
        return None if self.driver is None else self.driver.machine

    def _open_driver(self) -> Driver[MachineT]:
        """Open the host (idempotent) and make the driver (again when the MAC changed)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._queue = asyncio.Queue()
            self._changed = asyncio.Event()
        self.host.open()
        mac = self.host.mac
        assert mac is not None
        if self.driver is None or getattr(self.driver.machine, "host_mac", mac) != mac:
            # a new interface, or the interface was created again with another MAC
            self.driver = Driver(self.host, self._new_machine(mac), self._on_event, self._broken)
        return self.driver

    def _need_driver(self) -> Driver[MachineT]:
        if self.driver is None or self._loop is None:
            raise UsageError("open() the session first")
        return self.driver

    def _close_driver(self, reason: str) -> None:
        self._fail_waiters(TransportError(reason))
        self.host.close()

    # --- events ----------------------------------------------------------------------------

    def _on_event(self, event: SlacEvent) -> None:
        if isinstance(event, StateChanged):
            changed = event.state is not self.state
            self.state, self.ev_mac, self.run_id = event.state, event.ev_mac, event.run_id
            if self._changed is not None:
                self._changed.set()
            self._state_changed(event, changed)
        if isinstance(event, self.TASK_EVENTS) and self._queue is not None:
            self._queue.put_nowait(event)
        for waiter in self._waiters:
            if isinstance(event, waiter.kinds) and not waiter.future.done():
                waiter.future.set_result(event)

    def _broken(self, exc: Exception) -> None:
        """Frame handling failed (the interface, or a bug): whoever waits hears of it."""
        self._fail_waiters(exc)
        if self._queue is not None:
            self._queue.put_nowait(exc)

    def _fail_waiters(self, exc: BaseException) -> None:
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(exc)

    def _drain(self) -> None:
        """Forget the events queued so far (a new task starts reading)."""
        if self._queue is not None:
            while not self._queue.empty():
                self._queue.get_nowait()

    def expect(self, kinds: Iterable[type]) -> asyncio.Future[Any]:
        """A future for the next event of one of ``kinds`` (registered at once: an event
        that a call made right after this emits is caught). Cancel it when no longer
        needed."""
        if self._loop is None:
            raise UsageError("open() the session first")
        waiter = _Waiter(tuple(kinds), self._loop.create_future())
        self._waiters.append(waiter)
        waiter.future.add_done_callback(lambda _: self._waiters.remove(waiter))
        return waiter.future

    async def _call_and_wait(
        self,
        call: Callable[[float], object],
        kinds: Iterable[type],
        timeout: Optional[float] = None,
    ) -> Any:
        """Call the machine, then wait for its first event of one of ``kinds``."""
        driver = self._need_driver()
        future = self.expect(kinds)
        try:
            driver.call(call)
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            future.cancel()

    async def open(self) -> None:
        raise NotImplementedError

    async def _modem_call(self, call: Callable[[MachineT, float], object], until: type) -> Any:
        """Open, make a request of the machine's modem, and wait for ``until``; the modem's
        error (:class:`~slac.errors.ModemError`) when it did not take a key."""
        await self.open()
        machine = self.machine
        assert machine is not None
        outcome = await self._call_and_wait(lambda now: call(machine, now), (until, KeyNotSet))
        if isinstance(outcome, KeyNotSet):
            raise outcome.error(self.network_interface)
        return outcome

    async def wait_for(self, kinds: Iterable[type], timeout: Optional[float] = None) -> Any:
        """The next event of one of ``kinds`` (asyncio.TimeoutError after ``timeout``)."""
        return await self._call_and_wait(lambda now: None, kinds, timeout=timeout)

    async def next_event(self, timeout: Optional[float] = None) -> Optional[SlacEvent]:
        """The next event for the matching task (``TASK_EVENTS``); None after ``timeout``
        seconds without one. Raises what broke the frame handling, if anything did."""
        if self._queue is None:
            raise UsageError("open() the session first")
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        event: SlacEvent = item
        return event
