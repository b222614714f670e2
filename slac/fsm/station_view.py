"""What the EVSEs of one station heard of each EV, shared between their state machines.

A car is heard by its own EVSE and, through crosstalk, by neighbouring ones; its own cable
is heard best. ISO 15118-3 lets the car decide from the CM_ATTEN_CHAR.IND it receives, and
a car that takes the first indication under its limit (Qualcomm's ``pev``, EVerest's EV,
pyPLC) pairs with a neighbour's EVSE when its own EVSE's indication was lost. The EVSEs of
one station, run in one process, know more than each one alone: when another EVSE of the
station heard the car clearly better (``match_hold_margin``) and is not matched with a
different car, this EVSE leaves the car's CM_SLAC_MATCH.REQ unanswered. The car's attempt
fails and it starts over (C_conn_max_match, TT_matching_repetition), and on the next attempt
its own EVSE's indication comes first again.

Pure data, no I/O and no clock of its own: each EVSE's :class:`~slac.fsm.evse.EvseMatcher`
reports with the time it was given. One view per station (one ``slac evse`` process, one
``EvseService``); EVSEs without a view, or alone in theirs, behave as ISO 15118-3 describes
and ISO 15118-5 tests (a single EVSE never has a better neighbour).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Optional

from slac.enums import TT_MATCHING_REPETITION

#: EVs remembered per EVSE (a car park's worth of neighbours; the oldest go first)
MAX_EVS_PER_EVSE = 64


@dataclass(frozen=True)
class Heard:
    """One EVSE's latest measurement of one EV."""

    evse: bytes
    db: float
    at: float


@dataclass(frozen=True)
class BetterElsewhere:
    """Another EVSE of the station heard the EV this much better."""

    evse: bytes
    db: float
    margin_db: float


class StationView:
    """Measurements of the EVSEs of one station, by EVSE (its MAC) and EV MAC.

    A measurement counts for ``memory`` seconds (the EV's TT_matching_repetition: its
    attempts of one plug-in), and only while its EVSE is matching: an EVSE forgets what it
    heard when it stops or starts again (CP A, a new plug-in).
    """

    def __init__(self, memory: float = TT_MATCHING_REPETITION) -> None:
        self.memory = memory
        self._heard: dict[bytes, collections.OrderedDict[bytes, Heard]] = {}
        #: the EV an EVSE is matched with (it cannot be another car's own EVSE then)
        self._matched: dict[bytes, bytes] = {}

    def heard(self, evse: bytes, ev_mac: bytes, db: float, now: float) -> None:
        """``evse`` measured ``ev_mac`` at a mean ``db`` (a sounding that ended at ``now``)."""
        evs = self._heard.setdefault(bytes(evse), collections.OrderedDict())
        key = bytes(ev_mac)
        evs.pop(key, None)
        evs[key] = Heard(bytes(evse), db, now)
        while len(evs) > MAX_EVS_PER_EVSE:
            evs.popitem(last=False)

    def matched(self, evse: bytes, ev_mac: bytes) -> None:
        self._matched[bytes(evse)] = bytes(ev_mac)

    def forget(self, evse: bytes) -> None:
        """``evse`` stopped matching (or starts a new plug-in): its measurements no longer
        count."""
        self._heard.pop(bytes(evse), None)
        self._matched.pop(bytes(evse), None)

    def better_elsewhere(
        self, evse: bytes, ev_mac: bytes, db: float, margin: float, now: float
    ) -> Optional[BetterElsewhere]:
        """The EVSE of this station, other than ``evse``, that heard ``ev_mac`` at least
        ``margin`` dB better than ``db`` within ``memory`` and is not matched with another EV
        (the best such one); None when there is none or ``margin`` is 0."""
        if margin <= 0:
            return None
        me, ev = bytes(evse), bytes(ev_mac)
        best: Optional[Heard] = None
        for other, evs in self._heard.items():
            if other == me:
                continue
            heard = evs.get(ev)
            if heard is None or now - heard.at > self.memory:
                continue
            partner = self._matched.get(other)
            if partner is not None and partner != ev:
                continue
            if db - heard.db >= margin and (best is None or heard.db < best.db):
                best = heard
        if best is None:
            return None
        return BetterElsewhere(best.evse, best.db, db - best.db)
