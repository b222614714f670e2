"""A car park on one hand-moved clock: EVSEs, cars and the virtual powerline, without I/O.

K charge points stand in a row. Each has an EVSE (:class:`~slac.fsm.evse.EvseMatcher`,
driven as ``slac evse`` drives it) and a cable; cars (:class:`~slac.fsm.ev.EvMatcher`)
arrive over time, plug into a free charge point, match, charge and leave. Every frame is
really encoded, crosses the virtual powerline's :class:`~slac.powerline.medium.Medium`
(attenuation per pair of ports, a CM_ATTEN_PROFILE.IND from the EVSE's modem for every
sound it hears, loss, delay with jitter) and is really decoded by its receiver.

There are no sockets, no asyncio and no sleeps: one clock, :attr:`Carpark.now`, jumps from
event to event. The events, in a heap ordered by (time, order of scheduling):

- a frame reaching a host (the medium's delivery delay after it was sent);
- a state machine's :attr:`deadline` (each host re-arms its one timer after every input);
- a car arriving, a car's first CM_SLAC_PARM.REQ (``slac_delay`` after it sees 5 % PWM),
  a car leaving, the EVSE's link supervision polls, and actions a test schedules (:meth:`at`).

What an EVSE host does, as the service (:class:`slac.session.SlacSessionController`) does:

- at start-up it gives its modem a key (CM_SET_KEY.REQ through the medium; the modem
  confirms at once: the key is modelled as set instantly, then ``key_settle`` seconds of
  settling, 0 by default, where the real service waits ``SET_KEY_SETTLE_TIME``); the
  modem's answers tell the machine its address (``modem_mac``: only it sends profiles);
- control pilot B when a car plugs in: ``cp_state_changed("B")``, then ``start(now)`` once
  the modem's key is set; that is when the car sees 5 % PWM (``enable_hlc_charging``);
- after ``Matched``, VS_PL_LINK_STATUS polls every ``LINK_CHECK_PERIOD`` until the link is up;
  not up within TT_match_join: "link lost", a fresh key, matching again (as the service);
- control pilot A when the car leaves: ``cp_state_changed("A")`` (the machine stops), and if
  an EV received the key, a fresh key for the modem (CM_SET_KEY.REQ), then ``set_key``.

A car: its own modem (a port of the medium, cut off when it leaves), heard by the EVSEs of
its :class:`Layout` row; after CM_SLAC_MATCH.CNF its host puts the received key into its
modem. Habits (:class:`CarSpec`): how it chooses among CM_ATTEN_CHAR.IND, RunIDs reused on
every attempt (Ioniq: its MAC + 0000; Tesla: "TESLA EV"), a late first CM_SLAC_PARM.REQ, no
SLAC at all (basic charging only).

Not modelled: CP states other than A and B (no C/D/E/F, no CP toggling for CM_VALIDATE), the
modems' own timing (a CM_ATTEN_PROFILE.IND comes with the medium's delay), the hosts' CPU
time (a host answers in zero time), a link lost after it was once up (only TT_match_join is
supervised), cars restarting SLAC on their own after a match, modems that refuse a key.

Deterministic per seed: every random draw comes from a seeded :class:`random.Random`; the
only other randomness, the Rnd bytes of CM_MNBC_SOUND.IND, changes no decision.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
from collections.abc import MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from slac.config import ATTEMPT_PAUSE, CHOICES, EvConfig
from slac.enums import PLC_LOCAL_MAC, RUN_ID_LEN, TT_MATCHING_REPETITION
from slac.environment import Config
from slac.errors import DecodeError
from slac.fsm.ev import (
    EvEvent,
    EvMatched,
    EvMatcher,
    EvMatchingFailed,
)
from slac.fsm.events import Event, Matched, MatchingFailed, Outgoing
from slac.fsm.evse import EvseMatcher
from slac.fsm.station_view import StationView
from slac.messages import (
    Frame,
    SetKeyCnf,
    SetKeyReq,
    VsPlLinkStatusCnf,
    VsPlLinkStatusReq,
    decode_frame,
)
from slac.testing.powerline.medium import EV, EVSE, Delivery, Medium
from slac.utils import MacAddress, nid_from_nmk

if TYPE_CHECKING:
    _LogBase = logging.LoggerAdapter[logging.Logger]
else:
    _LogBase = logging.LoggerAdapter

logger = logging.getLogger(__name__)

LOCAL = MacAddress(PLC_LOCAL_MAC)
#: RunID habits: a fresh random RunID per attempt, or one RunID for every attempt
RUN_ID_HABITS = ("fresh", "ioniq", "tesla")
TESLA_RUN_ID = b"TESLA EV"


class SimulationError(RuntimeError):
    """The simulation itself went wrong (a machine that never moves its timer, a runaway)."""


# --- what the car park is made of --------------------------------------------------------------


@dataclass(frozen=True)
class CarSpec:
    """One car and its habits."""

    #: unique within a car park; empty: "car<n>"
    name: str = ""
    #: the EV kind (:attr:`slac.fsm.ev.EvConfig.choice`): "lowest", the lowest average of every
    #: CM_ATTEN_CHAR.IND (ISO 15118-3); "first", the first one under ``atten_limit`` (a naive
    #: car: Qualcomm's pev, EVerest's EV, pyPLC)
    choice: str = "lowest"
    #: "fresh": a random RunID per attempt; "ioniq": its MAC + 0000 on every attempt;
    #: "tesla": "TESLA EV" on every attempt
    run_ids: str = "fresh"
    #: first CM_SLAC_PARM.REQ this long after the car sees 5 % PWM (the EVSE started)
    slac_delay: float = 1.0
    #: False: a car without ISO 15118 (basic charging only), it never sends a SLAC frame
    slac: bool = True
    #: stays plugged this long after plug-in (and at least until its plug-in is resolved)
    dwell: float = 120.0
    atten_limit: float = 40.0
    #: at most this many attempts (None: as many as ``matching_repetition`` allows)
    attempts: Optional[int] = None
    #: the pause after a failed attempt (at least TT_matching_rate)
    attempt_pause: float = ATTEMPT_PAUSE
    #: TT_matching_repetition: failed attempts are repeated while this runs
    matching_repetition: float = TT_MATCHING_REPETITION

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise ValueError(f"choice is one of {CHOICES}, not {self.choice!r}")
        if self.run_ids not in RUN_ID_HABITS:
            raise ValueError(f"run_ids is one of {RUN_ID_HABITS}, not {self.run_ids!r}")

    @property
    def habits(self) -> str:
        """A label for the figures: EV kind, RunID habit, late start."""
        parts = [self.choice, self.run_ids]
        if self.slac_delay >= 10.0:
            parts.append("late")
        if not self.slac:
            parts = ["no SLAC"]
        return "/".join(parts)


@dataclass(frozen=True)
class Layout:
    """Who hears whom: ``heard[i][j]`` is the attenuation (dB) between a car on charge point
    i's cable and EVSE j (None: EVSE j does not hear it); ``heard[i][i]`` is the own cable."""

    heard: tuple[tuple[Optional[float], ...], ...]

    def __post_init__(self) -> None:
        if not self.heard or any(len(row) != len(self.heard) for row in self.heard):
            raise ValueError("a layout is a square matrix, one row per charge point")

    @property
    def evses(self) -> int:
        return len(self.heard)

    @classmethod
    def uniform(cls, evses: int, own: float = 20.0, crosstalk: Optional[float] = 26.0) -> Layout:
        """Every EVSE hears every other charge point's car at ``crosstalk`` dB."""
        return cls(
            tuple(tuple(own if i == j else crosstalk for j in range(evses)) for i in range(evses))
        )

    @classmethod
    def row(
        cls,
        evses: int,
        rng: random.Random,
        *,
        own: float = 20.0,
        nearest: float = 26.0,
        farthest: float = 50.0,
        reach: int = 3,
    ) -> Layout:
        """Charge points in a row, cables coupled with their neighbours: up to ``reach``
        places apart, the farther the weaker (distance d draws from the d-th slice of
        ``nearest``..``farthest``); farther apart, not heard. Symmetric."""
        step = (farthest - nearest) / reach
        heard: list[list[Optional[float]]] = [[None] * evses for _ in range(evses)]
        for i in range(evses):
            heard[i][i] = own
            for j in range(i + 1, min(evses, i + reach + 1)):
                d = j - i
                db = round(rng.uniform(nearest + (d - 1) * step, nearest + d * step), 1)
                heard[i][j] = heard[j][i] = db
        return cls(tuple(tuple(row) for row in heard))


