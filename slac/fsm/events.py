"""What the state machines tell their driver, for both roles: one module, one base class.

Every event is a small frozen dataclass deriving from :class:`SlacEvent`; its fields are
fixed at construction. Why something failed or stopped is an enum (:class:`FailureReason`,
:class:`StopReason`, :class:`LinkLoss`, :class:`KeyFailure`), never a string to compare;
``detail`` carries the sentence for the log.

- EVSE matcher (:mod:`slac.fsm.evse`): :class:`MatchingStarted`, :class:`MatchingOngoing`,
  :class:`RunEnded`, :class:`AttemptFailed`, :class:`Matched`, :class:`MatchingFailed`,
  :class:`Stopped`;
- EV matcher (:mod:`slac.fsm.ev`): :class:`EvseChosen`, :class:`EvMatched`,
  :class:`EvAttemptFailed`, :class:`EvMatchingFailed`;
- the local modem (:mod:`slac.fsm.modem`): :class:`KeySet`, :class:`KeyNotSet`,
  :class:`ModemFound`, :class:`LinkStatus`, :class:`LinkUp`, :class:`LinkLost`,
  :class:`SupervisionOff`;
- the hosts (:mod:`slac.fsm.station`): :class:`ModemReady`, :class:`StateChanged`,
  :class:`Joined`, :class:`DlinkDone`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional, Union

from slac.errors import ModemError, ModemTimeoutError
from slac.fsm.base import Outgoing
from slac.messages import AttenCharInd
from slac.utils import MacAddress

__all__ = ["Outgoing"]  # extended below


# --- reasons -----------------------------------------------------------------------------------


class FailureReason(Enum):
    """Why a run, an attempt, a plug-in or a match failed (both roles)."""

    #: EVSE: no CM_SLAC_PARM.REQ within TT_EVSE_SLAC_init
    NO_PARM_REQ = "no CM_SLAC_PARM.REQ"
    #: EVSE: no CM_START_ATTEN_CHAR.IND within TT_match_sequence
    NO_START_ATTEN_CHAR = "no CM_START_ATTEN_CHAR.IND"
    #: EVSE: no CM_ATTEN_PROFILE.IND (no sounds heard) within the sounding window
    NO_SOUNDS = "no sounds"
    #: EVSE: no CM_ATTEN_CHAR.RSP after every resend of CM_ATTEN_CHAR.IND
    NO_ATTEN_CHAR_RSP = "no CM_ATTEN_CHAR.RSP"
    #: EVSE: the EV answered CM_ATTEN_CHAR.IND, then asked another EVSE (no CM_SLAC_MATCH.REQ
    #: within TT_EVSE_match_session)
    EV_CHOSE_ANOTHER_EVSE = "the EV chose another EVSE"
    #: EVSE: no CM_SLAC_MATCH.REQ (the plug-in ended with runs that never asked)
    NO_MATCH_REQ = "no CM_SLAC_MATCH.REQ"
    #: EVSE: the EV started over (same RunID after its TT_EV_atten_results, or a new RunID)
    EV_STARTED_OVER = "the EV started over"
    #: EVSE: the run made room for another EV (every parallel slot was taken)
    REPLACED = "replaced by another EV"
    #: EVSE: this EVSE matched another EV
    OTHER_EV_MATCHED = "this EVSE matched another EV"
    #: both: the local modem did not take the key (CM_SET_KEY)
    KEY_NOT_SET = "the modem did not take the key"
    #: EVSE: the link was not up within TT_match_join after the match
    NOT_JOINED = "link not up within TT_match_join"
    #: EVSE: the modem reported the link down after it was up
    LINK_LOST = "link lost"
    #: EVSE: the modem stopped answering the link polls
    MODEM_SILENT = "modem silent"
    #: both: the network interface failed
    INTERFACE = "the interface failed"
    #: both: a bug (an exception in the driver or a hook)
    INTERNAL = "internal error"
    #: EV: no CM_SLAC_PARM.CNF from any EVSE
    NO_PARM_CNF = "no CM_SLAC_PARM.CNF"
    #: EV: no CM_ATTEN_CHAR.IND within TT_EV_atten_results
    NO_ATTEN_CHAR_IND = "no CM_ATTEN_CHAR.IND"
    #: EV: every EVSE measured more than the attenuation limit
    ABOVE_ATTEN_LIMIT = "above the attenuation limit"
    #: EV: no valid CM_SLAC_MATCH.CNF from the chosen EVSE
    NO_MATCH_CNF = "no CM_SLAC_MATCH.CNF"


class StopReason(Enum):
    """Why matching (or the match) was stopped from outside the protocol."""

    #: control pilot A: the EV was unplugged
    UNPLUGGED = "control pilot A"
    #: control pilot E or F while matched
    CP_ERROR = "control pilot E or F"
    #: matching starts again within the plug-in (lost link, or the HLC side asked)
    RESTART = "matching again"
    #: the driver stopped it (the session closed, its task was cancelled or failed)
    DRIVER = "stopped by the driver"
    #: the HLC side ended the data link (D-LINK_TERMINATE): no new match until a CP cycle
    DLINK_TERMINATE = "D-LINK_TERMINATE"


class DlinkCommand(str, Enum):
    """A data-link request of the HLC side (ISO 15118-3 D-LINK_*.request; EVerest's
    ``dlink_terminate``, ``dlink_error``, ``dlink_pause``), and the resume that ends a pause.
    What each does: :meth:`slac.fsm.station.EvseStation.dlink`."""

    #: leave the logical network, back to unmatched; no new match until a CP cycle
    TERMINATE = "terminate"
    #: leave the logical network and match again at once (no CP cycle)
    ERROR = "error"
    #: stay matched, stop link supervision (the EV may power its modem down)
    PAUSE = "pause"
    #: end the pause: link supervision again, the link up within TT_match_join
    RESUME = "resume"


class LinkLoss(Enum):
    NOT_JOINED = "not joined"
    LINK_DOWN = "link down"
    MODEM_SILENT = "modem silent"

    @property
    def failure(self) -> FailureReason:
        return _LOSS_FAILURES[self]


_LOSS_FAILURES = {
    LinkLoss.NOT_JOINED: FailureReason.NOT_JOINED,
    LinkLoss.LINK_DOWN: FailureReason.LINK_LOST,
    LinkLoss.MODEM_SILENT: FailureReason.MODEM_SILENT,
}


class KeyFailure(Enum):
    NO_ANSWER = "no CM_SET_KEY.CNF"
    REFUSED = "CM_SET_KEY.CNF with a Result that is not success"


class SessionState(str, Enum):
    """Where one host stands, as its machine's events say (EVSE and EV alike)."""

    UNMATCHED = "unmatched"
    MATCHING = "matching"
    MATCHED = "matched"
    FAILED = "failed"
    #: EVSE: its interface does not exist yet or is down (``slac evse`` waits for it)
    UNAVAILABLE = "unavailable"


