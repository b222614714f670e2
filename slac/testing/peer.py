"""A scripted peer for integration tests: plays the EVSE's modem and an EV over a veth pair.

It sits on the far end of the EVSE's interface, in its own network namespace, with a raw
socket of its own. As the modem it answers CM_SET_KEY.REQ to 00:B0:52:00:00:01 (and, when
told to, VS_PL_LINK_STATUS.REQ) and sends a CM_ATTEN_PROFILE.IND after every sound it sends
as the EV. As the EV it runs the SLAC
sequence and checks every answer it gets.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

from slac.enums import PLC_LOCAL_MAC
from slac.messages import (
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Frame,
    Message,
    MnbcSoundInd,
    SetKeyCnf,
    SetKeyReq,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    VsPlLinkStatusCnf,
    VsPlLinkStatusReq,
    decode_frame,
)
from slac.testing.inbox import Inbox
from slac.testing.netns import Netns
from slac.testing.wire import open_station_socket, received_frames
from slac.utils import MacAddress

BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")
MODEM_MAC = MacAddress("00:b0:52:12:34:56")


@dataclass
class EvOutcome:
    """What the scripted EV saw, with the timings in seconds: the time a request was sent
    (taken just before the send call) to the kernel's receive timestamp of the answer."""

    parm_cnf: Optional[SlacParmCnf] = None
    atten_char: Optional[AttenCharInd] = None
    match_cnf: Optional[SlacMatchCnf] = None
    evse_mac: Optional[MacAddress] = None
    parm_cnf_after: float = 0.0
    atten_char_after_last_sound: float = 0.0
    match_cnf_after: float = 0.0
    parm_req_to_match_cnf: float = 0.0
    atten_char_count: int = 0


@dataclass
class ModemBehaviour:
    """How the scripted modem answers CM_SET_KEY.REQ and VS_PL_LINK_STATUS.REQ."""

    answer_set_key: bool = True
    result: int = 0x01
    delay: float = 0.0
    keys: list[bytes] = field(default_factory=list)
    #: LINKSTATUS of the answer to VS_PL_LINK_STATUS.REQ (1 linked, 0 not); None: silent
    link_status: Optional[int] = None
    link_polls: int = 0