@dataclass
class PlugIn:
    """One car at one charge point, from plug-in to leaving, and how it ended."""

    car: CarSpec
    ev_mac: MacAddress
    evse: int
    own_db: Optional[float]
    arrived_at: float
    plugged_at: float
    #: the car could match its own EVSE: it does SLAC, its first CM_SLAC_PARM.REQ comes
    #: within TT_EVSE_SLAC_init of 5 % PWM, and its own cable is under its attenuation limit.
    #: Loss of a few % costs retries, not the match (C_conn_max_match attempts on both sides);
    #: a naive car's request to a neighbour's EVSE must be left unanswered there, so it
    #: tries again, and its own EVSE is still waiting for it.
    could_match: bool = False
    #: the EVSE started matching (5 % PWM)
    pwm_at: Optional[float] = None
    #: the car's first CM_SLAC_PARM.REQ
    slac_at: Optional[float] = None
    #: the EVSE's latest outcome: "matched", "failed" or None (still matching)
    evse_outcome: Optional[str] = None
    evse_outcome_at: Optional[float] = None
    #: every EV that this EVSE sent CM_SLAC_MATCH.CNF during this plug-in (its Matched events)
    evse_confirmed: list[MacAddress] = field(default_factory=list)
    #: the car's outcome: "matched", "failed" or None
    car_outcome: Optional[str] = None
    car_outcome_at: Optional[float] = None
    #: the EVSE whose key the car received (-1: a key no EVSE of this car park ever had)
    car_keyed_by: Optional[int] = None
    #: an earlier car had received the same key
    key_reused: bool = False
    #: "link lost" restarts of the EVSE (the EV not in its network within TT_match_join)
    link_restarts: int = 0
    left_at: Optional[float] = None

    @property
    def resolved(self) -> bool:
        """Both sides know how it ended: the EVSE matched or failed, and so did the car."""
        if self.evse_outcome is None:
            return False
        return not self.car.slac or self.car_outcome is not None

    @property
    def wrong_pairing(self) -> bool:
        """The car received the key of another EVSE (or an unknown one)."""
        return self.car_keyed_by is not None and self.car_keyed_by != self.evse

    @property
    def wrong_confirmations(self) -> int:
        """CM_SLAC_MATCH.CNF sent by this EVSE to cars that are not on its cable."""
        return sum(1 for mac in self.evse_confirmed if mac != self.ev_mac)

    @property
    def result(self) -> str:
        """matched (own EVSE), wrong, failed or stuck (not resolved when it left)."""
        if self.car_keyed_by == self.evse and self.car_outcome == "matched":
            return "matched"
        if self.wrong_pairing:
            return "wrong"
        return "failed" if self.resolved else "stuck"

    @property
    def time_to_match(self) -> Optional[float]:
        """Plug-in to the car's CM_SLAC_MATCH.CNF, when it matched its own EVSE."""
        if self.result != "matched" or self.car_outcome_at is None:
            return None
        return self.car_outcome_at - self.plugged_at

    @property
    def time_to_end(self) -> Optional[float]:
        """Plug-in to the EVSE's outcome (Matched or MatchingFailed)."""
        if self.evse_outcome_at is None:
            return None
        return self.evse_outcome_at - self.plugged_at