# --- the base -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlacEvent:
    """Base of every event a machine emits (both roles, the modem, the hosts).

    A measured attenuation is carried by an event but is not part of its identity (events
    compare equal without it)."""


# --- EVSE matcher -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchingStarted(SlacEvent):
    """A matching attempt began: waiting for CM_SLAC_PARM.REQ (attempt counts from 1)."""

    attempt: int


@dataclass(frozen=True)
class MatchingOngoing(SlacEvent):
    """The first valid CM_SLAC_PARM.REQ of an attempt arrived: an EV is matching."""

    ev_mac: MacAddress
    run_id: bytes


@dataclass(frozen=True)
class RunEnded(SlacEvent):
    """One EV run (EV MAC, RunID) ended without a match, and why."""

    ev_mac: MacAddress
    run_id: bytes
    reason: FailureReason
    detail: str = ""
    #: the mean attenuation this EVSE measured for the run (dB), None when not sounded
    attenuation: Optional[float] = field(default=None, compare=False)


@dataclass(frozen=True)
class AttemptFailed(SlacEvent):
    """A matching attempt of one EV failed (a run that counts against its C_conn_max_match).

    ``attempt`` is that EV's count of failed attempts in this plug-in; the EV may start
    another while it has attempts and time (TT_matching_repetition) left.
    """

    attempt: int
    reason: FailureReason
    detail: str = ""
    #: the EV whose attempt failed
    ev_mac: Optional[MacAddress] = None
    attenuation: Optional[float] = field(default=None, compare=False)


