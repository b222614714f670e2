"""A host attached to its GreenPHY modem: the raw socket, frame dispatch and one timer.

EVSE and EV sessions each own one :class:`ModemHost`. The modem's answers to the host's own
requests (CM_SET_KEY.CNF, VS_PL_LINK_STATUS.CNF) go to ``on_modem_answer`` (the driver's
:class:`~slac.fsm.modem.ModemMachine`), never to the matcher; every other frame goes to
``on_frame``. What the requests mean (retries, waits, results) is decided in
:mod:`slac.fsm.modem`, not here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional, Union

from slac.errors import DecodeError
from slac.fsm.modem import MODEM_ANSWERS, KeyNotSet, KeySet, ModemMachine, ModemSettings
from slac.messages import Frame, Message, decode_frame
from slac.sockets.async_linux_socket import RawSocket
from slac.utils import MacAddress

Log = Union[logging.Logger, "logging.LoggerAdapter[Any]"]
FrameObserver = Callable[[bytes, float, bool], None]
FrameHandler = Callable[[Frame, float], None]


class ModemHost:
    """The I/O of one host on one interface (open it inside a running event loop)."""

    def __init__(
        self,
        interface: str,
        on_frame: FrameHandler,
        log: Log,
        *,
        on_modem_answer: Optional[FrameHandler] = None,
        sudo_hint: Optional[str] = None,
        netns: Optional[str] = None,
    ) -> None:
        self.interface = interface
        self.log = log
        self.socket = RawSocket(interface, sudo_hint=sudo_hint, netns=netns)
        self.mac: Optional[MacAddress] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._on_frame_cb = on_frame
        #: where the modem's answers go (a driver's ModemMachine); None: dropped (DEBUG)
        self.on_modem_answer = on_modem_answer
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_deadline: Optional[float] = None
        self._timer_callback: Optional[Callable[[], None]] = None
        #: the machine of a running :meth:`set_modem_key` call, and how to pump it
        self._helper: Optional[tuple[ModemMachine, FrameHandler]] = None
        #: Called with (frame bytes, loop time, sent?) for every frame in and out.
        self.observers: list[FrameObserver] = []

    # --- life cycle -----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.socket.is_open

    def open(self) -> None:
        if self.socket.is_open:
            return
        self.loop = asyncio.get_running_loop()
        self.socket.open(self.loop)
        self.socket.set_callback(self._on_raw_frame)
        self.mac = self.socket.mac

    def close(self) -> None:
        self.cancel_timer()
        self.socket.close()

    def now(self) -> float:
        return (self.loop or asyncio.get_running_loop()).time()

    # --- frames -------------------------------------------------------------------------------

    def send(self, message: Message, dst: bytes) -> None:
        assert self.mac is not None, "open() first"
        self.send_frame(message.to_frame(dst, self.mac))

    def send_frame(self, frame: bytes) -> None:
        self.socket.send(frame)
        if self.observers:
            now = self.now()
            for observer in self.observers:
                observer(frame, now, True)

    def _on_raw_frame(self, data: bytes, now: float) -> None:
        for observer in self.observers:
            observer(data, now, False)
        if data[0:6] != self.mac and not data[0] & 0x01:
            return  # another station's unicast (promiscuous interface): not even decoded
        try:
            frame = decode_frame(data)
        except DecodeError as exc:
            self.log.debug("undecodable frame ignored: %s", exc)
            return
        if self._timer_deadline is not None and now >= self._timer_deadline:
            # The machine's deadline came before this frame did (the loop reads the socket
            # before it runs due timers): what the deadline ends must end first, or a frame
            # that arrived too late would count as if it had been in time.
            self._fire_now()
        if isinstance(frame.message, MODEM_ANSWERS):
            if self._helper is not None:
                self._helper[1](frame, now)
            elif self.on_modem_answer is not None:
                self.on_modem_answer(frame, now)
            else:
                self.log.debug("%s ignored: no request is waiting", frame.message.name)
            return
        self._on_frame_cb(frame, now)

    # --- the one timer ----------------------------------------------------------------------

    def arm_timer(self, deadline: Optional[float], callback: Callable[[], None]) -> None:
        """Call ``callback`` at ``deadline`` (loop time); None cancels. Re-arming is cheap."""
        if deadline == self._timer_deadline:
            return
        self.cancel_timer()
        if deadline is not None and self.loop is not None:
            self._timer = self.loop.call_at(deadline, self._fire_now)
            self._timer_deadline = deadline
            self._timer_callback = callback

    def _fire_now(self) -> None:
        callback = self._timer_callback
        self.cancel_timer()
        if callback is not None:
            callback()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = None
        self._timer_callback = None

    # --- a request to the local modem, for drivers without a ModemMachine -------------------

    async def set_modem_key(
        self,
        nmk: bytes,
        nid: bytes,
        *,
        timeout: float,
        retries: int,
        accepted: tuple[int, ...],
    ) -> None:
        """CM_SET_KEY.REQ to the local modem until it confirms (a :class:`ModemMachine`
        driven for this one call, with a timer of its own).

        The wait doubles at each resend. Raises :class:`~slac.errors.ModemTimeoutError`
        without an answer and :class:`~slac.errors.ModemError` when the Result is not in
        ``accepted``.
        """
        self.open()
        loop, mac = self.loop, self.mac
        assert loop is not None and mac is not None
        machine = ModemMachine(mac, ModemSettings(timeout, retries, accepted), log=self.log)
        done: asyncio.Future[Union[KeySet, KeyNotSet]] = loop.create_future()
        timer: Optional[asyncio.TimerHandle] = None

        def pump() -> None:
            nonlocal timer
            try:
                for item in machine.frames_to_send():
                    self.send(item.message, item.dst)
            except OSError as exc:
                if not done.done():
                    done.set_exception(exc)
                return
            for event in machine.events():
                if isinstance(event, (KeySet, KeyNotSet)) and not done.done():
                    done.set_result(event)
            if timer is not None:
                timer.cancel()
            deadline = machine.deadline
            timer = None if deadline is None else loop.call_at(deadline, on_timer)

        def on_timer() -> None:
            machine.handle_timer(loop.time())
            pump()

        def on_answer(frame: Frame, now: float) -> None:
            machine.receive_frame(frame, now)
            pump()

        self._helper = (machine, on_answer)
        try:
            machine.set_key(nmk, nid, loop.time())
            pump()
            outcome = await done
        finally:
            self._helper = None
            if timer is not None:
                timer.cancel()
        if isinstance(outcome, KeyNotSet):
            raise outcome.error(self.interface)
