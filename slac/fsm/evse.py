"""The EVSE side of ISO 15118-3 SLAC as a sans-IO state machine.

No sockets, no asyncio, no clock: the driver feeds three inputs, each with the current time
``now`` (seconds, any monotonic origin),

- :meth:`EvseMatcher.receive_frame` (a decoded frame),
- :meth:`EvseMatcher.cp_state_changed` (the control pilot, "A" to "F"),
- :meth:`EvseMatcher.handle_timer` (when :attr:`EvseMatcher.deadline` has come),

and pulls three outputs: :meth:`~EvseMatcher.frames_to_send`, :meth:`~EvseMatcher.events`
and :attr:`~EvseMatcher.deadline`.

Everything about state lives in this file, and the transitions are the two tables below.
A message that a table does not list for the current state is ignored (logged at DEBUG with
the reason) and the timers keep running, as ISO 15118-3 asks of receivers.

States of the EVSE:

- IDLE: not plugged in (or stopped). Frames are ignored.
- WAITING: a matching attempt. Until the first CM_SLAC_PARM.REQ, TT_EVSE_SLAC_init runs;
  then up to ``max_parallel_runs`` EV runs go on in parallel, each keyed by (EV MAC, RunID).
- PAUSED: TT_matching_rate between a failed attempt and the next one.
- MATCHED: CM_SLAC_MATCH.CNF was sent. Repeated requests get the same answers.
- FAILED: every attempt failed. Nothing happens until the next plug-in.

States of one EV run: WAIT_START_ATTEN (PARM.CNF sent, TT_match_sequence), SOUNDING
(TT_EVSE_match_MNBC or ATTEN_RESULTS_TIMEOUT), WAIT_RSP (ATTEN_CHAR.IND sent,
TT_match_response, resent up to ``atten_char_retries`` times), WAIT_MATCH
(TT_EVSE_match_session).
"""

from __future__ import annotations

import collections
import logging
import operator
from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Union

from slac.enums import (
    APPLICATION_TYPE_PEV_EVSE,
    ATTEN_CHAR_RESULT_SUCCESS,
    C_EV_MATCH_MNBC,
    NUM_GROUPS,
    SECURITY_TYPE_NONE,
    TIME_OUT_UNIT,
    TT_EV_ATTEN_RESULTS,
    TT_EVSE_MATCH_MNBC,
    ValidateResult,
)
from slac.environment import Config
from slac.fsm.events import (
    AttemptFailed,
    Event,
    Matched,
    MatchingFailed,
    MatchingOngoing,
    MatchingStarted,
    Outgoing,
    RunEnded,
    Stopped,
)
from slac.messages import (
    AmpMapCnf,
    AmpMapReq,
    AnyMessage,
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Frame,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    ValidateCnf,
    ValidateReq,
)
from slac.utils import MacAddress

logger = logging.getLogger(__name__)


#: How many answered (EV MAC, RunID) pairs are remembered for re-admission.
ANSWERED_MEMORY = 256
_RUN_DEADLINE = operator.attrgetter("deadline")
#: CM_SLAC_PARM.CNF with the ISO 15118-3 values; each answer is a copy naming the EV and run
_PARM_CNF = SlacParmCnf(forwarding_sta=MacAddress(bytes(6)), run_id=bytes(8))
#: an EV heard this much better (dB) than the worst-heard sounding run takes its slot
BETTER_HEARD_DB = 6.0


class EvseState(Enum):
    IDLE = "idle"
    WAITING = "waiting"
    PAUSED = "paused"
    MATCHED = "matched"
    FAILED = "failed"


class RunState(Enum):
    WAIT_START_ATTEN = "waiting for CM_START_ATTEN_CHAR.IND"
    SOUNDING = "sounding"
    WAIT_RSP = "waiting for CM_ATTEN_CHAR.RSP"
    WAIT_MATCH = "waiting for CM_SLAC_MATCH.REQ"


@dataclass(frozen=True)
class Ignore:
    """A table entry: the message is ignored in this state, for this reason."""

    reason: str


Handler = Union[str, Ignore]

# --- The transition tables ---------------------------------------------------------------------
#
# EVSE_TABLE: what a message does in each EVSE state. Messages that belong to one EV run
# ("run" below) are looked up again in RUN_TABLE with the run's state. Anything not listed is
# ignored as "not expected in this state".

