"""A stateful property test of the EVSE state machine: random frames from a few EVs (right,
wrong and half-right), fragments, forged profiles, new keys, control-pilot changes and clock
jumps; invariants after every step."""

from __future__ import annotations

from typing import Optional

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from slac.environment import Config
from slac.fsm.events import MatchingStarted
from slac.fsm.evse import EvseMatcher, EvseState, RunState, plug_in_time_limit
from slac.messages import (
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Message,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmReq,
    StartAttenCharInd,
    ValidateReq,
)
from slac.testing.clock import MachineClock
from slac.utils import MacAddress

EVSE = MacAddress("02:00:00:00:ee:01")
OTHER_EVSE = MacAddress("02:00:00:00:ee:02")
MODEM = MacAddress("00:b0:52:00:ee:01")
FORGER = MacAddress("02:00:00:00:66:66")
BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")
EVS = [MacAddress(f"02:00:00:00:10:0{i}") for i in range(1, 4)]
RUN_IDS = [bytes([i]) * 8 for i in range(1, 4)]
NMK = bytes(range(16))

evs = st.sampled_from(EVS)
run_ids = st.sampled_from(RUN_IDS)


class CheckedClock(MachineClock[EvseMatcher]):
    """The shared harness, checking every frame as it comes out."""

    def __init__(self, matcher: EvseMatcher) -> None:
        super().__init__(matcher, EVSE)
        self.sounded: set[tuple[bytes, bytes]] = set()  # (EV, RunID) sent CM_ATTEN_CHAR.IND
        #: every NMK handed out, and the EVs that got it (across plug-ins)
        self.key_holders: dict[bytes, set[bytes]] = {}
        self.started_at: Optional[float] = None

    def collect(self) -> None:
        sent, events = len(self.sent_at), len(self.events)
        super().collect()
        for _, out in self.sent_at[sent:]:
            message = out.message
            if isinstance(message, AttenCharInd):
                self.sounded.add((bytes(out.dst), message.run_id))
            if isinstance(message, SlacMatchCnf):
                # only unicast, only to an EV that completed sounding under that RunID
                assert not out.dst.is_multicast
                assert (bytes(out.dst), message.run_id) in self.sounded
                assert message.pev_mac == out.dst
                self.key_holders.setdefault(message.nmk, set()).add(bytes(out.dst))
        for event in self.events[events:]:
            if isinstance(event, MatchingStarted):
                self.started_at = self.now
                self.sounded.clear()


class EvseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.config = Config(slac_init_timeout=20.0)
        self.matcher = EvseMatcher(EVSE, NMK, b"\x01" * 7, self.config)
        self.clock = CheckedClock(self.matcher)
        self.keys = 0

    @property
    def now(self) -> float:
        return self.clock.now

    @property
    def key_holders(self) -> dict[bytes, set[bytes]]:
        return self.clock.key_holders

    @property
    def started_at(self) -> Optional[float]:
        return self.clock.started_at

    def _feed(
        self, message: Message, src: MacAddress, dst: MacAddress = EVSE, fmi: int = 0
    ) -> None:
        data = bytearray(message.to_frame(dst, src))
        data[17] = fmi
        self.clock.feed_bytes(bytes(data))

    @rule(state=st.sampled_from(["A", "B", "C", "D", "E", "F", "B2"]))
    def cp(self, state: str) -> None:
        if self.matcher.cp_state_changed(state, self.now):
            self.matcher.start(self.now)
        self.clock.collect()

    @rule(seconds=st.sampled_from([0.001, 0.02, 0.19, 0.21, 0.6, 1.0, 10.0, 25.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(
        ev=evs,
        run_id=run_ids,
        app=st.sampled_from([0, 0, 0, 1]),
        fmi=st.sampled_from([0] * 5 + [0x21]),
    )
    def parm_req(self, ev: MacAddress, run_id: bytes, app: int, fmi: int) -> None:
        self._feed(SlacParmReq(run_id=run_id, application_type=app), ev, BROADCAST, fmi)

    @rule(ev=evs, run_id=run_ids, resp_type=st.sampled_from([1, 1, 1, 0]))
    def start_atten(self, ev: MacAddress, run_id: bytes, resp_type: int) -> None:
        start = StartAttenCharInd(forwarding_sta=ev, run_id=run_id, resp_type=resp_type)
        self._feed(start, ev, BROADCAST)

    @rule(
        ev=evs,
        run_id=run_ids,
        cnt=st.integers(0, 9),
        atten=st.integers(0, 90),
        groups=st.sampled_from([58, 58, 0, 12]),
    )
    def sound(self, ev: MacAddress, run_id: bytes, cnt: int, atten: int, groups: int) -> None:
        self._feed(MnbcSoundInd(remaining_sounds=cnt, run_id=run_id), ev, BROADCAST)
        self._feed(AttenProfileInd(pev_mac=ev, aag=(atten,) * groups), MODEM)

    @rule(ev=evs, source=st.sampled_from([FORGER, *EVS]))
    def forged_profile(self, ev: MacAddress, source: MacAddress) -> None:
        self._feed(AttenProfileInd(pev_mac=ev, aag=(1,) * 58), source)

    @rule(known=st.booleans())
    def modem_learned(self, known: bool) -> None:
        self.matcher.modem_mac = MODEM if known else None

    @rule()
    def new_key(self) -> None:  # the driver gave the modem a fresh key
        self.keys += 1
        self.matcher.set_key(self.keys.to_bytes(16, "big"), b"\x02" * 7)

    @rule(ev=evs, run_id=run_ids, result=st.sampled_from([0, 0, 1]))
    def rsp(self, ev: MacAddress, run_id: bytes, result: int) -> None:
        self._feed(AttenCharRsp(source_address=ev, run_id=run_id, result=result), ev)

    @rule(ev=evs, run_id=run_ids, right_evse=st.booleans(), spoof=st.sampled_from([None, *EVS]))
    def match_req(
        self, ev: MacAddress, run_id: bytes, right_evse: bool, spoof: Optional[MacAddress]
    ) -> None:
        request = SlacMatchReq(
            pev_mac=spoof or ev, evse_mac=EVSE if right_evse else OTHER_EVSE, run_id=run_id
        )
        self._feed(request, ev)

    @rule(ev=evs, result=st.sampled_from([1, 1, 0, 3]))
    def validate(self, ev: MacAddress, result: int) -> None:
        self._feed(ValidateReq(result=result), ev)

    @invariant()
    def at_most_one_matched_ev(self) -> None:
        if self.matcher.state is EvseState.MATCHED:
            assert self.matcher.match is not None
            assert not self.matcher.runs
        # one key, one EV: no EV ever gets a key another EV got, across plug-ins
        assert all(len(holders) <= 1 for holders in self.key_holders.values())

    @invariant()
    def every_plug_in_ends_in_bounded_time(self) -> None:
        if self.matcher.state is EvseState.WAITING:
            assert self.started_at is not None
            assert self.now - self.started_at <= plug_in_time_limit(self.config) + 1e-9

    @invariant()
    def a_deadline_while_waiting(self) -> None:
        assert self.matcher.state is not EvseState.PAUSED  # the EVSE never pauses
        if self.matcher.state is EvseState.WAITING:
            assert self.matcher.deadline is not None
            assert self.matcher.deadline >= self.now or self.matcher.runs
        else:
            assert self.matcher.deadline is None

    @invariant()
    def runs_are_bounded_and_consistent(self) -> None:
        assert len(self.matcher.runs) <= 5
        for key, run in self.matcher.runs.items():
            assert key == run.key
            assert run.profiles <= run.num_sounds
            if run.state is RunState.WAIT_RSP:
                assert run.atten_char is not None


TestEvseStateMachine = EvseMachine.TestCase
TestEvseStateMachine.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
