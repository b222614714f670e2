"""ISO 15118-3 SLAC (HomePlug GreenPHY matching) for asyncio: EVSE side.

Subclass :class:`SlacSessionController`, create a :class:`SlacEvseSession` per EVSE, call
``await session.evse_set_key()`` once, then feed control-pilot states to
``controller.process_cp_state(session, state)``.
"""

from slac.environment import Config
from slac.errors import (
    ConfigError,
    DecodeError,
    FieldError,
    ModemError,
    ModemTimeoutError,
    SlacError,
    TransportError,
)
from slac.fsm.station import StationView
from slac.session import (
    MatchingFailedError,
    MatchResult,
    SessionState,
    SlacEvseSession,
    SlacSession,
    SlacSessionController,
)

__version__ = "0.1.0"

__all__ = [
    "Config",
    "ConfigError",
    "DecodeError",
    "FieldError",
    "MatchResult",
    "MatchingFailedError",
    "ModemError",
    "ModemTimeoutError",
    "SessionState",
    "SlacError",
    "SlacEvseSession",
    "SlacSession",
    "SlacSessionController",
    "StationView",
    "TransportError",
    "__version__",
]