EVSE_TABLE: dict[tuple[EvseState, type], Handler] = {
    (EvseState.WAITING, SlacParmReq): "_on_parm_req",
    (EvseState.WAITING, StartAttenCharInd): "run",
    (EvseState.WAITING, MnbcSoundInd): "run",
    (EvseState.WAITING, AttenProfileInd): "_on_profile",
    (EvseState.WAITING, AttenCharRsp): "run",
    (EvseState.WAITING, SlacMatchReq): "run",
    (EvseState.WAITING, ValidateReq): "_on_validate",
    (EvseState.PAUSED, SlacParmReq): Ignore("pausing between attempts (TT_matching_rate)"),
    (EvseState.PAUSED, ValidateReq): "_on_validate",
    (EvseState.MATCHED, SlacMatchReq): "_on_match_req_when_matched",
    (EvseState.MATCHED, ValidateReq): "_on_validate",
    (EvseState.MATCHED, AmpMapReq): "_on_amp_map",
    (EvseState.MATCHED, SlacParmReq): "_on_parm_req_when_matched",
    (EvseState.MATCHED, AttenCharRsp): Ignore("already matched"),
    (EvseState.FAILED, ValidateReq): "_on_validate",
}

RUN_TABLE: dict[tuple[RunState, type], Handler] = {
    (RunState.WAIT_START_ATTEN, StartAttenCharInd): "_run_start_sounding",
    # The three CM_START_ATTEN_CHAR.IND copies may all be lost: a sound starts sounding too.
    (RunState.WAIT_START_ATTEN, MnbcSoundInd): "_run_sound",
    (RunState.SOUNDING, StartAttenCharInd): Ignore("repeated CM_START_ATTEN_CHAR.IND"),
    (RunState.SOUNDING, MnbcSoundInd): "_run_sound",
    (RunState.WAIT_RSP, StartAttenCharInd): Ignore("sounding is over"),
    (RunState.WAIT_RSP, MnbcSoundInd): Ignore("late sound, sounding is over"),
    (RunState.WAIT_RSP, AttenCharRsp): "_run_atten_char_rsp",
    # The EV's CM_ATTEN_CHAR.RSP may be lost while the EV moves on: its request proves that
    # it received CM_ATTEN_CHAR.IND.
    (RunState.WAIT_RSP, SlacMatchReq): "_run_match_req",
    (RunState.WAIT_MATCH, AttenCharRsp): Ignore("repeated CM_ATTEN_CHAR.RSP"),
    (RunState.WAIT_MATCH, MnbcSoundInd): Ignore("late sound, sounding is over"),
    (RunState.WAIT_MATCH, StartAttenCharInd): Ignore("sounding is over"),
    (RunState.WAIT_MATCH, SlacMatchReq): "_run_match_req",
}


@dataclass
class EvRun:
    """One EV's matching run, keyed by (EV MAC, RunID)."""

    ev_mac: MacAddress
    run_id: bytes
    parm_cnf: SlacParmCnf
    started: float
    state: RunState = RunState.WAIT_START_ATTEN
    deadline: float = 0.0
    num_sounds: int = C_EV_MATCH_MNBC
    sounds_seen: set[int] = field(default_factory=set)
    profiles: int = 0
    #: profiles that carried attenuation values (some modems send NumGroups 0)
    data_profiles: int = 0
    aag_sum: list[int] = field(default_factory=lambda: [0] * NUM_GROUPS)
    atten_char: Optional[AttenCharInd] = None
    atten_char_sends: int = 0
    #: loop times of the phases, for the match summary
    #: profiles counted when the EV's last sound (counter 0) arrived: the next profile is
    #: that sound's, and sounding is complete then, even when sounds were lost before
    profiles_at_last_sound: Optional[int] = None
    sounding_started: Optional[float] = None
    sounding_done: Optional[float] = None
    rsp_at: Optional[float] = None

    @property
    def key(self) -> tuple[bytes, bytes]:
        return (bytes(self.ev_mac), self.run_id)


@dataclass(frozen=True)
class MatchRecord:
    """The match that was made: who, and the confirmation to repeat when asked again."""

    ev_mac: MacAddress
    run_id: bytes
    cnf: SlacMatchCnf


