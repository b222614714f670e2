"""ISO 15118-3 SLAC (HomePlug GreenPHY matching) for asyncio: EVSE side (and the EV's).

Subclass :class:`SlacSessionController`, create a :class:`SlacEvseSession` per EVSE, call
``await session.evse_set_key()`` once, then feed control-pilot states to
``controller.process_cp_state(session, state)``.
"""

from slac.environment import Config
from slac.errors import (
    ConfigError,
    CpStateError,
    DecodeError,
    EvMatchingFailedError,
    FieldError,
    MatchingFailedError,
    ModemError,
    ModemTimeoutError,
    SlacError,
    TransportError,
    UsageError,
)
from slac.ev import EvMatchResult, SlacEvSession
from slac.fsm.events import FailureReason, SessionState, StopReason
from slac.session import (
    MatchResult,
    SlacEvseSession,
    SlacSession,
    SlacSessionController,
)

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "CpStateError",
    "DecodeError",
    "EvMatchResult",
    "EvMatchingFailedError",
    "FailureReason",
    "FieldError",
    "MatchResult",
    "MatchingFailedError",
    "ModemError",
    "ModemTimeoutError",
    "SessionState",
    "SlacError",
    "SlacEvSession",
    "SlacEvseSession",
    "SlacSession",
    "SlacSessionController",
    "StopReason",
    "TransportError",
    "UsageError",
    "__version__",
]