@dataclass(frozen=True)
class Figures:
    """What a run of plug-ins came to."""

    plug_ins: int
    #: cars matched to their own EVSE
    matched: int
    #: cars keyed with another EVSE's key (must be 0)
    wrong_pairings: int
    #: CM_SLAC_MATCH.CNF sent to a car on another cable (must be 0)
    wrong_confirmations: int
    #: cars that received a key an earlier car had received (must be 0)
    reused_keys: int
    #: plug-ins that ended failed (EVSE MatchingFailed or the car gave up)
    failed: int
    #: plug-ins not resolved when the car left (must be 0)
    stuck: int
    #: plug-ins whose car could match its own EVSE (see PlugIn.could_match)...
    could_match: int
    #: ...and of those, the ones that did not
    missed: int
    #: plug-in to the car's CM_SLAC_MATCH.CNF, own EVSE (seconds)
    time_to_match_p50: Optional[float]
    time_to_match_p99: Optional[float]
    #: plug-in to the EVSE's outcome (seconds)
    time_to_end_max: Optional[float]

    @classmethod
    def of(cls, plug_ins: Sequence[PlugIn]) -> Figures:
        results = [p.result for p in plug_ins]
        times = sorted(t for t in (p.time_to_match for p in plug_ins) if t is not None)
        ends = [t for t in (p.time_to_end for p in plug_ins) if t is not None]
        could = [p for p in plug_ins if p.could_match]
        return cls(
            plug_ins=len(plug_ins),
            matched=results.count("matched"),
            wrong_pairings=results.count("wrong"),
            wrong_confirmations=sum(p.wrong_confirmations for p in plug_ins),
            reused_keys=sum(p.key_reused for p in plug_ins),
            failed=results.count("failed"),
            stuck=results.count("stuck"),
            could_match=len(could),
            missed=sum(1 for p in could if p.result != "matched"),
            time_to_match_p50=percentile(times, 50),
            time_to_match_p99=percentile(times, 99),
            time_to_end_max=max(ends) if ends else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], p: float) -> Optional[float]:
    """Nearest-rank percentile of sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


# --- the hosts ---------------------------------------------------------------------------------


class _SimLog(_LogBase):
    """Log lines prefixed with the simulated time and the host."""

    def __init__(self, park: Carpark, who: str, role: str) -> None:
        super().__init__(logging.getLogger(f"{__name__}.{role}"), {})
        self.park = park
        self.who = who

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"[{self.park.now:10.3f} s {self.who}] {msg}", kwargs


class _Host:
    """What both kinds of host share: a port, one timer, frames out through the medium."""

    name: str
    mac: MacAddress
    port: int

    def __init__(self, park: Carpark) -> None:
        self.park = park
        self._armed: Optional[float] = None
        self._fired_at = -1.0
        self._fired_count = 0

    # the machine behind the host
    def _deadline(self) -> Optional[float]:
        raise NotImplementedError

    def _handle_timer(self, now: float) -> None:
        raise NotImplementedError

    def _outputs(self) -> tuple[list[Outgoing], Sequence[object]]:
        """The machine's frames to send and events since the last call."""
        raise NotImplementedError

    def _on_event(self, event: Any) -> None:
        raise NotImplementedError

    def receive(self, data: bytes) -> None:
        raise NotImplementedError

    def _flush(self) -> None:
        """After every input: send what the machine wants sent, act on its events, re-arm."""
        frames, events = self._outputs()
        for item in frames:
            self._send(item.dst, item.message)
        for event in events:
            self._on_event(event)
        self._arm()

    def _arm(self) -> None:
        deadline = self._deadline()
        if deadline == self._armed:
            return
        self._armed = deadline
        if deadline is not None:
            self.park._schedule(max(deadline, self.park.now), lambda: self._fire(deadline))

    def _fire(self, deadline: float) -> None:
        if self._armed != deadline:
            return  # re-armed since: this entry is stale
        now = self.park.now
        if now == self._fired_at:
            self._fired_count += 1
            if self._fired_count > 1000:
                raise SimulationError(f"{self.name}: its timer fires at {now} s without end")
        else:
            self._fired_at, self._fired_count = now, 0
        self._armed = None
        self._handle_timer(now)
        self._flush()

    def _send(self, dst: MacAddress, message: Any) -> None:
        data: bytes = message.to_frame(dst, self.mac)
        self.park._transmit(self.port, data)

    def _decode(self, data: bytes) -> Optional[Frame]:
        try:
            frame = decode_frame(data)
        except DecodeError:
            self.park.undecodable += 1
            return None
        if self.park.trace is not None:
            self.park.trace.append((self.park.now, str(frame.src), self.name, frame.message.name))
        return frame


