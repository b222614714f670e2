"""The EV side of ISO 15118-3 SLAC as a sans-IO state machine.

Same shape as :mod:`slac.fsm.evse`: inputs :meth:`EvMatcher.start`,
:meth:`EvMatcher.receive_frame` and :meth:`EvMatcher.handle_timer`, each with ``now``;
outputs :meth:`~EvMatcher.frames_to_send`, :meth:`~EvMatcher.events`,
:attr:`~EvMatcher.deadline`.

Everything about state lives in this file. One matching process ("attempt"):

====================  ====================================  ==================================
state                 a valid frame (see below) does        the deadline does
====================  ====================================  ==================================
PARM                  CM_SLAC_PARM.CNF: the sender becomes  no CNF yet: resend the REQ (same
                      a candidate (at most                  RunID) every TT_match_response,
                      ``max_candidates``)                   C_EV_match_retry times; then the
                                                            attempt failed. With candidates:
                                                            SOUNDING
SOUNDING              CM_SLAC_PARM.CNF as in PARM;          the next of 3 CM_START_ATTEN_CHAR
                      CM_ATTEN_CHAR.IND as in RESULTS       .IND and NUM_SOUNDS CM_MNBC_SOUND
                                                            .IND, TP_EV_batch_msg_interval
                                                            apart; after the last: RESULTS
RESULTS               CM_ATTEN_CHAR.IND from a candidate:   TT_EV_atten_results (from the
                      CM_ATTEN_CHAR.RSP, counted once;      first start indication) ran out:
                      every candidate reported: choose      choose
MATCH                 CM_SLAC_MATCH.CNF from the chosen     resend the REQ every
                      EVSE: MATCHED (its NMK and NID go     TT_match_response,
                      to the modem); a resent IND of a      C_EV_match_retry times; then the
                      counted EVSE: CM_ATTEN_CHAR.RSP       attempt failed
PAUSED                nothing                               the next attempt (new RunID)
MATCHED, FAILED,      nothing                               -
IDLE
====================  ====================================  ==================================

Every frame not listed for a state is ignored, and so is every invalid frame: its timers keep
running, as ISO 15118-3 asks of receivers (logged at DEBUG with the reason). A frame is valid
when it is unicast to this EV, its HomePlug header is MMV 0x01 without fragmentation, and
every field the standard fixes has its value (:func:`parm_cnf_problem`,
:func:`atten_char_problem`, :func:`match_cnf_problem`, as the ISO 15118-5 EVCC test cases
check them).

Choosing (:attr:`EvConfig.choice`): ``"lowest"`` (the default, ISO 15118-3) takes the lowest
average attenuation under ``atten_limit`` once every candidate reported or
TT_EV_atten_results ran out; on a tie, the EVSE that confirmed first. ``"first"`` plays a
naive EV: the first indication under the limit is chosen at once.

A failed attempt is followed by another after ``attempt_pause``, with a new RunID, while
TT_matching_repetition (counted from :meth:`EvMatcher.start`) runs (V2G3-A09-124/-125), or
up to ``attempts`` if that is set; then FAILED.
"""

from __future__ import annotations

import logging
import secrets
from enum import Enum
from typing import Callable, Optional

from slac import enums

# the EV's settings are declared in slac.config; these names stay importable from here
from slac.config import ATTEMPT_PAUSE as ATTEMPT_PAUSE
from slac.config import CHOICES as CHOICES
from slac.config import EvConfig as EvConfig
from slac.fsm.base import FrameHandler, Log, Machine, entry
from slac.fsm.events import (
    EvAttemptFailed,
    EvEvent,
    EvMatched,
    EvMatchingFailed,
    EvseCandidate,
    EvseChosen,
    FailureReason,
)
from slac.messages import (
    ZERO_ID,
    AttenCharInd,
    AttenCharRsp,
    Frame,
    Message,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
)
from slac.utils import MacAddress, nid_from_nmk

__all__ = [
    "ATTEMPT_PAUSE",
    "CHOICES",
    "EvAttemptFailed",
    "EvConfig",
    "EvEvent",
    "EvMatched",
    "EvMatcher",
    "EvMatchingFailed",
    "EvState",
    "EvseCandidate",
    "EvseChosen",
    "atten_char_problem",
    "header_problem",
    "match_cnf_problem",
    "parm_cnf_problem",
]

logger = logging.getLogger(__name__)

BROADCAST = MacAddress(enums.BROADCAST_MAC)

