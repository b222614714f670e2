"""The EVSE side of ISO 15118-3 SLAC as a sans-IO state machine.

No sockets, no asyncio, no clock: the driver feeds three inputs, each with the current time
``now`` (seconds, any monotonic origin),

- :meth:`EvseMatcher.receive_frame` (a decoded frame),
- :meth:`EvseMatcher.cp_state_changed` (the control pilot, "A" to "F"),
- :meth:`EvseMatcher.handle_timer` (when :attr:`EvseMatcher.deadline` has come),

and pulls three outputs: :meth:`~EvseMatcher.frames_to_send`, :meth:`~EvseMatcher.events`
and :attr:`~EvseMatcher.deadline`.

Everything about state lives in this file, and the transitions are the two tables of
bound methods, :meth:`EvseMatcher._evse_table` and :meth:`EvseMatcher._run_table`. A
message that a table does not list for the current state is ignored (logged at DEBUG with
the reason) and the timers keep running, as ISO 15118-3 asks of receivers. Before a table
is consulted, the frame itself must be a SLAC frame (HomePlug AV 1.1, not a fragment, from
a station, to this EVSE or to all); before a handler changes anything, every field the
standard fixes is checked. An invalid frame changes nothing: no state, no timer, no answer.

States of the EVSE:

- IDLE: not plugged in (or stopped). Frames are ignored.
- WAITING: matching, for one plug-in. Up to ``max_parallel_runs`` EV runs go on in
  parallel, each keyed by (EV MAC, RunID): with crosstalk, neighbours' cars are heard too.
  New EVs are answered until TT_EVSE_SLAC_init has passed since the plug-in; each EV may
  start runs for TT_matching_repetition after its first one, and fail at most
  ``matching_attempts`` (C_conn_max_match) of them. Failures count per EV: a neighbour's
  never use up the own car's attempts, and no failure makes the EVSE drop requests.
- MATCHED: CM_SLAC_MATCH.CNF was sent. Repeated requests of the matched EV get the (current)
  confirmation; nothing else is answered: a new match is :meth:`~EvseMatcher.stop` then
  :meth:`~EvseMatcher.start` (a CP cycle, a lost link, a request from the HLC side).
- FAILED: no EV matched and none may start another run (see :func:`plug_in_time_limit`).
  Nothing happens until the next plug-in.
- PAUSED: no longer entered (the EVSE does not pause between attempts); kept for code that
  names it.

States of one EV run: WAIT_START_ATTEN (PARM.CNF sent, TT_match_sequence; a run also opens
here at a valid START of an EV whose request this EVSE never received, with
``confirm_on_start``), SOUNDING (TT_EVSE_match_MNBC or ATTEN_RESULTS_TIMEOUT, or the
indication's turn; each valid START gets PARM.CNF again), TURN (measured;
CM_ATTEN_CHAR.IND waits ``atten_char_delay_per_db`` per dB after the EV's last sound, so
that the EVSE hearing an EV best answers first), WAIT_RSP (ATTEN_CHAR.IND sent,
TT_match_response, resent up to ``atten_char_retries`` times), WAIT_MATCH
(TT_EVSE_match_session; CM_VALIDATE.REQ restarts it, to twice that at most). In WAIT_MATCH a
CM_SLAC_MATCH.REQ from an EV heard clearly worse than another EV still choosing is held:
answered only once that EV has chosen another EVSE or its run ended, and only within
TP_match_response of the requesting EV's latest request (it gives up TT_match_response
after its last).
"""

from __future__ import annotations

import collections
import logging
import operator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Optional, TypeVar, Union

