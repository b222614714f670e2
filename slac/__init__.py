"""ISO 15118-3 SLAC (HomePlug GreenPHY matching) for asyncio: EVSE side (and the EV's).

Subclass :class:`SlacSessionController`, create a :class:`SlacEvseSession` per EVSE, call
``await session.evse_set_key()`` once, then feed control-pilot states to
``controller.process_cp_state(session, state)``.

The names below are imported on first use (PEP 562), so that ``import slac.fsm.evse`` or
``import slac.config`` (the sans-IO machines and the settings) needs neither asyncio sockets
nor environs and python-dotenv: ``from slac import Config`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from slac.ev import (
        EvMatchResult,
        SlacEvSession,
    )
    from slac.fsm.events import (
        DlinkCommand,
        FailureReason,
        SessionState,
        StopReason,
    )
    from slac.fsm.station_view import StationView
    from slac.session import (
        MatchResult,
        SlacEvseSession,
        SlacSession,
        SlacSessionController,
    )

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {
    "Config": "slac.environment",
    "ConfigError": "slac.errors",
    "CpStateError": "slac.errors",
    "DecodeError": "slac.errors",
    "DlinkCommand": "slac.fsm.events",
    "EvMatchResult": "slac.ev",
    "EvMatchingFailedError": "slac.errors",
    "FailureReason": "slac.fsm.events",
    "FieldError": "slac.errors",
    "MatchResult": "slac.session",
    "MatchingFailedError": "slac.errors",
    "ModemError": "slac.errors",
    "ModemTimeoutError": "slac.errors",
    "SessionState": "slac.fsm.events",
    "SlacError": "slac.errors",
    "SlacEvSession": "slac.ev",
    "SlacEvseSession": "slac.session",
    "SlacSession": "slac.session",
    "SlacSessionController": "slac.session",
    "StationView": "slac.fsm.station_view",
    "StopReason": "slac.fsm.events",
    "TransportError": "slac.errors",
    "UsageError": "slac.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'slac' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Config",
    "ConfigError",
    "CpStateError",
    "DecodeError",
    "DlinkCommand",
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
    "StationView",
    "StopReason",
    "TransportError",
    "UsageError",
    "__version__",
]