class _Evse(_Host):
    """One charge point's EVSE host, as the service drives its state machine."""

    def __init__(self, park: Carpark, index: int) -> None:
        super().__init__(park)
        self.index = index
        self.name = f"evse{index}"
        self.mac = MacAddress(bytes([0x02, 0x00, 0x00, 0xE5, index >> 8, index & 0xFF]))
        self.port = park.medium.add_port(self.name, EVSE)
        self.config = park.config
        nmk = park._new_key(index)
        self.matcher = EvseMatcher(
            self.mac,
            nmk,
            nid_from_nmk(nmk),
            self.config,
            log=_SimLog(park, self.name, EVSE),
            station_view=park.station_of(index),
        )
        self.car: Optional[_Car] = None
        self.plug_in: Optional[PlugIn] = None
        self.key_given_out = False
        self._pending_key: Optional[bytes] = None
        self._key_ready_at = 0.0
        self._start_wanted = False
        self._link_generation = 0
        self._poll_pending: Optional[int] = None
        self._link_since = 0.0
        self._free_at = 0.0
        self._first_key = nmk

    def power_on(self) -> None:
        """The service starts: the modem gets its first key."""
        self._set_key(self._first_key)

    def free(self, now: float) -> bool:
        """No car here, and the last one has driven off (the car park's turnover time)."""
        return self.car is None and now >= self._free_at

    # --- machine plumbing ----------------------------------------------------------------------

    def _deadline(self) -> Optional[float]:
        return self.matcher.deadline

    def _handle_timer(self, now: float) -> None:
        self.matcher.handle_timer(now)

    def _outputs(self) -> tuple[list[Outgoing], Sequence[object]]:
        return self.matcher.frames_to_send(), self.matcher.events()

    def receive(self, data: bytes) -> None:
        if not data[0] & 1 and data[0:6] != self.mac:
            return  # a unicast for another station (flooded): the socket filter drops it
        frame = self._decode(data)
        if frame is None:
            return
        message = frame.message
        if isinstance(message, (SetKeyCnf, VsPlLinkStatusCnf)):
            # the modem's own address, from its answers: only it may send profiles
            self.matcher.modem_mac = frame.src
            if isinstance(message, SetKeyCnf):
                self._on_set_key_cnf(message)
            else:
                self._on_link_status(message)
        else:
            self.matcher.receive_frame(frame, self.park.now)
            self._flush()

    def _on_event(self, event: Event) -> None:
        plug_in = self.plug_in
        now = self.park.now
        if isinstance(event, Matched):
            self.key_given_out = True
            if plug_in is not None:
                plug_in.evse_confirmed.append(event.ev_mac)
                plug_in.evse_outcome, plug_in.evse_outcome_at = "matched", now
            self._watch_link(now)
        elif isinstance(event, MatchingFailed) and plug_in is not None:
            plug_in.evse_outcome, plug_in.evse_outcome_at = "failed", now
        if plug_in is not None:
            self.park._progress(plug_in)

    # --- the control pilot, as the controller feeds it -----------------------------------------

    def plug(self, car: _Car, plug_in: PlugIn) -> None:
        now = self.park.now
        self.car, self.plug_in = car, plug_in
        starts = self.matcher.cp_state_changed("B", now)
        self._flush()
        if starts:
            self._start_wanted = True
            self._maybe_start()

    def unplug(self) -> None:
        now = self.park.now
        self.car = self.plug_in = None
        self._free_at = now + self.park.turnover
        self._start_wanted = False
        self._link_generation += 1
        self.matcher.cp_state_changed("A", now)
        self._flush()
        if self.key_given_out and self.config.reset_key_on_unplug:
            self._set_key(self.park._new_key(self.index))  # leave the logical network

    def _maybe_start(self) -> None:
        if not self._start_wanted or self._pending_key is not None:
            return  # after the key: _on_set_key_cnf comes back here
        now = self.park.now
        if now < self._key_ready_at:
            self.park._schedule(self._key_ready_at, self._maybe_start)
            return
        self._start_wanted = False
        self.matcher.start(now)
        self._flush()
        if self.plug_in is not None and self.plug_in.pwm_at is None:
            self.plug_in.pwm_at = now
        if self.car is not None:
            self.car.pwm_on()  # enable_hlc_charging: 5 % PWM

    # --- the modem's key -----------------------------------------------------------------------

    def _set_key(self, nmk: bytes) -> None:
        self._pending_key = nmk
        self._send(LOCAL, SetKeyReq(nid=nid_from_nmk(nmk), new_key=nmk))

    def _on_set_key_cnf(self, cnf: SetKeyCnf) -> None:
        nmk = self._pending_key
        if nmk is None or cnf.result not in self.config.set_key_result_ok:
            return
        self._pending_key = None
        self.matcher.set_key(nmk, nid_from_nmk(nmk))
        self.key_given_out = False
        self._key_ready_at = self.park.now + self.park.key_settle
        self._maybe_start()

    # --- link supervision after a match (until the link is up) ---------------------------------

    def _watch_link(self, now: float) -> None:
        period = self.config.link_check_period
        if not self.park.link_supervision or period <= 0:
            return
        self._link_generation += 1
        self._link_since = now
        generation = self._link_generation
        self.park._schedule(now + period, lambda: self._poll_link(generation))

    def _poll_link(self, generation: int) -> None:
        if generation == self._link_generation:
            self._poll_pending = generation
            self._send(LOCAL, VsPlLinkStatusReq())

    def _on_link_status(self, cnf: VsPlLinkStatusCnf) -> None:
        now = self.park.now
        if self._poll_pending != self._link_generation:
            return  # an answer to a poll of a supervision that ended since (unplug)
        self._poll_pending = None
        if cnf.linked:
            self._link_generation += 1  # up: supervision ends here (no link drops modelled)
            return
        if now - self._link_since <= self.config.link_join_timeout:
            generation = self._link_generation
            self.park._schedule(
                now + self.config.link_check_period, lambda: self._poll_link(generation)
            )
            return
        # The EV did not join within TT_match_join: the service matches again, fresh key.
        self._link_generation += 1
        if self.plug_in is not None:
            self.plug_in.link_restarts += 1
            self.plug_in.evse_outcome = self.plug_in.evse_outcome_at = None
        self.matcher.stop(now, "link lost")
        self._flush()
        self._start_wanted = self.car is not None
        self._set_key(self.park._new_key(self.index))