class EvseMatcher:
    """ISO 15118-3 SLAC, EVSE side, without I/O.

    ``evse_mac`` is this EVSE host's MAC (the interface's), ``nmk``/``nid`` the key the local
    modem was given; :meth:`set_key` changes them.
    """

    def __init__(
        self,
        evse_mac: bytes,
        nmk: bytes,
        nid: bytes,
        config: Optional[Config] = None,
        *,
        log: Union[logging.Logger, logging.LoggerAdapter[logging.Logger], None] = None,
    ) -> None:
        self.evse_mac = MacAddress(evse_mac)
        self.modem_mac: Optional[MacAddress] = None
        self.config = config or Config()
        self.log = log or logger
        self._nmk = nmk
        self._nid = nid
        self.state = EvseState.IDLE
        self.cp_state: Optional[str] = None
        self.attempt = 0
        self.runs: dict[tuple[bytes, bytes], EvRun] = {}
        self._answered: collections.OrderedDict[tuple[bytes, bytes], SlacParmCnf] = (
            collections.OrderedDict()
        )
        self.match: Optional[MatchRecord] = None
        #: the EV that received the current key (no other EV may get it)
        self._key_holder: Optional[MacAddress] = None
        self._attempt_deadline: Optional[float] = None
        self._pause_deadline: Optional[float] = None
        self._ongoing_reported = False
        self._outgoing: list[Outgoing] = []
        self._events: list[Event] = []

    # --- outputs ------------------------------------------------------------------------------

    def frames_to_send(self) -> list[Outgoing]:
        """The messages to send since the last call, in order."""
        out, self._outgoing = self._outgoing, []
        return out

    def events(self) -> list[Event]:
        """The events since the last call, in order."""
        out, self._events = self._events, []
        return out

    @property
    def deadline(self) -> Optional[float]:
        """When :meth:`handle_timer` must be called next (None: no timer runs)."""
        if self.state is EvseState.PAUSED:
            return self._pause_deadline
        if self.state is not EvseState.WAITING:
            return None
        if self.runs:
            soonest: float = min(map(_RUN_DEADLINE, self.runs.values()))
            return soonest
        return self._attempt_deadline

    @property
    def nid(self) -> bytes:
        return self._nid

    def set_key(self, nmk: bytes, nid: bytes) -> None:
        """The local modem now has this key; it is what CM_SLAC_MATCH.CNF hands out."""
        self._nmk = nmk
        self._nid = nid
        self._key_holder = None

    # --- inputs -------------------------------------------------------------------------------

    def cp_state_changed(self, state: str, now: float) -> bool:
        """Feed a control-pilot state ("A".."F"; "B2", "C1" count by their letter).

        Returns True when this change asks for matching (B, C or D after A, E or F, or at
        the first report, while not matching): the driver then calls :meth:`start` as soon as
        the local modem is ready. A, and E or F while matched, stop at once.
        """
        letter = parse_cp_state(state)
        previous, self.cp_state = self.cp_state, letter
        if letter in "BCD":
            return (previous is None or previous in "AEF") and self.state in (
                EvseState.IDLE,
                EvseState.FAILED,
            )
        if letter == "A":
            self.stop(now, "control pilot A: EV unplugged")
        elif letter in "EF" and self.state is EvseState.MATCHED:
            self.stop(now, f"control pilot {letter} while matched")
        return False

    def start(self, now: float) -> None:
        """Begin matching (idempotent while matching or matched)."""
        if self.state in (EvseState.WAITING, EvseState.PAUSED, EvseState.MATCHED):
            return
        self.attempt = 0
        self.match = None
        self._begin_attempt(now)

    def stop(self, now: float, reason: str) -> None:
        """End matching or the match; back to IDLE."""
        if self.state is EvseState.IDLE:
            return
        was_matched = self.state is EvseState.MATCHED
        self.runs.clear()
        self.match = None
        self._key_holder = None  # the driver leaves the network with a fresh key
        self.state = EvseState.IDLE
        self._attempt_deadline = self._pause_deadline = None
        self.log.info("SLAC stopped: %s", reason)
        self._events.append(Stopped(reason, was_matched))

    def receive_frame(self, frame: Frame, now: float) -> None:
        """Feed a decoded frame received on the EVSE's interface."""
        message = frame.message
        handler = EVSE_TABLE.get((self.state, type(message)))
        if handler is None:
            self._ignore(frame, f"not expected while {self.state.value}")
            return
        if isinstance(handler, Ignore):
            self._ignore(frame, handler.reason)
            return
        if handler == "run":
            self._dispatch_to_run(frame, now)
            return
        getattr(self, handler)(frame, message, now)

    def handle_timer(self, now: float) -> None:
        """Process every deadline that has come by ``now``."""
        if self.state is EvseState.PAUSED:
            if self._pause_deadline is not None and now >= self._pause_deadline:
                self._begin_attempt(now)
            return
        if self.state is not EvseState.WAITING:
            return
        for run in list(self.runs.values()):
            if now >= run.deadline and run.key in self.runs:
                self._run_timeout(run, now)
        if (
            self.state is EvseState.WAITING
            and not self.runs
            and self._attempt_deadline is not None
            and now >= self._attempt_deadline
        ):
            self._attempt_failed(
                now,
                "no CM_SLAC_PARM.REQ within TT_EVSE_SLAC_init "
                f"({self.config.slac_init_timeout:g} s)",
            )

    # --- EVSE-level handlers --------------------------------------------------------------------

    def _on_parm_req(self, frame: Frame, message: AnyMessage, now: float) -> None:
        assert isinstance(message, SlacParmReq)
        if not self._valid_types(frame, message.application_type, message.security_type):
            return
        ev = frame.src
        if ev.is_multicast:
            self._ignore(frame, "source MAC is not a station")
            return
        key = (bytes(ev), message.run_id)
        run = self.runs.get(key)
        if run is not None:  # a repeated request gets the same confirmation
            self._send(ev, run.parm_cnf)
            if run.state is RunState.WAIT_START_ATTEN:
                run.deadline = now + self.config.match_sequence_timeout
            self.log.debug("EV %s repeated CM_SLAC_PARM.REQ, same CNF sent again", ev)
            return
        for old in [r for r in self.runs.values() if r.ev_mac == ev]:
            self._end_run(old, "the EV started a new run (new RunID)", now, counts=False)
        if len(self.runs) >= self.config.max_parallel_runs and not self._evict_for(ev, now):
            self._ignore(frame, f"already serving {len(self.runs)} EV runs (C_EVSE_match_parallel)")
            return
        # ev and run_id come from the decoded frame: of their fields' types already
        cnf = _PARM_CNF._trusted_copy(forwarding_sta=ev, run_id=message.run_id)
        run = EvRun(ev_mac=ev, run_id=message.run_id, parm_cnf=cnf, started=now)
        run.deadline = now + self.config.match_sequence_timeout
        self.runs[key] = run
        self._remember_answer(run)
        self._send(ev, cnf)
        # The first run of an attempt is news; further parallel runs (neighbours' cars heard
        # through crosstalk) show at INFO with their sounding line or their end, which keeps
        # a car park's burst of requests cheap to answer.
        self._log_run(
            logging.INFO if not self._ongoing_reported else logging.DEBUG,
            run,
            "CM_SLAC_PARM.REQ answered (%d of %d parallel runs)",
            len(self.runs),
            self.config.max_parallel_runs,
        )
        if not self._ongoing_reported:
            self._ongoing_reported = True
            self._events.append(MatchingOngoing(ev, message.run_id))

    def _readmit(self, ev: MacAddress, run_id: bytes, now: float) -> Optional[EvRun]:
        """An EV we confirmed starts sounding, but its run made room for others meanwhile
        (a flood of requests): it proves itself by sounding, so it gets a slot back."""
        cnf = self._answered.get((bytes(ev), run_id))
        if cnf is None:
            return None
        if any(r.ev_mac == ev for r in self.runs.values()):
            return None  # the EV moved on to another RunID
        if len(self.runs) >= self.config.max_parallel_runs and not self._evict_for(ev, now):
            return None
        run = EvRun(ev_mac=ev, run_id=run_id, parm_cnf=cnf, started=now)
        run.deadline = now + self.config.match_sequence_timeout
        self.runs[run.key] = run
        self._log_run(
            logging.INFO, run, "sounding after its run made room for others: served again"
        )
        return run

    def _remember_answer(self, run: EvRun) -> None:
        """Keep the last answered requests (bounded) so that sounding EVs can be re-admitted."""
        self._answered[run.key] = run.parm_cnf
        self._answered.move_to_end(run.key)
        while len(self._answered) > ANSWERED_MEMORY:
            self._answered.popitem(last=False)

    def _evict_for(self, ev: MacAddress, now: float) -> bool:
        """Make room when every parallel slot is taken, for a run that cannot be the EV's
        choice any more.

        First the oldest run that never got past CM_SLAC_PARM.CNF: a real EV sends
        CM_START_ATTEN_CHAR.IND within milliseconds, so only stations that are silent after
        their request (or forged requests) are dropped. Then the run that has waited longest
        for CM_SLAC_MATCH.REQ, once TT_EV_atten_results has passed since its
        CM_ATTEN_CHAR.RSP: by then its EV has chosen, and not this EVSE (a neighbour's car
        heard through crosstalk). Without this, five such runs would lock this EVSE's own EV
        out for TT_EVSE_match_session (10 s).
        """
        stale = [r for r in self.runs.values() if r.state is RunState.WAIT_START_ATTEN]
        if stale:
            oldest = min(stale, key=lambda r: r.started)
            self._end_run(
                oldest, f"replaced by EV {ev}: every parallel slot was taken", now, counts=False
            )
            return True
        chosen_elsewhere = [
            r
            for r in self.runs.values()
            if r.state is RunState.WAIT_MATCH
            and r.rsp_at is not None
            and now - r.rsp_at >= TT_EV_ATTEN_RESULTS
        ]
        if chosen_elsewhere:
            oldest = min(chosen_elsewhere, key=lambda r: r.rsp_at or 0.0)
            self._end_run(
                oldest,
                f"replaced by EV {ev}: no CM_SLAC_MATCH.REQ {_ms(now - (oldest.rsp_at or now)):.0f}"
                " ms after CM_ATTEN_CHAR.RSP, the EV chose another EVSE",
                now,
                counts=False,
            )
            return True
        return False

    def _admit_better_heard(self, message: AttenProfileInd, now: float) -> Optional[EvRun]:
        """A profile of an EV we answered but could not serve (every slot taken): when this
        EVSE hears it clearly better than the worst-heard EV it is sounding with, that one
        makes room. The EV on this EVSE's own cable is heard best: crosstalk cannot lock it
        out. It is served from this profile on (the average covers the profiles received)."""
        ev = message.pev_mac
        if not message.aag or any(r.ev_mac == ev for r in self.runs.values()):
            return None
        key = next((k for k in reversed(self._answered) if k[0] == bytes(ev)), None)
        if key is None:
            return None
        if len(self.runs) >= self.config.max_parallel_runs and not self._evict_for(ev, now):
            heard = sum(message.aag) / len(message.aag)
            sounding = [
                r for r in self.runs.values() if r.state is RunState.SOUNDING and r.data_profiles
            ]
            if not sounding:
                return None
            worst = max(sounding, key=lambda r: sum(r.aag_sum) / r.data_profiles)
            worst_db = sum(worst.aag_sum) / worst.data_profiles / len(worst.aag_sum)
            if heard + BETTER_HEARD_DB > worst_db:
                return None
            self._end_run(
                worst,
                f"replaced by EV {ev}, heard at {heard:.0f} dB instead of {worst_db:.0f} dB",
                now,
                counts=False,
            )
        run = EvRun(ev_mac=ev, run_id=key[1], parm_cnf=self._answered[key], started=now)
        self.runs[run.key] = run
        self._begin_sounding(run, run.num_sounds, None, now)
        self._log_run(logging.INFO, run, "heard better than a run it replaces: served again")
        return run

    def _on_profile(self, frame: Frame, message: AnyMessage, now: float) -> None:
        assert isinstance(message, AttenProfileInd)
        run = next((r for r in self.runs.values() if r.ev_mac == message.pev_mac), None)
        if run is None and len(message.aag) == NUM_GROUPS:
            run = self._admit_better_heard(message, now)
        if run is None:
            self._ignore(frame, f"no run for EV {message.pev_mac}")
            return
        if len(message.aag) not in (0, NUM_GROUPS):
            self._ignore(frame, f"{len(message.aag)} groups instead of {NUM_GROUPS}")
            return
        if run.state is RunState.WAIT_START_ATTEN:
            self._begin_sounding(run, run.num_sounds, None, now)
        elif run.state is not RunState.SOUNDING:
            self._ignore(frame, f"run of EV {run.ev_mac} is {run.state.value}")
            return
        if run.profiles >= run.num_sounds:
            self._ignore(frame, "more profiles than sounds")
            return
        run.profiles += 1
        if message.aag:
            run.data_profiles += 1
            run.aag_sum = list(map(operator.add, run.aag_sum, message.aag))
        if self.log.isEnabledFor(logging.DEBUG):
            self._log_run(
                logging.DEBUG, run, "attenuation profile %d/%d", run.profiles, run.num_sounds
            )
        if run.profiles >= run.num_sounds or (
            run.profiles_at_last_sound is not None and run.profiles > run.profiles_at_last_sound
        ):
            self._finish_sounding(run, now)

    def _on_validate(self, frame: Frame, message: AnyMessage, now: float) -> None:
        assert isinstance(message, ValidateReq)
        # No source of control-pilot toggles here: validation cannot succeed, and the EV is
        # told so at once rather than left waiting (the EVerest answer).
        self._send(frame.src, ValidateCnf(result=ValidateResult.FAILURE, signal_type=0))
        for run in self.runs.values():
            if run.ev_mac == frame.src and run.state is RunState.WAIT_MATCH:
                run.deadline = now + self.config.match_session_timeout

    def _on_match_req_when_matched(self, frame: Frame, message: AnyMessage, now: float) -> None:
        assert isinstance(message, SlacMatchReq)
        assert self.match is not None
        if (frame.src, message.run_id) != (self.match.ev_mac, self.match.run_id):
            self._ignore(frame, "matched with another EV or RunID")
            return
        if not self._valid_match_req(frame, message):
            return
        self._send(self.match.ev_mac, self.match.cnf)
        self.log.debug("EV %s repeated CM_SLAC_MATCH.REQ, same CNF sent again", frame.src)

    def _on_amp_map(self, frame: Frame, message: AnyMessage, now: float) -> None:
        assert isinstance(message, AmpMapReq)
        assert self.match is not None
        if frame.src != self.match.ev_mac:
            self._ignore(frame, "CM_AMP_MAP.REQ from a station that is not the matched EV")
        elif not message.amplitudes:
            self._ignore(frame, "CM_AMP_MAP.REQ with AMLEN 0 is invalid")
        else:
            self._send(frame.src, AmpMapCnf(result=0))

    def _on_parm_req_when_matched(self, frame: Frame, message: AnyMessage, now: float) -> None:
        assert isinstance(message, SlacParmReq)
        assert self.match is not None
        if frame.src != self.match.ev_mac or message.run_id == self.match.run_id:
            self._ignore(frame, "already matched")
            return
        # The matched EV starts SLAC over: it did not join the network. Serve the new run.
        self.log.info("EV %s starts SLAC again after the match: matching again", frame.src)
        self.match = None
        self.state = EvseState.WAITING
        self._attempt_deadline = now + self.config.slac_init_timeout
        self._ongoing_reported = False
        self._on_parm_req(frame, message, now)

    # --- run handlers -------------------------------------------------------------------------

    def _dispatch_to_run(self, frame: Frame, now: float) -> None:
        message = frame.message
        run_id: bytes = getattr(message, "run_id", b"")
        run = self.runs.get((bytes(frame.src), run_id))
        if run is None and isinstance(message, (StartAttenCharInd, MnbcSoundInd)):
            run = self._readmit(frame.src, run_id, now)
        if run is None:
            if any(r.ev_mac == frame.src for r in self.runs.values()):
                self._ignore(frame, "wrong RunID for this EV")
            else:
                self._ignore(frame, "no run for this EV")
            return
        handler = RUN_TABLE.get((run.state, type(message)))
        if handler is None:
            self._ignore(frame, f"not expected while the run is {run.state.value}")
            return
        if isinstance(handler, Ignore):
            self._ignore(frame, handler.reason)
            return
        getattr(self, handler)(run, frame, message, now)

    def _run_start_sounding(
        self, run: EvRun, frame: Frame, message: AnyMessage, now: float
    ) -> None:
        assert isinstance(message, StartAttenCharInd)
        if not self._valid_types(frame, message.application_type, message.security_type):
            return
        if message.num_sounds == 0:
            self._ignore(frame, "NUM_SOUNDS 0")
            return
        self._begin_sounding(run, message.num_sounds, message.time_out, now)

    def _run_sound(self, run: EvRun, frame: Frame, message: AnyMessage, now: float) -> None:
        assert isinstance(message, MnbcSoundInd)
        if not self._valid_types(frame, message.application_type, message.security_type):
            return
        if run.state is RunState.WAIT_START_ATTEN:
            self._begin_sounding(run, run.num_sounds, None, now)
        if message.remaining_sounds in run.sounds_seen:
            self._ignore(frame, f"repeated sound {message.remaining_sounds}")
            return
        run.sounds_seen.add(message.remaining_sounds)
        if message.remaining_sounds == 0:
            run.profiles_at_last_sound = run.profiles
        if self.log.isEnabledFor(logging.DEBUG):
            self._log_run(logging.DEBUG, run, "sound %d/%d", len(run.sounds_seen), run.num_sounds)

    def _run_atten_char_rsp(
        self, run: EvRun, frame: Frame, message: AnyMessage, now: float
    ) -> None:
        assert isinstance(message, AttenCharRsp)
        if not self._valid_types(frame, message.application_type, message.security_type):
            return
        if message.result != ATTEN_CHAR_RESULT_SUCCESS:
            self._end_run(run, f"the EV answered CM_ATTEN_CHAR.RSP Result {message.result}", now)
            return
        run.state = RunState.WAIT_MATCH
        run.deadline = now + self.config.match_session_timeout
        run.rsp_at = now
        self._log_run(
            logging.DEBUG,
            run,
            "CM_ATTEN_CHAR.RSP after %.0f ms, waiting for CM_SLAC_MATCH.REQ",
            _ms(now - (run.sounding_done or now)),
        )

    def _run_match_req(self, run: EvRun, frame: Frame, message: AnyMessage, now: float) -> None:
        assert isinstance(message, SlacMatchReq)
        if not self._valid_match_req(frame, message):
            return
        if self._key_holder is not None and self._key_holder != run.ev_mac:
            # The matched EV started over and another EV completed sounding: this key went
            # to the first EV already. One key, one EV: the driver must set a new key first.
            self._ignore(frame, f"this EVSE's key was handed to EV {self._key_holder}")
            return
        cnf = SlacMatchCnf(
            pev_mac=message.pev_mac,
            evse_mac=self.evse_mac,
            run_id=message.run_id,
            nid=self._nid,
            nmk=self._nmk,
            pev_id=message.pev_id,
            evse_id=message.evse_id,
        )
        self._send(run.ev_mac, cnf)
        others = [r for r in self.runs.values() if r is not run]
        self.runs.clear()
        for other in others:
            self._events.append(
                RunEnded(other.ev_mac, other.run_id, "this EVSE matched another EV")
            )
        self.match = MatchRecord(run.ev_mac, run.run_id, cnf)
        self._key_holder = run.ev_mac
        self.state = EvseState.MATCHED
        self._attempt_deadline = None
        self._log_run(logging.INFO, run, "%s", _summary(run, now, self._nid))
        self._events.append(Matched(run.ev_mac, run.run_id, self._nid))

    # --- run mechanics ------------------------------------------------------------------------

    def _begin_sounding(
        self, run: EvRun, num_sounds: int, time_out: Optional[int], now: float
    ) -> None:
        run.state = RunState.SOUNDING
        run.num_sounds = num_sounds
        window = self.config.atten_results_timeout
        if window is None:
            window = time_out * TIME_OUT_UNIT if time_out else TT_EVSE_MATCH_MNBC
        run.deadline = now + window
        run.sounding_started = now
        if self.log.isEnabledFor(logging.DEBUG):
            self._log_run(
                logging.DEBUG,
                run,
                "sounding started: %d sounds within %.0f ms",
                num_sounds,
                _ms(window),
            )

    def _finish_sounding(self, run: EvRun, now: float) -> None:
        if run.profiles == 0:
            self._end_run(run, "no CM_ATTEN_PROFILE.IND within the sounding window", now)
            return
        if run.data_profiles:
            aag = tuple(_average(total, run.data_profiles) for total in run.aag_sum)
        else:
            # Seen with real modems (a PIB set up for an EV?): profiles with NumGroups 0.
            # The sounds were heard but not measured: report 0 dB rather than fail the car.
            self._log_run(
                logging.WARNING,
                run,
                "the modem's CM_ATTEN_PROFILE.IND carry no attenuation values "
                "(NumGroups 0): reporting 0 dB; check the modem's configuration",
            )
            aag = (0,) * NUM_GROUPS
        run.atten_char = AttenCharInd(
            source_address=run.ev_mac, run_id=run.run_id, num_sounds=run.profiles, aag=aag
        )
        run.state = RunState.WAIT_RSP
        run.sounding_done = now
        self._send_atten_char(run, now)
        self._log_run(
            logging.INFO,
            run,
            "sounding %d/%d in %.0f ms, mean attenuation %.1f dB: CM_ATTEN_CHAR.IND sent",
            run.profiles,
            run.num_sounds,
            _ms(now - (run.sounding_started or now)),
            sum(aag) / len(aag),
        )

    def _send_atten_char(self, run: EvRun, now: float) -> None:
        assert run.atten_char is not None
        run.atten_char_sends += 1
        run.deadline = now + self.config.match_response_timeout
        self._send(run.ev_mac, run.atten_char)

    def _run_timeout(self, run: EvRun, now: float) -> None:
        if run.state is RunState.WAIT_START_ATTEN:
            self._end_run(run, "no CM_START_ATTEN_CHAR.IND within TT_match_sequence", now)
        elif run.state is RunState.SOUNDING:
            self._finish_sounding(run, now)
        elif run.state is RunState.WAIT_RSP:
            if run.atten_char_sends <= self.config.atten_char_retries:
                self._log_run(logging.INFO, run, "no CM_ATTEN_CHAR.RSP, resending the IND")
                self._send_atten_char(run, now)
            else:
                self._end_run(run, "no CM_ATTEN_CHAR.RSP after every resend", now)
        else:
            # The EV heard us but asked another EVSE: not a failure of this EVSE.
            self._end_run(
                run,
                "no CM_SLAC_MATCH.REQ within TT_EVSE_match_session: the EV chose another EVSE",
                now,
                counts=False,
            )

    def _end_run(self, run: EvRun, reason: str, now: float, counts: bool = True) -> None:
        """Drop a run. When it was the last one, a failure that counts ends the attempt."""
        del self.runs[run.key]
        # a failure is news; a neighbour's car that went elsewhere (crosstalk) is routine
        self._log_run(logging.INFO if counts else logging.DEBUG, run, "run ended: %s", reason)
        self._events.append(RunEnded(run.ev_mac, run.run_id, reason))
        if self.runs or self.state is not EvseState.WAITING:
            return
        if counts:
            self._attempt_failed(now, reason)

    # --- attempts -------------------------------------------------------------------------------

    def _begin_attempt(self, now: float) -> None:
        self.attempt += 1
        self.state = EvseState.WAITING
        self.runs.clear()
        self._answered.clear()
        self._ongoing_reported = False
        self._pause_deadline = None
        self._attempt_deadline = now + self.config.slac_init_timeout
        self.log.info(
            "matching attempt %d/%d: waiting for CM_SLAC_PARM.REQ",
            self.attempt,
            self.config.matching_attempts,
        )
        self._events.append(MatchingStarted(self.attempt))

    def _attempt_failed(self, now: float, reason: str) -> None:
        self._events.append(AttemptFailed(self.attempt, reason))
        self._attempt_deadline = None
        if self.attempt >= self.config.matching_attempts:
            self.state = EvseState.FAILED
            self.log.warning("matching failed after %d attempts: %s", self.attempt, reason)
            self._events.append(MatchingFailed(reason, self.attempt))
            return
        self.log.info("matching attempt %d failed: %s", self.attempt, reason)
        self.state = EvseState.PAUSED
        self._pause_deadline = now + self.config.matching_rate

    # --- helpers --------------------------------------------------------------------------------

    def _valid_types(self, frame: Frame, application_type: int, security_type: int) -> bool:
        if application_type != APPLICATION_TYPE_PEV_EVSE:
            self._ignore(frame, f"APPLICATION_TYPE {application_type} is not PEV-EVSE (0)")
            return False
        if security_type != SECURITY_TYPE_NONE:
            self._ignore(frame, f"SECURITY_TYPE {security_type} is not supported (0 only)")
            return False
        return True

    def _valid_match_req(self, frame: Frame, message: SlacMatchReq) -> bool:
        if not self._valid_types(frame, message.application_type, message.security_type):
            return False
        if message.pev_mac != frame.src:
            self._ignore(frame, f"PEV MAC {message.pev_mac} is not the sender")
            return False
        if message.evse_mac != self.evse_mac:
            self._ignore(frame, f"EVSE MAC {message.evse_mac} is not this EVSE")
            return False
        return True

    def _send(
        self,
        dst: MacAddress,
        message: Union[SlacParmCnf, AttenCharInd, SlacMatchCnf, ValidateCnf, AmpMapCnf],
    ) -> None:
        self._outgoing.append(Outgoing(dst, message))

    def _log_run(self, level: int, run: EvRun, msg: str, *args: object) -> None:
        """A line about one run: "EV <mac>, RunID <hex>: ...", with both as record fields."""
        if not self.log.isEnabledFor(level):
            return
        run_id = run.run_id.hex()
        self.log.log(
            level,
            "EV %s, RunID %s: " + msg,
            run.ev_mac,
            run_id,
            *args,
            extra={"ev_mac": str(run.ev_mac), "run_id": run_id},
        )

    def _ignore(self, frame: Frame, reason: str) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("ignored %s from %s: %s", frame.message.name, frame.src, reason)


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _summary(run: EvRun, now: float, nid: bytes) -> str:
    """The one-line account of a match: each phase's duration and the whole."""
    parts = []
    if run.sounding_started is not None:
        parts.append(f"CM_SLAC_PARM {_ms(run.sounding_started - run.started):.0f} ms")
        if run.sounding_done is not None:
            parts.append(
                f"sounding {_ms(run.sounding_done - run.sounding_started):.0f} ms "
                f"({run.profiles}/{run.num_sounds} profiles)"
            )
    if run.sounding_done is not None and run.rsp_at is not None:
        parts.append(
            f"CM_ATTEN_CHAR {_ms(run.rsp_at - run.sounding_done):.0f} ms "
            f"({run.atten_char_sends} sent)"
        )
    if run.rsp_at is not None:
        parts.append(f"CM_SLAC_MATCH {_ms(now - run.rsp_at):.0f} ms")
    phases = ", ".join(parts) if parts else "phases not seen"
    return f"matched in {_ms(now - run.started):.0f} ms ({phases}); NID {nid.hex()}"


def _average(total: int, count: int) -> int:
    """Integer mean rounded half up (a 0.5 dB bias either way matters; truncation biases low)."""
    return (2 * total + count) // (2 * count)


CP_STATES = "ABCDEF"


def parse_cp_state(state: str) -> str:
    """The control-pilot letter of "A".."F", "B1", "c2", ...; ValueError otherwise."""
    text = state.strip().upper() if isinstance(state, str) else ""
    if not text or text[0] not in CP_STATES or not (len(text) == 1 or text[1:].isdigit()):
        raise ValueError(f"not a control-pilot state: {state!r} (expected A to F, e.g. B or C2)")
    return text[0]
