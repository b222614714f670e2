"""Sans-IO SLAC state machines: no sockets, no asyncio, no clock.

One shape (:mod:`slac.fsm.base`): inputs ``receive_frame(frame, now)``, ``handle_timer(now)``
and API calls; outputs ``frames_to_send()``, ``events()`` and ``deadline``.

- :mod:`slac.fsm.evse`: the EVSE's matcher; :mod:`slac.fsm.ev`: the EV's;
- :mod:`slac.fsm.modem`: the host's requests to its own modem (CM_SET_KEY, link supervision);
- :mod:`slac.fsm.station`: a whole host (matcher + modem + control pilot and key policy);
- :mod:`slac.fsm.events`: every event of both roles, and the reason enums.
"""

from slac.fsm.base import Machine, Outgoing
from slac.fsm.events import (
    AttemptFailed,
    Event,
    FailureReason,
    Matched,
    MatchingFailed,
    MatchingOngoing,
    MatchingStarted,
    RunEnded,
    SessionState,
    SlacEvent,
    Stopped,
    StopReason,
)
from slac.fsm.evse import EvseMatcher, EvseState, RunState, parse_cp_state

__all__ = [
    "AttemptFailed",
    "Event",
    "EvseMatcher",
    "EvseState",
    "FailureReason",
    "Machine",
    "Matched",
    "MatchingFailed",
    "MatchingOngoing",
    "MatchingStarted",
    "Outgoing",
    "RunEnded",
    "RunState",
    "SessionState",
    "SlacEvent",
    "StopReason",
    "Stopped",
    "parse_cp_state",
]
