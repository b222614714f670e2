"""The modem in the field (issue 15 items 1, 2 and 4) over the virtual powerline with real
sockets (root): an interface that appears after start, a modem restart noticed while idle,
many modems keyed with a concurrency limit. ``EvseService`` is what ``slac evse`` runs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from slac.app.service import EvseService, StateReport, service_session
from slac.app.station import EvseSpec
from slac.environment import Config
from slac.ev import SlacEvSession
from slac.messages import SetKeyReq, decode_frame
from slac.session import SlacEvseSession
from slac.testing.config import fast_config
from slac.testing.netns import can_create_namespaces, ip
from slac.testing.powerline import Medium, Modem, Powerline, Topology
from slac.utils import nid_from_nmk

_CAN, _WHY = can_create_namespaces()
pytestmark = pytest.mark.skipif(not _CAN, reason=_WHY)


@dataclass
class Bed:
    topo: Topology
    medium: Medium
    powerline: Powerline

    def port(self, evse: int = 0) -> int:
        return self.topo.ports.index(self.topo.evse_ports[evse])

    def modem(self, evse: int = 0) -> Modem:
        return self.medium.modems[self.port(evse)]

    async def ev_match(self, timeout: float = 20.0) -> Any:
        ev = SlacEvSession(self.topo.ev_interface, fast_config(), netns=self.topo.ev_netns[0].name)
        try:
            return await asyncio.wait_for(ev.match(), timeout)
        finally:
            await ev.close()


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=1.0, seed=11)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns) as powerline:
            yield Bed(topo, medium, powerline)


class Reports:
    """The service's status reports (the JSON lines / MQTT payloads), awaitable."""

    def __init__(self, service: EvseService) -> None:
        self.seen: list[StateReport] = []
        self._changed = asyncio.Event()
        service.listeners.append(self._add)

    def _add(self, report: StateReport) -> None:
        self.seen.append(report)
        self._changed.set()

    async def until(self, test: Any, timeout: float = 15.0) -> StateReport:
        async def wait() -> StateReport:
            while True:
                for report in self.seen:
                    if test(report):
                        return report
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)


# --- item 1: start without the interface ---------------------------------------------------------


async def test_an_interface_created_3_s_after_start_is_waited_for_then_a_car_matches(
    bed: Bed, caplog: pytest.LogCaptureFixture
) -> None:
    """The EVSE is reported unavailable (with the reason) while its interface does not exist,
    the CP state given meanwhile is kept, and once the interface appears the modem is keyed
    and the plugged-in car matches."""
    interface = bed.topo.evse_interfaces[0]
    hidden = f"h{interface}"[:15]
    ip("link", "set", interface, "down")
    ip("link", "set", interface, "name", hidden)
    service = EvseService([EvseSpec("DE*TST*E1", interface)], fast_config())
    reports = Reports(service)
    caplog.set_level("INFO")
    try:
        started = time.monotonic()
        await asyncio.wait_for(service.start(), 5)
        unavailable = await reports.until(lambda r: r.state == "unavailable")
        assert unavailable.reason is not None and "does not exist" in unavailable.reason
        assert "unavailable" in unavailable.to_json()
        await service.set_cp("B")  # the car is plugged in before the interface is there
        await asyncio.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
        assert service.sessions["DE*TST*E1"].state.value == "unavailable"
        assert bed.modem().keys_set == 0
        ip("link", "set", hidden, "name", interface)
        ip("link", "set", interface, "up")
        matched = await bed.ev_match()
        report = await reports.until(lambda r: r.state == "matched")
    finally:
        await service.close()
        if hidden in ip("link", "show", check=False):
            ip("link", "set", hidden, "name", interface)
    assert report.ev_mac == str(bed.topo.ev_ports[0].host_mac)
    assert matched.evse_mac == bed.topo.evse_ports[0].host_mac
    assert bed.modem().keys_set >= 1
    assert "waiting for the interface" in caplog.text
    assert "is there after" in caplog.text


async def test_with_interface_strict_a_missing_interface_is_an_error_at_start() -> None:
    service = EvseService([EvseSpec("DE*TST*E1", "nosuchif7")], fast_config(interface_strict=True))
    with pytest.raises(Exception, match="'nosuchif7' does not exist"):
        await service.start()
    await service.close()


