"""A hand-moved clock around :class:`slac.fsm.ev.EvMatcher`; every frame goes through the
real codec (``to_frame`` then ``decode_frame``), as it would on the wire: the shared
:class:`slac.testing.clock.MachineClock`."""

from __future__ import annotations

from typing import Optional

from slac.fsm.ev import EvConfig, EvMatcher
from slac.fsm.events import Outgoing
from slac.messages import (
    AttenCharInd,
    SlacMatchCnf,
    SlacParmCnf,
)
from slac.testing.clock import MachineClock
from slac.utils import MacAddress, nid_from_nmk

EV = MacAddress("02:00:00:00:0e:01")
EVSES = [MacAddress(f"02:00:00:00:05:0{i}") for i in range(3)]
BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")
NMK = bytes(range(16))
NID = nid_from_nmk(NMK)


class EvHarness(MachineClock[EvMatcher]):
    slack = 1e-9

    def __init__(self, config: Optional[EvConfig] = None) -> None:
        self.ids = iter(bytes([i]) * 8 for i in range(1, 250))
        super().__init__(EvMatcher(EV, config, run_id_source=lambda: next(self.ids)), EV)
        self.m = self.machine
        self.m.start(self.now)
        self.collect()

    @property
    def sent(self) -> list[tuple[float, Outgoing]]:
        return self.sent_at

    def feed_raw(self, data: bytes) -> None:
        self.feed_bytes(data)

    def of(self, kind: type) -> list[tuple[float, Outgoing]]:
        return [(t, o) for t, o in self.sent if isinstance(o.message, kind)]

    def times(self, kind: type) -> list[float]:
        return [t for t, _ in self.of(kind)]

    def parm_cnf(self, evse: MacAddress) -> None:
        self.feed(SlacParmCnf(forwarding_sta=EV, run_id=self.m.run_id), evse)

    def atten_char(self, evse: MacAddress, atten: int) -> None:
        self.feed(
            AttenCharInd(source_address=EV, run_id=self.m.run_id, num_sounds=10, aag=(atten,) * 58),
            evse,
        )

    def match_cnf(self, evse: MacAddress, nmk: bytes = NMK, nid: Optional[bytes] = None) -> None:
        self.feed(
            SlacMatchCnf(
                pev_mac=EV,
                evse_mac=evse,
                run_id=self.m.run_id,
                nid=nid_from_nmk(nmk) if nid is None else nid,
                nmk=nmk,
            ),
            evse,
        )

    def to_results(self, *evses: MacAddress) -> None:
        """CNFs from ``evses`` to the first REQ, then through sounding (all sounds sent)."""
        for evse in evses:
            self.parm_cnf(evse)
        self.advance(0.2 + 0.02 * 12 + 1e-6)  # the REQ's window, then 3 + 10 frames 20 ms apart
