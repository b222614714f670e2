"""A host attached to its GreenPHY modem: the raw socket, decoding, and one timer.

EVSE and EV sessions each own one :class:`ModemHost`, run by a :class:`slac.driver.Driver`.
It moves bytes only: every frame for this host (unicast to it, or multicast) is decoded and
handed to ``on_frame``; undecodable ones are dropped (DEBUG). Which machine a frame is for
(the modem's answers go to the modem machine) is decided in :mod:`slac.fsm.station`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional, Union

from slac.errors import DecodeError
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
        sudo_hint: Optional[str] = None,
        netns: Optional[str] = None,
    ) -> None:
        self.interface = interface
        self.log = log
        self.socket = RawSocket(interface, sudo_hint=sudo_hint, netns=netns)
        self.mac: Optional[MacAddress] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        #: where every decoded frame goes (the driver)
        self.on_frame = on_frame
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_deadline: Optional[float] = None
        self._timer_callback: Optional[Callable[[], None]] = None
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
        self.on_frame(frame, now)

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
