"""An EV and its EVSE(s) on one hand-moved clock: aioquic's ``client_and_server()`` for SLAC.

:class:`Pairing` joins whole hosts without I/O, each one of this library's own machines (the
EV's :class:`~slac.fsm.station.EvStation`, each EVSE's
:class:`~slac.fsm.station.EvseStation`, with their matchers and modem machines inside),
through the virtual powerline's :class:`~slac.testing.powerline.medium.Medium`: every
frame is really encoded, crosses the medium (attenuation per pair of ports, one
CM_ATTEN_PROFILE.IND per sound from each EVSE modem that hears it, CM_SET_KEY.CNF and
VS_PL_LINK_STATUS.CNF from the emulated modems, loss and delay as configured in
``medium.faults``) and is really decoded by its receiver, which drops another station's
unicast as :class:`~slac.host.ModemHost` does. One clock, :attr:`Pairing.now`, jumps from
the next delivery or deadline to the next.

    pair = Pairing(evses=2, attenuation=(20.0, 45.0))
    pair.plug_in()                       # keys set, CP B on EVSE 0, the EV starts SLAC
    pair.run(10.0)
    assert pair.evse().machine.state is SessionState.MATCHED

Each host is a :class:`~slac.testing.clock.MachineClock`, so everything it sent and
reported is recorded, with the time.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from typing import Optional, Union

from slac.environment import Config
from slac.fsm.ev import EvConfig
from slac.fsm.station import CpAction, EvseStation, EvStation
from slac.testing.clock import MachineClock
from slac.testing.config import fast_config
from slac.testing.powerline.medium import EV, EVSE, Medium
from slac.utils import MacAddress

EV_MAC = MacAddress("02:00:00:00:0e:01")

Host = Union[MachineClock[EvseStation], MachineClock[EvStation]]


def evse_mac(index: int) -> MacAddress:
    return MacAddress(bytes([0x02, 0, 0, 0, 0xEE, index + 1]))


class Pairing:
    """One EV and ``evses`` EVSEs on one clock, joined by a :class:`Medium`.

    ``attenuation``: dB from the EV to each EVSE (one figure: EVSE 0 only, the others do
    not hear the EV); EVSEs do not hear each other. ``seed`` makes the medium's jitter and
    every key and RunID repeatable.
    """

    def __init__(
        self,
        config: Optional[Config] = None,
        ev_config: Optional[EvConfig] = None,
        *,
        evses: int = 1,
        attenuation: Union[float, Sequence[Optional[float]]] = 20.0,
        seed: int = 0,
    ) -> None:
        self.config = config or fast_config()
        self.rng = random.Random(seed)
        self.medium = Medium(default_attenuation=None, jitter=1.0, seed=seed)
        self.now = 0.0
        self.evse_ports = [self.medium.add_port(f"evse{i}", EVSE) for i in range(evses)]
        self.ev_port = self.medium.add_port("ev", EV)
        figures: list[Optional[float]] = (
            [float(attenuation)] if isinstance(attenuation, (int, float)) else list(attenuation)
        )
        for port, db in zip(self.evse_ports, figures):
            self.medium.set_attenuation(self.ev_port, port, db)
        self.evses: list[MachineClock[EvseStation]] = [
            MachineClock(
                EvseStation(
                    evse_mac(i),
                    self.config,
                    interface=f"evse{i}",
                    token_bytes=self.rng.randbytes,
                ),
                evse_mac(i),
            )
            for i in range(evses)
        ]
        self.ev: MachineClock[EvStation] = MachineClock(
            EvStation(
                EV_MAC,
                self.config,
                ev_config,
                interface="ev",
                run_id_source=lambda: self.rng.randbytes(8),
                token_bytes=self.rng.randbytes,
            ),
            EV_MAC,
        )
        self._ports: list[tuple[Host, int]] = [
            *zip(self.evses, self.evse_ports),
            (self.ev, self.ev_port),
        ]
        #: how many of each host's frames went onto the medium
        self._sent = [0] * len(self._ports)
        #: (time, order, host index, frame bytes) on their way
        self._in_flight: list[tuple[float, int, int, bytes]] = []
        self._order = 0

    def evse(self, index: int = 0) -> MachineClock[EvseStation]:
        return self.evses[index]

    # --- what a station's application does --------------------------------------------------

    def start(self) -> None:
        """Power on: every EVSE gives its modem a key (as ``slac evse`` at start-up)."""
        for host in self.evses:
            host.call(host.machine.set_key)
        self._transmit()

    def cp(self, state: str, index: int = 0) -> CpAction:
        """A control-pilot state at EVSE ``index``; START begins matching at once (as the
        matching task does)."""
        host = self.evses[index]
        action = host.call(lambda now: host.machine.cp_state_changed(state, now))
        if action is CpAction.START:
            host.call(host.machine.begin_matching)
        self._transmit()
        return action

    def plug_in(self, index: int = 0, *, run: float = 1.0) -> None:
        """Keys set, CP B at EVSE ``index``, then the EV starts SLAC (leave, match, join)."""
        self.start()
        self.run(run)
        self.cp("B", index)
        self.run(run)
        self.ev.call(self.ev.machine.match)
        self._transmit()

    # --- the clock -----------------------------------------------------------------------------

    def run(self, seconds: float) -> None:
        """Move the clock by ``seconds``: deliver every frame and fire every deadline due."""
        target = self.now + seconds
        while True:
            due = self._next_due()
            if due is None or due > target:
                break
            self._step(due)
        self._set_now(target)

    def _next_due(self) -> Optional[float]:
        times = [host.machine.deadline for host, _ in self._ports]
        if self._in_flight:
            times.append(self._in_flight[0][0])
        known = [t for t in times if t is not None]
        return min(known) if known else None

    def _step(self, now: float) -> None:
        self._set_now(max(now, self.now))
        timers = [
            host
            for host, _ in self._ports
            if host.machine.deadline is not None and host.machine.deadline <= self.now
        ]
        # a deadline that came by now ends first, as ModemHost fires it before a frame
        for host in timers:
            host.advance_to(self.now)
        if not timers and self._in_flight and self._in_flight[0][0] <= self.now:
            _, _, index, data = heapq.heappop(self._in_flight)
            host = self._ports[index][0]
            if data[0:6] == host.mac or data[0] & 0x01:  # as ModemHost filters
                host.feed_bytes(data)
        self._transmit()

    def _set_now(self, now: float) -> None:
        self.now = now
        for host, _ in self._ports:
            host.now = now

    def _transmit(self) -> None:
        """Put every frame the hosts sent since the last call onto the medium."""
        for index, (host, port) in enumerate(self._ports):
            for _, item in host.sent_at[self._sent[index] :]:
                data = item.message.to_frame(item.dst, host.mac)
                for delivery in self.medium.from_host(port, data):
                    target = next(i for i, (_, p) in enumerate(self._ports) if p == delivery.port)
                    self._order += 1
                    heapq.heappush(
                        self._in_flight,
                        (self.now + delivery.delay, self._order, target, delivery.frame),
                    )
            self._sent[index] = len(host.sent_at)
