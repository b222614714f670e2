"""The EV side of ISO 15118-3 SLAC as a sans-IO state machine.

Same shape as :mod:`slac.fsm.evse`: inputs :meth:`EvMatcher.start`,
:meth:`EvMatcher.receive_frame` and :meth:`EvMatcher.handle_timer`, each with ``now``;
outputs :meth:`~EvMatcher.frames_to_send`, :meth:`~EvMatcher.events`,
:attr:`~EvMatcher.deadline`.

One attempt:

1. PARM: CM_SLAC_PARM.REQ by broadcast, resent every TT_match_response up to
   C_EV_match_retry times until at least one CM_SLAC_PARM.CNF answers; every EVSE that
   answers within the window is kept (with crosstalk, several do).
2. SOUNDING: three CM_START_ATTEN_CHAR.IND, then NUM_SOUNDS CM_MNBC_SOUND.IND,
   TP_EV_batch_msg_interval apart. TT_EV_atten_results starts with the first indication.
3. RESULTS: every CM_ATTEN_CHAR.IND with this RunID is answered with CM_ATTEN_CHAR.RSP and
   kept, until TT_EV_atten_results ends, or sooner once every EVSE that confirmed the
   parameters has sent its results.
4. The EVSE with the lowest average attenuation under ``atten_limit`` is chosen
   (``choice="lowest"``, the default). ``choice="first"`` plays a naive EV instead: the first
   CM_ATTEN_CHAR.IND under the limit is chosen at once, without waiting for the others.
5. MATCH: CM_SLAC_MATCH.REQ to it, resent every TT_match_response up to C_EV_match_retry
   times; CM_SLAC_MATCH.CNF gives the NID and NMK to set in the EV's modem.

A failed attempt is followed by another with a new RunID after TT_matching_rate, up to
``attempts``.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from enum import Enum
from typing import Callable, Optional, Union

from slac import enums
from slac.errors import ConfigError
from slac.fsm.events import Outgoing
from slac.messages import (
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
from slac.utils import MacAddress

logger = logging.getLogger(__name__)

BROADCAST = MacAddress(enums.BROADCAST_MAC)


@dataclass
class EvConfig:
    """The EV's timers and limits (ISO 15118-3 defaults)."""

    match_response_timeout: float = enums.TT_MATCH_RESPONSE
    match_retries: int = enums.C_EV_MATCH_RETRY
    atten_results_timeout: float = enums.TT_EV_ATTEN_RESULTS
    batch_interval: float = enums.TP_EV_BATCH_MSG_INTERVAL
    num_sounds: int = enums.C_EV_MATCH_MNBC
    start_atten_char_copies: int = enums.C_EV_START_ATTEN_CHAR_INDS
    #: Highest average attenuation (dB) accepted for a match (open-plc-utils: 40).
    atten_limit: float = 40.0
    attempts: int = enums.C_CONN_MAX_MATCH
    matching_rate: float = enums.TT_MATCHING_RATE
    #: How the EVSE is chosen among those that sent CM_ATTEN_CHAR.IND:
    #: ``"lowest"`` (ISO 15118-3): wait for every EVSE that confirmed (or TT_EV_atten_results),
    #: then the lowest average attenuation under ``atten_limit``.
    #: ``"first"``: the first indication under ``atten_limit`` is chosen at once, without
    #: waiting for the others. This is how naive EVs behave (Qualcomm's ``pev``, EVerest's EV
    #: state machine, pyPLC); it is meant for simulations of such cars, not for a real vehicle.
    choice: str = "lowest"

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise ConfigError(
                {
                    "EvConfig.choice": f"{self.choice!r} is not one of "
                    + ", ".join(repr(c) for c in CHOICES)
                }
            )


#: The values of :attr:`EvConfig.choice`.
CHOICES = ("lowest", "first")


