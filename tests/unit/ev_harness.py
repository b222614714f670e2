"""A hand-moved clock around :class:`slac.fsm.ev.EvMatcher`; every frame goes through the
real codec (``to_frame`` then ``decode_frame``), as it would on the wire."""

from __future__ import annotations

from typing import Optional

from slac.fsm.ev import EvConfig, EvMatcher
from slac.fsm.events import Outgoing
from slac.messages import (
    AttenCharInd,
    Message,
    SlacMatchCnf,
    SlacParmCnf,
    decode_frame,
)
from slac.utils import MacAddress, nid_from_nmk

EV = MacAddress("02:00:00:00:0e:01")
EVSES = [MacAddress(f"02:00:00:00:05:0{i}") for i in range(3)]
BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")
NMK = bytes(range(16))
NID = nid_from_nmk(NMK)


class EvHarness:
    def __init__(self, config: Optional[EvConfig] = None) -> None:
        self.ids = iter(bytes([i]) * 8 for i in range(1, 250))
        self.m = EvMatcher(EV, config, run_id_source=lambda: next(self.ids))
        self.now = 0.0
        self.sent: list[tuple[float, Outgoing]] = []
        self.events: list[object] = []
        self.m.start(self.now)
        self._collect()

    def _collect(self) -> None:
        self.sent += [(self.now, o) for o in self.m.frames_to_send()]
        self.events += self.m.events()

    def feed(self, message: Message, src: MacAddress, dst: MacAddress = EV) -> None:
        self.feed_raw(message.to_frame(dst, src))

    def feed_raw(self, data: bytes) -> None:
        self.m.receive_frame(decode_frame(data), self.now)
        self._collect()

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)

    def advance_to(self, target: float) -> None:
        while self.m.deadline is not None and self.m.deadline <= target + 1e-9:
            self.now = max(self.now, self.m.deadline)
            self.m.handle_timer(self.now)
            self._collect()
        self.now = target

    def of(self, kind: type) -> list[tuple[float, Outgoing]]:
        return [(t, o) for t, o in self.sent if isinstance(o.message, kind)]

    def times(self, kind: type) -> list[float]:
        return [t for t, _ in self.of(kind)]

    def events_of(self, kind: type) -> list[object]:
        return [e for e in self.events if isinstance(e, kind)]

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
