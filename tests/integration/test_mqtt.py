"""The MQTT control-pilot bridge against a real Mosquitto broker (Debian package mosquitto,
started here on a free loopback port), with `slac evse --cp mqtt://...` as a subprocess, the
virtual powerline and our EV. Needs root."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from slac.app.mqtt import parse_cp_payload, parse_dlink_payload, parse_mqtt_url
from slac.ev import SlacEvSession
from slac.testing import fast_config
from slac.testing.powerline import Powerline, Topology

from ..conftest import needs_root
from .operator import EvseCommand, station_file

aiomqtt = pytest.importorskip("aiomqtt", reason="aiomqtt is installed with the mqtt extra")

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)
needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None,
    reason="mosquitto is not installed (Debian package mosquitto; .ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Broker:
    """A Mosquitto broker on 127.0.0.1:port, stopped and started again at will."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.conf = directory / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        assert MOSQUITTO is not None
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.process.returncode}")
            import time

            time.sleep(0.05)
        raise RuntimeError("mosquitto did not listen within 5 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


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


class Watcher:
    """A test client that follows ``<prefix>/+/slac`` and reconnects at once when it can."""

    def __init__(self, port: int, prefix: str) -> None:
        self.port = port
        self.prefix = prefix
        self.seen: list[tuple[bool, dict[str, Any]]] = []  # (retained, payload)
        self.connections = 0
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, timeout=2) as client:
                    self.connections += 1
                    await client.subscribe(f"{self.prefix}/+/slac", qos=1)
                    async for message in client.messages:
                        assert isinstance(message.payload, bytes)
                        self.seen.append((bool(message.retain), json.loads(message.payload)))
                        self._changed.set()
            except aiomqtt.MqttError:
                await asyncio.sleep(0.05)

    def states(self) -> list[str]:
        return [payload["state"] for _, payload in self.seen]

    async def wait(self, state: str, since: int = 0, timeout: float = 15.0) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                for _, payload in self.seen[since:]:
                    if payload["state"] == state:
                        return payload
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {state!r} within {timeout} s: {self.seen}") from None

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def mosquitto_client(*args: str) -> str:
    """Run mosquitto_pub or mosquitto_sub against the local broker; its output."""
    tool = shutil.which(args[0])
    if tool is None:
        pytest.skip(f"{args[0]} is not installed (Debian package mosquitto-clients; .ci/run)")
    process = await asyncio.create_subprocess_exec(
        tool, "-h", "127.0.0.1", *args[1:], stdout=asyncio.subprocess.PIPE
    )
    output, _ = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0, args
    return output.decode().strip()


async def publish(port: int, topic: str, payload: str, retain: bool = False) -> None:
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        await client.publish(topic, payload.encode(), qos=1, retain=retain)


async def retained(port: int, topic: str) -> dict[str, Any]:
    """The retained message of ``topic``, as a new subscriber gets it."""
    async with aiomqtt.Client("127.0.0.1", port, timeout=5) as client:
        await client.subscribe(topic, qos=1)
        async for message in client.messages:
            assert message.retain
            assert isinstance(message.payload, bytes)
            data: dict[str, Any] = json.loads(message.payload)
            return data
    raise AssertionError("no retained message")


@contextlib.asynccontextmanager
async def mqtt_station(
    tmp_path: Path, port: int
) -> AsyncIterator[tuple[Topology, EvseCommand, str]]:
    """One EV and one EVSE on the powerline; `slac evse --cp mqtt://...` on the EVSE."""
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=0.0, seed=5)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns):
            (evse_id,) = station_file(tmp_path / "station.json", topo.evse_interfaces)
            env_file = tmp_path / "mqtt.env"
            env_file.write_text(
                "SET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\nMQTT_RECONNECT_MIN=1\n"
                "MQTT_RECONNECT_MAX=2\nLINK_CHECK_PERIOD=0\n"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith(("MQTT_", "CP_"))}
            cmd = await EvseCommand.start(
                "--config",
                str(tmp_path / "station.json"),
                "--env",
                str(env_file),
                "--cp",
                f"mqtt://127.0.0.1:{port}/site1",
                env=env,
            )
            try:
                yield topo, cmd, evse_id
            finally:
                cmd.process.terminate()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(cmd.process.wait(), 15)
                await cmd.kill()