class EvState(Enum):
    IDLE = "idle"
    PARM = "waiting for CM_SLAC_PARM.CNF"
    SOUNDING = "sounding"
    RESULTS = "collecting CM_ATTEN_CHAR.IND"
    MATCH = "waiting for CM_SLAC_MATCH.CNF"
    PAUSED = "pausing between attempts"
    MATCHED = "matched"
    FAILED = "failed"


@dataclass(frozen=True)
class EvseCandidate:
    """An EVSE that answered, and the attenuation it measured (None before it did)."""

    mac: MacAddress
    average: Optional[float] = None
    atten_char: Optional[AttenCharInd] = None


@dataclass(frozen=True)
class EvseChosen:
    """The EV chose this EVSE, and why."""

    evse_mac: MacAddress
    average: float
    reason: str


@dataclass(frozen=True)
class EvMatched:
    """CM_SLAC_MATCH.CNF arrived: set this NMK and NID in the EV's modem."""

    evse_mac: MacAddress
    run_id: bytes
    nid: bytes
    nmk: bytes = field(repr=False)


@dataclass(frozen=True)
class EvAttemptFailed:
    attempt: int
    reason: str


@dataclass(frozen=True)
class EvMatchingFailed:
    reason: str
    attempts: int


EvEvent = Union[EvseChosen, EvMatched, EvAttemptFailed, EvMatchingFailed]