class _Car(_Host):
    """A car's host (its EvMatcher) and its modem, a port of the medium while it is here."""

    def __init__(self, park: Carpark, spec: CarSpec, index: int) -> None:
        super().__init__(park)
        self.spec = spec
        self.name = spec.name
        self.index = index
        self.mac = MacAddress(bytes([0x02, 0x00, 0x00, 0xEF, index >> 8, index & 0xFF]))
        self.modem_mac = MacAddress(bytes([0x00, 0xB0, 0x52, 0xEF, index >> 8, index & 0xFF]))
        self.port = -1
        self.plug_in: Optional[PlugIn] = None
        self.present = False
        self._slac_started = False
        self.matcher = EvMatcher(
            self.mac,
            ev_config(spec),
            run_id_source=self._run_id_source(random.Random(park.rng.getrandbits(64))),
            log=_SimLog(park, self.name, EV),
        )
        self.events: list[EvEvent] = []

    def _run_id_source(self, rng: random.Random) -> Callable[[], bytes]:
        if self.spec.run_ids == "ioniq":
            reused = bytes(self.mac) + b"\x00\x00"
            return lambda: reused
        if self.spec.run_ids == "tesla":
            return lambda: TESLA_RUN_ID
        return lambda: rng.randbytes(RUN_ID_LEN)

    def connect(self, heard: dict[int, Optional[float]]) -> None:
        """Put the car's modem on the medium, heard by these EVSEs (index: dB)."""
        medium = self.park.medium
        self.port = medium.add_port(self.name, EV, mac=self.modem_mac)
        self.park._add_host(self)
        for evse, db in heard.items():
            medium.set_attenuation(self.port, self.park.evses[evse].port, db)
        self.present = True
        self.park._apply_path_rules(self)

    def disconnect(self) -> None:
        self.present = False
        self.matcher.stop()
        self._armed = None
        if self.port >= 0:
            self.park.medium.modems[self.port].cut = True

    def pwm_on(self) -> None:
        """The car sees 5 % PWM: SLAC begins ``slac_delay`` later (once per plug-in)."""
        if self.spec.slac and not self._slac_started:
            self._slac_started = True
            self.park._schedule(self.park.now + self.spec.slac_delay, self._start_slac)

    def _start_slac(self) -> None:
        if not self.present:
            return
        if self.plug_in is not None:
            self.plug_in.slac_at = self.park.now
        self.matcher.start(self.park.now)
        self._flush()

    # --- machine plumbing ----------------------------------------------------------------------

    def _deadline(self) -> Optional[float]:
        return self.matcher.deadline if self.present else None

    def _handle_timer(self, now: float) -> None:
        self.matcher.handle_timer(now)

    def _outputs(self) -> tuple[list[Outgoing], Sequence[object]]:
        return self.matcher.frames_to_send(), self.matcher.events()

    def receive(self, data: bytes) -> None:
        if not self.present:
            return
        frame = self._decode(data)
        if frame is None or isinstance(frame.message, SetKeyCnf):
            return
        self.matcher.receive_frame(frame, self.park.now)
        self._flush()

    def _on_event(self, event: EvEvent) -> None:
        now = self.park.now
        self.events.append(event)
        plug_in = self.plug_in
        if isinstance(event, EvMatched):
            # the host puts the received key into its modem: it joins that EVSE's network
            self._send(LOCAL, SetKeyReq(nid=event.nid, new_key=event.nmk))
            reused = self.park._key_received(event.nmk, self.name)
            if plug_in is not None:
                plug_in.car_outcome, plug_in.car_outcome_at = "matched", now
                plug_in.car_keyed_by = self.park._key_owner.get(event.nmk, -1)
                plug_in.key_reused = reused
        elif isinstance(event, EvMatchingFailed) and plug_in is not None:
            plug_in.car_outcome, plug_in.car_outcome_at = "failed", now
        for observer in self.park.car_observers:
            observer(self.park, self, event)
        if plug_in is not None:
            self.park._progress(plug_in)