#: HomePlug AV security levels a NID may carry (bits 4-5 of its last byte): 0 simple
#: connect (what every SLAC stack sends), 1 secure. 2 and 3 are reserved.
NID_SECURITY_LEVELS = (enums.SECURITY_LEVEL_SIMPLE_CONNECT, enums.SECURITY_LEVEL_SECURE)


class EvState(Enum):
    IDLE = "idle"
    PARM = "waiting for CM_SLAC_PARM.CNF"
    SOUNDING = "sounding"
    RESULTS = "collecting CM_ATTEN_CHAR.IND"
    MATCH = "waiting for CM_SLAC_MATCH.CNF"
    PAUSED = "pausing between attempts"
    MATCHED = "matched"
    FAILED = "failed"


# --- validation: what ISO 15118-3 fixes, as the ISO 15118-5 EVCC cases check it ---------------


def header_problem(frame: Frame) -> Optional[str]:
    """Why a SLAC frame's HomePlug header is not one to act on (None: it is)."""
    header = frame.homeplug
    if header.mmv != enums.MMV_HPAV_1_1:
        return f"MMV {header.mmv} is not 1"
    if header.fmi != 0 or header.fmsn != 0:
        return f"fragmented (FMI 0x{header.fmi:02X}, FMSN {header.fmsn})"
    return None


def _types_problem(application_type: int, security_type: int) -> Optional[str]:
    if application_type != enums.APPLICATION_TYPE_PEV_EVSE:
        return f"APPLICATION_TYPE {application_type} is not PEV-EVSE (0)"
    if security_type != enums.SECURITY_TYPE_NONE:
        return f"SECURITY_TYPE {security_type} is not 0"
    return None


def parm_cnf_problem(cnf: SlacParmCnf, ev_mac: MacAddress, run_id: bytes) -> Optional[str]:
    """Why a CM_SLAC_PARM.CNF is invalid for this EV's run (None: it is valid).

    The values are the ones ISO 15118-3 fixes for the EVSE's answer; an EVSE that asks for
    another number of sounds or another sounding window is not one this EV sounds for.
    """
    problem = _types_problem(cnf.application_type, cnf.security_type)
    if problem:
        return problem
    if cnf.run_id != run_id:
        return f"RunID {cnf.run_id.hex()} is not this run's"
    if cnf.msound_target != BROADCAST:
        return f"M-SOUND_TARGET {cnf.msound_target} is not broadcast"
    if cnf.num_sounds != enums.C_EV_MATCH_MNBC:
        return f"NUM_SOUNDS {cnf.num_sounds} is not C_EV_match_MNBC ({enums.C_EV_MATCH_MNBC})"
    time_out = round(enums.TT_EVSE_MATCH_MNBC / enums.TIME_OUT_UNIT)
    if cnf.time_out != time_out:
        return f"Time_Out {cnf.time_out} is not TT_EVSE_match_MNBC ({time_out})"
    if cnf.resp_type != enums.RESP_TYPE_OTHER_GP_STA:
        return f"RESP_TYPE {cnf.resp_type} is not 1"
    if cnf.forwarding_sta != ev_mac:
        return f"FORWARDING_STA {cnf.forwarding_sta} is not this EV"
    return None


def atten_char_problem(
    ind: AttenCharInd, ev_mac: MacAddress, run_id: bytes, sounds_sent: int
) -> Optional[str]:
    """Why a CM_ATTEN_CHAR.IND is invalid for this EV's run (None: it is valid)."""
    problem = _types_problem(ind.application_type, ind.security_type)
    if problem:
        return problem
    if ind.source_address != ev_mac:
        return f"SOURCE_ADDRESS {ind.source_address} is not this EV"
    if ind.run_id != run_id:
        return f"RunID {ind.run_id.hex()} is not this run's"
    if ind.source_id != ZERO_ID:
        return f"SOURCE_ID {ind.source_id.hex()} is not zero"
    if ind.resp_id != ZERO_ID:
        return f"RESP_ID {ind.resp_id.hex()} is not zero"
    if not 1 <= ind.num_sounds <= sounds_sent:
        return f"NUM_SOUNDS {ind.num_sounds} is not 1 to the {sounds_sent} sounds sent"
    if len(ind.aag) != enums.NUM_GROUPS:
        return f"NumGroups {len(ind.aag)} is not {enums.NUM_GROUPS}"
    return None