async def test_a_missing_interface_does_not_stop_the_other_evses(bed: Bed) -> None:
    service = EvseService(
        [EvseSpec("DE*TST*E1", bed.topo.evse_interfaces[0]), EvseSpec("DE*TST*E2", "nosuchif8")],
        fast_config(),
    )
    reports = Reports(service)
    try:
        await service.start()
        await reports.until(lambda r: r.evse_id == "DE*TST*E2" and r.state == "unavailable")
        assert "DE*TST*E2" in service.waiting
        await service.set_cp("B", "DE*TST*E1")
        await bed.ev_match()
        await reports.until(lambda r: r.evse_id == "DE*TST*E1" and r.state == "matched")
    finally:
        await service.close()
    assert service.waiting == {}


# --- item 2: restarts noticed --------------------------------------------------------------------


async def restart_then_match(bed: Bed, config: Config) -> tuple[StateReport, bytes, bytes]:
    service = EvseService([EvseSpec("DE*TST*E1", bed.topo.evse_interfaces[0])], config)
    reports = Reports(service)
    try:
        await service.start()
        station = service.sessions["DE*TST*E1"].station
        assert station is not None
        first = bed.modem().nmk
        assert first is not None and bed.modem().keys_set == 1
        await asyncio.sleep(0.5)
        bed.powerline.restart_modem(bed.port())
        restarted = await reports.until(lambda r: r.modem_restarts == 1)
        for _ in range(50):  # the fresh key goes to the modem in the background
            if bed.modem().keys_set == 2 and not station.key_pending:
                break
            await asyncio.sleep(0.05)
        fresh = bed.modem().nmk
        await service.set_cp("B")
        matched = await bed.ev_match()
    finally:
        await service.close()
    assert bed.modem().restarts == 1
    assert matched.nid == nid_from_nmk(fresh)
    assert fresh is not None
    return restarted, first, fresh


async def test_a_restart_announced_while_idle_is_noticed_and_the_next_car_gets_a_fresh_key(
    bed: Bed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("WARNING")
    report, first, fresh = await restart_then_match(bed, fast_config())
    assert fresh != first and bed.modem().keys_set >= 2
    assert report.to_dict()["modem_restarts"] == 1
    assert "the modem restarted (the modem sent VS_HOST_ACTION.IND" in caplog.text
    assert bed.medium.counters.get("VS_HOST_ACTION.RSP") == 1  # answered: no resends


async def test_a_silent_restart_is_noticed_by_the_idle_heartbeat(bed: Bed) -> None:
    bed.modem().announce_restart = False  # firmware that does not send VS_HOST_ACTION.IND
    bed.modem().restart_time = 1.0
    _, first, fresh = await restart_then_match(bed, fast_config(modem_heartbeat_period=0.4))
    assert fresh != first
    assert bed.modem().requests.get("VS_SW_VER.REQ", 0) >= 3


# --- item 4: staggered keying --------------------------------------------------------------------


async def test_16_modems_are_keyed_4_at_a_time() -> None:
    """SET_KEY_CONCURRENCY=4: never more than 4 modems between CM_SET_KEY.REQ and the end of
    their SET_KEY_SETTLE_TIME; all 16 keyed."""
    settle = 0.4
    with Topology(evs=0, evses=16) as topo:
        medium = topo.medium(attenuation=20.0, jitter=1.0, seed=3)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns):
            sent: list[float] = []

            def factory(evse_id: str, interface: str, config: Config) -> SlacEvseSession:
                session = service_session(evse_id, interface, config)

                def observe(frame: bytes, now: float, out: bool) -> None:
                    if out and isinstance(decode_frame(frame).message, SetKeyReq):
                        sent.append(now)

                session.host.observers.append(observe)
                return session

            specs = [EvseSpec(f"DE*TST*E{i}", name) for i, name in enumerate(topo.evse_interfaces)]
            service = EvseService(
                specs,
                fast_config(set_key_concurrency=4, set_key_settle_time=settle),
                session_factory=factory,
            )
            loop = asyncio.get_running_loop()
            try:
                begun = loop.time()
                await asyncio.wait_for(service.start(), 30)
                took = loop.time() - begun
            finally:
                await service.close()
            keyed = [m for m in medium.modems if m.role == "evse" and m.keys_set >= 1]
    assert len(keyed) == 16
    starts = sorted(sent[:16])
    for i in range(4, 16):  # the 5th starts only once the 1st has settled, and so on
        assert starts[i] - starts[i - 4] >= settle * 0.95, starts
    assert took >= 4 * settle * 0.95


