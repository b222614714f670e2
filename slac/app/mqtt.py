"""Control pilot in, SLAC state out, over MQTT (``slac evse --cp mqtt://host:port/prefix``).

- subscribes to ``<prefix>/<evse_id>/cp_state``: the payload is the state ("B", "C2", ...)
  or a JSON object ``{"state": "B"}``;
- subscribes to ``<prefix>/<evse_id>/dlink``: a D-LINK request of the HLC side, the payload
  "terminate", "error", "pause" or "resume", or ``{"command": "terminate"}``;
- publishes, retained and with QoS 1, ``<prefix>/<evse_id>/slac``:
  ``{"state": "unmatched|matching|matched|failed", "ev_mac": ..., "run_id": ...,
  "timestamp": ..., "evse_id": ..., "reason": ..., "detail": ..., "attenuation": ...,
  "paused": ...}`` at every change, ``<prefix>/<evse_id>/stats`` (the counters of
  :mod:`slac.fsm.stats`) when they change, and ``<prefix>/bridge`` "online" (the broker
  publishes "offline" when the connection dies);
- when the broker goes away, reconnects with exponential backoff (``MQTT_RECONNECT_MIN`` to
  ``MQTT_RECONNECT_MAX``); state changes meanwhile are kept, in order, and published after
  the reconnection: none is lost.

aiomqtt is an optional dependency: ``pip install 'slac[mqtt]'``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import socket
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any, Callable, Optional

from slac.app.service import DlinkCommand, EvseService, StateReport, StatsReport
from slac.app.settings import AppSettings

# MqttUrl and parse_mqtt_url live with the settings (CP_SOURCE is checked without aiomqtt)
from slac.app.settings import MqttUrl as MqttUrl
from slac.app.settings import parse_mqtt_url as parse_mqtt_url
from slac.errors import UsageError

if TYPE_CHECKING:
    import aiomqtt

logger = logging.getLogger(__name__)

#: state changes kept while the broker is away (the oldest go first beyond this)
OUTBOX_LIMIT = 10_000


def parse_cp_payload(payload: bytes) -> str:
    """The CP state of a cp_state message: "B" or {"state": "B"}; ValueError otherwise."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("payload is not UTF-8 text") from None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"payload is not valid JSON: {exc}") from None
        state = data.get("state", data.get("cp_state")) if isinstance(data, dict) else None
        if not isinstance(state, str):
            raise ValueError('JSON payload needs a "state" string')
        return state
    if not text:
        raise ValueError("empty payload")
    return text


async def connect_forever(
    url: MqttUrl,
    config: AppSettings,
    client_id: str,
    serve: Callable[[aiomqtt.Client, int], Awaitable[None]],
    *,
    will: Optional[aiomqtt.Will] = None,
    waiting: Callable[[], str] = lambda: "",
) -> None:
    """Connect to the broker of ``url`` and ``serve(client, connections)`` until cancelled.

    When the broker is unreachable or the connection dies (aiomqtt.MqttError, also from
    ``serve``), connects again after ``MQTT_RECONNECT_MIN`` seconds, doubling the wait up to
    ``MQTT_RECONNECT_MAX``; a connection resets the wait. ``connections`` counts the
    connections made (1 the first time). ``waiting`` says what waits for the broker (for the
    log line).
    """
    import aiomqtt

    delay = config.mqtt_reconnect_min
    connections = 0
    while True:
        try:
            async with aiomqtt.Client(
                url.host,
                url.port,
                identifier=client_id,
                username=config.mqtt_username,
                password=config.mqtt_password,
                will=will,
                keepalive=10,
                timeout=5,
            ) as client:
                connections += 1
                logger.info("MQTT: connected to %s as %s", url, client_id)
                delay = config.mqtt_reconnect_min
                await serve(client, connections)
        except aiomqtt.MqttError as exc:
            detail = waiting()
            logger.warning(
                "MQTT: broker %s:%d unreachable or gone (%s); retrying in %.1f s%s",
                url.host,
                url.port,
                exc,
                delay,
                f" ({detail})" if detail else "",
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, config.mqtt_reconnect_max)


async def run_until_first_ends(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines as tasks until the first one ends; cancel the others; raise what
    the first raised (aiomqtt.MqttError: the connection died)."""
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        task.result()


def parse_dlink_payload(payload: bytes) -> DlinkCommand:
    """The command of a dlink message: "terminate" or {"command": "terminate"} (any case);
    ValueError otherwise."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("payload is not UTF-8 text") from None
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"payload is not valid JSON: {exc}") from None
        command = data.get("command") if isinstance(data, dict) else None
        if not isinstance(command, str):
            raise ValueError('JSON payload needs a "command" string')
        text = command
    try:
        return DlinkCommand(text.strip().lower())
    except ValueError:
        known = ", ".join(c.value for c in DlinkCommand)
        raise ValueError(f"no D-LINK command {text!r} (known: {known})") from None