def match_cnf_problem(
    cnf: SlacMatchCnf,
    ev_mac: MacAddress,
    evse_mac: MacAddress,
    run_id: bytes,
    *,
    lenient: bool = False,
) -> Optional[str]:
    """Why a CM_SLAC_MATCH.CNF is invalid for this EV's match (None: it is valid).

    ``lenient`` (:attr:`EvConfig.accept_nonstandard_match_cnf`) skips the checks of PEV_ID,
    EVSE_ID and of the NID against the NMK.
    """
    problem = _types_problem(cnf.application_type, cnf.security_type)
    if problem:
        return problem
    if cnf.mvf_length != enums.MATCH_CNF_MVF_LENGTH:
        return f"MVFLength 0x{cnf.mvf_length:04X} is not 0x{enums.MATCH_CNF_MVF_LENGTH:04X}"
    if cnf.pev_mac != ev_mac:
        return f"PEV_MAC {cnf.pev_mac} is not this EV"
    if cnf.evse_mac != evse_mac:
        return f"EVSE_MAC {cnf.evse_mac} is not the chosen EVSE"
    if cnf.run_id != run_id:
        return f"RunID {cnf.run_id.hex()} is not this run's"
    if lenient:
        return None
    if cnf.pev_id != ZERO_ID:
        return f"PEV_ID {cnf.pev_id.hex()} is not zero"
    if cnf.evse_id != ZERO_ID:
        return f"EVSE_ID {cnf.evse_id.hex()} is not zero"
    if all(nid_from_nmk(cnf.nmk, level) != cnf.nid for level in NID_SECURITY_LEVELS):
        return f"NID {cnf.nid.hex()} is not derived from the NMK (security level 0 or 1)"
    return None