async def match_our_ev(topo: Topology) -> None:
    ev = SlacEvSession(topo.ev_interface, fast_config(), netns=topo.ev_netns[0].name)
    try:
        await asyncio.wait_for(ev.match(), 15)
    finally:
        await ev.close()


@needs_root
@needs_mosquitto
async def test_publishing_b_leads_to_a_retained_matched(tmp_path: Path, broker: Broker) -> None:
    async with mqtt_station(tmp_path, broker.port) as (topo, cmd, evse_id):
        watcher = Watcher(broker.port, "site1")
        try:
            first = await watcher.wait("unmatched")
            assert first["evse_id"] == evse_id
            # as the README shows it, with Mosquitto's own client
            await mosquitto_client(
                "mosquitto_pub",
                "-p",
                str(broker.port),
                "-t",
                f"site1/{evse_id}/cp_state",
                "-m",
                "B",
            )
            await publish(broker.port, "site1/nobody/cp_state", "B")  # ignored, logged
            await publish(broker.port, f"site1/{evse_id}/cp_state", "Z9")  # ignored, logged
            await asyncio.sleep(0.3)
            await match_our_ev(topo)
            matched = await watcher.wait("matched")
        finally:
            await watcher.close()
        assert matched["ev_mac"] == str(topo.ev_ports[0].host_mac)
        assert len(matched["run_id"]) == 16 and matched["timestamp"] > 0
        assert (await retained(broker.port, f"site1/{evse_id}/slac"))["state"] == "matched"
        line = await mosquitto_client(
            "mosquitto_sub",
            "-p",
            str(broker.port),
            "-t",
            "site1/+/slac",
            "-v",
            "-C",
            "1",
            "-W",
            "5",
        )
        topic, _, payload = line.partition(" ")
        assert topic == f"site1/{evse_id}/slac" and json.loads(payload)["state"] == "matched"
        await publish(broker.port, f"site1/{evse_id}/cp_state", json.dumps({"state": "A"}))
        for _ in range(100):
            if (await retained(broker.port, f"site1/{evse_id}/slac"))["state"] == "unmatched":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("unplugging did not publish unmatched")
        log = cmd.log_text()
        assert "no EVSE 'nobody'" in log and "not a control-pilot state" in log
        assert cmd.process.returncode is None, log


@needs_root
@needs_mosquitto
async def test_broker_restart_mid_session_loses_no_state_change(
    tmp_path: Path, broker: Broker
) -> None:
    async with mqtt_station(tmp_path, broker.port) as (topo, cmd, evse_id):
        watcher = Watcher(broker.port, "site1")
        try:
            await watcher.wait("unmatched")
            await publish(broker.port, f"site1/{evse_id}/cp_state", "B")
            await asyncio.sleep(0.3)
            broker.stop()  # the broker goes away before the EV plugs in ...
            await match_our_ev(topo)  # ... matching and matched happen meanwhile
            await cmd.wait_state(evse_id, "matched")
            seen_before = len(watcher.seen)
            broker.start()
            await watcher.wait("matched", since=seen_before, timeout=20)
            after = watcher.states()[seen_before:]
            # every change made while the broker was away arrives, in order
            assert after[after.index("matching") :][:2] == ["matching", "matched"], watcher.seen
            assert (await retained(broker.port, f"site1/{evse_id}/slac"))["state"] == "matched"
            # and the bridge takes control-pilot states again
            await publish(broker.port, f"site1/{evse_id}/cp_state", "A")
            await watcher.wait("unmatched", since=len(watcher.seen))
        finally:
            await watcher.close()
        log = cmd.log_text()
        assert "retrying in" in log, log
        assert log.count("MQTT: connected") >= 2, log


