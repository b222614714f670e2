"""EVerest's slac_API (``slac evse --everest``) against a real Mosquitto broker on a free
loopback port, with a client that plays EvseManager behind EVerest's slac_API module exactly
as the API file (everest-core docs/source/reference/EVerest_API/slac_API.yaml) and the module
(modules/API/slac_API) say: commands on ``everest_api/1/slac/<module_id>/e2m/<name>`` with
the payload ``{}`` (reset: a JSON boolean, heartbeat: a JSON integer), QoS 0, not retained;
our answers on ``.../m2e/<name>`` as JSON values. The EVSE runs on the virtual powerline with
our EV. Needs root."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from slac.app.everest import EverestSlacApi, module_ids, parse_everest_url
from slac.app.service import EvseService
from slac.app.station import EvseSpec
from slac.ev import EvMatchingFailedError, SlacEvSession
from slac.testing import fast_config
from slac.testing.powerline import Powerline, Topology

from ..conftest import needs_root
from .operator import EvseCommand, station_file
from .test_mqtt import MOSQUITTO, Broker, needs_mosquitto

aiomqtt = pytest.importorskip("aiomqtt", reason="aiomqtt is installed with the mqtt extra")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (Debian package mosquitto; .ci/run installs it)")
    running = Broker(tmp_path)
    running.start()
    try:
        yield running
    finally:
        running.stop()


PREFIX = "everest_api/1/slac"
MODULE = "slac_1"  # as EVerest's config file names the slac_API module


@dataclass
class Seen:
    leaf: str
    value: Any
    raw: bytes
    retained: bool
    at: float


class EvseManager:
    """Plays EvseManager behind slac_API on one module: publishes the e2m commands as slac_API
    does, records every m2e message (decoded as slac_API decodes it: one JSON value)."""

    def __init__(
        self, port: int, module: str = MODULE, prefix: str = PREFIX, heartbeat: float = 0.2
    ) -> None:
        self.port = port
        self.base = f"{prefix}/{module}"
        self.seen: list[Seen] = []
        self.connections = 0
        self._changed = asyncio.Event()
        self._client: Optional[Any] = None  # aiomqtt.Client
        self._ready = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())
        self._heartbeat: Optional[asyncio.Task[None]] = None
        if heartbeat > 0:  # slac_API's cfg_heartbeat_interval_ms (on by default: 1000)
            self.start_heartbeat(interval=heartbeat)

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, timeout=2) as client:
                    self.connections += 1
                    await client.subscribe(f"{self.base}/m2e/#", qos=0)
                    self._client = client
                    self._ready.set()
                    async for message in client.messages:
                        raw = message.payload
                        assert isinstance(raw, bytes)
                        leaf = str(message.topic).rsplit("/", 1)[1]
                        # slac_API: json::parse, then the type the variable has
                        value = json.loads(raw)
                        self.seen.append(
                            Seen(leaf, value, raw, bool(message.retain), time.monotonic())
                        )
                        self._changed.set()
            except aiomqtt.MqttError:
                self._client = None
                self._ready.clear()
                await asyncio.sleep(0.05)

    async def command(self, name: str, payload: str = "{}", retain: bool = False) -> float:
        """Publish e2m/<name> as slac_API does (QoS 0, not retained); when it went."""
        await asyncio.wait_for(self._ready.wait(), 10)
        assert self._client is not None
        await self._client.publish(
            f"{self.base}/e2m/{name}", payload.encode(), qos=0, retain=retain
        )
        return time.monotonic()

    def start_heartbeat(self, first: int = 0, interval: float = 0.1) -> None:
        async def beat() -> None:
            n = first
            while True:
                with contextlib.suppress(aiomqtt.MqttError, AssertionError, asyncio.TimeoutError):
                    await self.command("heartbeat", str(n))
                n += 1
                await asyncio.sleep(interval)

        self.stop_heartbeat()
        self._heartbeat = asyncio.get_running_loop().create_task(beat())

    def stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None

    def values(self, leaf: str, since: int = 0) -> list[Any]:
        return [s.value for s in self.seen[since:] if s.leaf == leaf]

    def events(self, since: int = 0) -> list[tuple[str, Any]]:
        """The m2e messages but communication_check, in order."""
        return [(s.leaf, s.value) for s in self.seen[since:] if s.leaf != "communication_check"]

    async def wait(self, leaf: str, value: Any, since: int = 0, timeout: float = 15.0) -> Seen:
        async def wait() -> Seen:
            while True:
                for seen in self.seen[since:]:
                    if seen.leaf == leaf and seen.value == value:
                        return seen
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"no {leaf} {value!r} within {timeout} s: {self.events(since)}"
            ) from None

    async def close(self) -> None:
        self.stop_heartbeat()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@dataclass
class Station:
    topo: Topology
    service: EvseService
    api: EverestSlacApi
    manager: EvseManager
    evse_id: str

    def our_ev(self) -> SlacEvSession:
        return SlacEvSession(
            self.topo.ev_interface, fast_config(), netns=self.topo.ev_netns[0].name
        )

    async def match(self, timeout: float = 15.0) -> None:
        ev = self.our_ev()
        try:
            await asyncio.wait_for(ev.match(), timeout)
        finally:
            await ev.close()

    @property
    def ev_mac(self) -> str:
        return str(self.topo.ev_ports[0].host_mac).upper()


@contextlib.asynccontextmanager
async def everest_station(
    port: int,
    evses: int = 1,
    config: Optional[dict[str, Any]] = None,
    heartbeat: float = 0.2,
    **api_options: Any,
) -> AsyncIterator[Station]:
    """One EV (on the first EVSE's line) and ``evses`` EVSEs on the virtual powerline; our
    EverestSlacApi for them as modules slac_1, slac_2, ...; EvseManager's client on the
    broker for slac_1."""
    with Topology(evs=1, evses=evses) as topo:
        medium = topo.medium(attenuation=20.0, jitter=0.0, seed=5)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns):
            evse_id = "DE*TST*E0000"
            specs = [
                EvseSpec(f"DE*TST*E{j:04d}", iface, everest_module_id=f"slac_{j + 1}")
                for j, iface in enumerate(topo.evse_interfaces)
            ]
            settings = fast_config(
                **{
                    "link_check_period": 0.2,
                    "mqtt_reconnect_min": 0.2,
                    "mqtt_reconnect_max": 0.5,
                    **(config or {}),
                }
            )
            service = EvseService(specs, settings)
            api = EverestSlacApi(
                service,
                parse_everest_url(f"mqtt://127.0.0.1:{port}"),
                module_ids(specs),
                settings,
                **api_options,
            )
            await service.start()
            task = asyncio.get_running_loop().create_task(api.run())
            manager = EvseManager(port, heartbeat=heartbeat)
            try:
                await asyncio.wait_for(api.connected.wait(), 10)
                await manager.wait("state", "UNMATCHED", timeout=10)
                yield Station(topo, service, api, manager, evse_id)
            finally:
                await manager.close()
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await service.close()


@needs_root
@needs_mosquitto
async def test_enter_bcd_matches_our_ev_and_leave_bcd_unmatches(broker: Broker) -> None:
    # RESET_KEY_ON_UNPLUG=false: leave_bcd keeps the key until the next plug-in, reset not
    async with everest_station(broker.port, config={"reset_key_on_unplug": False}) as site:
        manager, session = site.manager, site.service.sessions[site.evse_id]
        since = len(manager.seen)
        sent = await manager.command("enter_bcd")  # slac_API: the payload "{}"
        await site.match()  # the EV sees 5 % PWM and starts SLAC
        ready = await manager.wait("dlink_ready", True, since)
        # EvseSlac's order: MATCHING, the EV's MAC, MATCHED, then dlink_ready true
        assert manager.events(since) == [
            ("state", "MATCHING"),
            ("ev_mac_address", site.ev_mac),
            ("state", "MATCHED"),
            ("dlink_ready", True),
        ]
        # the encodings slac_API decodes: JSON values, not objects; never retained
        raw = {s.leaf: s.raw for s in manager.seen[since:]}
        assert raw["state"] == b'"MATCHED"' and raw["dlink_ready"] == b"true"
        assert raw["ev_mac_address"] == f'"{site.ev_mac}"'.encode()
        assert not any(s.retained for s in manager.seen)
        print(f"enter_bcd to dlink_ready true: {(ready.at - sent) * 1000:.0f} ms")

        since = len(manager.seen)
        await manager.command("leave_bcd")
        await manager.wait("state", "UNMATCHED", since)
        assert manager.events(since) == [("dlink_ready", False), ("state", "UNMATCHED")]
        assert session.key_given_out  # as RESET_KEY_ON_UNPLUG says

        # EvseManager's reset(false) (at unplug when SLAC was not unmatched, and in its error
        # paths): unmatched; the next enter_bcd matches again
        await manager.command("enter_bcd")
        await site.match()
        await manager.wait("dlink_ready", True, since)
        since = len(manager.seen)
        await manager.command("reset", "false")
        await manager.wait("state", "UNMATCHED", since)
        assert manager.events(since) == [("dlink_ready", False), ("state", "UNMATCHED")]
        for _ in range(100):  # the modem leaves the EV's network: a fresh key
            if not session.key_given_out:
                break
            await asyncio.sleep(0.02)
        assert not session.key_given_out
        since = len(manager.seen)
        await manager.command("enter_bcd")
        await site.match()
        await manager.wait("dlink_ready", True, since)
        # slac_API raises CommunicationFault without communication_check within 5 s
        for _ in range(50):
            checks = [s for s in manager.seen if s.leaf == "communication_check"]
            if len(checks) >= 3:
                break
            await asyncio.sleep(0.1)
        assert len(checks) >= 3 and all(s.raw == b"true" for s in checks)
        gaps = [b.at - a.at for a, b in zip(checks, checks[1:])]
        assert gaps and max(gaps) < 2.5, gaps


@needs_root
@needs_mosquitto
async def test_dlink_error_matches_again_terminate_waits_for_a_cp_cycle(
    broker: Broker,
) -> None:
    async with everest_station(broker.port) as site:
        manager, session = site.manager, site.service.sessions[site.evse_id]
        await manager.command("enter_bcd")
        await site.match()
        await manager.wait("dlink_ready", True)
        first_nid = session.nid

        # D-LINK_PAUSE: stays matched, link supervision stops
        since = len(manager.seen)
        assert session.modem is not None and session.modem.supervising
        await manager.command("dlink_pause")
        for _ in range(100):
            if not session.modem.supervising:
                break
            await asyncio.sleep(0.02)
        assert not session.modem.supervising
        await asyncio.sleep(0.5)
        assert manager.events(since) == [] and session.state.value == "matched"

        # D-LINK_ERROR: leave the logical network (a fresh key), match again, no CP cycle
        since = len(manager.seen)
        await manager.command("dlink_error")
        await manager.wait("dlink_ready", False, since)
        await site.match()
        await manager.wait("dlink_ready", True, since)
        assert session.nid != first_nid
        assert manager.events(since) == [
            ("dlink_ready", False),
            ("state", "UNMATCHED"),
            ("state", "MATCHING"),
            ("ev_mac_address", site.ev_mac),
            ("state", "MATCHED"),
            ("dlink_ready", True),
        ]

        # D-LINK_TERMINATE: unmatched, and no new match until leave_bcd, enter_bcd
        since = len(manager.seen)
        await manager.command("dlink_terminate")
        await manager.wait("state", "UNMATCHED", since)
        assert manager.events(since) == [("dlink_ready", False), ("state", "UNMATCHED")]
        await manager.command("enter_bcd")  # no CP cycle: still no match
        with pytest.raises((asyncio.TimeoutError, EvMatchingFailedError)):
            await site.match(timeout=3.0)
        assert manager.events(since)[2:] == []
        since = len(manager.seen)
        await manager.command("leave_bcd")
        await manager.command("enter_bcd")
        await site.match()
        await manager.wait("dlink_ready", True, since)
        assert manager.values("state", since)[-1] == "MATCHED"


@needs_root
@needs_mosquitto
async def test_malformed_payloads_are_logged_and_ignored_heartbeat_is_watched(
    broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="slac.app.everest")
    # a retained command, there before we subscribe: the broker hands it over as retained
    async with aiomqtt.Client("127.0.0.1", broker.port) as other:
        await other.publish(f"{PREFIX}/{MODULE}/e2m/enter_bcd", b"{}", qos=1, retain=True)
    async with everest_station(broker.port, heartbeat_timeout=0.6) as site:
        manager, session = site.manager, site.service.sessions[site.evse_id]
        since = len(manager.seen)
        await manager.command("enter_bcd", "{")  # not JSON
        await manager.command("reset", '"yes"')  # not a boolean
        await manager.command("heartbeat", "-1")  # not an unsigned integer
        await manager.command("heartbeat", "1.5")
        await manager.command("fly")  # not in the API
        await asyncio.sleep(0.5)
        assert session.matching_task is None and session.cp_state is None
        log = caplog.text
        for why in (
            "payload is not JSON",
            "reset needs a JSON boolean",
            "heartbeat needs a JSON unsigned integer, not -1",
            "heartbeat needs a JSON unsigned integer, not 1.5",
            "no command 'fly'",
            "a retained command is stale",
        ):
            assert why in log, why
        assert site.api.modules[MODULE].ignored["enter_bcd"] >= 2
        # ... and the next good command works
        await manager.command("enter_bcd", "")  # an empty payload is fine too
        for _ in range(100):
            if session.matching_task is not None:
                break
            await asyncio.sleep(0.02)
        assert session.matching_task is not None and not session.matching_task.done()
        assert manager.events(since) == []  # MATCHING comes with the EV's first request

        # heartbeat: followed, lost, back; an id from 0 again (EVerest restarted) gets the
        # state again
        manager.start_heartbeat(first=100, interval=0.1)
        await asyncio.sleep(0.5)
        assert site.api.modules[MODULE].heartbeat_id is not None
        manager.stop_heartbeat()
        await asyncio.sleep(1.5)
        assert "no heartbeat for" in caplog.text
        since = len(manager.seen)
        manager.start_heartbeat(first=200, interval=0.1)  # back: it may have missed changes
        await manager.wait("state", "UNMATCHED", since, timeout=5)
        assert "heartbeat again (id 200)" in caplog.text
        since = len(manager.seen)
        manager.start_heartbeat(first=0, interval=0.1)
        await manager.wait("state", "UNMATCHED", since, timeout=5)
        assert "heartbeat id 0 after 2" in caplog.text and "EVerest restarted" in caplog.text
        manager.stop_heartbeat()


@needs_root
@needs_mosquitto
async def test_failed_matching_requests_the_error_routine_then_enter_bcd_matches(
    broker: Broker,
) -> None:
    # no CM_SLAC_PARM.REQ within TT_EVSE_SLAC_init (1 s here): matching failed
    async with everest_station(broker.port, config={"slac_init_timeout": 1.0}) as site:
        manager = site.manager
        since = len(manager.seen)
        await manager.command("enter_bcd")
        await manager.wait("request_error_routine", None, since, timeout=10)
        assert [s.raw for s in manager.seen[since:] if s.leaf == "request_error_routine"] == [
            b"null"
        ]
        assert manager.events(since) == [("request_error_routine", None)]  # never MATCHING
        # EvseManager's error routine (a CP E/F step) ends with enter_bcd: matching again
        since = len(manager.seen)
        await manager.command("enter_bcd")
        await site.match()
        await manager.wait("dlink_ready", True, since)
        assert manager.values("state", since) == ["MATCHING", "MATCHED"]


@needs_root
@needs_mosquitto
async def test_one_slac_api_module_per_evse_of_the_station_file(broker: Broker) -> None:
    async with everest_station(broker.port, evses=2) as site:
        first, second = site.manager, EvseManager(broker.port, module="slac_2")
        try:
            await second.wait("state", "UNMATCHED")
            since = len(second.seen)
            await second.command("enter_bcd")  # no EV on the second EVSE's line
            await first.command("enter_bcd")
            await site.match()
            await first.wait("dlink_ready", True)
            await second.command("dlink_terminate")  # the second's, not the first's
            await asyncio.sleep(0.5)
            assert second.events(since) == []  # it heard no EV: still UNMATCHED
            assert site.service.sessions["DE*TST*E0001"].matching_task is None or (
                site.service.sessions["DE*TST*E0001"].matching_task.done()
            )
            assert site.service.sessions[site.evse_id].state.value == "matched"
            assert first.values("dlink_ready")[-1] is True
            assert {s.leaf for s in second.seen} <= {"state", "communication_check"}
        finally:
            await second.close()


@needs_root
@needs_mosquitto
async def test_without_everest_heartbeat_the_state_is_told_after_heartbeat_timeout(
    broker: Broker,
) -> None:
    # slac_API with cfg_heartbeat_interval_ms <= 0 sends none
    async with everest_station(broker.port, heartbeat=0, heartbeat_timeout=1.0) as site:
        told = site.manager.seen[[s.leaf for s in site.manager.seen].index("state")]
        assert site.api.connected_at is not None
        assert told.value == "UNMATCHED" and told.at - site.api.connected_at >= 0.9
        await site.manager.command("enter_bcd")
        await site.match()
        await site.manager.wait("dlink_ready", True)


@needs_root
@needs_mosquitto
async def test_broker_restart_then_everest_is_told_the_current_state(broker: Broker) -> None:
    async with everest_station(broker.port) as site:
        manager = site.manager
        await manager.command("enter_bcd")
        await asyncio.sleep(0.3)
        broker.stop()  # the broker goes away before the EV plugs in ...
        await site.match()  # ... which matches meanwhile
        assert site.service.sessions[site.evse_id].state.value == "matched"
        since = len(manager.seen)
        broker.start()
        ready = await manager.wait("dlink_ready", True, since, timeout=20)
        assert manager.events(since)[:3] == [
            ("ev_mac_address", site.ev_mac),
            ("state", "MATCHED"),
            ("dlink_ready", True),
        ]
        assert ready and site.api.connections >= 2
        since = len(manager.seen)
        await manager.command("leave_bcd")  # and commands are taken again
        await manager.wait("state", "UNMATCHED", since)


@needs_root
@needs_mosquitto
async def test_slac_evse_everest_command(tmp_path: Path, broker: Broker) -> None:
    """`slac evse --everest mqtt://127.0.0.1:PORT` as the operator guide shows it."""
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=0.0, seed=5)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns):
            (evse_id,) = station_file(tmp_path / "station.json", topo.evse_interfaces)
            env_file = tmp_path / "everest.env"
            env_file.write_text("SET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\n")
            cmd = await EvseCommand.start(
                "--config",
                str(tmp_path / "station.json"),
                "--env",
                str(env_file),
                "--everest",
                f"mqtt://127.0.0.1:{broker.port}",
            )
            manager = EvseManager(broker.port, module=evse_id)  # no everest_module_id
            try:
                await manager.wait("state", "UNMATCHED", timeout=15)
                since = len(manager.seen)
                await manager.command("enter_bcd")
                ev = SlacEvSession(topo.ev_interface, fast_config(), netns=topo.ev_netns[0].name)
                try:
                    await asyncio.wait_for(ev.match(), 30)
                except asyncio.TimeoutError:
                    raise AssertionError(f"no match in 30 s:\n{cmd.log_text()}") from None
                finally:
                    await ev.close()
                await manager.wait("dlink_ready", True, since)
                assert manager.values("ev_mac_address", since) == [
                    str(topo.ev_ports[0].host_mac).upper()
                ]
                await cmd.wait_state(evse_id, "matched")
                # SIGTERM: EVerest hears that the link is gone before we go
                since = len(manager.seen)
                cmd.process.terminate()
                try:
                    assert await asyncio.wait_for(cmd.process.wait(), 20) == 0
                except asyncio.TimeoutError:
                    raise AssertionError(f"no exit 20 s after SIGTERM:\n{cmd.log_text()}") from None
                await manager.wait("state", "UNMATCHED", since, timeout=5)
                assert manager.events(since) == [("dlink_ready", False), ("state", "UNMATCHED")]
            finally:
                await manager.close()
                await cmd.kill()
            assert "MQTT: connected" in cmd.log_text()
