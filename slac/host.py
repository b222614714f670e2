"""A host attached to its GreenPHY modem: the raw socket, frame dispatch, one timer, and the
requests a host makes to its own modem (CM_SET_KEY, VS_PL_LINK_STATUS).

EVSE and EV sessions each own one :class:`ModemHost`; their state machines see only the
frames that are not answers to the host's own modem requests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Optional, Union

from slac.enums import PLC_LOCAL_MAC
from slac.errors import DecodeError, ModemError, ModemTimeoutError
from slac.messages import (
    Frame,
    Message,
    SetKeyCnf,
    SetKeyReq,
    VsPlLinkStatusCnf,
    VsPlLinkStatusReq,
    decode_frame,
)
from slac.sockets.async_linux_socket import RawSocket
from slac.utils import MacAddress

Log = Union[logging.Logger, "logging.LoggerAdapter[Any]"]
FrameObserver = Callable[[bytes, float, bool], None]


class ModemHost:
    """The I/O of one host on one interface (open it inside a running event loop)."""

    def __init__(
        self,
        interface: str,
        on_frame: Callable[[Frame, float], None],
        log: Log,
        *,
        sudo_hint: str = "`make run-local-sudo-single`",
        netns: Optional[str] = None,
    ) -> None:
        self.interface = interface
        self.log = log
        self.socket = RawSocket(interface, sudo_hint=sudo_hint, netns=netns)
        self.mac: Optional[MacAddress] = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._on_frame_cb = on_frame
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_deadline: Optional[float] = None
        self._set_key_waiter: Optional[asyncio.Future[SetKeyCnf]] = None
        self._link_waiter: Optional[asyncio.Future[VsPlLinkStatusCnf]] = None
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
        message = frame.message
        if isinstance(message, SetKeyCnf):
            if self._set_key_waiter is not None and not self._set_key_waiter.done():
                self._set_key_waiter.set_result(message)
            else:
                self.log.debug("unexpected CM_SET_KEY.CNF ignored")
            return
        if isinstance(message, VsPlLinkStatusCnf):
            if self._link_waiter is not None and not self._link_waiter.done():
                self._link_waiter.set_result(message)
            return
        self._on_frame_cb(frame, now)

    # --- the one timer ----------------------------------------------------------------------

    def arm_timer(self, deadline: Optional[float], callback: Callable[[], None]) -> None:
        """Call ``callback`` at ``deadline`` (loop time); None cancels. Re-arming is cheap."""
        if deadline == self._timer_deadline:
            return
        self.cancel_timer()
        if deadline is not None and self.loop is not None:
            self._timer = self.loop.call_at(deadline, self._fire, callback)
            self._timer_deadline = deadline

    def _fire(self, callback: Callable[[], None]) -> None:
        self._timer = None
        self._timer_deadline = None
        callback()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_deadline = None

    # --- requests to the local modem ----------------------------------------------------------

    async def set_modem_key(
        self,
        nmk: bytes,
        nid: bytes,
        *,
        timeout: float,
        retries: int,
        accepted: tuple[int, ...],
    ) -> None:
        """CM_SET_KEY.REQ to the local modem until it confirms.

        The wait doubles at each resend. Raises :class:`ModemTimeoutError` without an answer
        and :class:`ModemError` when the Result is not in ``accepted``.
        """
        self.open()
        assert self.loop is not None
        assert self.mac is not None
        frame = SetKeyReq(nid=nid, new_key=nmk).to_frame(PLC_LOCAL_MAC, self.mac)
        attempts = 1 + retries
        waited = 0.0
        cnf: Optional[SetKeyCnf] = None
        for attempt in range(1, attempts + 1):
            waiter: asyncio.Future[SetKeyCnf] = self.loop.create_future()
            self._set_key_waiter = waiter
            self.send_frame(frame)
            try:
                cnf = await asyncio.wait_for(waiter, timeout)
                break
            except asyncio.TimeoutError:
                waited += timeout
                self.log.warning(
                    "no CM_SET_KEY.CNF from the modem within %.1f s (attempt %d/%d)",
                    timeout,
                    attempt,
                    attempts,
                )
                timeout *= 2
            finally:
                self._set_key_waiter = None
        if cnf is None:
            raise ModemTimeoutError(
                f"the modem on {self.interface} did not answer CM_SET_KEY.REQ "
                f"({attempts} attempts, {waited:.1f} s); check that the GreenPHY modem is "
                "connected and powered"
            )
        if cnf.result not in accepted:
            ok = ", ".join(str(v) for v in accepted)
            raise ModemError(
                f"the modem on {self.interface} refused the key: CM_SET_KEY.CNF "
                f"Result {cnf.result} (accepted: {ok}; set SET_KEY_RESULT_OK if "
                "this modem reports success differently)"
            )

    async def link_status(self, timeout: float) -> Optional[bool]:
        """Ask the local modem (VS_PL_LINK_STATUS) whether it is in a logical network.

        None when it does not answer within ``timeout``.
        """
        self.open()
        assert self.loop is not None
        waiter: asyncio.Future[VsPlLinkStatusCnf] = self.loop.create_future()
        self._link_waiter = waiter
        try:
            self.send(VsPlLinkStatusReq(), PLC_LOCAL_MAC)
            cnf = await asyncio.wait_for(waiter, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._link_waiter = None
        return cnf.linked
