"""A test site: test hosts around a virtual powerline, with our EVSEs on every EVSE port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Optional

from slac import MatchResult, SlacEvseSession, SlacSessionController
from slac.ev import SlacEvSession
from slac.testing import fast_config
from slac.testing.powerline import Medium, Powerline, Topology


class Recorder(SlacSessionController):
    def __init__(self) -> None:
        self.matched: dict[str, MatchResult] = {}
        self.link_lost: list[str] = []
        self.hlc = asyncio.Event()

    async def enable_hlc_charging(self, evse_id: str) -> None:
        self.hlc.set()

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        self.matched[evse_id] = result

    async def notify_link_lost(self, evse_id: str) -> None:
        self.link_lost.append(evse_id)


class Site:
    """A topology, its powerline, and our EVSEs on every EVSE port."""

    def __init__(self, topo: Topology, medium: Medium, powerline: Powerline) -> None:
        self.topo = topo
        self.medium = medium
        self.powerline = powerline
        self.controller = Recorder()
        self.evses: list[SlacEvseSession] = []

    async def start_evses(self) -> None:
        for j, iface in enumerate(self.topo.evse_interfaces):
            # link supervision polls the virtual modems every 0.2 s
            config = fast_config(link_check_period=0.2)
            session = SlacEvseSession(f"DE*TST*E{j:04d}", iface, config)
            self.evses.append(session)
        await asyncio.gather(*(s.evse_set_key() for s in self.evses))
        for session in self.evses:
            await self.controller.process_cp_state(session, "B")
        await asyncio.sleep(0.05)

    def our_ev(self, i: int) -> SlacEvSession:
        return SlacEvSession(
            self.topo.ev_interface, fast_config(), netns=self.topo.ev_netns[i].name
        )

    async def close(self) -> None:
        for session in self.evses:
            await session.close()


async def make_site(
    evs: int, evses: int, crosstalk: Optional[float] = None, delay_jitter: float = 0.0
) -> AsyncIterator[Site]:
    with Topology(evs=evs, evses=evses) as topo:
        medium = topo.medium(attenuation=20.0, crosstalk=crosstalk, seed=1)
        medium.faults.delay_jitter = delay_jitter
        powerline = await Powerline(medium, topo.modem_interfaces(), topo.plc_netns).start()
        site = Site(topo, medium, powerline)
        try:
            yield site
        finally:
            await site.close()
            powerline.close()
