"""Sans-IO SLAC state machines: no sockets, no asyncio, no clock."""

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
from slac.fsm.evse import EvseMatcher, EvseState, RunState, parse_cp_state

__all__ = [
    "AttemptFailed",
    "Event",
    "EvseMatcher",
    "EvseState",
    "Matched",
    "MatchingFailed",
    "MatchingOngoing",
    "MatchingStarted",
    "Outgoing",
    "RunEnded",
    "RunState",
    "Stopped",
    "parse_cp_state",
]