class ScriptedPeer:
    """The far end of a veth pair: the EVSE's modem and one EV."""

    def __init__(self, netns: Netns, interface: str, ev_mac: MacAddress) -> None:
        self.netns = netns
        self.interface = interface
        self.ev_mac = ev_mac
        self.modem = ModemBehaviour()
        self._sock: Optional[socket.socket] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self.inbox = Inbox()
        #: the last frames sent and received (bounded: soaks run for thousands of matches)
        self.log: collections.deque[tuple[float, str, bytes]] = collections.deque(maxlen=200)

    async def start(self) -> ScriptedPeer:
        self._sock = open_station_socket(self.netns, self.interface)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)
        return self

    def close(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    # --- wire -----------------------------------------------------------------------------------

    def send(self, message: Message, dst: MacAddress, src: Optional[MacAddress] = None) -> None:
        assert self._sock is not None
        frame = message.to_frame(dst, src or self.ev_mac)
        self._sock.send(frame)
        self.log.append((time.time(), "tx", frame))

    def _readable(self) -> None:
        assert self._sock is not None
        for data, now in received_frames(self._sock):
            try:
                frame = decode_frame(data)
            except Exception:
                continue
            self.log.append((now, "rx", data))
            if isinstance(frame.message, SetKeyReq) and frame.dst == PLC_LOCAL_MAC:
                self._answer_set_key(frame)
                continue
            if isinstance(frame.message, VsPlLinkStatusReq) and frame.dst == PLC_LOCAL_MAC:
                self.modem.link_polls += 1
                if self.modem.link_status is not None:
                    cnf = VsPlLinkStatusCnf(link_status=self.modem.link_status)
                    self.send(cnf, frame.src, MODEM_MAC)
                continue
            if frame.dst != self.ev_mac and not frame.dst.is_multicast:
                continue  # to another station (forged ones, in the flood tests)
            self.inbox.put(frame, now)

    def _answer_set_key(self, frame: Frame) -> None:
        assert isinstance(frame.message, SetKeyReq)
        assert self._loop is not None
        if not self.modem.answer_set_key:
            return
        self.modem.keys.append(frame.message.new_key)
        cnf = SetKeyCnf(result=self.modem.result)
        if self.modem.delay:
            self._loop.call_later(self.modem.delay, self.send, cnf, frame.src, MODEM_MAC)
        else:
            self.send(cnf, frame.src, MODEM_MAC)

    async def expect(
        self, kind: Union[type, tuple[type, ...]], timeout: float = 2.0
    ) -> tuple[Frame, float]:
        """The next received frame of this message type (others are dropped)."""
        return await self.inbox.expect(kind, timeout)

    def drain(self) -> None:
        self.inbox.drain()

    # --- the EV ---------------------------------------------------------------------------------

    async def _expect_parm_cnf(self, run_id: bytes, until: float) -> tuple[Frame, float]:
        """The next CM_SLAC_PARM.CNF for this RunID; confirmations of an earlier run (the
        EVSE answers each CM_START_ATTEN_CHAR.IND with its run's CNF) are skipped, as an EV
        ignores a CNF whose RunID is not its run's."""
        while True:
            frame, at = await self.expect(SlacParmCnf, timeout=max(until - time.time(), 0.0))
            message = frame.message
            if not isinstance(message, SlacParmCnf) or message.run_id == run_id:
                return frame, at

    async def run_ev(
        self,
        run_id: bytes,
        attenuations: Sequence[int] = (20,) * 58,
        sounds: int = 10,
        interval: float = 0.02,
        parm_tries: int = 10,
        rsp: bool = True,
    ) -> EvOutcome:
        """The whole EV sequence; every answer is checked; raises AssertionError on a fault."""
        out = EvOutcome()
        ev = self.ev_mac
        self.drain()
        first_parm = time.time()
        answer: Optional[tuple[Frame, float]] = None
        for _ in range(parm_tries):
            sent = time.time()
            self.send(SlacParmReq(run_id=run_id), BROADCAST)
            try:
                answer = await self._expect_parm_cnf(run_id, sent + 0.3)
                break
            except AssertionError:
                continue
        if answer is None:
            raise AssertionError(f"no CM_SLAC_PARM.CNF after {parm_tries} requests")
        frame, at = answer
        cnf = frame.message
        assert isinstance(cnf, SlacParmCnf)
        assert frame.dst == ev, "CM_SLAC_PARM.CNF must be unicast to the EV"
        assert cnf.run_id == run_id
        assert (cnf.num_sounds, cnf.time_out, cnf.resp_type) == (10, 6, 1)
        assert cnf.forwarding_sta == ev
        assert cnf.msound_target == BROADCAST
        out.parm_cnf, out.evse_mac = cnf, frame.src
        out.parm_cnf_after = at - sent
        evse = frame.src

        for _ in range(3):
            self.send(
                StartAttenCharInd(forwarding_sta=ev, run_id=run_id, num_sounds=sounds), BROADCAST
            )
        last_sound = 0.0
        for i in range(sounds):
            await asyncio.sleep(interval)
            self.send(MnbcSoundInd(remaining_sounds=sounds - 1 - i, run_id=run_id), BROADCAST)
            last_sound = time.time()  # the last sound's profile follows at once
            self.send(AttenProfileInd(pev_mac=ev, aag=tuple(attenuations)), evse, MODEM_MAC)
        frame, at = await self.expect(AttenCharInd, timeout=2.0)
        ind = frame.message
        assert isinstance(ind, AttenCharInd)
        assert frame.dst == ev
        assert frame.src == evse
        assert ind.run_id == run_id
        assert ind.source_address == ev
        assert ind.num_sounds == sounds
        assert ind.aag == tuple(attenuations)
        out.atten_char, out.atten_char_after_last_sound = ind, at - last_sound
        out.atten_char_count = 1
        if rsp:
            self.send(AttenCharRsp(source_address=ev, run_id=run_id), evse)

        sent = time.time()
        self.send(SlacMatchReq(pev_mac=ev, evse_mac=evse, run_id=run_id), evse)
        while True:
            frame, at = await self.expect((SlacMatchCnf, AttenCharInd), timeout=2.0)
            if isinstance(frame.message, AttenCharInd):
                out.atten_char_count += 1
                continue
            break
        match = frame.message
        assert isinstance(match, SlacMatchCnf)
        assert frame.dst == ev, "CM_SLAC_MATCH.CNF must be unicast to the EV"
        assert (match.pev_mac, match.evse_mac, match.run_id) == (ev, evse, run_id)
        out.match_cnf = match
        out.match_cnf_after = at - sent
        out.parm_req_to_match_cnf = at - first_parm
        return out