# --- item 3: resets ------------------------------------------------------------------------------


async def test_a_wedged_modem_is_reset_after_k_failed_plug_ins_and_the_next_car_matches(
    bed: Bed,
) -> None:
    """RESET_AFTER_FAILURES=2: a wedged modem (no CM_SET_KEY.CNF, forwards nothing) fails two
    plug-ins; at the second unplug it gets VS_RS_DEV.REQ, is waited for (VS_SW_VER), keyed,
    and the next car matches."""
    bed.modem().wedged = True
    service = EvseService(
        [EvseSpec("DE*TST*E1", bed.topo.evse_interfaces[0])],
        fast_config(reset_after_failures=2),
    )
    reports = Reports(service)
    try:
        await service.start()  # the key is not confirmed: logged, tried at the plug-in
        for n in (1, 2):
            await service.set_cp("B")
            await reports.until(lambda _, n=n: sum(r.state == "failed" for r in reports.seen) >= n)
            assert bed.modem().resets == 0
            await service.set_cp("A")
        report = await reports.until(lambda r: r.modem_resets == 1)
        for _ in range(100):
            if bed.modem().keys_set >= 1:
                break
            await asyncio.sleep(0.05)
        await service.set_cp("B")
        matched = await bed.ev_match()
        key = bed.modem().nmk
        await reports.until(lambda r: r.state == "matched")
    finally:
        await service.close()
    assert bed.modem().resets == 1 and not bed.modem().wedged
    assert matched.nid == nid_from_nmk(key)
    assert report.to_dict()["modem_resets"] == 1


async def test_a_silent_modem_gets_the_hardware_reset_hook_then_is_keyed(bed: Bed) -> None:
    """A modem that answers nothing, not even VS_RS_DEV.REQ: the controller's
    reset_modem_hardware runs (here: the virtual powerline's power cycle), the modem is
    waited for and keyed, and a car matches."""

    calls: list[str] = []

    class Station(EvseService):
        async def reset_modem_hardware(self, evse_id: str, reason: str) -> bool:
            calls.append(reason)
            bed.powerline.power_cycle_modem(bed.port())
            return True

    service = Station(
        [EvseSpec("DE*TST*E1", bed.topo.evse_interfaces[0])], fast_config(reset_on_unplug=True)
    )
    reports = Reports(service)
    try:
        await service.start()
        bed.modem().silent = True  # wedged for good: only the reset line helps
        await service.set_cp("B")
        await asyncio.sleep(0.2)
        await service.set_cp("A")  # RESET_ON_UNPLUG: VS_RS_DEV.REQ, unanswered
        await reports.until(lambda r: r.hardware_resets == 1)
        for _ in range(100):
            if bed.modem().keys_set >= 2:
                break
            await asyncio.sleep(0.05)
        await service.set_cp("B")
        matched = await bed.ev_match()
        key = bed.modem().nmk
    finally:
        await service.close()
    assert calls and "did not answer VS_RS_DEV.REQ" in calls[0]
    assert bed.modem().restarts >= 1 and bed.modem().keys_set >= 2
    assert matched.nid == nid_from_nmk(key)


async def test_the_station_files_reset_command_is_the_hardware_reset(
    bed: Bed, tmp_path: Any
) -> None:
    done = tmp_path / "reset-done"
    service = EvseService(
        [EvseSpec("DE*TST*E1", bed.topo.evse_interfaces[0], reset_command=f"touch {done}")],
        fast_config(),
    )
    try:
        await service.start()
        assert await service.reset_modem_hardware("DE*TST*E1", "test")
    finally:
        await service.close()
    assert done.exists()
