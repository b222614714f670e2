"""Per-reason counters of one EVSE host, kept by its machine (:class:`EvseStation`), read by
``slac evse`` (the stdin ``status`` command, MQTT ``<prefix>/<evse_id>/stats``).

Each counter counts events of one kind, by reason (the :class:`FailureReason` name in lower
case, e.g. ``no_parm_req``, as the JSON status says it):

================  ============================================================================
``matches``       CM_SLAC_MATCH.CNF sent (Matched)
``failures``      plug-ins that failed (MatchingFailed: every attempt, the key, the interface)
``attempts``      failed attempts that count against C_conn_max_match (AttemptFailed)
``runs``          runs that ended without a match, also those that do not count (RunEnded:
                  e.g. ``ev_chose_another_evse``, a neighbour's car heard through crosstalk)
``links_lost``    matches whose link supervision gave up (LinkLost: ``not_joined``,
                  ``link_lost``, ``modem_silent``); the EVSE matches again
``dlink``         D-LINK requests applied, by command (``terminate``, ``error``, ...)
================  ============================================================================
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from slac.fsm.events import (
    AttemptFailed,
    DlinkDone,
    LinkLost,
    Matched,
    MatchingFailed,
    RunEnded,
    SlacEvent,
)

__all__ = ["EvseCounters", "reason_key"]


def reason_key(reason: Any) -> str:
    """The name a reason (or a command) has in JSON: the enum's name in lower case."""
    return str(reason.name).lower()


class EvseCounters:
    """What one EVSE counted since it started; :attr:`changes` grows at every count."""

    def __init__(self) -> None:
        self.matches = 0
        self.failures: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.runs: Counter[str] = Counter()
        self.links_lost: Counter[str] = Counter()
        self.dlink: Counter[str] = Counter()
        #: how many counts so far (a publisher compares it with what it told last)
        self.changes = 0

    def count(self, event: SlacEvent) -> None:
        """Count one event of the host (every other event is ignored)."""
        if isinstance(event, Matched):
            self.matches += 1
        elif isinstance(event, MatchingFailed):
            self.failures[reason_key(event.reason)] += 1
        elif isinstance(event, AttemptFailed):
            self.attempts[reason_key(event.reason)] += 1
        elif isinstance(event, RunEnded):
            self.runs[reason_key(event.reason)] += 1
        elif isinstance(event, LinkLost):
            self.links_lost[reason_key(event.loss.failure)] += 1
        elif isinstance(event, DlinkDone) and event.applied:
            self.dlink[reason_key(event.command)] += 1
        else:
            return
        self.changes += 1

    def to_dict(self) -> dict[str, Any]:
        """The counters as JSON wants them (reasons sorted; a reason never seen is absent)."""
        return {
            "matches": self.matches,
            "failures": dict(sorted(self.failures.items())),
            "attempts": dict(sorted(self.attempts.items())),
            "runs": dict(sorted(self.runs.items())),
            "links_lost": dict(sorted(self.links_lost.items())),
            "dlink": dict(sorted(self.dlink.items())),
        }
