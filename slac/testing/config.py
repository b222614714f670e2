"""The settings a test host needs: the library's defaults, made fast where an emulated modem
allows it."""

from __future__ import annotations

from typing import Any

from slac.environment import Config

#: What differs from the defaults: an emulated modem is ready at once after CM_SET_KEY (a QCA
#: modem restarts: 10 s) and answers it at once (a missing answer shows within 0.3 s).
FAST: dict[str, Any] = {"set_key_settle_time": 0.0, "set_key_timeout": 0.3}


def fast_config(**overrides: Any) -> Config:
    """A :class:`Config` with :data:`FAST` and then ``overrides`` (field names) applied."""
    return Config(**{**FAST, **overrides})