class MqttBridge:
    """Connects an :class:`EvseService` to an MQTT broker; :meth:`run` until cancelled."""

    def __init__(self, service: EvseService, url: MqttUrl, config: Optional[AppSettings] = None):
        self.service = service
        self.url = url
        self.config = config or service.config
        self.client_id = self.config.mqtt_client_id or f"slac-{socket.gethostname()}-{os.getpid()}"
        self.outbox: collections.deque[StateReport] = collections.deque(maxlen=OUTBOX_LIMIT)
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.connections = 0
        #: the last report of every EVSE: published again after a reconnection, so that a
        #: restarted broker (retained messages lost) knows every state again
        self.last: dict[str, StateReport] = {}
        #: the counters to publish, the latest of each EVSE (a retained topic: only the
        #: last value matters), and the last published (again after a reconnection)
        self.stats_due: dict[str, StatsReport] = {}
        self.last_stats: dict[str, StatsReport] = {}
        service.listeners.append(self._queue)
        service.stats_listeners.append(self._queue_stats)
        for report in service.reports():
            self._queue(report)
        for stats in service.stats():
            self._queue_stats(stats)

    def topic(self, evse_id: str, leaf: str) -> str:
        return f"{self.url.prefix}/{evse_id}/{leaf}"

    def _queue(self, report: StateReport) -> None:
        self.last[report.evse_id] = report
        self.outbox.append(report)
        self._wake.set()

    def _queue_stats(self, stats: StatsReport) -> None:
        self.last_stats[stats.evse_id] = stats
        self.stats_due[stats.evse_id] = stats
        self._wake.set()

    def _republish_current(self) -> None:
        pending = {report.evse_id for report in self.outbox}
        for evse_id, report in self.last.items():
            if evse_id not in pending:
                self.outbox.append(report)
        for evse_id, stats in self.last_stats.items():
            self.stats_due.setdefault(evse_id, stats)
        self._wake.set()

    async def run(self) -> None:
        import aiomqtt

        status_topic = f"{self.url.prefix}/bridge"

        async def serve(client: aiomqtt.Client, connections: int) -> None:
            self.connections = connections
            await client.subscribe(f"{self.url.prefix}/+/cp_state", qos=1)
            await client.subscribe(f"{self.url.prefix}/+/dlink", qos=1)
            await client.publish(status_topic, b"online", qos=1, retain=True)
            if connections > 1:
                self._republish_current()
            self.connected.set()
            try:
                await run_until_first_ends(self._receive(client), self._publish(client))
            finally:
                self.connected.clear()

        await connect_forever(
            self.url,
            self.config,
            self.client_id,
            serve,
            will=aiomqtt.Will(status_topic, b"offline", qos=1, retain=True),
            waiting=lambda: f"{len(self.outbox)} state change(s) waiting",
        )

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            while self.outbox:
                report = self.outbox[0]
                payload = report.to_json().encode()
                await client.publish(
                    self.topic(report.evse_id, "slac"), payload, qos=1, retain=True
                )
                # only now: a report whose publication failed is sent again after reconnecting
                if self.outbox and self.outbox[0] is report:
                    self.outbox.popleft()
            while self.stats_due and not self.outbox:
                evse_id, stats = next(iter(self.stats_due.items()))
                await client.publish(
                    self.topic(evse_id, "stats"), stats.to_json().encode(), qos=1, retain=True
                )
                if self.stats_due.get(evse_id) is stats:  # else a newer one waits
                    del self.stats_due[evse_id]
            if self.outbox:
                continue
            self._wake.clear()
            await self._wake.wait()

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic = str(message.topic)
            if topic.endswith("/dlink"):
                await self.handle_dlink_message(topic, message.payload)
            else:
                await self.handle_cp_message(topic, message.payload)

    async def handle_cp_message(self, topic: str, payload: Any) -> None:
        """Apply one cp_state message; a bad one is logged and dropped."""
        prefix = self.url.prefix + "/"
        evse_id = topic[len(prefix) : -len("/cp_state")] if topic.startswith(prefix) else ""
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        try:
            state = parse_cp_payload(data)
            if evse_id not in self.service.sessions:
                raise UsageError(f"no EVSE {evse_id!r} in this station")
            await self.service.set_cp(state, evse_id)
        except ValueError as exc:
            logger.warning("MQTT: %s ignored: %s", topic, exc)

    async def handle_dlink_message(self, topic: str, payload: Any) -> None:
        """Apply one dlink message (a D-LINK request of the HLC side); a bad one is logged
        and dropped."""
        prefix = self.url.prefix + "/"
        evse_id = topic[len(prefix) : -len("/dlink")] if topic.startswith(prefix) else ""
        data = payload if isinstance(payload, bytes) else str(payload).encode()
        try:
            command = parse_dlink_payload(data)
            await self.service.dlink(evse_id, command)
        except ValueError as exc:
            logger.warning("MQTT: %s ignored: %s", topic, exc)