@dataclass(frozen=True)
class Matched(SlacEvent):
    """CM_SLAC_MATCH.CNF was sent: the EV has this EVSE's NID and NMK."""

    ev_mac: MacAddress
    run_id: bytes
    nid: bytes
    #: the mean attenuation this EVSE measured for the EV (dB)
    attenuation: Optional[float] = field(default=None, compare=False)


@dataclass(frozen=True)
class MatchingFailed(SlacEvent):
    """Matching failed for this plug-in: every attempt (C_conn_max_match), the modem's key,
    the link after the match, or the driver; nothing more happens until the next plug-in
    (or a restart)."""

    reason: FailureReason
    attempts: int
    detail: str = ""
    #: the mean attenuation this EVSE measured for the EV the reason is about (dB), when known
    attenuation: Optional[float] = field(default=None, compare=False)
    #: the EV the reason is about, when known
    ev_mac: Optional[MacAddress] = None


@dataclass(frozen=True)
class Stopped(SlacEvent):
    """Matching (or the match) ended because of the control pilot or the driver."""

    reason: StopReason
    was_matched: bool
    detail: str = ""


# --- EV matcher ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvseCandidate:
    """An EVSE that answered, and the attenuation it measured (None before it did)."""

    mac: MacAddress
    average: Optional[float] = None
    atten_char: Optional[AttenCharInd] = None


@dataclass(frozen=True)
class EvseChosen(SlacEvent):
    """The EV chose this EVSE, and why (a sentence: the candidates and their figures)."""

    evse_mac: MacAddress
    average: float
    reason: str


@dataclass(frozen=True)
class EvMatched(SlacEvent):
    """CM_SLAC_MATCH.CNF arrived: set this NMK and NID in the EV's modem."""

    evse_mac: MacAddress
    run_id: bytes
    nid: bytes
    nmk: bytes = field(repr=False)


@dataclass(frozen=True)
class EvAttemptFailed(SlacEvent):
    attempt: int
    reason: FailureReason
    detail: str = ""


@dataclass(frozen=True)
class EvMatchingFailed(SlacEvent):
    reason: FailureReason
    attempts: int
    detail: str = ""


# --- the local modem ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySet(SlacEvent):
    """The modem confirmed the key: it is in (or forms) the logical network of this NMK."""

    nmk: bytes = field(repr=False)
    nid: bytes
    attempts: int


@dataclass(frozen=True)
class KeyNotSet(SlacEvent):
    """The modem did not take the key. Which key it holds now is not known."""

    failure: KeyFailure
    attempts: int
    #: the waits for CM_SET_KEY.CNF added up (seconds)
    waited: float
    result: Optional[int] = None
    accepted: tuple[int, ...] = ()

    def error(self, interface: str) -> ModemError:
        """The exception a driver raises for this, in plain words."""
        if self.failure is KeyFailure.NO_ANSWER:
            return ModemTimeoutError(
                f"the modem on {interface} did not answer CM_SET_KEY.REQ "
                f"({self.attempts} attempts, {self.waited:.1f} s); check that the GreenPHY "
                "modem is connected and powered"
            )
        ok = ", ".join(str(v) for v in self.accepted)
        return ModemError(
            f"the modem on {interface} refused the key: CM_SET_KEY.CNF "
            f"Result {self.result} (accepted: {ok}; set SET_KEY_RESULT_OK if "
            "this modem reports success differently)"
        )


@dataclass(frozen=True)
class ModemFound(SlacEvent):
    """The modem's own MAC address, learned from an answer (first time, or changed)."""

    mac: MacAddress


@dataclass(frozen=True)
class LinkStatus(SlacEvent):
    """What the modem reported (VS_PL_LINK_STATUS.CNF); None: a query went unanswered."""

    linked: Optional[bool]


@dataclass(frozen=True)
class LinkUp(SlacEvent):
    """Supervision saw the link up for the first time since it started."""