def ev_config(spec: CarSpec) -> EvConfig:
    """The EV state machine's settings for a car of these habits."""
    return EvConfig(
        atten_limit=spec.atten_limit,
        attempts=spec.attempts,
        attempt_pause=spec.attempt_pause,
        matching_repetition=spec.matching_repetition,
        choice=spec.choice,
    )


# --- the car park ------------------------------------------------------------------------------

CarObserver = Callable[["Carpark", _Car, EvEvent], None]


class Carpark:
    """EVSEs in a row, cars that come and go, one medium, one clock.

    ``config`` is the EVSEs' (ISO 15118-3 defaults); ``loss`` the share of HomePlug frames
    lost on every path (each receiver draws apart, profiles too); ``delay`` plus up to
    ``delay_jitter`` seconds per delivery; ``jitter`` the dB spread of the profiles' groups.
    A car still unresolved ``max_plugged`` seconds after plug-in leaves anyway (stuck).
    ``station_size`` charge points in a row form one station (one ``slac evse`` process,
    one :class:`~slac.fsm.station_view.StationView`); 0: every EVSE decides alone.
    """

    def __init__(
        self,
        layout: Layout,
        *,
        config: Optional[Config] = None,
        seed: int = 0,
        loss: float = 0.0,
        delay: float = 0.001,
        delay_jitter: float = 0.004,
        jitter: float = 1.0,
        key_settle: float = 0.0,
        max_plugged: float = 600.0,
        turnover: float = 20.0,
        link_supervision: bool = True,
        max_events: int = 20_000_000,
        trace: bool = False,
        station_size: int = 0,
    ) -> None:
        self.layout = layout
        if station_size < 0:
            raise ValueError(f"station_size {station_size}: 0 (none) or more charge points")
        self.station_size = station_size
        self._stations: dict[int, StationView] = {}
        self.config = config or Config()
        self.rng = random.Random(seed)
        self.medium = Medium(default_attenuation=None, jitter=jitter, seed=self.rng.getrandbits(64))
        if loss:
            self.medium.faults.loss["*"] = loss
        self.medium.faults.delay = delay
        self.medium.faults.delay_jitter = delay_jitter
        self.key_settle = key_settle
        self.max_plugged = max_plugged
        self.turnover = turnover
        self.link_supervision = link_supervision
        self.max_events = max_events
        self.now = 0.0
        self.events_run = 0
        self.undecodable = 0
        #: (time, sender MAC, receiving host, message) of every frame received, when tracing
        self.trace: Optional[list[tuple[float, str, str, str]]] = [] if trace else None
        self.plug_ins: list[PlugIn] = []
        self.foreign: list[_Car] = []
        self.car_observers: list[CarObserver] = []
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._hosts: list[_Host] = []
        self._key_owner: dict[bytes, int] = {}
        self._keys_received: dict[bytes, str] = {}
        self._names: set[str] = set()
        self._cars = 0
        self._pending_arrivals = 0
        #: cars waiting for a free charge point: (car, arrival time, charge point wanted)
        self._queue: list[tuple[_Car, float, Optional[int]]] = []
        self._plugged: dict[int, tuple[_Car, PlugIn]] = {}
        self._path_rules: dict[tuple[str, int], dict[str, float]] = {}
        self.evses: list[_Evse] = []
        for i in range(layout.evses):
            evse = _Evse(self, i)
            self.evses.append(evse)
            self._add_host(evse)
        for evse in self.evses:
            evse.power_on()

    def station_of(self, index: int) -> Optional[StationView]:
        """The station view of charge point ``index`` (None without stations)."""
        if not self.station_size:
            return None
        return self._stations.setdefault(index // self.station_size, StationView())

    # --- scripting -----------------------------------------------------------------------------

    def arrive(self, spec: CarSpec, at: float, evse: Optional[int] = None) -> str:
        """A car arrives at ``at`` and plugs into ``evse`` (None: a free one, drawn at
        random; it waits while none is free). Returns its name."""
        car = self._new_car(spec)
        self._pending_arrivals += 1
        self._schedule(at, lambda: self._arrival(car, evse))
        return car.name

    def add_foreign_car(self, spec: CarSpec, heard: dict[int, float], at: float = 0.0) -> str:
        """A car on a cable outside this car park (its own EVSE is not simulated), heard by
        the given EVSEs (index: dB). It starts SLAC at ``at`` + ``slac_delay`` and never
        leaves; its SLAC traffic is all this car park sees of it."""
        car = self._new_car(spec)
        self.foreign.append(car)

        def come() -> None:
            car.connect(dict(heard))
            car.pwm_on()

        self._schedule(at, come)
        return car.name

    def at(self, t: float, action: Callable[[Carpark], None]) -> None:
        """Run ``action(self)`` at time ``t``."""
        self._schedule(t, lambda: action(self))

    def lose(self, car: str, evse: int, message: str = "*", rate: float = 1.0) -> None:
        """Frames named ``message`` between this car and this EVSE are lost (both ways),
        from now on, also if the car arrives later."""
        self._path_rules.setdefault((car, evse), {})[message] = rate
        for host in self._hosts:
            if isinstance(host, _Car) and host.name == car and host.present:
                self._apply_path_rules(host)

    def drop_next(self, car: str, evse: int, message: str, count: int = 1) -> None:
        """The next ``count`` frames named ``message`` that this EVSE sends to this car are
        lost (then none); the car must be plugged in."""
        for host in self._hosts:
            if isinstance(host, _Car) and host.name == car and host.present:
                path = (self.evses[evse].port, host.port)
                self.medium.faults.link_drop.setdefault(path, {})[message] = count
                return
        raise KeyError(f"no car {car!r} plugged in")

    def restore(self, car: str, evse: int) -> None:
        """Undo :meth:`lose` for this car and EVSE."""
        self._path_rules.pop((car, evse), None)
        for host in self._hosts:
            if isinstance(host, _Car) and host.name == car and host.present:
                port = self.evses[evse].port
                self.medium.faults.link_loss.pop((host.port, port), None)
                self.medium.faults.link_loss.pop((port, host.port), None)

    def run(self, until: Optional[float] = None) -> Carpark:
        """Process events until every car has come and gone (or until ``until``)."""
        heap = self._heap
        while heap:
            if until is None and self._done():
                break
            t, _, action = heap[0]
            if until is not None and t > until:
                self.now = until
                break
            heapq.heappop(heap)
            self.now = t
            self.events_run += 1
            if self.events_run > self.max_events:
                raise SimulationError(f"more than {self.max_events} events by {t:.3f} s")
            action()
        return self

    def figures(self) -> Figures:
        return Figures.of(self.plug_ins)

    def plug_in_of(self, car: str) -> PlugIn:
        """The (last) plug-in of the car of this name."""
        for plug_in in reversed(self.plug_ins):
            if plug_in.car.name == car:
                return plug_in
        raise KeyError(car)

    # --- the machinery -------------------------------------------------------------------------

    def _new_car(self, spec: CarSpec) -> _Car:
        index = self._cars
        self._cars += 1
        if not spec.name:
            spec = CarSpec(**{**asdict(spec), "name": f"car{index}"})
        if spec.name in self._names:
            raise ValueError(f"two cars named {spec.name!r}")
        self._names.add(spec.name)
        return _Car(self, spec, index)

    def _add_host(self, host: _Host) -> None:
        if host.port != len(self._hosts):
            raise SimulationError("ports of the medium and hosts out of step")
        self._hosts.append(host)

    def _schedule(self, t: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, action))

    def _done(self) -> bool:
        return not self._pending_arrivals and not self._queue and not self._plugged

    def _transmit(self, port: int, data: bytes) -> None:
        for delivery in self.medium.from_host(port, data):
            self._deliver_later(delivery)

    def _deliver_later(self, delivery: Delivery) -> None:
        host = self._hosts[delivery.port]
        frame = delivery.frame
        self._schedule(self.now + delivery.delay, lambda: host.receive(frame))

    def _new_key(self, evse: int) -> bytes:
        nmk = self.rng.randbytes(16)
        self._key_owner[nmk] = evse
        return nmk

    def _key_received(self, nmk: bytes, car: str) -> bool:
        """Record that a car received this key; True when an earlier car had it."""
        if nmk in self._keys_received:
            return True
        self._keys_received[nmk] = car
        return False

    def _apply_path_rules(self, car: _Car) -> None:
        for (name, evse), rules in self._path_rules.items():
            if name == car.name:
                port = self.evses[evse].port
                self.medium.faults.link_loss[(car.port, port)] = dict(rules)
                self.medium.faults.link_loss[(port, car.port)] = dict(rules)

    def _arrival(self, car: _Car, evse: Optional[int]) -> None:
        self._pending_arrivals -= 1
        self._queue.append((car, self.now, evse))
        self._serve_queue()

    def _serve_queue(self) -> None:
        """Plug waiting cars in, first come first served, into free charge points."""
        waiting = []
        for car, arrived, wanted in self._queue:
            free = [e for e in self.evses if e.free(self.now)]
            if wanted is not None:
                free = [e for e in free if e.index == wanted]
            if not free:
                waiting.append((car, arrived, wanted))
                continue
            self._plug(
                car, free[self.rng.randrange(len(free))] if len(free) > 1 else free[0], arrived
            )
        self._queue = waiting

    def _plug(self, car: _Car, evse: _Evse, arrived: float) -> None:
        now = self.now
        row = self.layout.heard[evse.index]
        own = row[evse.index]
        spec = car.spec
        plug_in = PlugIn(
            car=spec,
            ev_mac=car.mac,
            evse=evse.index,
            own_db=own,
            arrived_at=arrived,
            plugged_at=now,
            could_match=(
                spec.slac
                and spec.slac_delay < self.config.slac_init_timeout
                and own is not None
                and own <= spec.atten_limit
            ),
        )
        self.plug_ins.append(plug_in)
        car.plug_in = plug_in
        car.connect({j: row[j] for j in range(self.layout.evses)})
        self._plugged[evse.index] = (car, plug_in)
        evse.plug(car, plug_in)
        self._schedule(now + spec.dwell, lambda: self._progress(plug_in))
        self._schedule(now + self.max_plugged, lambda: self._leave(plug_in))

    def _progress(self, plug_in: PlugIn) -> None:
        """Leave once resolved and the dwell time is over."""
        if (
            plug_in.left_at is None
            and plug_in.resolved
            and self.now >= plug_in.plugged_at + plug_in.car.dwell
        ):
            self._leave(plug_in)

    def _leave(self, plug_in: PlugIn) -> None:
        if plug_in.left_at is not None:
            return
        plug_in.left_at = self.now
        car, _ = self._plugged.pop(plug_in.evse)
        car.disconnect()
        self.evses[plug_in.evse].unplug()
        if self._queue:
            self._schedule(self.now + self.turnover, self._serve_queue)


