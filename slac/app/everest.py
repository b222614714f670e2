"""EVerest's external SLAC API over MQTT (``slac evse --everest mqtt://host:port/prefix``).

EVerest's ``slac_API`` module (everest-core ``modules/API/slac_API``, specified in
``docs/source/reference/EVerest_API/slac_API.yaml``) provides EVerest's ``slac`` interface to
EvseManager and forwards it to an external client over MQTT. This module is that client: a
station replaces EvseSlac by slac_API plus ``slac evse --everest``, and EvseManager stays as
it is.

Topics, one set per EVSE of the station file: ``<prefix>/<module_id>/e2m/<name>`` (EVerest to
us) and ``<prefix>/<module_id>/m2e/<name>`` (us to EVerest). The prefix is EVerest's
``everest_api/1/slac`` (after EVerest's external MQTT prefix, if one is configured); the
module id is the one of the slac_API module in EVerest's config file: the EVSE's
``everest_module_id`` in the station file, else its EVSE id. Payloads are JSON values, as
slac_API encodes and decodes them:

=========================  ==================  =================================================
topic                      payload             what we do / when we send it
=========================  ==================  =================================================
e2m/enter_bcd              ``{}`` (ignored)    CP entered B, C or D: matching starts
e2m/leave_bcd              ``{}`` (ignored)    CP left B, C and D: as CP A (leave, unmatched)
e2m/reset                  ``true``/``false``  as leave_bcd, and always a fresh key if needed
e2m/dlink_terminate        ``{}`` (ignored)    :meth:`EvseService.dlink` TERMINATE
e2m/dlink_error            ``{}`` (ignored)    :meth:`EvseService.dlink` ERROR
e2m/dlink_pause            ``{}`` (ignored)    :meth:`EvseService.dlink` PAUSE
e2m/heartbeat              integer (its id)    watched: lost, resumed, EVerest restarted
e2m/count_bc               integer             accepted, not used (no CM_VALIDATE)
m2e/state                  ``"UNMATCHED"``     at every change (``"MATCHING"``, ``"MATCHED"``)
m2e/dlink_ready            ``true``/``false``  true when matched, false when the match ends
m2e/ev_mac_address         ``"AA:BB:..."``     the matched EV's MAC (upper case), before MATCHED
m2e/request_error_routine  ``null``            matching failed for this plug-in
m2e/communication_check    ``true``            every ``communication_check_period`` seconds
=========================  ==================  =================================================

QoS and retain: the API file says nothing; slac_API publishes and subscribes with QoS 0, not
retained. We publish with QoS 1 (delivered to the broker once, whatever happens to the
connection meanwhile), never retained: these are events, and a retained ``dlink_ready true``
would outlive us. A retained command (someone published one with the retain flag) is stale by
definition: it is logged and ignored. While the broker is away, changes are not queued: at
EVerest's first heartbeat after the reconnection (its slac_API is connected and subscribed
then), or ``heartbeat_timeout`` after it without one, every module is told its EVSE's state
(and the EV's MAC and ``dlink_ready``, when that differs from what it was told last); so it is
when the heartbeat comes back after a loss, and when its id starts again from a lower number
(EVerest restarted and knows nothing). On cancellation (SIGTERM), every module is told
``dlink_ready`` false and UNMATCHED, within a second, before the EVSEs close.

A payload that is not what the API file says (not JSON, a wrong type) is logged (WARNING) and
ignored, like slac_API does with ours.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from slac.app.mqtt import MqttUrl, connect_forever, parse_mqtt_url, run_until_first_ends
from slac.app.service import DlinkCommand, EvseService, StateReport
from slac.app.settings import AppSettings
from slac.app.station import EvseSpec
from slac.errors import ConfigError

if TYPE_CHECKING:
    import aiomqtt

logger = logging.getLogger(__name__)

#: EVerest's topic prefix for the SLAC API (version 1)
DEFAULT_PREFIX = "everest_api/1/slac"
#: how often we tell EVerest we are alive (slac_API raises CommunicationFault after
#: cfg_communication_check_to_s without it, 5 s by default)
COMMUNICATION_CHECK_PERIOD = 1.0
#: EVerest is reported gone after this long without a heartbeat (slac_API sends one every
#: cfg_heartbeat_interval_ms, 1 s by default), once it sent one
HEARTBEAT_TIMEOUT = 5.0
#: messages waiting for the broker (while connected; beyond this the oldest go)
OUTBOX_LIMIT = 10_000

#: the commands EVerest sends (e2m/<name>)
COMMANDS = (
    "enter_bcd",
    "leave_bcd",
    "reset",
    "dlink_terminate",
    "dlink_error",
    "dlink_pause",
    "heartbeat",
    "count_bc",
)

#: our session states as slac_API's State enum (a failed matching is UNMATCHED, with
#: request_error_routine)
API_STATES = {
    "unmatched": "UNMATCHED",
    "matching": "MATCHING",
    "matched": "MATCHED",
    "failed": "UNMATCHED",
}


def parse_everest_url(url: str) -> MqttUrl:
    """mqtt://host[:port][/prefix]: the prefix before the module ids (default
    ``everest_api/1/slac``); ValueError in plain words, naming the URL as given."""
    if "#" in url:  # urlsplit would take it for a fragment
        raise ValueError(f"{url!r}: the prefix must not contain MQTT wildcards (+ or #)")
    full = url
    split = url.split("://", 1)
    if len(split) == 2 and "/" not in split[1].strip("/"):
        full = url.rstrip("/") + "/" + DEFAULT_PREFIX
    try:
        return parse_mqtt_url(full)
    except ValueError as exc:
        why = str(exc).split(": ", 1)[-1].replace("expected stdin or ", "expected ")
        raise ValueError(f"{url!r}: {why}") from None


def module_ids(specs: Iterable[EvseSpec]) -> dict[str, str]:
    """{module id: EVSE id} for the station's EVSEs; ConfigError when an id cannot be an
    MQTT topic level or two EVSEs share one."""
    modules: dict[str, str] = {}
    for spec in specs:
        module_id = spec.everest_module_id or spec.evse_id
        if any(c in module_id for c in "/+#"):
            raise ConfigError(
                {
                    "station": f"EVSE {spec.evse_id!r}: {module_id!r} cannot be an MQTT topic "
                    'level (/, + or #): give it an "everest_module_id"'
                }
            )
        if module_id in modules:
            raise ConfigError({"station": f"EVerest module id {module_id!r} used by two EVSEs"})
        modules[module_id] = spec.evse_id
    return modules


def _decode(payload: Any) -> Any:
    """The JSON value of a payload; ValueError in plain words."""
    data = payload if isinstance(payload, (bytes, bytearray)) else str(payload or "").encode()
    try:
        return json.loads(bytes(data).decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("payload is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"payload is not JSON ({exc}): {bytes(data)[:60]!r}") from None


def parse_command(name: str, payload: Any) -> Any:
    """The argument of an e2m command (None for those without one); ValueError when the
    payload is not what the API file says."""
    if name in ("enter_bcd", "leave_bcd", "dlink_terminate", "dlink_error", "dlink_pause"):
        # slac_API sends "{}"; the API file gives these no payload: empty is fine too
        if isinstance(payload, (bytes, bytearray)) and not bytes(payload).strip():
            return None
        _decode(payload)
        return None
    value = _decode(payload)
    if name == "reset":
        if not isinstance(value, bool):
            raise ValueError(f"reset needs a JSON boolean (true or false), not {value!r}")
        return value
    if name in ("heartbeat", "count_bc"):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} needs a JSON unsigned integer, not {value!r}")
        return value
    raise ValueError(f"no command {name!r} in EVerest's slac_API")


@dataclass
class Module:
    """What one slac_API module was told, and what EVerest's heartbeat says of it."""

    module_id: str
    evse_id: str
    #: the state and dlink_ready as our events left them (what EVerest should know)
    state: str = "UNMATCHED"
    ready: bool = False
    ev_mac: Optional[str] = None
    #: what was published last (None: nothing since the connection or EVerest's restart)
    told_state: Optional[str] = None
    told_ready: Optional[bool] = None
    heartbeat_id: Optional[int] = None
    heartbeat_at: Optional[float] = None
    heartbeat_lost: bool = False
    #: told where it stands since our connection
    caught_up: bool = False
    heartbeats: int = 0
    ignored: collections.Counter[str] = field(default_factory=collections.Counter)


