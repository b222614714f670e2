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