# --- random episodes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeSpec:
    """A car park's day in miniature: ``cars`` arrive at uniformly random times over
    ``window`` seconds, each into a free charge point (drawn at random; they queue while
    none is free), and stay ``dwell`` seconds (drawn uniformly from the range)."""

    evses: int = 8
    cars: int = 16
    window: float = 300.0
    #: the EV kind: "lowest", "first", or "mixed" (each car draws one)
    choice: str = "lowest"
    loss: float = 0.03
    #: share of cars reusing one RunID on every attempt (half Ioniq-like, half Tesla-like)
    reuse_share: float = 0.2
    #: share of cars sending their first CM_SLAC_PARM.REQ ``late_delay`` after 5 % PWM
    late_share: float = 0.15
    late_delay: float = 15.0
    #: share of cars without ISO 15118 (basic charging only): their EVSE must end with
    #: MatchingFailed, in bounded time, however often neighbours' cars are heard
    basic_share: float = 0.1
    #: the others: drawn from this range
    slac_delay: tuple[float, float] = (0.5, 3.0)
    dwell: tuple[float, float] = (60.0, 240.0)
    own_db: float = 20.0
    nearest_db: float = 26.0
    farthest_db: float = 50.0
    #: how many places apart charge points still hear each other's cars
    reach: int = 3
    delay: float = 0.001
    delay_jitter: float = 0.004
    #: charge points per station (one process and StationView each); 0: none shared
    station_size: int = 8

    def __post_init__(self) -> None:
        if self.choice not in (*CHOICES, "mixed"):
            raise ValueError(f"choice is one of {CHOICES} or 'mixed', not {self.choice!r}")


