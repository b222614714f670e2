"""Replay SLAC captured in the field over a veth pair: a real car into our EVSE, a real charger
into our EV. Timing is the recorded one, kept causal: a frame that in the recording followed
an answer of the other side is sent only after our side's answer, with the recorded delay."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from slac.config import MatchingConfig
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
    decode_frame,
)
from slac.testing.inbox import Inbox
from slac.testing.netns import Netns
from slac.testing.wire import open_station_socket, received_frames
from slac.tools.analyze import Session, analyze_file
from slac.utils import MacAddress

from .conftest import CAPTURES

MODEM = MacAddress("00:b0:52:ee:ee:01")

#: Captures where the real side is the car (the EV), per the corpus' README.
CAR_CAPTURES = [
    "2023-04-16_at_home_Ioniq_in_currentDemandLoop",
    "2023-04-24_atHome_Ioniq_without_and_with_60W_bulbs",
    "2023-04-26_atHome_IoniqWithBulbs10minutesTimeout",
    "2023-05-24_pyPlc_with_Ioniq93prcSoc",
    "2026-02-03_pyPLC_FoccciCape_with_Ioniq_runs_10_minutes",
    "2024-04-20_ModelY_pyPLC_stop_in_precharge",
    "2024-06-11_Griffigroen_polestar2_stop_in_precharge",
    "spi_ioniq_alpiHYC150_makerspace_landsberg_left_small_2024-04-03_ok",
]
#: Captures where the real side is the charger (the EVSE).
CHARGER_CAPTURES = [
    "2022-11-17_Dehner_Alpitronic_until_SdpRequest",
    "2022-11-25_v0.2_alpi_SDP_ok_TCP_fail",
    "2023-04-19_westparkAlpi_pyPlc_lightbulb_1fail_1ok",
    "2022-11-25_v0.2_ABB_until_ChargeParamDiscovery",
    "2022-12-13_compleo_with_bulb",
    "2022-12-13_compleo_powerdelivery230_no_load",
    "2023-04-19_compleo_pyPlc_lightbulb_failedBadRegulation",
    "spi_ioniq_alpiHYC150_makerspace_landsberg_left_small_2024-04-03_ok",
]


def capture_path(name: str) -> Path:
    return CAPTURES / f"{name}.slac.pcapng"


def matched_sessions(name: str) -> list[Session]:
    return [s for s in analyze_file(capture_path(name)).sessions if s.outcome == "matched"]


class Wire:
    """A raw socket on the far end of a veth pair (inside a namespace), for replays."""

    def __init__(self, netns: Netns, interface: str) -> None:
        self.netns = netns
        self.interface = interface
        self._sock: Optional[socket.socket] = None
        self.inbox = Inbox()
        self.set_keys: list[bytes] = []

    async def start(self) -> Wire:
        self._sock = open_station_socket(self.netns, self.interface)
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)
        return self

    def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def send(self, message: Message, dst: bytes, src: bytes) -> None:
        assert self._sock is not None
        self._sock.send(message.to_frame(dst, src))

    def _readable(self) -> None:
        assert self._sock is not None
        for data, _ in received_frames(self._sock):  # timed by the loop's clock, not the kernel's
            frame = decode_frame(data)
            if isinstance(frame.message, SetKeyReq) and frame.dst == PLC_LOCAL_MAC:
                self.set_keys.append(frame.message.new_key)
                self.send(SetKeyCnf(result=1), frame.src, MODEM)
                continue
            self.inbox.put(frame, time.monotonic())

    async def expect(self, kind: type, timeout: float) -> tuple[float, Frame]:
        """(arrival time, frame) of the next frame of this message type."""
        frame, at = await self.inbox.expect(kind, timeout)
        return at, frame

    def drain(self) -> None:
        self.inbox.drain()


@dataclass
class CarReplayResult:
    parm_cnf: SlacParmCnf
    atten_char: AttenCharInd
    match_cnf: SlacMatchCnf
    expected_aag: tuple[int, ...]
    expected_sounds: int
    profiles_sent: int = 0
    notes: list[str] = field(default_factory=list)


async def sleep_until(at: float) -> None:
    delay = at - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def _rounded_mean(values: list[int]) -> int:
    return (2 * sum(values) + len(values)) // (2 * len(values))


async def replay_car(wire: Wire, session: Session, evse_mac: MacAddress) -> CarReplayResult:
    """Play the car's side of one recorded session (and the EVSE modem's profiles) to our EVSE.

    Where the recording has no profiles (sniffed on the car's side), one profile per sound is
    made from the recorded charger's CM_ATTEN_CHAR.IND values.
    """
    recorded_evse = {bytes(MacAddress(m)) for m in session.evse_macs}
    car = MacAddress(session.ev_mac)
    frames = session.frames
    profiles = [(t, f) for t, f in frames if isinstance(f.message, AttenProfileInd)]
    synthetic: Optional[AttenProfileInd] = None
    if not profiles:
        recorded_ind = next(f.message for _, f in frames if isinstance(f.message, AttenCharInd))
        assert isinstance(recorded_ind, AttenCharInd)
        synthetic = AttenProfileInd(pev_mac=car, aag=recorded_ind.aag)

    def retarget(frame: Frame) -> tuple[Message, bytes, bytes]:
        message = frame.message
        assert isinstance(message, Message)
        dst = bytes(frame.dst)
        if dst in recorded_evse or (isinstance(message, AttenProfileInd) and dst[0] & 1 == 0):
            dst = bytes(evse_mac)
        if isinstance(message, SlacMatchReq):
            message = replace(message, evse_mac=evse_mac)
        if isinstance(message, AttenProfileInd):
            # the modem that answers our CM_SET_KEY.REQ stands in for the recorded EVSE's
            # modem: our EVSE takes profiles from its own modem only
            return message, dst, bytes(MODEM)
        return message, dst, bytes(frame.src)

    recorded_anchor = {
        kind: next((t for t, f in frames if isinstance(f.message, kind)), None)
        for kind in (SlacParmCnf, AttenCharInd)
    }
    our: dict[type, tuple[float, Frame]] = {}
    base_recorded = session.start
    base_now = time.monotonic()
    wire.drain()
    sent_profiles = 0
    aag_values: list[tuple[int, ...]] = []
    for t, frame in frames:
        message = frame.message
        if isinstance(message, (SlacParmCnf, AttenCharInd, SlacMatchCnf)):
            continue  # the recorded EVSE's answers: ours take their place
        if not isinstance(
            message,
            (
                SlacParmReq,
                StartAttenCharInd,
                MnbcSoundInd,
                AttenProfileInd,
                AttenCharRsp,
                SlacMatchReq,
            ),
        ):
            continue
        # frames after the recorded answer wait for ours, keeping the recorded delay
        for kind in (SlacParmCnf, AttenCharInd):
            anchor = recorded_anchor[kind]
            if anchor is not None and t >= anchor and kind not in our:
                if isinstance(message, SlacParmReq):
                    break  # a repeated request: send it anyway
                our[kind] = await wire.expect(kind, 3.0)
                base_recorded, base_now = anchor, our[kind][0]
        await sleep_until(base_now + (t - base_recorded))
        out, dst, src = retarget(frame)
        if isinstance(out, AttenProfileInd):
            sent_profiles += 1
            aag_values.append(out.aag)
        wire.send(out, dst, src)
        if isinstance(out, MnbcSoundInd) and synthetic is not None:
            wire.send(synthetic, bytes(evse_mac), bytes(MODEM))
            sent_profiles += 1
            aag_values.append(synthetic.aag)
    if SlacParmCnf not in our:
        our[SlacParmCnf] = await wire.expect(SlacParmCnf, 3.0)
    if AttenCharInd not in our:
        our[AttenCharInd] = await wire.expect(AttenCharInd, 3.0)
    our[SlacMatchCnf] = await wire.expect(SlacMatchCnf, 3.0)
    with_values = [a for a in aag_values if a]
    # recorded profiles without values (NumGroups 0, older QCA firmware): the EVSE sends
    # EMPTY_PROFILE_ATTENUATION in every group, never an all-zero CM_ATTEN_CHAR.IND
    expected = (
        tuple(_rounded_mean([a[g] for a in with_values]) for g in range(58))
        if with_values
        else (round(MatchingConfig().empty_profile_attenuation),) * 58
    )
    parm = our[SlacParmCnf][1].message
    ind = our[AttenCharInd][1].message
    match = our[SlacMatchCnf][1].message
    assert isinstance(parm, SlacParmCnf)
    assert isinstance(ind, AttenCharInd)
    assert isinstance(match, SlacMatchCnf)
    return CarReplayResult(
        parm, ind, match, expected, expected_sounds=sent_profiles, profiles_sent=sent_profiles
    )


async def replay_charger(wire: Wire, session: Session, ev_mac: MacAddress) -> None:
    """Answer our EV with the recorded charger's frames, RunID and EV MAC rewritten."""
    frames = session.frames
    charger = MacAddress(session.evse_macs[0])

    def first(kind: type) -> tuple[float, Message]:
        t, f = next((t, f) for t, f in frames if isinstance(f.message, kind))
        assert isinstance(f.message, Message)
        return t, f.message

    t_req = [t for t, f in frames if isinstance(f.message, SlacParmReq)]
    t_cnf, cnf = first(SlacParmCnf)
    t_start, _ = first(StartAttenCharInd)
    indications = [(t, f.message) for t, f in frames if isinstance(f.message, AttenCharInd)]
    t_match_req, _ = first(SlacMatchReq)
    t_match_cnf, match = first(SlacMatchCnf)
    assert isinstance(cnf, SlacParmCnf)
    assert isinstance(match, SlacMatchCnf)
    answered_req = max(t for t in t_req if t <= t_cnf)

    at, frame = await wire.expect(SlacParmReq, 15.0)
    assert isinstance(frame.message, SlacParmReq)
    run_id = frame.message.run_id
    await sleep_until(at + (t_cnf - answered_req))
    wire.send(replace(cnf, run_id=run_id, forwarding_sta=ev_mac), ev_mac, charger)
    at, _ = await wire.expect(StartAttenCharInd, 3.0)
    for t, ind in indications:
        assert isinstance(ind, AttenCharInd)
        await sleep_until(at + (t - t_start))
        wire.send(replace(ind, run_id=run_id, source_address=ev_mac), ev_mac, charger)
        if len(indications) > 1:
            break  # the recording shows resends because its EV answered late; ours does not
    at, _ = await wire.expect(SlacMatchReq, 3.0)
    await sleep_until(at + max(0.0, t_match_cnf - t_match_req))
    wire.send(replace(match, run_id=run_id, pev_mac=ev_mac), ev_mac, charger)