class EvMatcher(Machine[EvEvent]):
    """ISO 15118-3 SLAC, EV side, without I/O."""

    def __init__(
        self,
        ev_mac: bytes,
        config: Optional[EvConfig] = None,
        *,
        run_id_source: Callable[[], bytes] = lambda: secrets.token_bytes(enums.RUN_ID_LEN),
        log: Optional[Log] = None,
    ) -> None:
        super().__init__()
        self.ev_mac = MacAddress(ev_mac)
        self.config = config or EvConfig()
        self.log = log or logger
        self._run_id_source = run_id_source
        self.state = EvState.IDLE
        self.attempt = 0
        self.run_id = bytes(8)
        #: EVSEs that sent a valid CM_SLAC_PARM.CNF this attempt, in that order (bounded).
        self.candidates: dict[bytes, EvseCandidate] = {}
        self._reported: list[EvseCandidate] = []  # in the order the indications came
        self._candidates_full = False
        self.chosen: Optional[EvseChosen] = None
        self.result: Optional[EvMatched] = None
        self._deadline: Optional[float] = None
        self._repetition_deadline = 0.0
        self._sends_left = 0
        self._to_send: list[Message] = []  # sounding: start indications, then sounds
        self._results_deadline = 0.0
        self._table = self._transitions()

    def _transitions(self) -> dict[tuple[EvState, type], FrameHandler]:
        """What a valid frame does in each state (the table in the module's docstring);
        anything not listed is ignored as "not expected"."""
        parm, sounding = EvState.PARM, EvState.SOUNDING
        results, match = EvState.RESULTS, EvState.MATCH
        return dict(
            [
                entry(parm, SlacParmCnf, self._on_parm_cnf),
                entry(sounding, SlacParmCnf, self._on_parm_cnf),
                entry(sounding, AttenCharInd, self._on_atten_char),
                entry(results, AttenCharInd, self._on_atten_char),
                entry(match, AttenCharInd, self._on_atten_char),
                entry(match, SlacMatchCnf, self._on_match_cnf),
            ]
        )

    # --- outputs (frames_to_send and events: Machine) -------------------------------------

    @property
    def deadline(self) -> Optional[float]:
        return self._deadline

    # --- inputs -------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin matching (a new plug-in); TT_matching_repetition starts now."""
        self.attempt = 0
        self.result = None
        self._repetition_deadline = now + self.config.matching_repetition
        self._begin_attempt(now)

    def stop(self) -> None:
        self.state = EvState.IDLE
        self._deadline = None

    def receive_frame(self, frame: Frame, now: float) -> None:
        message = frame.message
        if frame.dst != self.ev_mac:
            return  # broadcasts of other EVs (their sounds) are not for us
        if not isinstance(message, (SlacParmCnf, AttenCharInd, SlacMatchCnf)):
            return
        problem = header_problem(frame)
        if problem:
            self._ignore(frame, problem)
            return
        handler = self._table.get((self.state, type(message)))
        if handler is None:
            self._ignore(frame, f"not expected while {self.state.value}")
            return
        handler(frame, message, now)

    def handle_timer(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        state = self.state
        if state is EvState.PARM:
            if self.candidates:
                self._begin_sounding(now)
            elif self._sends_left > 0:
                self._send_parm(now)
            else:
                self._attempt_failed(
                    now, FailureReason.NO_PARM_CNF, "no CM_SLAC_PARM.CNF from any EVSE"
                )
        elif state is EvState.SOUNDING:
            self._send_next_sounding_frame(now)
        elif state is EvState.RESULTS:
            self._choose(now)
        elif state is EvState.MATCH:
            if self._sends_left > 0:
                self._send_match_req(now)
            else:
                self._attempt_failed(
                    now,
                    FailureReason.NO_MATCH_CNF,
                    "no valid CM_SLAC_MATCH.CNF from the chosen EVSE",
                )
        elif state is EvState.PAUSED:
            self._begin_attempt(now)

    # --- steps --------------------------------------------------------------------------------

    def _begin_attempt(self, now: float) -> None:
        self.attempt += 1
        self.run_id = self._run_id_source()
        self.candidates = {}
        self._reported = []
        self._candidates_full = False
        self.chosen = None
        self.state = EvState.PARM
        self._sends_left = 1 + self.config.match_retries
        self.log.info("attempt %d: RunID %s", self.attempt, self.run_id.hex())
        self._send_parm(now)

    def _send_parm(self, now: float) -> None:
        self._sends_left -= 1
        self._send(BROADCAST, SlacParmReq(run_id=self.run_id))
        self._deadline = now + self.config.match_response_timeout

    def _on_parm_cnf(self, frame: Frame, cnf: SlacParmCnf, now: float) -> None:
        problem = parm_cnf_problem(cnf, self.ev_mac, self.run_id)
        if problem:
            self._ignore(frame, problem)
            return
        key = bytes(frame.src)
        if key in self.candidates:
            return
        if len(self.candidates) >= self.config.max_candidates:
            if not self._candidates_full:
                self._candidates_full = True
                self.log.warning(
                    "more than %d EVSEs confirmed RunID %s: later confirmations are ignored "
                    "(the candidate list is full)",
                    self.config.max_candidates,
                    self.run_id.hex(),
                )
            return
        self.candidates[key] = EvseCandidate(frame.src)
        self.log.info("CM_SLAC_PARM.CNF from EVSE %s", frame.src)

    def _begin_sounding(self, now: float) -> None:
        self.state = EvState.SOUNDING
        n = self.config.num_sounds
        start = StartAttenCharInd(forwarding_sta=self.ev_mac, run_id=self.run_id, num_sounds=n)
        self._to_send = [start] * self.config.start_atten_char_copies + [
            MnbcSoundInd(
                remaining_sounds=n - 1 - i, run_id=self.run_id, random=secrets.token_bytes(16)
            )
            for i in range(n)
        ]
        self._results_deadline = now + self.config.atten_results_timeout
        self._send_next_sounding_frame(now)

    def _send_next_sounding_frame(self, now: float) -> None:
        message = self._to_send.pop(0)
        self._send(BROADCAST, message)
        if self._to_send:
            self._deadline = now + self.config.batch_interval
        else:
            self.state = EvState.RESULTS
            self._deadline = max(self._results_deadline, now)
            if self._all_reported() or self._first_under_limit() is not None:
                self._choose(now)

    def _on_atten_char(self, frame: Frame, ind: AttenCharInd, now: float) -> None:
        problem = atten_char_problem(ind, self.ev_mac, self.run_id, self.config.num_sounds)
        if problem:
            self._ignore(frame, problem)
            return
        candidate = self.candidates.get(bytes(frame.src))
        if candidate is None:
            self._ignore(frame, "the sender did not confirm this run's CM_SLAC_PARM.REQ")
            return
        if self.state is EvState.MATCH and candidate.average is None:
            self._ignore(frame, "the first from this EVSE, after the choice was made")
            return
        # A resent indication (our RSP was lost) is acknowledged again, counted once.
        self._send(frame.src, AttenCharRsp(source_address=self.ev_mac, run_id=self.run_id))
        if candidate.average is not None:
            return
        average = sum(ind.aag) / len(ind.aag)
        candidate = EvseCandidate(frame.src, average, ind)
        self.candidates[bytes(frame.src)] = candidate
        self._reported.append(candidate)
        self.log.info(
            "CM_ATTEN_CHAR.IND from EVSE %s: %d sounds, average %.1f dB",
            frame.src,
            ind.num_sounds,
            average,
        )
        if self.state is not EvState.RESULTS:
            return  # still sounding: the choice waits for the last sound
        if self._all_reported() or (
            self.config.choice == "first" and average <= self.config.atten_limit
        ):
            self._choose(now)

    def _all_reported(self) -> bool:
        """Every EVSE that confirmed the parameters sent its results: no need to wait on."""
        return all(c.average is not None for c in self.candidates.values())

    def _first_under_limit(self) -> Optional[EvseCandidate]:
        """With ``choice="first"``: the first EVSE that reported under the limit."""
        if self.config.choice != "first":
            return None
        for candidate in self._reported:
            if candidate.average is not None and candidate.average <= self.config.atten_limit:
                return candidate
        return None

    def _choose(self, now: float) -> None:
        measured = [c for c in self.candidates.values() if c.average is not None]
        if not measured:
            self._attempt_failed(
                now,
                FailureReason.NO_ATTEN_CHAR_IND,
                "no CM_ATTEN_CHAR.IND within TT_EV_atten_results",
            )
            return
        first = self._first_under_limit()
        if first is not None:
            assert first.average is not None
            self._chosen(
                now,
                first,
                f"first CM_ATTEN_CHAR.IND under the {self.config.atten_limit:g} dB limit "
                f"(choice 'first'): {first.mac} {first.average:.1f} dB",
            )
            return
        # min() keeps the first of equals: on a tie, the EVSE that confirmed first
        best = min(measured, key=lambda c: c.average if c.average is not None else 0.0)
        assert best.average is not None
        summary = ", ".join(
            f"{c.mac} {c.average:.1f} dB" for c in sorted(measured, key=lambda c: c.average or 0)
        )
        if best.average > self.config.atten_limit:
            self._attempt_failed(
                now,
                FailureReason.ABOVE_ATTEN_LIMIT,
                f"every EVSE is above the attenuation limit of {self.config.atten_limit:g} dB "
                f"({summary})",
            )
            return
        reason = (
            f"lowest average attenuation of {len(measured)} EVSE(s) under the "
            f"{self.config.atten_limit:g} dB limit: {summary}"
        )
        self._chosen(now, best, reason)

    def _chosen(self, now: float, best: EvseCandidate, reason: str) -> None:
        assert best.average is not None
        self.chosen = EvseChosen(best.mac, best.average, reason)
        self._emit(self.chosen)
        self.log.info("chose EVSE %s: %s", best.mac, reason)
        self.state = EvState.MATCH
        self._sends_left = 1 + self.config.match_retries
        self._send_match_req(now)

    def _send_match_req(self, now: float) -> None:
        assert self.chosen is not None
        self._sends_left -= 1
        request = SlacMatchReq(
            pev_mac=self.ev_mac, evse_mac=self.chosen.evse_mac, run_id=self.run_id
        )
        self._send(self.chosen.evse_mac, request)
        self._deadline = now + self.config.match_response_timeout

    def _on_match_cnf(self, frame: Frame, cnf: SlacMatchCnf, now: float) -> None:
        assert self.chosen is not None  # the state is MATCH
        if frame.src != self.chosen.evse_mac:
            self._ignore(frame, "not from the chosen EVSE")
            return
        problem = match_cnf_problem(
            cnf,
            self.ev_mac,
            self.chosen.evse_mac,
            self.run_id,
            lenient=self.config.accept_nonstandard_match_cnf,
        )
        if problem:
            self._ignore(frame, problem)
            return
        self.state = EvState.MATCHED
        self._deadline = None
        self.result = EvMatched(frame.src, self.run_id, cnf.nid, cnf.nmk)
        self._emit(self.result)
        self.log.info("matched with EVSE %s (NID %s)", frame.src, cnf.nid.hex())

    def _attempt_failed(self, now: float, reason: FailureReason, detail: str) -> None:
        self._emit(EvAttemptFailed(self.attempt, reason, detail))
        capped = self.config.attempts is not None and self.attempt >= self.config.attempts
        if capped or now >= self._repetition_deadline:
            self.state = EvState.FAILED
            self._deadline = None
            self.log.warning("matching failed after %d attempts: %s", self.attempt, detail)
            self._emit(EvMatchingFailed(reason, self.attempt, detail))
            return
        self.log.info("attempt %d failed: %s", self.attempt, detail)
        self.state = EvState.PAUSED
        self._deadline = now + self.config.attempt_pause

    def _ignore(self, frame: Frame, reason: str) -> None:
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug("ignored %s from %s: %s", frame.message.name, frame.src, reason)