async def retained_when(port: int, topic: str, check: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The retained message of ``topic`` once ``check(payload)`` holds."""
    data: dict[str, Any] = {}
    for _ in range(int(timeout / 0.1)):
        data = await retained(port, topic)
        if check(data):
            return data
        await asyncio.sleep(0.1)
    raise AssertionError(f"{topic}: never as wanted, last {data}")


@needs_root
@needs_mosquitto
async def test_dlink_over_mqtt_and_the_retained_stats_topic(tmp_path: Path, broker: Broker) -> None:
    """Issue 16 items 1 and 2: D-LINK requests on <prefix>/<evse_id>/dlink, the counters on
    <prefix>/<evse_id>/stats (retained), the reason and attenuation in the status."""
    async with mqtt_station(tmp_path, broker.port) as (topo, cmd, evse_id):
        watcher = Watcher(broker.port, "site1")
        try:
            await watcher.wait("unmatched")
            await publish(broker.port, f"site1/{evse_id}/cp_state", "B")
            await asyncio.sleep(0.3)
            await match_our_ev(topo)
            matched = await watcher.wait("matched")
            assert 15.0 <= matched["attenuation"] <= 25.0, matched
            assert matched["reason"] is None and matched["paused"] is False

            # as the operator guide shows it, with Mosquitto's own client
            await mosquitto_client(
                "mosquitto_pub",
                "-p",
                str(broker.port),
                "-t",
                f"site1/{evse_id}/dlink",
                "-m",
                "pause",
            )
            await publish(broker.port, f"site1/{evse_id}/dlink", "nap")  # ignored, logged
            await retained_when(
                broker.port, f"site1/{evse_id}/stats", lambda d: d["dlink"] == {"pause": 1}
            )
            paused = await retained_when(
                broker.port, f"site1/{evse_id}/slac", lambda d: d["paused"]
            )
            assert paused["state"] == "matched"
            since = len(watcher.seen)
            await publish(
                broker.port, f"site1/{evse_id}/dlink", json.dumps({"command": "TERMINATE"})
            )
            await watcher.wait("unmatched", since=since)
            since = len(watcher.seen)
            await publish(broker.port, f"site1/{evse_id}/dlink", "error")
            await asyncio.sleep(0.3)
            await match_our_ev(topo)  # matched again, no CP cycle
            await watcher.wait("matched", since=since)
        finally:
            await watcher.close()
        stats = await retained_when(
            broker.port, f"site1/{evse_id}/stats", lambda d: d["matches"] == 2
        )
        line = await mosquitto_client(
            "mosquitto_sub",
            "-p",
            str(broker.port),
            "-t",
            "site1/+/stats",
            "-v",
            "-C",
            "1",
            "-W",
            "5",
        )
        log = cmd.log_text()
    topic, _, payload = line.partition(" ")
    assert topic == f"site1/{evse_id}/stats" and json.loads(payload)["matches"] == 2
    assert stats["evse_id"] == evse_id and stats["timestamp"] > 0
    assert stats["dlink"] == {"error": 1, "pause": 1, "terminate": 1}, stats
    assert stats["failures"] == {} and stats["links_lost"] == {}, stats
    assert "no D-LINK command 'nap'" in log, log


def test_mqtt_urls_and_payloads() -> None:
    url = parse_mqtt_url("mqtt://broker.local:1884/station/7")
    assert (url.host, url.port, url.prefix) == ("broker.local", 1884, "station/7")
    assert parse_mqtt_url("mqtt://h/p").port == 1883
    for bad, why in [
        ("http://h/p", "expected stdin or mqtt"),
        ("mqtt:///p", "no broker host"),
        ("mqtt://h:99999/p", "port"),
        ("mqtt://h:1883", "prefix is needed"),
        ("mqtt://h/a/+", "wildcards"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_mqtt_url(bad)
    assert parse_cp_payload(b" B2\n") == "B2"
    assert parse_cp_payload(b'{"state": "C"}') == "C"
    assert parse_cp_payload(b'{"cp_state": "A"}') == "A"
    for payload in (b"", b"  ", b"\xff", b"{", b'{"x": 1}'):
        with pytest.raises(ValueError, match="payload"):
            parse_cp_payload(payload)
    assert parse_dlink_payload(b"terminate\n").value == "terminate"
    assert parse_dlink_payload(b'{"command": "Pause"}').value == "pause"
    for payload, why in [
        (b"sleep", "no D-LINK command"),
        (b'{"x": 1}', "command"),
        (b"\xff", "UTF-8"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_dlink_payload(payload)