from slac.config import MatchingConfig
from slac.enums import (
    APPLICATION_TYPE_PEV_EVSE,
    ATTEN_CHAR_RESULT_SUCCESS,
    C_EV_MATCH_MNBC,
    C_EV_MATCH_RETRY,
    MATCH_REQ_MVF_LENGTH,
    MMV_HPAV_1_1,
    NUM_GROUPS,
    SECURITY_TYPE_NONE,
    TIME_OUT_UNIT,
    TP_EV_BATCH_MSG_INTERVAL,
    TP_EV_BATCH_MSG_INTERVAL_MAX,
    TP_MATCH_RESPONSE,
    TT_EV_ATTEN_RESULTS,
    TT_EVSE_MATCH_MNBC,
    TT_MATCH_RESPONSE,
    ValidateResult,
)
from slac.errors import CpStateError
from slac.fsm.base import FrameHandler, Log, Machine, entry
from slac.fsm.events import (
    AttemptFailed,
    Event,
    FailureReason,
    Matched,
    MatchingFailed,
    MatchingOngoing,
    MatchingStarted,
    RunEnded,
    Stopped,
    StopReason,
)
from slac.fsm.station_view import StationView
from slac.messages import (
    ZERO_ID,
    AmpMapCnf,
    AmpMapReq,
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Frame,
    Message,
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


#: How many runs that made room for others are remembered for re-admission.
ANSWERED_MEMORY = 256
#: How many EVs' attempt counts one plug-in keeps (a flood of forged MACs stays bounded).
EV_MEMORY = 1024
#: How many RunIDs of one EV a plug-in remembers (a START of one of them opens no run).
RUN_ID_MEMORY = 8
_RUN_DEADLINE = operator.attrgetter("deadline")
#: CM_SLAC_PARM.CNF with the ISO 15118-3 values; each answer is a copy naming the EV and run
_PARM_CNF = SlacParmCnf(forwarding_sta=MacAddress(bytes(6)), run_id=bytes(8))
#: an EV heard this much better (dB) than the worst-heard sounding run takes its slot
BETTER_HEARD_DB = 6.0
#: the answer to CM_VALIDATE.REQ, in both steps: this EVSE does not count CP toggles
_VALIDATE_CNF = ValidateCnf(result=ValidateResult.NOT_REQUIRED, toggle_num=0, signal_type=0)
#: a CM_VALIDATE.REQ restarts TT_EVSE_match_session, but a run waits at most this many
#: TT_EVSE_match_session for CM_SLAC_MATCH.REQ in all (validation has two steps)
MATCH_SESSION_LIMIT = 2


class EvseState(Enum):
    IDLE = "idle"
    WAITING = "waiting"
    #: not entered any more: the EVSE does not pause between attempts
    PAUSED = "paused"
    MATCHED = "matched"
    FAILED = "failed"


class RunState(Enum):
    WAIT_START_ATTEN = "waiting for CM_START_ATTEN_CHAR.IND"
    SOUNDING = "sounding"
    #: measured; CM_ATTEN_CHAR.IND waits for its turn (ATTEN_CHAR_DELAY_PER_DB)
    TURN = "CM_ATTEN_CHAR.IND waiting for its turn"
    WAIT_RSP = "waiting for CM_ATTEN_CHAR.RSP"
    WAIT_MATCH = "waiting for CM_SLAC_MATCH.REQ"


@dataclass(frozen=True)
class Ignore:
    """A table entry: the message is ignored in this state, for this reason."""

    reason: str


M = TypeVar("M", bound=Message)
#: a run's handler: (run, frame, message, now)
RunHandler = Callable[["EvRun", Frame, Any, float], None]
Handler = Union[FrameHandler, Ignore]
RunEntry = Union[RunHandler, Ignore]

# --- The transition tables ---------------------------------------------------------------------
#
# EvseMatcher._evse_table(): what a message does in each EVSE state; messages that belong to
# one EV run go to _dispatch_to_run, which looks them up again in EvseMatcher._run_table()
# with the run's state. Anything not listed is ignored as "not expected in this state". The
# entries are bound methods, built once per matcher by slac.fsm.base.entry / _run_entry,
# which let mypy check that each handler takes the message type it is listed for.

_MATCHED_IS_SILENT = "matched: no SLAC messages in state Matched"


def _run_entry(
    state: RunState, kind: type[M], handler: Callable[[EvRun, Frame, M, float], None]
) -> tuple[tuple[RunState, type], RunEntry]:
    return (state, kind), handler


def _ignored(state: Any, kind: type, reason: str) -> tuple[tuple[Any, type], Ignore]:
    return (state, kind), Ignore(reason)


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
    #: the sounds' Cnt (the sounds still to come) seen so far
    sounds_seen: set[int] = field(default_factory=set)
    #: (Cnt, arrival) of the first sound heard (the highest Cnt) and of the latest (lowest)
    first_sound: Optional[tuple[int, float]] = None
    last_sound: Optional[tuple[int, float]] = None
    #: the end of the sounding window (TT_EVSE_match_MNBC or ATTEN_RESULTS_TIMEOUT)
    window_end: float = 0.0
    profiles: int = 0
    #: profiles that carried attenuation values (some modems send NumGroups 0)
    data_profiles: int = 0
    aag_sum: list[int] = field(default_factory=lambda: [0] * NUM_GROUPS)
    atten_char: Optional[AttenCharInd] = None
    atten_char_sends: int = 0
    #: profiles counted when the EV's last sound (counter 0) arrived: the next profile is
    #: that sound's, and sounding is complete then, even when sounds were lost before
    profiles_at_last_sound: Optional[int] = None
    #: loop times of the phases, for the match summary
    sounding_started: Optional[float] = None
    sounding_done: Optional[float] = None
    rsp_at: Optional[float] = None
    #: when the run began waiting for CM_SLAC_MATCH.REQ (validation may extend the wait)
    wait_match_since: Optional[float] = None
    #: the EV sent CM_VALIDATE.REQ: it is considering this EVSE
    validating: bool = False
    #: a CM_SLAC_MATCH.REQ waiting for a better-heard EV, and until when its EV listens
    held_request: Optional[SlacMatchReq] = None
    held_until: float = 0.0
    #: a request refused for key hygiene was reported (once per run)
    refusal_reported: bool = False
    #: a request was left to the station's EVSE that hears this EV better (logged once)
    left_to_station: bool = False

    @property
    def key(self) -> tuple[bytes, bytes]:
        return (bytes(self.ev_mac), self.run_id)

    @property
    def heard_db(self) -> Optional[float]:
        """Mean attenuation (dB) over the profiles with values so far; None without any."""
        if not self.data_profiles:
            return None
        return sum(self.aag_sum) / (self.data_profiles * NUM_GROUPS)

    @property
    def decided_by(self) -> Optional[float]:
        """When the EV must have chosen an EVSE: TT_EV_atten_results after its first
        CM_START_ATTEN_CHAR.IND (V2G3-A09-30), and one TT_match_response for its request."""
        if self.sounding_started is None:
            return None
        return self.sounding_started + TT_EV_ATTEN_RESULTS + TT_MATCH_RESPONSE


@dataclass
class EvHistory:
    """What one EV did in this plug-in: when it started, how many of its runs failed, how
    well this EVSE heard it last."""

    first_parm: float
    failures: int = 0
    heard_db: Optional[float] = None
    #: the RunIDs of its runs in this plug-in (the last RUN_ID_MEMORY)
    run_ids: list[bytes] = field(default_factory=list)


@dataclass
class Answered:
    """A run that made room for others: its EV may prove itself and be served again."""

    cnf: SlacParmCnf
    #: a valid CM_START_ATTEN_CHAR.IND arrived while there was no slot for the run
    start_seen: bool = False


@dataclass(frozen=True)
class MatchRecord:
    """The match that was made: who, and the confirmation to repeat when asked again."""

    ev_mac: MacAddress
    run_id: bytes
    cnf: SlacMatchCnf


def plug_in_time_limit(config: MatchingConfig) -> float:
    """The longest a plug-in stays WAITING, from :meth:`EvseMatcher.start` to Matched or
    MatchingFailed, whatever the stations on the powerline send (82.1 s with the defaults).

    New EVs are answered until TT_EVSE_SLAC_init; an EV starts its last run at most
    TT_matching_repetition after its first; and a run lasts at most TT_match_sequence
    (+ C_EV_match_retry x TT_match_response for repeated requests), the sounding window or,
    when later, the latest turn of CM_ATTEN_CHAR.IND (TT_EV_atten_results - C_EV_match_retry
    x TT_match_response - TP_match_response after the START: 0.7 s), the indication and its
    resends ((1 + C_EV_match_retry) x TT_match_response) and twice TT_EVSE_match_session
    (validation restarts it once).
    """
    sounding = config.atten_results_timeout or TT_EVSE_MATCH_MNBC
    if config.atten_char_delay_per_db > 0:
        sounding = max(sounding, _latest_turn(config))
    run = (
        config.match_sequence_timeout
        + C_EV_MATCH_RETRY * TT_MATCH_RESPONSE
        + sounding
        + (1 + config.atten_char_retries) * config.match_response_timeout
        + MATCH_SESSION_LIMIT * config.match_session_timeout
    )
    return config.slac_init_timeout + config.matching_repetition + run


class EvseMatcher(Machine[Event]):
    """ISO 15118-3 SLAC, EVSE side, without I/O.

    ``evse_mac`` is this EVSE host's MAC (the interface's), ``nmk``/``nid`` the key the local
    modem was given; :meth:`set_key` changes them. ``modem_mac`` is the local modem's own
    address, learned by the driver from its answers (CM_SET_KEY.CNF, vendor CNFs): only it
    may send CM_ATTEN_PROFILE.IND. While it is None, profiles come from the first station
    that sends one for a sounding EV and is neither this EVSE nor an EV of this plug-in;
    that station is kept for the plug-in.
    """

    def __init__(
        self,
        evse_mac: bytes,
        nmk: bytes,
        nid: bytes,
        config: Optional[MatchingConfig] = None,
        *,
        log: Optional[Log] = None,
        station_view: Optional[StationView] = None,
    ) -> None:
        super().__init__()
        self.evse_mac = MacAddress(evse_mac)
        #: what the other EVSEs of this station heard (None: this EVSE decides alone)
        self.station_view = station_view
        self.modem_mac: Optional[MacAddress] = None
        self.config = config or MatchingConfig()
        self.log = log or logger
        self._nmk = nmk
        self._nid = nid
        self.state = EvseState.IDLE
        self.cp_state: Optional[str] = None
        self.runs: dict[tuple[bytes, bytes], EvRun] = {}
        #: runs that made room for others, by (EV MAC, RunID), bounded
        self._answered: collections.OrderedDict[tuple[bytes, bytes], Answered] = (
            collections.OrderedDict()
        )
        #: every EV served in this plug-in, by MAC
        self._evs: collections.OrderedDict[bytes, EvHistory] = collections.OrderedDict()
        self.match: Optional[MatchRecord] = None
        #: soundings whose profiles all had NumGroups 0 (EMPTY_PROFILE_ATTENUATION reported)
        self.empty_profile_runs = 0
        #: the EV that received the current key: no other EV may get it, in this plug-in or
        #: a later one, until set_key() (the driver gave the modem a fresh key)
        self._key_holder: Optional[MacAddress] = None
        self._started_at = 0.0
        self._admit_until = 0.0
        self._runs_started = 0
        #: the last run end that counted as a failure, and the best-heard other one
        self._last_failure: Optional[RunEnded] = None
        self._last_other_end: Optional[RunEnded] = None
        #: the profiles' source while modem_mac is unknown (the first one accepted)
        self._profile_source: Optional[MacAddress] = None
        self._foreign_profile_reported = False
        #: the next time a held CM_SLAC_MATCH.REQ must be looked at again
        self._hold_wake: Optional[float] = None
        self._ongoing_reported = False
        self._table = self._evse_table()
        self._runs = self._run_table()

    def _evse_table(self) -> dict[tuple[EvseState, type], Handler]:
        """What a message does in each EVSE state (see the comment above ``_run_entry``)."""
        waiting, matched = EvseState.WAITING, EvseState.MATCHED
        return dict(
            [
                entry(waiting, SlacParmReq, self._on_parm_req),
                entry(waiting, StartAttenCharInd, self._dispatch_to_run),
                entry(waiting, MnbcSoundInd, self._dispatch_to_run),
                entry(waiting, AttenProfileInd, self._on_profile),
                entry(waiting, AttenCharRsp, self._dispatch_to_run),
                entry(waiting, SlacMatchReq, self._dispatch_to_run),
                entry(waiting, ValidateReq, self._on_validate),
                # A new match needs what the standard gives: a CP cycle, a lost link or the
                # HLC side, each of which stops this machine and starts it again.
                _ignored(matched, SlacParmReq, _MATCHED_IS_SILENT),
                _ignored(matched, ValidateReq, _MATCHED_IS_SILENT),
                entry(matched, SlacMatchReq, self._on_match_req_when_matched),
                entry(matched, AmpMapReq, self._on_amp_map),
                _ignored(matched, AttenCharRsp, "already matched"),
            ]
        )

    def _run_table(self) -> dict[tuple[RunState, type], RunEntry]:
        """What a message of one EV run does in each run state."""
        start, sounding, turn = RunState.WAIT_START_ATTEN, RunState.SOUNDING, RunState.TURN
        rsp, match = RunState.WAIT_RSP, RunState.WAIT_MATCH
        return dict(
            [
                _run_entry(start, StartAttenCharInd, self._run_start_sounding),
                # Only with SOUNDING_WITHOUT_START (not ISO): a sound starts sounding when
                # every CM_START_ATTEN_CHAR.IND was lost.
                _run_entry(start, MnbcSoundInd, self._run_sound),
                # The copies of CM_START_ATTEN_CHAR.IND: each is answered with the run's CNF
                # again (CONFIRM_ON_START), so an EV whose CNF was lost counts this EVSE while
                # it sounds.
                _run_entry(sounding, StartAttenCharInd, self._run_repeated_start),
                _run_entry(sounding, MnbcSoundInd, self._run_sound),
                _ignored(turn, StartAttenCharInd, "sounding is over"),
                _ignored(turn, MnbcSoundInd, "late sound, sounding is over"),
                _ignored(rsp, StartAttenCharInd, "sounding is over"),
                _ignored(rsp, MnbcSoundInd, "late sound, sounding is over"),
                _run_entry(rsp, AttenCharRsp, self._run_atten_char_rsp),
                # The EV's CM_ATTEN_CHAR.RSP may be lost while the EV moves on: its request
                # proves that it received CM_ATTEN_CHAR.IND.
                _run_entry(rsp, SlacMatchReq, self._run_match_req),
                _ignored(match, AttenCharRsp, "repeated CM_ATTEN_CHAR.RSP"),
                _ignored(match, MnbcSoundInd, "late sound, sounding is over"),
                _ignored(match, StartAttenCharInd, "sounding is over"),
                _run_entry(match, SlacMatchReq, self._run_match_req),
            ]
        )

    @property
    def deadline(self) -> Optional[float]:
        """When :meth:`handle_timer` must be called next (None: no timer runs)."""
        if self.state is not EvseState.WAITING:
            return None
        if not self.runs:
            return self._plug_in_over_at()
        soonest: float = min(map(_RUN_DEADLINE, self.runs.values()))
        if self._hold_wake is not None and self._hold_wake < soonest:
            return self._hold_wake
        return soonest

    @property
    def nid(self) -> bytes:
        return self._nid

    @property
    def attempt(self) -> int:
        """The matching attempt under way: 1 + the most failed attempts of one EV (0 when
        idle before any start)."""
        if self.state is EvseState.IDLE and not self._evs:
            return 0
        failed = max((h.failures for h in self._evs.values()), default=0)
        return min(1 + failed, self.config.matching_attempts)

    def set_key(self, nmk: bytes, nid: bytes) -> None:
        """The local modem now has this key; it is what CM_SLAC_MATCH.CNF hands out.

        No EV holds the new key yet. While matched, the stored confirmation is rebuilt with
        it: a repeated request of the matched EV gets the key the modem holds.
        """
        self._nmk = nmk
        self._nid = nid
        self._key_holder = None
        if self.match is not None:
            old = self.match.cnf
            cnf = SlacMatchCnf(
                pev_mac=old.pev_mac,
                evse_mac=old.evse_mac,
                run_id=old.run_id,
                nid=nid,
                nmk=nmk,
                pev_id=old.pev_id,
                evse_id=old.evse_id,
            )
            self.match = MatchRecord(self.match.ev_mac, self.match.run_id, cnf)

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
            self.stop(now, StopReason.UNPLUGGED, "control pilot A: EV unplugged")
        elif letter in "EF" and self.state is EvseState.MATCHED:
            self.stop(now, StopReason.CP_ERROR, f"control pilot {letter} while matched")
        return False

    def start(self, now: float) -> None:
        """Begin matching for a plug-in (idempotent while matching or matched): fresh attempt
        counts, TT_EVSE_SLAC_init from now."""
        if self.state in (EvseState.WAITING, EvseState.PAUSED, EvseState.MATCHED):
            return
        self.match = None
        self.runs.clear()
        self._answered.clear()
        self._evs.clear()
        self._runs_started = 0
        self._last_failure = None
        self._last_other_end = None
        self._profile_source = None
        self._foreign_profile_reported = False
        self._hold_wake = None
        self._ongoing_reported = False
        self._started_at = now
        self._admit_until = now + self.config.slac_init_timeout
        if self.station_view is not None:
            self.station_view.forget(self.evse_mac)
        self.state = EvseState.WAITING
        self.log.info("matching: waiting for CM_SLAC_PARM.REQ")
        self._emit(MatchingStarted(1))

    def stop(
        self, now: float, reason: Union[StopReason, str] = StopReason.DRIVER, detail: str = ""
    ) -> None:
        """End matching or the match; back to IDLE. ``reason`` says why (a bare string is
        taken as the detail of :attr:`StopReason.DRIVER`).

        The EV that got the key still holds it: only :meth:`set_key` (the driver gave the
        modem a fresh key) lets another EV have a key.
        """
        if isinstance(reason, str):
            detail = detail or reason
            reason = StopReason.DRIVER
        if self.state is EvseState.IDLE:
            return
        was_matched = self.state is EvseState.MATCHED
        self.runs.clear()
        self.match = None
        self._hold_wake = None
        if self.station_view is not None:
            self.station_view.forget(self.evse_mac)
        self.state = EvseState.IDLE
        self.log.info("SLAC stopped: %s", detail or reason.value)
        self._emit(Stopped(reason, was_matched, detail or reason.value))

    def receive_frame(self, frame: Frame, now: float) -> None:
        """Feed a decoded frame received on the EVSE's interface."""
        message = frame.message
        handler = self._table.get((self.state, type(message)))
        if handler is None:
            self._ignore(frame, f"not expected while {self.state.value}")
            return
        problem = self._frame_problem(frame)
        if problem is not None:
            self._ignore(frame, problem)
            return
        if isinstance(handler, Ignore):
            self._ignore(frame, handler.reason)
            return
        handler(frame, message, now)

    def handle_timer(self, now: float) -> None:
        """Process every deadline that has come by ``now``."""
        if self.state is not EvseState.WAITING:
            return
        for run in list(self.runs.values()):
            if now >= run.deadline and run.key in self.runs:
                self._run_timeout(run, now)
        if self.state is EvseState.WAITING:
            self._recheck_holds(now)
        if self.state is EvseState.WAITING and not self.runs:
            self._end_plug_in_if_over(now)

    # --- EVSE-level handlers --------------------------------------------------------------------

    def _on_parm_req(self, frame: Frame, message: SlacParmReq, now: float) -> None:
        problem = _types_problem(message.application_type, message.security_type)
        if problem is not None:
            self._ignore(frame, problem)
            return
        ev = frame.src
        key = (bytes(ev), message.run_id)
        run = self.runs.get(key)
        if run is not None:
            if not self._started_over(run, now):
                # a repeat (the EV missed the confirmation) or a duplicate: the same answer
                self._send(ev, run.parm_cnf)
                if run.state is RunState.WAIT_START_ATTEN:
                    run.deadline = min(
                        now + self.config.match_sequence_timeout,
                        run.started
                        + self.config.match_sequence_timeout
                        + C_EV_MATCH_RETRY * TT_MATCH_RESPONSE,
                    )
                self.log.debug("EV %s repeated CM_SLAC_PARM.REQ, same CNF sent again", ev)
                return
            # Cars such as the Ioniq and Teslas start over with the same RunID: that restarts
            # the run (V2G3-A09-16, as EVerest does), a fresh attempt of this EV.
            counts = run.state is not RunState.WAIT_MATCH
            self._end_run(
                run,
                FailureReason.EV_STARTED_OVER,
                "the EV started over with the same RunID",
                now,
                counts=counts,
            )
            if self.state is not EvseState.WAITING:
                return
        problem = self._admission_problem(ev, now)
        if problem is not None:
            self._ignore(frame, problem)
            return
        for old in [r for r in self.runs.values() if r.ev_mac == ev]:
            self._end_run(
                old,
                FailureReason.EV_STARTED_OVER,
                "the EV started a new run (new RunID)",
                now,
                counts=False,
                settle=False,
            )
        if len(self.runs) >= self.config.max_parallel_runs and not self._evict_for(ev, now):
            self._ignore(frame, f"already serving {len(self.runs)} EV runs (C_EVSE_match_parallel)")
            return
        # ev and run_id come from the decoded frame: of their fields' types already
        cnf = _PARM_CNF._trusted_copy(forwarding_sta=ev, run_id=message.run_id)
        run = self._new_run(ev, message.run_id, cnf, now)
        self._runs_started += 1
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
            self._emit(MatchingOngoing(ev, message.run_id))

    def _new_run(self, ev: MacAddress, run_id: bytes, cnf: SlacParmCnf, now: float) -> EvRun:
        run = EvRun(ev_mac=ev, run_id=run_id, parm_cnf=cnf, started=now)
        run.deadline = now + self.config.match_sequence_timeout
        self.runs[run.key] = run
        self._answered.pop(run.key, None)
        history = self._evs.get(bytes(ev))
        if history is None:
            history = self._evs[bytes(ev)] = EvHistory(first_parm=now)
            while len(self._evs) > EV_MEMORY:
                self._evs.popitem(last=False)
        if run_id not in history.run_ids:
            history.run_ids.append(run_id)
            del history.run_ids[:-RUN_ID_MEMORY]
        return run

    def _started_over(self, run: EvRun, now: float) -> bool:
        """A CM_SLAC_PARM.REQ with the RunID of a run past sounding, once the EV's
        TT_EV_atten_results is over: the EV gave up on its attempt and starts over (a repeat
        within the attempt, or a duplicate frame, cannot come that late)."""
        return (
            run.state in (RunState.WAIT_RSP, RunState.WAIT_MATCH)
            and run.sounding_started is not None
            and now - run.sounding_started >= TT_EV_ATTEN_RESULTS
        )

    def _admission_problem(self, ev: MacAddress, now: float) -> Optional[str]:
        """Why this EV may not start a run now, or None."""
        history = self._evs.get(bytes(ev))
        if history is None:
            if now >= self._admit_until:
                return "a new EV after TT_EVSE_SLAC_init: not in this plug-in"
            return None
        if history.failures >= self.config.matching_attempts:
            return f"the EV used up its {self.config.matching_attempts} attempts (C_conn_max_match)"
        if now >= history.first_parm + self.config.matching_repetition:
            return "the EV's TT_matching_repetition is over"
        return None

    def _readmit(self, frame: Frame, message: Message, now: float) -> Optional[EvRun]:
        """An EV we confirmed proves itself with a valid CM_START_ATTEN_CHAR.IND (or sound, with
        SOUNDING_WITHOUT_START), but its run made room for others meanwhile (a flood of
        requests): it gets a slot back."""
        ev = frame.src
        run_id: bytes = getattr(message, "run_id", b"")
        memo = self._answered.get((bytes(ev), run_id))
        if memo is None:
            return None
        if isinstance(message, StartAttenCharInd):
            problem = _start_problem(frame, message, memo.cnf)
        else:
            assert isinstance(message, MnbcSoundInd)
            problem = _sound_problem(message, memo.cnf.num_sounds)
        if problem is None and any(r.ev_mac == ev for r in self.runs.values()):
            problem = "the EV moved on to another RunID"
        if problem is None:
            problem = self._admission_problem(ev, now)
        if problem is not None:
            self._ignore(frame, problem)
            return None
        if len(self.runs) >= self.config.max_parallel_runs and not self._evict_for(ev, now):
            if isinstance(message, StartAttenCharInd):
                memo.start_seen = True  # its profiles may still win it a slot
            self._ignore(frame, "every parallel slot is busy")
            return None
        run = self._new_run(ev, run_id, memo.cnf, now)
        self._log_run(
            logging.INFO, run, "sounding after its run made room for others: served again"
        )
        return run

    def _open_run_at_start(
        self, frame: Frame, message: StartAttenCharInd, now: float
    ) -> Optional[EvRun]:
        """A valid CM_START_ATTEN_CHAR.IND of an EV without a run here, whose RunID this EVSE
        never confirmed: its CM_SLAC_PARM.REQ was lost on the way here, while a neighbour's
        EVSE answered it (so the EV sounds). The run opens as the request would have opened
        it; the START handler sends the CNF and starts sounding. A RunID this EVSE confirmed
        before (its run ended: TT_match_sequence, ISO 15118-5's _012) opens nothing."""
        ev = frame.src
        problem = _start_problem(frame, message, _PARM_CNF)
        history = self._evs.get(bytes(ev))
        if problem is None and history is not None and message.run_id in history.run_ids:
            problem = "its run with this RunID is over"
        if problem is None:
            problem = self._admission_problem(ev, now)
        if problem is None and len(self.runs) >= self.config.max_parallel_runs:
            # no eviction: in a burst every car's START comes within milliseconds, and a
            # START taking the slot of a run still waiting for its own START would churn
            problem = f"already serving {len(self.runs)} EV runs (C_EVSE_match_parallel)"
        if problem is not None:
            self._ignore(frame, f"no run for this EV, and no run opens: {problem}")
            return None
        cnf = _PARM_CNF._trusted_copy(forwarding_sta=ev, run_id=message.run_id)
        run = self._new_run(ev, message.run_id, cnf, now)
        self._runs_started += 1
        self._log_run(
            logging.INFO,
            run,
            "CM_START_ATTEN_CHAR.IND without a CM_SLAC_PARM.REQ here (lost on the way?): "
            "confirmed now",
        )
        if not self._ongoing_reported:
            self._ongoing_reported = True
            self._emit(MatchingOngoing(ev, message.run_id))
        return run

    def _remember_answer(self, run: EvRun) -> None:
        """Keep the last runs that made room (bounded) so that their EVs can be re-admitted."""
        self._answered[run.key] = Answered(run.parm_cnf)
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
        out for TT_EVSE_match_session (10 s). A run whose EV is asking (a held request) or
        validating stays.
        """
        stale = [r for r in self.runs.values() if r.state is RunState.WAIT_START_ATTEN]
        if stale:
            oldest = min(stale, key=lambda r: r.started)
            self._remember_answer(oldest)
            self._end_run(
                oldest,
                FailureReason.REPLACED,
                f"replaced by EV {ev}: every parallel slot was taken",
                now,
                counts=False,
                settle=False,
            )
            return True
        chosen_elsewhere = [
            r
            for r in self.runs.values()
            if r.state is RunState.WAIT_MATCH
            and r.rsp_at is not None
            and now - r.rsp_at >= TT_EV_ATTEN_RESULTS
            and r.held_request is None
            and not r.validating
        ]
        if chosen_elsewhere:
            oldest = min(chosen_elsewhere, key=lambda r: r.rsp_at or 0.0)
            self._end_run(
                oldest,
                FailureReason.EV_CHOSE_ANOTHER_EVSE,
                f"replaced by EV {ev}: no CM_SLAC_MATCH.REQ {_ms(now - (oldest.rsp_at or now)):.0f}"
                " ms after CM_ATTEN_CHAR.RSP, the EV chose another EVSE",
                now,
                counts=False,
                settle=False,
            )
            return True
        return False

    def _admit_better_heard(self, message: AttenProfileInd, now: float) -> Optional[EvRun]:
        """A profile of an EV whose run made room for others and that sent a valid
        CM_START_ATTEN_CHAR.IND (which found no free slot): when this EVSE hears it clearly
        better than the worst-heard EV it is sounding with, that one makes room. The EV on this
        EVSE's own cable is heard best: crosstalk cannot lock it out. It is served from this
        profile on (the average covers the profiles received)."""
        ev = message.pev_mac
        if not message.aag or any(r.ev_mac == ev for r in self.runs.values()):
            return None
        key = next((k for k in reversed(self._answered) if k[0] == bytes(ev)), None)
        if key is None:
            return None
        memo = self._answered[key]
        if not (memo.start_seen or self.config.sounding_without_start):
            return None
        if self._admission_problem(ev, now) is not None:
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
                FailureReason.REPLACED,
                f"replaced by EV {ev}, heard at {heard:.0f} dB instead of {worst_db:.0f} dB",
                now,
                counts=False,
                settle=False,
            )
        run = self._new_run(ev, key[1], memo.cnf, now)
        self._begin_sounding(run, run.num_sounds, None, now)
        self._log_run(logging.INFO, run, "heard better than a run it replaces: served again")
        return run

    def _on_profile(self, frame: Frame, message: AttenProfileInd, now: float) -> None:
        problem = self._profile_source_problem(frame)
        if problem is not None:
            self._ignore(frame, problem)
            return
        if len(message.aag) not in (0, NUM_GROUPS):
            self._ignore(frame, f"{len(message.aag)} groups instead of {NUM_GROUPS}")
            return
        run = next((r for r in self.runs.values() if r.ev_mac == message.pev_mac), None)
        if run is None and message.aag:
            run = self._admit_better_heard(message, now)
        if run is None:
            self._ignore(frame, f"no run for EV {message.pev_mac}")
            return
        if run.state is RunState.WAIT_START_ATTEN:
            if not self.config.sounding_without_start:
                self._ignore(frame, "no valid CM_START_ATTEN_CHAR.IND from the EV yet")
                return
            self._begin_sounding(run, run.num_sounds, None, now)
        elif run.state is not RunState.SOUNDING:
            self._ignore(frame, f"run of EV {run.ev_mac} is {run.state.value}")
            return
        if run.profiles >= run.num_sounds:
            self._ignore(frame, "more profiles than sounds")
            return
        if self.modem_mac is None and self._profile_source is None:
            self._profile_source = frame.src
            self.log.info(
                "the modem's address is not known yet: CM_ATTEN_PROFILE.IND are taken from %s "
                "for this plug-in",
                frame.src,
            )
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

    def _profile_source_problem(self, frame: Frame) -> Optional[str]:
        src = frame.src
        if self.modem_mac is not None:
            if src == self.modem_mac:
                return None
            if not self._foreign_profile_reported:  # once per plug-in: a flood stays quiet
                self._foreign_profile_reported = True
                self.log.warning(
                    "CM_ATTEN_PROFILE.IND from %s ignored: this EVSE's modem is %s",
                    src,
                    self.modem_mac,
                )
            return "not from this EVSE's modem"
        if self._profile_source is not None:
            if src == self._profile_source:
                return None
            return f"the profiles of this plug-in come from {self._profile_source}"
        if bytes(src) in self._evs or any(r.ev_mac == src for r in self.runs.values()):
            return "CM_ATTEN_PROFILE.IND from an EV station"
        return None

    def _on_validate(self, frame: Frame, message: ValidateReq, now: float) -> None:
        if message.signal_type != 0:
            self._ignore(frame, f"SignalType {message.signal_type} is not 0 (CP toggles)")
            return
        if message.result != ValidateResult.READY:
            self._ignore(frame, f"Result {message.result} is not 1 (ready)")
            return
        run = next(
            (
                r
                for r in self.runs.values()
                if r.ev_mac == frame.src and r.state in (RunState.WAIT_RSP, RunState.WAIT_MATCH)
            ),
            None,
        )
        if run is None:
            self._ignore(frame, "no run of this EV past sounding")
            return
        if run.state is RunState.WAIT_RSP:  # its RSP was lost: the request proves the IND came
            self._wait_for_match(run, now)
        run.validating = True
        assert run.wait_match_since is not None
        run.deadline = min(
            now + self.config.match_session_timeout,
            run.wait_match_since + MATCH_SESSION_LIMIT * self.config.match_session_timeout,
        )
        # This EVSE does not count CP toggles: its match never depends on validation, which is
        # what "not required" says, in both steps (V2G3-A09-72 keeps the EVSE among the EV's
        # candidates; "failure" after "not required" would make the EV drop it).
        self._send(frame.src, _VALIDATE_CNF)

    def _on_match_req_when_matched(self, frame: Frame, message: SlacMatchReq, now: float) -> None:
        assert self.match is not None  # the state is MATCHED
        if (frame.src, message.run_id) != (self.match.ev_mac, self.match.run_id):
            self._ignore(frame, "matched with another EV or RunID")
            return
        problem = self._match_req_problem(frame, message)
        if problem is not None:
            self._ignore(frame, problem)
            return
        if self._key_holder is None:
            self._key_holder = self.match.ev_mac  # the key set while matched goes to this EV
        self._send(self.match.ev_mac, self.match.cnf)
        self.log.debug("EV %s repeated CM_SLAC_MATCH.REQ, same CNF sent again", frame.src)

    def _on_amp_map(self, frame: Frame, message: AmpMapReq, now: float) -> None:
        assert self.match is not None  # the state is MATCHED
        if frame.src != self.match.ev_mac:
            self._ignore(frame, "CM_AMP_MAP.REQ from a station that is not the matched EV")
        elif not message.amplitudes:
            self._ignore(frame, "CM_AMP_MAP.REQ with AMLEN 0 is invalid")
        else:
            self._send(frame.src, AmpMapCnf(result=0))

    # --- run handlers -------------------------------------------------------------------------

    def _dispatch_to_run(
        self,
        frame: Frame,
        message: Union[StartAttenCharInd, MnbcSoundInd, AttenCharRsp, SlacMatchReq],
        now: float,
    ) -> None:
        run_id: bytes = getattr(message, "run_id", b"")
        run = self.runs.get((bytes(frame.src), run_id))
        if (
            run is None
            and (bytes(frame.src), run_id) in self._answered
            and (
                isinstance(message, StartAttenCharInd)
                or (isinstance(message, MnbcSoundInd) and self.config.sounding_without_start)
            )
        ):
            run = self._readmit(frame, message, now)
            if run is None:
                return  # said why
        elif (
            run is None
            and isinstance(message, StartAttenCharInd)
            and self.config.confirm_on_start
            and not any(r.ev_mac == frame.src for r in self.runs.values())
        ):
            run = self._open_run_at_start(frame, message, now)
            if run is None:
                return  # said why
        if run is None:
            if any(r.ev_mac == frame.src for r in self.runs.values()):
                self._ignore(frame, "wrong RunID for this EV")
            else:
                self._ignore(frame, "no run for this EV")
            return
        handler = self._runs.get((run.state, type(message)))
        if handler is None:
            self._ignore(frame, f"not expected while the run is {run.state.value}")
            return
        if isinstance(handler, Ignore):
            self._ignore(frame, handler.reason)
            return
        handler(run, frame, message, now)

    def _run_start_sounding(
        self, run: EvRun, frame: Frame, message: StartAttenCharInd, now: float
    ) -> None:
        problem = _start_problem(frame, message, run.parm_cnf)
        if problem is not None:
            self._ignore(frame, problem)
            return
        self._begin_sounding(run, message.num_sounds, message.time_out, now)
        self._confirm_again(run)

    def _run_repeated_start(
        self, run: EvRun, frame: Frame, message: StartAttenCharInd, now: float
    ) -> None:
        if not self.config.confirm_on_start:
            self._ignore(frame, "repeated CM_START_ATTEN_CHAR.IND")
            return
        problem = _start_problem(frame, message, run.parm_cnf)
        if problem is not None:
            self._ignore(frame, problem)
            return
        self._confirm_again(run)

    def _confirm_again(self, run: EvRun) -> None:
        """The EV announced its sounding: confirm the run again (CONFIRM_ON_START), at each
        valid copy of CM_START_ATTEN_CHAR.IND (a lost copy of the CNF, after a lost CNF,
        would still leave the EV counting only a neighbour). Its CM_SLAC_PARM.CNF may have
        been lost while another EVSE's arrived; an EV that has it ignores the copy, and
        ISO 15118-5's SECC cases ignore CM_SLAC_PARM.CNF while the EV sounds."""
        if self.config.confirm_on_start:
            self._send(run.ev_mac, run.parm_cnf)

    def _run_sound(self, run: EvRun, frame: Frame, message: MnbcSoundInd, now: float) -> None:
        problem = _sound_problem(message, run.num_sounds)
        if problem is not None:
            self._ignore(frame, problem)
            return
        if run.state is RunState.WAIT_START_ATTEN:
            if not self.config.sounding_without_start:
                self._ignore(frame, "no valid CM_START_ATTEN_CHAR.IND from the EV yet")
                return
            self._begin_sounding(run, run.num_sounds, None, now)
        count = message.remaining_sounds
        if count in run.sounds_seen:
            self._ignore(frame, f"repeated sound {count}")
            return
        run.sounds_seen.add(count)
        if run.first_sound is None or count > run.first_sound[0]:
            run.first_sound = (count, now)
        if run.last_sound is None or count < run.last_sound[0]:
            run.last_sound = (count, now)
        if count == 0:
            run.profiles_at_last_sound = run.profiles
        if self._closes_early:
            # the measurement ends at the indication's turn at the latest: the EV's sounds
            # are over by then, even when the last one or its profile was lost
            due = self._atten_char_due(run)
            if due is not None:
                run.deadline = min(run.window_end, max(due, now))
        if self.log.isEnabledFor(logging.DEBUG):
            self._log_run(logging.DEBUG, run, "sound %d/%d", len(run.sounds_seen), run.num_sounds)

    def _run_atten_char_rsp(
        self, run: EvRun, frame: Frame, message: AttenCharRsp, now: float
    ) -> None:
        problem = _types_problem(message.application_type, message.security_type)
        if problem is None and message.source_address != run.ev_mac:
            problem = f"SOURCE_ADDRESS {message.source_address} is not the EV"
        if problem is None and (message.source_id != ZERO_ID or message.resp_id != ZERO_ID):
            problem = "SOURCE_ID and RESP_ID must be all zero"
        if problem is None and message.result != ATTEN_CHAR_RESULT_SUCCESS:
            problem = f"Result {message.result} is not 0 (success)"
        if problem is not None:
            self._ignore(frame, problem)  # the indication is resent: the EV may answer again
            return
        run.rsp_at = now
        self._wait_for_match(run, now)
        self._log_run(
            logging.DEBUG,
            run,
            "CM_ATTEN_CHAR.RSP after %.0f ms, waiting for CM_SLAC_MATCH.REQ",
            _ms(now - (run.sounding_done or now)),
        )

    def _run_match_req(self, run: EvRun, frame: Frame, message: SlacMatchReq, now: float) -> None:
        problem = self._match_req_problem(frame, message)
        if problem is not None:
            self._ignore(frame, problem)
            return
        if self._key_holder is not None and self._key_holder != run.ev_mac:
            # One key, one EV: this key went to an earlier EV; the driver must give the modem a
            # fresh one (CM_SET_KEY) before another EV may have a key.
            if not run.refusal_reported:
                run.refusal_reported = True
                self._log_run(
                    logging.WARNING,
                    run,
                    "CM_SLAC_MATCH.REQ refused: this EVSE's key went to EV %s; the modem needs "
                    "a new key (CM_SET_KEY) first",
                    self._key_holder,
                )
            self._ignore(frame, f"this EVSE's key was handed to EV {self._key_holder}")
            return
        if run.state is RunState.WAIT_RSP:
            self._wait_for_match(run, now)
        if self._leave_to_better_evse(run, now):
            self._ignore(frame, "another EVSE of this station hears this EV clearly better")
            return
        rivals = self._better_rivals(run, now)
        if rivals:
            first = run.held_request is None
            run.held_request = message
            # The EV gives up TT_match_response after its last request, and this may be its
            # last: a confirmation goes out within TP_match_response of the latest request,
            # so that it arrives while the EV still listens, or not at all.
            run.held_until = now + TP_MATCH_RESPONSE
            self._update_hold_wake(now)
            if first:
                rival = rivals[0]
                self._log_run(
                    logging.INFO,
                    run,
                    "CM_SLAC_MATCH.REQ waits: EV %s is heard %.1f dB better and may still "
                    "choose this EVSE",
                    rival.ev_mac,
                    (run.heard_db or 0.0) - (rival.heard_db or 0.0),
                )
            return
        self._confirm(run, message, now)

    def _confirm(self, run: EvRun, message: SlacMatchReq, now: float) -> None:
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
        self._hold_wake = None
        for other in others:
            self._emit(
                RunEnded(
                    other.ev_mac,
                    other.run_id,
                    FailureReason.OTHER_EV_MATCHED,
                    "this EVSE matched another EV",
                    other.heard_db,
                )
            )
        self.match = MatchRecord(run.ev_mac, run.run_id, cnf)
        self._key_holder = run.ev_mac
        if self.station_view is not None:
            self.station_view.matched(self.evse_mac, run.ev_mac)
        self.state = EvseState.MATCHED
        self._log_run(logging.INFO, run, "%s", _summary(run, now, self._nid))
        self._emit(Matched(run.ev_mac, run.run_id, self._nid, run.heard_db))

    # --- the station: an EV heard clearly better by another EVSE ------------------------------

    def _leave_to_better_evse(self, run: EvRun, now: float) -> bool:
        """True when another EVSE of this station heard ``run``'s EV at least
        ``match_hold_margin`` dB better (and is not matched with another EV): the EV's own
        EVSE is that one, so its request here stays unanswered (logged once per run)."""
        mine = run.heard_db
        if self.station_view is None or mine is None:
            return False
        better = self.station_view.better_elsewhere(
            self.evse_mac, run.ev_mac, mine, self.config.match_hold_margin, now
        )
        if better is None:
            return False
        if not run.left_to_station:
            run.left_to_station = True
            self._log_run(
                logging.INFO,
                run,
                "CM_SLAC_MATCH.REQ not answered: EVSE %s of this station hears this EV at "
                "%.1f dB, %.1f dB better than this EVSE (%.1f dB); it is that EVSE's car",
                MacAddress(better.evse),
                better.db,
                better.margin_db,
                mine,
            )
        return True

    # --- holding a request for a better-heard EV ------------------------------------------------

    def _better_rivals(self, run: EvRun, now: float) -> list[EvRun]:
        """Other EVs heard clearly better than this one that may still choose this EVSE."""
        margin = self.config.match_hold_margin
        mine = run.heard_db
        if margin <= 0 or mine is None:
            return []
        rivals = []
        for other in self.runs.values():
            if other.ev_mac == run.ev_mac:
                continue
            theirs = other.heard_db
            if theirs is None:  # not sounded yet in this run: as heard in its last one
                history = self._evs.get(bytes(other.ev_mac))
                theirs = history.heard_db if history is not None else None
            if theirs is None or mine - theirs < margin:
                continue
            decided_by = other.decided_by
            still_choosing = (
                decided_by is None  # it has not started sounding in this run yet
                or now < decided_by
                or other.held_request is not None  # it asks for this EVSE itself
                or other.validating  # it validates with this EVSE
            )
            if still_choosing:
                rivals.append(other)
        return rivals

    def _recheck_holds(self, now: float) -> None:
        """Confirm a held request once no better-heard EV may still choose this EVSE, while its
        EV still listens; forget it once the EV stopped asking."""
        if self._hold_wake is None:
            return
        for run in [r for r in self.runs.values() if r.held_request is not None]:
            if not self._better_rivals(run, now):
                request = run.held_request
                assert request is not None
                if self._leave_to_better_evse(run, now):
                    run.held_request = None
                    continue
                if now <= run.held_until:
                    self._log_run(
                        logging.INFO, run, "no EV heard better is choosing any more: confirmed"
                    )
                    self._confirm(run, request, now)
                    return
            if now >= run.held_until:
                run.held_request = None
                self._log_run(logging.DEBUG, run, "the held CM_SLAC_MATCH.REQ is not repeated")
        self._update_hold_wake(now)

    def _update_hold_wake(self, now: float) -> None:
        wake: Optional[float] = None
        for run in self.runs.values():
            if run.held_request is None:
                continue
            times = [run.held_until]
            for rival in self._better_rivals(run, now):
                decided_by = rival.decided_by
                if not rival.validating and rival.held_request is None and decided_by:
                    times.append(decided_by)
            soonest = min(times)
            wake = soonest if wake is None else min(wake, soonest)
        self._hold_wake = wake

    # --- run mechanics ------------------------------------------------------------------------

    def _begin_sounding(
        self, run: EvRun, num_sounds: int, time_out: Optional[int], now: float
    ) -> None:
        run.state = RunState.SOUNDING
        run.num_sounds = num_sounds
        window = self.config.atten_results_timeout
        if window is None:
            window = time_out * TIME_OUT_UNIT if time_out else TT_EVSE_MATCH_MNBC
        run.window_end = run.deadline = now + window
        run.sounding_started = now
        if self._hold_wake is not None:  # a rival's decision time is known now
            self._update_hold_wake(now)
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
            self._end_run(
                run,
                FailureReason.NO_SOUNDS,
                "no CM_ATTEN_PROFILE.IND within the sounding window",
                now,
            )
            return
        offset = self.config.sounding_attenuation_offset
        if run.data_profiles:
            aag = tuple(
                _offset(_average(total, run.data_profiles), offset) for total in run.aag_sum
            )
        else:
            # Seen with real modems (older QCA firmware, a PIB set up for an EV?): profiles
            # with NumGroups 0. The sounds were heard but not measured: the car gets the
            # substitute (EMPTY_PROFILE_ATTENUATION), never an all-zero CM_ATTEN_CHAR.IND
            # without a word (docs/protocol.md: some cars refuse it).
            substitute = _offset(round(self.config.empty_profile_attenuation), offset)
            self.empty_profile_runs += 1
            self._log_run(
                logging.WARNING,
                run,
                "the modem's CM_ATTEN_PROFILE.IND carry no attenuation values "
                "(NumGroups 0): reporting %d dB in every group (EMPTY_PROFILE_ATTENUATION); "
                "check the modem's firmware and configuration",
                substitute,
            )
            aag = (substitute,) * NUM_GROUPS
        run.atten_char = AttenCharInd(
            source_address=run.ev_mac, run_id=run.run_id, num_sounds=run.profiles, aag=aag
        )
        run.sounding_done = now
        heard = run.heard_db
        if self.station_view is not None and heard is not None:
            self.station_view.heard(self.evse_mac, run.ev_mac, heard, now)
        history = self._evs.get(bytes(run.ev_mac))
        if history is not None:
            history.heard_db = run.heard_db
        due = self._atten_char_due(run)
        if due is not None and due > now:
            run.state = RunState.TURN
            run.deadline = due
            sent = f"CM_ATTEN_CHAR.IND due in {_ms(due - now):.0f} ms (its turn)"
        else:
            run.state = RunState.WAIT_RSP
            self._send_atten_char(run, now)
            sent = "CM_ATTEN_CHAR.IND sent"
        self._log_run(
            logging.INFO,
            run,
            "sounding %d/%d in %.0f ms, mean attenuation %.1f dB: %s",
            run.profiles,
            run.num_sounds,
            _ms(now - (run.sounding_started or now)),
            sum(aag) / len(aag),
            sent,
        )

    @property
    def _closes_early(self) -> bool:
        """The measurement may end before the sounding window, at the indication's turn
        (not when ATTEN_RESULTS_TIMEOUT asks for a longer window: slow modems)."""
        return self.config.atten_char_delay_per_db > 0 and self.config.atten_results_timeout is None

    def _atten_char_due(self, run: EvRun) -> Optional[float]:
        """When CM_ATTEN_CHAR.IND goes out (None: at once): ATTEN_CHAR_DELAY_PER_DB per dB
        of the mean attenuation after the EV's last sound (plus one TP_EV_batch_msg_interval
        for its profile), so that across EVSEs the one that hears the EV best answers first
        and an EV that takes the first indication takes it. At the latest when the IND and
        its resends (C_EV_match_retry, TT_match_response apart) still go out
        TP_match_response before the EV's TT_EV_atten_results, counted from its first
        CM_START_ATTEN_CHAR.IND, runs out."""
        per_db = self.config.atten_char_delay_per_db
        last_sound = _last_sound_at(run.first_sound, run.last_sound)
        if per_db <= 0 or last_sound is None or run.sounding_started is None:
            return None
        heard = max(run.heard_db or 0.0, 0.0)
        due = last_sound + TP_EV_BATCH_MSG_INTERVAL + per_db * heard
        return min(due, run.sounding_started + _latest_turn(self.config))

    def _send_atten_char(self, run: EvRun, now: float) -> None:
        assert run.atten_char is not None
        run.atten_char_sends += 1
        wait = self.config.match_response_timeout
        quick = self.config.atten_char_first_resend
        if quick > 0 and run.atten_char_sends == 1:
            wait = quick  # ATTEN_CHAR_FIRST_RESEND (not ISO): a lost first IND, repeated soon
        run.deadline = now + wait
        self._send(run.ev_mac, run.atten_char)

    def _wait_for_match(self, run: EvRun, now: float) -> None:
        run.state = RunState.WAIT_MATCH
        run.wait_match_since = now
        run.deadline = now + self.config.match_session_timeout

    def _run_timeout(self, run: EvRun, now: float) -> None:
        if run.state is RunState.WAIT_START_ATTEN:
            self._end_run(
                run,
                FailureReason.NO_START_ATTEN_CHAR,
                "no CM_START_ATTEN_CHAR.IND within TT_match_sequence",
                now,
            )
        elif run.state is RunState.SOUNDING:
            self._finish_sounding(run, now)
        elif run.state is RunState.TURN:
            run.state = RunState.WAIT_RSP
            self._send_atten_char(run, now)
            self._log_run(logging.DEBUG, run, "CM_ATTEN_CHAR.IND sent (its turn)")
        elif run.state is RunState.WAIT_RSP:
            if run.atten_char_sends <= self.config.atten_char_retries:
                self._log_run(logging.INFO, run, "no CM_ATTEN_CHAR.RSP, resending the IND")
                self._send_atten_char(run, now)
            else:
                self._end_run(
                    run,
                    FailureReason.NO_ATTEN_CHAR_RSP,
                    "no CM_ATTEN_CHAR.RSP after every resend",
                    now,
                )
        else:
            # The EV heard us but asked another EVSE: not a failure of this EVSE.
            self._end_run(
                run,
                FailureReason.EV_CHOSE_ANOTHER_EVSE,
                "no CM_SLAC_MATCH.REQ within TT_EVSE_match_session: the EV chose another EVSE",
                now,
                counts=False,
            )

    def _end_run(
        self,
        run: EvRun,
        reason: FailureReason,
        detail: str,
        now: float,
        counts: bool = True,
        settle: bool = True,
    ) -> None:
        """Drop a run. A failure that counts is one of its EV's C_conn_max_match attempts.

        Then (``settle``) a held request may be confirmed and the plug-in may end; a caller
        that goes on with a new run passes ``settle=False``, and held requests are looked at
        again at the next timer (due at once)."""
        del self.runs[run.key]
        # a failure is news; a neighbour's car that went elsewhere (crosstalk) is routine
        self._log_run(logging.INFO if counts else logging.DEBUG, run, "run ended: %s", detail)
        heard = run.heard_db
        ended = RunEnded(run.ev_mac, run.run_id, reason, detail, heard)
        self._emit(ended)
        if counts:
            history = self._evs.get(bytes(run.ev_mac))
            if history is not None:
                history.failures += 1
                self._emit(AttemptFailed(history.failures, reason, detail, run.ev_mac, heard))
            self._last_failure = ended
        elif reason is FailureReason.EV_CHOSE_ANOTHER_EVSE and (
            self._last_other_end is None
            or (heard is not None and heard <= (self._last_other_end.attenuation or heard))
        ):
            self._last_other_end = ended  # the best-heard EV that asked elsewhere
        if not settle:
            if self._hold_wake is not None:
                self._hold_wake = now
            return
        if self.state is EvseState.WAITING:
            self._recheck_holds(now)
        if self.state is EvseState.WAITING and not self.runs:
            self._end_plug_in_if_over(now)

    # --- the plug-in ------------------------------------------------------------------------------

    def _plug_in_over_at(self) -> float:
        """When, without runs in progress, no EV may start another run: TT_EVSE_SLAC_init
        for new EVs, TT_matching_repetition for each EV with attempts left."""
        limit = self.config.matching_attempts
        windows = [
            h.first_parm + self.config.matching_repetition
            for h in self._evs.values()
            if h.failures < limit
        ]
        return max([self._admit_until, *windows])

    def _end_plug_in_if_over(self, now: float) -> None:
        if now < self._plug_in_over_at():
            return
        about: Optional[RunEnded] = None
        if not self._evs:
            cause = FailureReason.NO_PARM_REQ
            detail = (
                "no CM_SLAC_PARM.REQ within TT_EVSE_SLAC_init "
                f"({self.config.slac_init_timeout:g} s)"
            )
        else:
            about = self._last_failure or self._last_other_end
            cause = about.reason if about is not None else FailureReason.NO_MATCH_REQ
            detail = (
                f"no match: {self._runs_started} runs of {len(self._evs)} EVs ended without "
                "one, and no EV may start another (TT_EVSE_SLAC_init, TT_matching_repetition "
                "or C_conn_max_match)"
            )
            if self._last_failure is not None:
                detail += f"; last failure: {self._last_failure.detail}"
        self.state = EvseState.FAILED
        self.log.warning("matching failed after %.1f s: %s", now - self._started_at, detail)
        self._emit(
            MatchingFailed(
                cause,
                self._runs_started,
                detail,
                about.attenuation if about is not None else None,
                about.ev_mac if about is not None else None,
            )
        )

    # --- checks ---------------------------------------------------------------------------------

    def _frame_problem(self, frame: Frame) -> Optional[str]:
        """Why a frame is not a SLAC frame this EVSE may act on, or None."""
        homeplug = frame.homeplug
        ethernet = frame.ethernet
        src, dst = ethernet.src, ethernet.dst
        if (
            homeplug.mmv == MMV_HPAV_1_1
            and not homeplug.fmi
            and not src[0] & 1
            and (dst[0] & 1 or dst == self.evse_mac)
            and src != self.evse_mac
        ):
            return None  # the hot path: every check passed
        if homeplug.mmv != MMV_HPAV_1_1:
            return f"MMV 0x{homeplug.mmv:02X} is not HomePlug AV 1.1 (0x01)"
        if homeplug.fmi:
            return f"a fragment (FMI 0x{homeplug.fmi:02X}): SLAC messages are never fragmented"
        if src.is_multicast:
            return "the source MAC is not a station"
        if src == self.evse_mac:
            return "sent by this EVSE itself"
        return "addressed to another station"

    def _match_req_problem(self, frame: Frame, message: SlacMatchReq) -> Optional[str]:
        problem = _types_problem(message.application_type, message.security_type)
        if problem is not None:
            return problem
        if message.mvf_length != MATCH_REQ_MVF_LENGTH:
            return f"MVFLength 0x{message.mvf_length:04X} is not 0x{MATCH_REQ_MVF_LENGTH:04X}"
        if message.pev_id != ZERO_ID or message.evse_id != ZERO_ID:
            return "PEV_ID and EVSE_ID must be all zero"
        if message.pev_mac != frame.src:
            return f"PEV MAC {message.pev_mac} is not the sender"
        if message.evse_mac != self.evse_mac:
            return f"EVSE MAC {message.evse_mac} is not this EVSE"
        return None

    # --- helpers --------------------------------------------------------------------------------

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


def _types_problem(application_type: int, security_type: int) -> Optional[str]:
    if application_type != APPLICATION_TYPE_PEV_EVSE:
        return f"APPLICATION_TYPE {application_type} is not PEV-EVSE (0)"
    if security_type != SECURITY_TYPE_NONE:
        return f"SECURITY_TYPE {security_type} is not supported (0 only)"
    return None


def _start_problem(frame: Frame, message: StartAttenCharInd, cnf: SlacParmCnf) -> Optional[str]:
    """CM_START_ATTEN_CHAR.IND carries what CM_SLAC_PARM.CNF told the EV."""
    problem = _types_problem(message.application_type, message.security_type)
    if problem is not None:
        return problem
    if message.num_sounds != cnf.num_sounds:
        return f"NUM_SOUNDS {message.num_sounds} is not {cnf.num_sounds}"
    if message.time_out != cnf.time_out:
        return f"Time_Out {message.time_out} is not {cnf.time_out}"
    if message.resp_type != cnf.resp_type:
        return f"RESP_TYPE {message.resp_type} is not {cnf.resp_type}"
    if message.forwarding_sta != frame.src:
        return f"FORWARDING_STA {message.forwarding_sta} is not the EV"
    return None


def _sound_problem(message: MnbcSoundInd, num_sounds: int) -> Optional[str]:
    problem = _types_problem(message.application_type, message.security_type)
    if problem is not None:
        return problem
    if message.remaining_sounds >= num_sounds:
        return f"Cnt {message.remaining_sounds} is not below NUM_SOUNDS {num_sounds}"
    return None


def _ms(seconds: float) -> float:
    return seconds * 1000.0


def _latest_turn(config: MatchingConfig) -> float:
    """The latest CM_ATTEN_CHAR.IND after the first CM_START_ATTEN_CHAR.IND: it and its
    C_EV_match_retry resends still go out TP_match_response before the EV's
    TT_EV_atten_results runs out (0.7 s)."""
    return (
        TT_EV_ATTEN_RESULTS
        - config.atten_char_retries * config.match_response_timeout
        - TP_MATCH_RESPONSE
    )


def _last_sound_at(
    first: Optional[tuple[int, float]], latest: Optional[tuple[int, float]]
) -> Optional[float]:
    """When the EV's last sound (Cnt 0) came or, when it was lost, should have come: from
    the latest sound heard and the EV's interval between sounds (as heard from the first
    and the latest; one sound only: TP_EV_batch_msg_interval at most, 50 ms). None before
    any sound."""
    if latest is None or first is None:
        return None
    count, at = latest
    if count == 0:
        return at
    if first[0] > count:
        interval = (at - first[1]) / (first[0] - count)
    else:
        interval = TP_EV_BATCH_MSG_INTERVAL_MAX
    return at + count * max(interval, 0.0)


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


def _offset(value: int, offset: float) -> int:
    """``value`` dB plus SOUNDING_ATTENUATION_OFFSET, rounded, kept within a byte."""
    if not offset:
        return value
    return min(255, max(0, round(value + offset)))


def _average(total: int, count: int) -> int:
    """Integer mean rounded half up (a 0.5 dB bias either way matters; truncation biases low)."""
    return (2 * total + count) // (2 * count)


CP_STATES = "ABCDEF"


def parse_cp_state(state: str) -> str:
    """The control-pilot letter of "A".."F", "B1", "c2", ...; :class:`CpStateError` (a
    ValueError) otherwise."""
    text = state.strip().upper() if isinstance(state, str) else ""
    if not text or text[0] not in CP_STATES or not (len(text) == 1 or text[1:].isdigit()):
        raise CpStateError(f"not a control-pilot state: {state!r} (expected A to F, e.g. B or C2)")
    return text[0]