class EvMatcher:
    """ISO 15118-3 SLAC, EV side, without I/O."""

    def __init__(
        self,
        ev_mac: bytes,
        config: Optional[EvConfig] = None,
        *,
        run_id_source: Callable[[], bytes] = lambda: secrets.token_bytes(enums.RUN_ID_LEN),
        log: Union[logging.Logger, logging.LoggerAdapter[logging.Logger], None] = None,
    ) -> None:
        self.ev_mac = MacAddress(ev_mac)
        self.config = config or EvConfig()
        self.log = log or logger
        self._run_id_source = run_id_source
        self.state = EvState.IDLE
        self.attempt = 0
        self.run_id = bytes(8)
        self.candidates: dict[bytes, EvseCandidate] = {}
        self._reported: list[EvseCandidate] = []  # in the order the indications came
        self.chosen: Optional[EvseChosen] = None
        self.result: Optional[EvMatched] = None
        self._deadline: Optional[float] = None
        self._sends_left = 0
        self._to_send: list[Message] = []  # sounding: start indications, then sounds
        self._results_deadline = 0.0
        self._outgoing: list[Outgoing] = []
        self._events: list[EvEvent] = []

    # --- outputs ------------------------------------------------------------------------------

    def frames_to_send(self) -> list[Outgoing]:
        out, self._outgoing = self._outgoing, []
        return out

    def events(self) -> list[EvEvent]:
        out, self._events = self._events, []
        return out

    @property
    def deadline(self) -> Optional[float]:
        return self._deadline

    # --- inputs -------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin matching (a new plug-in)."""
        self.attempt = 0
        self.result = None
        self._begin_attempt(now)

    def stop(self) -> None:
        self.state = EvState.IDLE
        self._deadline = None

    def receive_frame(self, frame: Frame, now: float) -> None:
        message = frame.message
        if frame.dst != self.ev_mac:
            return  # broadcasts of other EVs (their sounds) are not for us
        if isinstance(message, SlacParmCnf):
            self._on_parm_cnf(frame, message, now)
        elif isinstance(message, AttenCharInd):
            self._on_atten_char(frame, message, now)
        elif isinstance(message, SlacMatchCnf):
            self._on_match_cnf(frame, message, now)

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
                self._attempt_failed(now, "no CM_SLAC_PARM.CNF from any EVSE")
        elif state is EvState.SOUNDING:
            self._send_next_sounding_frame(now)
        elif state is EvState.RESULTS:
            self._choose(now)
        elif state is EvState.MATCH:
            if self._sends_left > 0:
                self._send_match_req(now)
            else:
                self._attempt_failed(now, "no CM_SLAC_MATCH.CNF from the chosen EVSE")
        elif state is EvState.PAUSED:
            self._begin_attempt(now)

    # --- steps --------------------------------------------------------------------------------

    def _begin_attempt(self, now: float) -> None:
        self.attempt += 1
        self.run_id = self._run_id_source()
        self.candidates = {}
        self._reported = []
        self.chosen = None
        self.state = EvState.PARM
        self._sends_left = 1 + self.config.match_retries
        self.log.info("attempt %d: RunID %s", self.attempt, self.run_id.hex())
        self._send_parm(now)

    def _send_parm(self, now: float) -> None:
        self._sends_left -= 1
        self._outgoing.append(Outgoing(BROADCAST, SlacParmReq(run_id=self.run_id)))
        self._deadline = now + self.config.match_response_timeout

    def _on_parm_cnf(self, frame: Frame, cnf: SlacParmCnf, now: float) -> None:
        if cnf.run_id != self.run_id or self.state not in (EvState.PARM, EvState.SOUNDING):
            return
        if cnf.application_type != 0 or cnf.security_type != 0:
            return
        key = bytes(frame.src)
        if key not in self.candidates:
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
        self._outgoing.append(Outgoing(BROADCAST, message))
        if self._to_send:
            self._deadline = now + self.config.batch_interval
        else:
            self.state = EvState.RESULTS
            self._deadline = max(self._results_deadline, now)
            if self._all_reported() or self._first_under_limit() is not None:
                self._choose(now)

    def _on_atten_char(self, frame: Frame, ind: AttenCharInd, now: float) -> None:
        if ind.run_id != self.run_id or self.state not in (
            EvState.SOUNDING,
            EvState.RESULTS,
            EvState.MATCH,
        ):
            return
        # Every indication is acknowledged, also a resent one.
        self._outgoing.append(
            Outgoing(frame.src, AttenCharRsp(source_address=self.ev_mac, run_id=self.run_id))
        )
        if self.state is EvState.MATCH or not ind.aag:
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
            self._attempt_failed(now, "no CM_ATTEN_CHAR.IND within TT_EV_atten_results")
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
        best = min(measured, key=lambda c: c.average if c.average is not None else 0.0)
        assert best.average is not None
        summary = ", ".join(
            f"{c.mac} {c.average:.1f} dB" for c in sorted(measured, key=lambda c: c.average or 0)
        )
        if best.average > self.config.atten_limit:
            self._attempt_failed(
                now,
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
        self._events.append(self.chosen)
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
        self._outgoing.append(Outgoing(self.chosen.evse_mac, request))
        self._deadline = now + self.config.match_response_timeout

    def _on_match_cnf(self, frame: Frame, cnf: SlacMatchCnf, now: float) -> None:
        if self.state is not EvState.MATCH or self.chosen is None:
            return
        if frame.src != self.chosen.evse_mac or cnf.run_id != self.run_id:
            return
        if cnf.pev_mac != self.ev_mac or cnf.evse_mac != self.chosen.evse_mac:
            return
        self.state = EvState.MATCHED
        self._deadline = None
        self.result = EvMatched(frame.src, self.run_id, cnf.nid, cnf.nmk)
        self._events.append(self.result)
        self.log.info("matched with EVSE %s (NID %s)", frame.src, cnf.nid.hex())

    def _attempt_failed(self, now: float, reason: str) -> None:
        self._events.append(EvAttemptFailed(self.attempt, reason))
        if self.attempt >= self.config.attempts:
            self.state = EvState.FAILED
            self._deadline = None
            self.log.warning("matching failed after %d attempts: %s", self.attempt, reason)
            self._events.append(EvMatchingFailed(reason, self.attempt))
            return
        self.log.info("attempt %d failed: %s", self.attempt, reason)
        self.state = EvState.PAUSED
        self._deadline = now + self.config.matching_rate