class EverestSlacApi:
    """Serves EVerest's slac_API for every EVSE of an :class:`EvseService`; :meth:`run`
    until cancelled."""

    def __init__(
        self,
        service: EvseService,
        url: MqttUrl,
        modules: Mapping[str, str],
        config: Optional[AppSettings] = None,
        *,
        communication_check_period: float = COMMUNICATION_CHECK_PERIOD,
        heartbeat_timeout: float = HEARTBEAT_TIMEOUT,
    ) -> None:
        unknown = sorted(set(modules.values()) - set(service.sessions))
        if unknown:
            raise ConfigError({"everest": f"no EVSE {', '.join(unknown)} in this station"})
        self.service = service
        self.url = url
        self.config = config or service.config
        self.modules = {m: Module(m, e) for m, e in modules.items()}
        self.by_evse = {module.evse_id: module for module in self.modules.values()}
        self.communication_check_period = communication_check_period
        self.heartbeat_timeout = heartbeat_timeout
        self.client_id = (
            self.config.mqtt_client_id or f"slac-everest-{socket.gethostname()}-{os.getpid()}"
        )
        #: (module, leaf, JSON payload) waiting to be published, in order
        self.outbox: collections.deque[tuple[Module, str, str]] = collections.deque(
            maxlen=OUTBOX_LIMIT
        )
        self._wake = asyncio.Event()
        self.connected = asyncio.Event()
        self.connections = 0
        #: time.monotonic() of the last connection to the broker
        self.connected_at: Optional[float] = None
        self._commands: asyncio.Queue[tuple[Module, str, Any]] = asyncio.Queue()
        for report in service.reports():
            self._follow(report, queue=False)
        service.listeners.append(self._follow)

    def topic(self, module: Module, direction: str, name: str) -> str:
        return f"{self.url.prefix}/{module.module_id}/{direction}/{name}"

    # --- our state -> m2e ---------------------------------------------------------------------

    def _send(self, module: Module, leaf: str, value: Any) -> None:
        self.outbox.append((module, leaf, json.dumps(value)))
        self._wake.set()

    def _follow(self, report: StateReport, queue: bool = True) -> None:
        """Turn one state change of an EVSE into what slac_API expects, in EvseSlac's order:
        dlink_ready false before the state that ends a match; ev_mac_address, MATCHED, then
        dlink_ready true."""
        module = self.by_evse.get(report.evse_id)
        if module is None:
            return
        state = API_STATES.get(report.state, "UNMATCHED")
        ready = state == "MATCHED"
        if not queue:
            module.state, module.ready = state, ready
            module.ev_mac = report.ev_mac.upper() if ready and report.ev_mac else None
            return
        if module.ready and not ready:
            module.ready = False
            self._send(module, "dlink_ready", False)
        if ready and not module.ready and report.ev_mac:
            module.ev_mac = report.ev_mac.upper()
            self._send(module, "ev_mac_address", module.ev_mac)
        if state != module.state:
            module.state = state
            self._send(module, "state", state)
        if ready and not module.ready:
            module.ready = True
            self._send(module, "dlink_ready", True)
        if report.state == "failed":
            self._send(module, "request_error_routine", None)

    def _tell_current(self, module: Module, why: str) -> None:
        """Tell a module that may have missed changes (our new connection, EVerest's
        heartbeat back after a loss, EVerest restarted) where its EVSE stands: the state,
        and dlink_ready when it differs from what it was told (a restarted EVerest was told
        nothing: then when true)."""
        module.caught_up = True
        logger.info("EVerest %s: telling the state (%s): %s", module.module_id, why, module.state)
        told_ready = module.told_ready
        if module.ready and module.ev_mac and told_ready is not True:
            self._send(module, "ev_mac_address", module.ev_mac)
        self._send(module, "state", module.state)
        if module.ready != bool(told_ready) or (told_ready is None and module.ready):
            self._send(module, "dlink_ready", module.ready)

    # --- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        async def serve(client: aiomqtt.Client, connections: int) -> None:
            self.connections = connections
            self.connected_at = time.monotonic()
            for module in self.modules.values():
                await client.subscribe(f"{self.url.prefix}/{module.module_id}/e2m/+", qos=1)
            # stale: every module is told where it stands instead, at EVerest's first
            # heartbeat (then its slac_API is connected and subscribed), or after
            # heartbeat_timeout without one (its heartbeat is off)
            self.outbox.clear()
            for module in self.modules.values():
                module.caught_up = False
            self.connected.set()
            try:
                await run_until_first_ends(
                    self._receive(client),
                    self._publish(client),
                    self._communication_check(client),
                    self._watch_heartbeats(),
                    self._catch_up_without_heartbeat(),
                )
            except asyncio.CancelledError:
                await self._farewell(client)
                raise
            finally:
                self.connected.clear()

        loop = asyncio.get_running_loop()
        worker = loop.create_task(self._work(), name="slac-everest-commands")
        try:
            await connect_forever(
                self.url,
                self.config,
                self.client_id,
                serve,
                waiting=lambda: "EVerest is told every EVSE's state after reconnecting",
            )
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)

    async def _publish(self, client: aiomqtt.Client) -> None:
        while True:
            while self.outbox:
                item = self.outbox[0]
                module, leaf, payload = item
                await client.publish(
                    self.topic(module, "m2e", leaf), payload.encode(), qos=1, retain=False
                )
                if leaf == "state":
                    module.told_state = json.loads(payload)
                elif leaf == "dlink_ready":
                    module.told_ready = json.loads(payload)
                if self.outbox and self.outbox[0] is item:
                    self.outbox.popleft()
            self._wake.clear()
            await self._wake.wait()

    async def _farewell(self, client: aiomqtt.Client) -> None:
        """We stop (SIGTERM, SIGINT): the EVSEs are about to leave their logical networks;
        tell EVerest (dlink_ready false, UNMATCHED) within a second, if the broker lets us."""
        import aiomqtt

        async def tell() -> None:
            for module in self.modules.values():
                if module.ready or module.told_ready:
                    await client.publish(self.topic(module, "m2e", "dlink_ready"), b"false", qos=1)
                if module.state != "UNMATCHED" or module.told_state not in (None, "UNMATCHED"):
                    await client.publish(self.topic(module, "m2e", "state"), b'"UNMATCHED"', qos=1)

        try:
            await asyncio.wait_for(tell(), 1.0)
        except (aiomqtt.MqttError, asyncio.TimeoutError) as exc:
            logger.warning("EVerest: could not say that we stop: %s", exc or "timeout")

    async def _communication_check(self, client: aiomqtt.Client) -> None:
        """``true`` on every module's m2e/communication_check, at once and then every
        period. Never ``false``: that would switch EVerest's check off, and when we stop,
        EVerest should notice (CommunicationFault)."""
        while True:
            for module in self.modules.values():
                await client.publish(
                    self.topic(module, "m2e", "communication_check"), b"true", qos=0
                )
            await asyncio.sleep(self.communication_check_period)

    async def _catch_up_without_heartbeat(self) -> None:
        await asyncio.sleep(self.heartbeat_timeout)
        for module in self.modules.values():
            if not module.caught_up:
                self._tell_current(module, "connected, no heartbeat from EVerest")
        await asyncio.Event().wait()  # until the connection ends

    async def _watch_heartbeats(self) -> None:
        period = max(0.1, min(1.0, self.heartbeat_timeout / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for module in self.modules.values():
                if (
                    module.heartbeat_at is not None
                    and not module.heartbeat_lost
                    and now - module.heartbeat_at > self.heartbeat_timeout
                ):
                    module.heartbeat_lost = True
                    logger.warning(
                        "EVerest %s: no heartbeat for %.1f s (last id %s): is EVerest running?",
                        module.module_id,
                        now - module.heartbeat_at,
                        module.heartbeat_id,
                    )

    # --- e2m -> the service -------------------------------------------------------------------

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            self.handle_message(str(message.topic), message.payload, bool(message.retain))

    def handle_message(self, topic: str, payload: Any, retained: bool = False) -> None:
        """Check one e2m message and queue its command; a bad one is logged and dropped."""
        base = self.url.prefix + "/"
        parts = topic[len(base) :].split("/") if topic.startswith(base) else []
        module = self.modules.get(parts[0]) if len(parts) == 3 and parts[1] == "e2m" else None
        if module is None:
            logger.warning("EVerest: %s ignored: not a topic of this station's modules", topic)
            return
        name = parts[2]
        try:
            if name not in COMMANDS:
                raise ValueError(f"no command {name!r} in EVerest's slac_API")
            if retained:
                raise ValueError("a retained command is stale (EVerest never retains them)")
            argument = parse_command(name, payload)
        except ValueError as exc:
            module.ignored[name] += 1
            logger.warning("EVerest %s: %s ignored: %s", module.module_id, topic, exc)
            return
        if name == "heartbeat":
            self._heartbeat(module, argument)
            return
        if name == "count_bc":
            # B->C edges for CM_VALIDATE's toggle count: we do not validate (ISO 15118-3
            # makes it optional; GreenPHY matching does not use it)
            logger.debug("EVerest %s: count_bc %d (not used)", module.module_id, argument)
            return
        self._commands.put_nowait((module, name, argument))

    def _heartbeat(self, module: Module, heartbeat_id: int) -> None:
        previous = module.heartbeat_id
        module.heartbeat_id, module.heartbeat_at = heartbeat_id, time.monotonic()
        module.heartbeats += 1
        wrapped = previous is not None and previous >= 2**64 - 16 and heartbeat_id < 16
        if previous is not None and heartbeat_id <= previous and not wrapped:
            # the id only grows (by 1, wrapping at 2**64): EVerest started again
            module.heartbeat_lost = False
            module.told_ready = None
            self._tell_current(
                module, f"heartbeat id {heartbeat_id} after {previous}: EVerest restarted"
            )
        elif module.heartbeat_lost:
            module.heartbeat_lost = False
            self._tell_current(module, f"heartbeat again (id {heartbeat_id})")
        elif not module.caught_up:
            self._tell_current(module, f"connected, heartbeat id {heartbeat_id}")

    async def _work(self) -> None:
        """Apply the commands one after the other, in the order they came."""
        while True:
            module, name, argument = await self._commands.get()
            try:
                await self.apply(module, name, argument)
            except (ValueError, OSError) as exc:
                logger.warning("EVerest %s: %s failed: %s", module.module_id, name, exc)
            except Exception:
                logger.exception("EVerest %s: %s failed", module.module_id, name)

    async def apply(self, module: Module, name: str, argument: Any) -> None:
        """What one command does to the module's EVSE."""
        evse_id = module.evse_id
        logger.info(
            "EVerest %s: %s%s",
            module.module_id,
            name,
            "" if argument is None else f" {json.dumps(argument)}",
        )
        if name == "enter_bcd":
            await self.service.enter_bcd(evse_id)
        elif name == "leave_bcd":
            await self.service.set_cp("A", evse_id)
        elif name == "reset":
            # EvseSlac resets on false and ignores true (no power saving): we reset on both,
            # which is the same for a modem that is always ready; matching starts again at
            # the next enter_bcd
            await self.service.set_cp("A", evse_id)
            session = self.service.sessions[evse_id]
            if session.key_given_out:  # a reset leaves the network, RESET_KEY_ON_UNPLUG or not
                session.schedule_leave()
        elif name == "dlink_terminate":
            await self.service.dlink(evse_id, DlinkCommand.TERMINATE)
        elif name == "dlink_error":
            await self.service.dlink(evse_id, DlinkCommand.ERROR)
        elif name == "dlink_pause":
            await self.service.dlink(evse_id, DlinkCommand.PAUSE)
