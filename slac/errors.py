"""One exception tree for local faults.

Peer faults (a malformed frame, a wrong RunID, a late frame) are not exceptions that escape:
the state machine ignores and logs them, as ISO 15118-3 asks. What escapes is one of these.
"""

from __future__ import annotations


class SlacError(Exception):
    """Base of every exception this library raises on purpose."""


class FieldError(SlacError, ValueError):
    """A message field out of range or of the wrong size, found at construction."""


class DecodeError(SlacError, ValueError):
    """Bytes that are not a frame or message this library can read."""


class ConfigError(SlacError, ValueError):
    """Invalid configuration: every bad variable is named, with the reason."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        text = "; ".join(f"{name}: {why}" for name, why in sorted(self.problems.items()))
        super().__init__(f"invalid configuration: {text}")


class TransportError(SlacError, OSError):
    """The network interface cannot be used (missing, down, no permission, closed)."""


class ModemError(SlacError, OSError):
    """The local GreenPHY modem did not do what was asked (e.g. refused CM_SET_KEY)."""


class ModemTimeoutError(ModemError, TimeoutError):
    """The local modem did not answer in time."""


class UsageError(SlacError, ValueError):
    """The library was called in a way it does not support (an empty EVSE id, an unknown
    EVSE, a call before ``open()``): a fault of the calling program, said in plain words."""


class CpStateError(UsageError):
    """Not a control-pilot state: expected "A" to "F" (a digit may follow, "B1", "C2")."""


class MatchingFailedError(SlacError):
    """Matching ended without a match (every attempt failed, or it was stopped).

    ``failure`` is the :class:`slac.fsm.events.MatchingFailed` (or, on the EV side,
    :class:`slac.fsm.events.EvMatchingFailed`) event that ended it, when one did: its
    ``reason`` is a :class:`slac.fsm.events.FailureReason`.
    """

    def __init__(self, message: str, failure: object = None) -> None:
        super().__init__(message)
        self.failure = failure

    @property
    def reason(self) -> object:
        """The failure's :class:`~slac.fsm.events.FailureReason` (None when not known)."""
        return getattr(self.failure, "reason", None)

    @property
    def attenuation(self) -> object:
        """The mean attenuation (dB) this EVSE measured for the EV the failure is about
        (e.g. the EV that chose another EVSE); None when not known."""
        return getattr(self.failure, "attenuation", None)


class EvMatchingFailedError(MatchingFailedError):
    """The EV found no EVSE to match with (every attempt failed)."""