@dataclass(frozen=True)
class LinkLost(SlacEvent):
    """Supervision decided that the link to the EV is lost; it has stopped."""

    loss: LinkLoss
    reason: str


@dataclass(frozen=True)
class SupervisionOff(SlacEvent):
    """Supervision stopped without a verdict (the modem never answered VS_PL_LINK_STATUS)."""

    reason: str


# --- the hosts (slac.fsm.station) ---------------------------------------------------------------


class RestartSign(Enum):
    """How a restart of the local modem was noticed (issue 15 item 2)."""

    #: the modem said so: QCA VS_HOST_ACTION.IND (its firmware started)
    HOST_ACTION = "VS_HOST_ACTION.IND"
    #: the idle heartbeat (VS_SW_VER.REQ) went unanswered, then was answered again
    HEARTBEAT = "heartbeat answered again"
    #: the heartbeat's VS_SW_VER.CNF names another firmware than before
    FIRMWARE_CHANGED = "firmware changed"
    #: the modem answers again after a reset (VS_RS_DEV.REQ, or the hardware reset hook)
    RESET = "back after a reset"


@dataclass(frozen=True)
class ModemRestarted(SlacEvent):
    """The local modem restarted: the key it was given is gone (a fresh one follows)."""

    sign: RestartSign
    detail: str


@dataclass(frozen=True)
class ModemUnresponsive(SlacEvent):
    """The modem did not take VS_RS_DEV.REQ, or did not come back within MODEM_RESET_WAIT
    after a reset: only a hardware reset (the controller's ``reset_modem_hardware``) helps."""

    detail: str


@dataclass(frozen=True)
class ModemSilent(SlacEvent):
    """The idle heartbeat went unanswered ``misses`` times in a row (the modem may be wedged,
    or restarting)."""

    misses: int


@dataclass(frozen=True)
class ModemReady(SlacEvent):
    """The key is set and the modem has settled (SET_KEY_SETTLE_TIME): it can match."""

    nid: bytes


@dataclass(frozen=True)
class StateChanged(SlacEvent):
    """The host's :class:`SessionState` changed (ev_mac and run_id as they are now)."""

    state: SessionState
    ev_mac: Optional[MacAddress] = None
    run_id: Optional[bytes] = None


@dataclass(frozen=True)
class DlinkDone(SlacEvent):
    """EVSE host: a D-LINK request of the HLC side, and whether it changed anything
    (``applied`` False: nothing to do in this state; ``detail`` says why)."""

    command: DlinkCommand
    applied: bool
    detail: str = ""


@dataclass(frozen=True)
class Joined(SlacEvent):
    """EV host: the modem took the EVSE's key; the EV is in the EVSE's logical network."""

    evse_mac: MacAddress
    nid: bytes


Event = Union[
    MatchingStarted, MatchingOngoing, RunEnded, AttemptFailed, Matched, MatchingFailed, Stopped
]
EvEvent = Union[EvseChosen, EvMatched, EvAttemptFailed, EvMatchingFailed]
ModemEvent = Union[
    KeySet,
    KeyNotSet,
    ModemFound,
    LinkStatus,
    LinkUp,
    LinkLost,
    SupervisionOff,
    ModemRestarted,
    ModemSilent,
    ModemUnresponsive,
]

__all__ += [
    "AttemptFailed",
    "DlinkCommand",
    "DlinkDone",
    "EvAttemptFailed",
    "EvEvent",
    "EvMatched",
    "EvMatchingFailed",
    "Event",
    "EvseCandidate",
    "EvseChosen",
    "FailureReason",
    "Joined",
    "KeyFailure",
    "KeyNotSet",
    "KeySet",
    "LinkLoss",
    "LinkLost",
    "LinkStatus",
    "LinkUp",
    "Matched",
    "MatchingFailed",
    "MatchingOngoing",
    "MatchingStarted",
    "ModemEvent",
    "ModemFound",
    "ModemReady",
    "ModemRestarted",
    "ModemSilent",
    "ModemUnresponsive",
    "RestartSign",
    "RunEnded",
    "SessionState",
    "SlacEvent",
    "StateChanged",
    "StopReason",
    "Stopped",
    "SupervisionOff",
]
