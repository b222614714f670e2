"""What the state machines tell their driver: frames to send and events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from slac.messages import Message
from slac.utils import MacAddress


@dataclass(frozen=True)
class Outgoing:
    """A message to send to ``dst`` (the driver adds its own MAC as the source)."""

    dst: MacAddress
    message: Message


@dataclass(frozen=True)
class MatchingStarted:
    """A matching attempt began: waiting for CM_SLAC_PARM.REQ (attempt counts from 1)."""

    attempt: int


@dataclass(frozen=True)
class MatchingOngoing:
    """The first valid CM_SLAC_PARM.REQ of an attempt arrived: an EV is matching."""

    ev_mac: MacAddress
    run_id: bytes


@dataclass(frozen=True)
class RunEnded:
    """One EV run (EV MAC, RunID) ended without a match, and why."""

    ev_mac: MacAddress
    run_id: bytes
    reason: str


@dataclass(frozen=True)
class AttemptFailed:
    """A matching attempt of one EV failed (a run that counts against its C_conn_max_match).

    ``attempt`` is that EV's count of failed attempts in this plug-in; the EV may start
    another while it has attempts and time (TT_matching_repetition) left.
    """

    attempt: int
    reason: str
    #: the EV whose attempt failed (None from code that does not say)
    ev_mac: Optional[MacAddress] = None


@dataclass(frozen=True)
class Matched:
    """CM_SLAC_MATCH.CNF was sent: the EV has this EVSE's NID and NMK."""

    ev_mac: MacAddress
    run_id: bytes
    nid: bytes


@dataclass(frozen=True)
class MatchingFailed:
    """Every attempt failed (C_conn_max_match); nothing more happens until the next plug-in."""

    reason: str
    attempts: int


@dataclass(frozen=True)
class Stopped:
    """Matching (or the match) ended because of the control pilot or the driver."""

    reason: str
    was_matched: bool


Event = Union[
    MatchingStarted, MatchingOngoing, RunEnded, AttemptFailed, Matched, MatchingFailed, Stopped
]