def random_episode(seed: int, spec: EpisodeSpec, config: Optional[Config] = None) -> Carpark:
    """A car park set up for one episode (call :meth:`Carpark.run`); the same seed gives the
    same episode."""
    rng = random.Random(seed)
    layout = Layout.row(
        spec.evses,
        rng,
        own=spec.own_db,
        nearest=spec.nearest_db,
        farthest=spec.farthest_db,
        reach=spec.reach,
    )
    park = Carpark(
        layout,
        config=config,
        seed=rng.getrandbits(64),
        loss=spec.loss,
        delay=spec.delay,
        delay_jitter=spec.delay_jitter,
        station_size=spec.station_size,
    )
    for _ in range(spec.cars):
        choice = spec.choice if spec.choice != "mixed" else rng.choice(CHOICES)
        draw = rng.random()
        if draw < spec.reuse_share / 2:
            run_ids = "ioniq"
        elif draw < spec.reuse_share:
            run_ids = "tesla"
        else:
            run_ids = "fresh"
        late = rng.random() < spec.late_share
        car = CarSpec(
            choice=choice,
            run_ids=run_ids,
            slac_delay=spec.late_delay if late else rng.uniform(*spec.slac_delay),
            slac=rng.random() >= spec.basic_share,
            dwell=rng.uniform(*spec.dwell),
        )
        park.arrive(car, at=rng.uniform(0.0, spec.window))
    return park


@dataclass
class RunSummary:
    """N episodes: the figures over every plug-in, per habit, and the worst episodes."""

    spec: EpisodeSpec
    seeds: list[int]
    plug_ins: list[PlugIn] = field(default_factory=list)
    #: seeds of episodes with a wrong pairing, a stuck plug-in or a car that could match
    #: its own EVSE and did not
    bad_seeds: list[int] = field(default_factory=list)
    events: int = 0

    def figures(self) -> Figures:
        return Figures.of(self.plug_ins)

    def by_habit(self) -> dict[str, Figures]:
        habits = sorted({p.car.habits for p in self.plug_ins})
        return {h: Figures.of([p for p in self.plug_ins if p.car.habits == h]) for h in habits}


def run_episodes(
    seeds: Sequence[int], spec: EpisodeSpec, config: Optional[Config] = None
) -> RunSummary:
    """Run one episode per seed and gather every plug-in."""
    summary = RunSummary(spec, list(seeds))
    for seed in seeds:
        park = random_episode(seed, spec, config).run()
        summary.plug_ins.extend(park.plug_ins)
        summary.events += park.events_run
        figures = park.figures()
        if figures.wrong_pairings or figures.wrong_confirmations or figures.stuck or figures.missed:
            summary.bad_seeds.append(seed)
    return summary
