"""Drive an EvseMatcher with a hand-moved clock (no sockets, no sleeps): the shared
:class:`slac.testing.clock.MachineClock`, with the EV's side step by step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from slac.environment import Config
from slac.fsm.events import Event, Outgoing
from slac.fsm.evse import EvseMatcher, RunState
from slac.messages import (
    AttenCharRsp,
    AttenProfileInd,
    Message,
    MnbcSoundInd,
    SlacMatchReq,
    SlacParmReq,
    StartAttenCharInd,
)
from slac.testing.clock import MachineClock
from slac.utils import MacAddress

EVSE_MAC = MacAddress("02:00:00:00:ee:01")
MODEM_MAC = MacAddress("00:b0:52:00:ee:01")
BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")
NMK = bytes(range(16))
NID = bytes.fromhex("01020304050607")


def ev_mac(n: int) -> MacAddress:
    return MacAddress(bytes([0x02, 0, 0, 0, 0x10, n]))


class Harness(MachineClock[EvseMatcher]):
    """A matcher, a clock, and everything it sent and reported."""

    def __init__(
        self, config: Optional[Config] = None, start: bool = True, known_modem: bool = True
    ) -> None:
        self.config = config or Config()
        super().__init__(EvseMatcher(EVSE_MAC, NMK, NID, self.config), EVSE_MAC, now=1000.0)
        self.matcher = self.machine
        if known_modem:  # as SlacEvseSession sets it from the modem's answers
            self.matcher.modem_mac = MODEM_MAC
        if start:
            assert self.matcher.cp_state_changed("B", self.now)
            self.matcher.start(self.now)
            self.collect()

    @property
    def sent(self) -> list[Outgoing]:
        return [item for _, item in self.sent_at]

    @property
    def all_events(self) -> list[Event]:
        return self.events

    def feed(
        self, message: Message, src: MacAddress, dst: Optional[MacAddress] = EVSE_MAC
    ) -> list[Outgoing]:
        """Deliver a frame now (through the real codec, as the socket would)."""
        return super().feed(message, src, dst)

    def feed_with_header(
        self,
        message: Message,
        src: MacAddress,
        dst: MacAddress = EVSE_MAC,
        *,
        mmv: Optional[int] = None,
        fmi: Optional[int] = None,
    ) -> list[Outgoing]:
        """Deliver a frame whose HomePlug header says another MMV or FMI byte."""
        data = bytearray(message.to_frame(dst, src))
        if mmv is not None:
            data[14] = mmv
        if fmi is not None:
            data[17] = fmi
        return self.feed_bytes(bytes(data))

    def cp(self, state: str) -> bool:
        starts = self.matcher.cp_state_changed(state, self.now)
        if starts:
            self.matcher.start(self.now)
        self.collect()
        return starts

    # --- an EV's side, step by step -------------------------------------------------------

    def parm(self, ev: MacAddress, run_id: bytes) -> list[Outgoing]:
        return self.feed(SlacParmReq(run_id=run_id), ev, BROADCAST)

    def start_atten(self, ev: MacAddress, run_id: bytes, copies: int = 3) -> None:
        for _ in range(copies):
            self.feed(StartAttenCharInd(forwarding_sta=ev, run_id=run_id), ev, BROADCAST)

    def sound(
        self,
        ev: MacAddress,
        run_id: bytes,
        remaining: int,
        aag: Sequence[int],
        modem: MacAddress = MODEM_MAC,
    ) -> None:
        self.feed(MnbcSoundInd(remaining_sounds=remaining, run_id=run_id), ev, BROADCAST)
        self.feed(AttenProfileInd(pev_mac=ev, aag=tuple(aag)), modem)

    def rsp(self, ev: MacAddress, run_id: bytes) -> None:
        self.feed(AttenCharRsp(source_address=ev, run_id=run_id), ev)

    def match_req(
        self, ev: MacAddress, run_id: bytes, evse: MacAddress = EVSE_MAC
    ) -> list[Outgoing]:
        return self.feed(SlacMatchReq(pev_mac=ev, evse_mac=evse, run_id=run_id), ev)

    def sounding(
        self, ev: MacAddress, run_id: bytes, profiles: Sequence[Sequence[int]], gap: float = 0.02
    ) -> None:
        """CM_START_ATTEN_CHAR.IND x3 and one sound + profile per entry, ``gap`` apart.

        Sounds count down from 9 (10 sounds): fewer entries than 10 stand for the last
        sounds being lost."""
        self.start_atten(ev, run_id)
        first = max(10, len(profiles)) - 1
        for i, aag in enumerate(profiles):
            self.advance(gap)
            self.sound(ev, run_id, first - i, aag)
        self.wait_for_turn(ev, run_id)

    def wait_for_turn(self, ev: MacAddress, run_id: bytes) -> None:
        """Once the run is measured, move the clock to its CM_ATTEN_CHAR.IND: the EVSE sends
        it ATTEN_CHAR_DELAY_PER_DB per dB after the EV's last sound (its turn), as the EV
        waits for it."""
        run = self.matcher.runs.get((bytes(ev), run_id))
        if run is not None and run.state is RunState.TURN:
            self.advance(run.deadline - self.now)

    def full_match(self, ev: MacAddress, run_id: bytes, atten: int = 20) -> None:
        self.parm(ev, run_id)
        self.sounding(ev, run_id, [[atten] * 58] * 10)
        self.rsp(ev, run_id)
        self.match_req(ev, run_id)
