"""Every EVSE of a charging station in one process, as ``slac evse`` runs them.

:class:`EvseService` opens one :class:`~slac.session.SlacEvseSession` per EVSE of the
station file, gives each modem a key, takes control-pilot states from a source (stdin, MQTT,
or a caller) and reports every state change (:class:`StateReport`) to its listeners. With
``PCAP_FILE`` set, the sessions write every SLAC frame they send or receive to that file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shlex
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, TextIO

from slac.app.station import EvseSpec
from slac.environment import Config
from slac.errors import ConfigError, SlacError, TransportError, UsageError
from slac.fsm.events import SessionState
from slac.fsm.station_view import StationView
from slac.session import SlacEvseSession, SlacSession, SlacSessionController
from slac.sockets.async_linux_socket import interface_unavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateReport:
    """One EVSE's state after a change (also the MQTT status payload)."""

    evse_id: str
    state: str
    ev_mac: Optional[str]
    run_id: Optional[str]
    timestamp: float
    #: restarts of the EVSE's modem noticed so far (VS_HOST_ACTION.IND, the heartbeat)
    modem_restarts: int = 0
    #: soundings whose profiles had no values (NumGroups 0: EMPTY_PROFILE_ATTENUATION sent)
    empty_profile_soundings: int = 0
    #: VS_RS_DEV.REQ sent to the modem, and hardware resets asked for
    modem_resets: int = 0
    hardware_resets: int = 0
    #: state "unavailable": why (the interface does not exist yet, or is down)
    reason: Optional[str] = None

    @classmethod
    def of(cls, session: SlacSession) -> StateReport:
        counters = getattr(session, "counters", {})
        return cls(
            evse_id=session.evse_id,
            state=session.state.value,
            ev_mac=str(session.ev_mac) if session.ev_mac is not None else None,
            run_id=session.run_id.hex() if session.run_id is not None else None,
            timestamp=round(time.time(), 3),
            modem_restarts=counters.get("modem_restarts", 0),
            empty_profile_soundings=counters.get("empty_profile_soundings", 0),
            modem_resets=counters.get("modem_resets", 0),
            hardware_resets=counters.get("hardware_resets", 0),
            reason=getattr(session, "unavailable_reason", None),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "evse_id": self.evse_id,
            "state": self.state,
            "ev_mac": self.ev_mac,
            "run_id": self.run_id,
            "timestamp": self.timestamp,
            "modem_restarts": self.modem_restarts,
            "empty_profile_soundings": self.empty_profile_soundings,
            "modem_resets": self.modem_resets,
            "hardware_resets": self.hardware_resets,
        }
        if self.reason is not None:
            data["reason"] = self.reason
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


StateListener = Callable[[StateReport], None]
#: how long a station file's reset_command may run (s)
RESET_COMMAND_TIMEOUT = 30.0


def service_session(evse_id: str, network_interface: str, config: Config) -> SlacEvseSession:
    """A session as ``slac evse`` opens it (its permission error says how to run it)."""
    return SlacEvseSession(evse_id, network_interface, config, sudo_hint="`sudo slac evse ...`")


class EvseService(SlacSessionController):
    """Runs the EVSEs of a station; feed it CP states with :meth:`set_cp`."""

    def __init__(
        self,
        evses: Iterable[EvseSpec],
        config: Optional[Config] = None,
        *,
        session_factory: Callable[[str, str, Config], SlacEvseSession] = service_session,
    ) -> None:
        self.config = config or Config()
        self.sessions: dict[str, SlacEvseSession] = {}
        #: what the station's EVSEs heard of each EV: an EVSE leaves a car that another one
        #: hears clearly better to that one (slac.fsm.station_view)
        self.station = StationView()
        self.specs: dict[str, EvseSpec] = {}
        for spec in evses:
            config = self.config
            if spec.sounding_attenuation_offset is not None:
                config = replace(
                    config, sounding_attenuation_offset=spec.sounding_attenuation_offset
                )
            session = session_factory(spec.evse_id, spec.network_interface, config)
            if session.station_view is None:
                session.station_view = self.station
            session.state_listeners.append(self._state_changed)
            self.watch_modem(session)
            self.sessions[spec.evse_id] = session
            self.specs[spec.evse_id] = spec
        if not self.sessions:
            raise ConfigError({"station": "no EVSE to run"})
        self.listeners: list[StateListener] = []
        #: EVSEs whose interface is waited for (issue 15 item 1), by id
        self.waiting: dict[str, asyncio.Task[None]] = {}
        self._keying: Optional[asyncio.Semaphore] = None

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open every interface, then give every modem a key, ``SET_KEY_CONCURRENCY`` at a
        time (0: all at once). An interface that does not exist yet or is down makes its EVSE
        ``unavailable``: it is waited for in the background and keyed when it comes, while
        the others run (with ``INTERFACE_STRICT``: TransportError, as any other interface
        error, naming the first that fails). A modem that does not take its key is reported
        and tried again when an EV plugs in: the other EVSEs run meanwhile."""
        limit = self.config.set_key_concurrency
        self._keying = asyncio.Semaphore(limit) if limit > 0 else None
        ready: list[SlacEvseSession] = []
        for session in self.sessions.values():
            try:
                await session.open()  # with PCAP_FILE, every session writes to that one file
            except TransportError as exc:
                if self.config.interface_strict:
                    raise
                if interface_unavailable(session.network_interface) is None:
                    raise  # a bad name, a permission: no waiting helps
                session.state, session.unavailable_reason = SessionState.UNAVAILABLE, str(exc)
                self.waiting[session.evse_id] = asyncio.get_running_loop().create_task(
                    self._bring_up(session), name=f"slac-interface-{session.evse_id}"
                )
                continue
            ready.append(session)
        results = await asyncio.gather(
            *(self._key(session) for session in ready), return_exceptions=True
        )
        for session, result in zip(ready, results):
            if isinstance(result, (SlacError, OSError)):
                session.log.error("%s; trying again at the next plug-in", result)
            elif isinstance(result, BaseException):
                raise result
        for session in self.sessions.values():
            self._state_changed(session)
        logger.info(
            "%d EVSE(s) running: %s",
            len(self.sessions),
            ", ".join(f"{s.evse_id} on {s.network_interface}" for s in self.sessions.values()),
        )

    async def _key(self, session: SlacEvseSession) -> None:
        """A key for this EVSE's modem, within the keying limit (SET_KEY_CONCURRENCY)."""
        if self._keying is None:
            await session.evse_set_key()
            return
        async with self._keying:
            await session.evse_set_key()

    async def _bring_up(self, session: SlacEvseSession) -> None:
        """Wait for the EVSE's interface, key its modem, and match if an EV is plugged in."""
        try:
            await session.wait_open()
            try:
                await self._key(session)
            except (SlacError, OSError) as exc:
                session.log.error("%s; trying again at the next plug-in", exc)
            if session.cp_state is not None and session.cp_state in "BCD":
                await self.process_cp_state(session, session.cp_state)
        except (SlacError, OSError) as exc:
            session.log.error("the interface cannot be used: %s", exc)
        finally:
            self.waiting.pop(session.evse_id, None)

    async def reset_modem_hardware(self, evse_id: str, reason: str) -> bool:
        """Run the station file's ``reset_command`` of this EVSE (without a shell; at most
        RESET_COMMAND_TIMEOUT s): True when it exits with 0."""
        spec = self.specs.get(evse_id)
        command = spec.reset_command if spec is not None else None
        if not command:
            return await super().reset_modem_hardware(evse_id, reason)
        log = self.sessions[evse_id].log
        log.warning("the modem needs a hardware reset (%s): running %s", reason, command)
        try:
            process = await asyncio.create_subprocess_exec(
                *shlex.split(command),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(process.communicate(), RESET_COMMAND_TIMEOUT)
        except (OSError, asyncio.TimeoutError) as exc:
            log.error("reset_command %r failed: %s", command, exc or "timed out")
            return False
        if process.returncode != 0:
            log.error(
                "reset_command %r exited with %s: %s",
                command,
                process.returncode,
                err.decode(errors="replace").strip()[-200:],
            )
            return False
        log.info("hardware reset done; waiting for the modem")
        return True

    async def close(self) -> None:
        """Stop matching everywhere, give matched modems a fresh key, close the sockets."""
        for task in [*self.waiting.values(), *self.hardware_resets_running().values()]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for session in self.sessions.values():
            if session.key_given_out and self.config.reset_key_on_unplug:
                session.schedule_leave()
            await session.close()

    # --- control pilot ------------------------------------------------------------------------

    async def set_cp(self, state: str, evse_id: Optional[str] = None) -> None:
        """Apply a control-pilot state to one EVSE, or to every EVSE when ``evse_id`` is None.

        :class:`~slac.errors.UsageError` for an unknown EVSE id, and
        :class:`~slac.errors.CpStateError` for a state that is not A to F (both ValueErrors).
        """
        if evse_id is None:
            targets = list(self.sessions.values())
        elif evse_id in self.sessions:
            targets = [self.sessions[evse_id]]
        else:
            raise UsageError(f"no EVSE {evse_id!r} (known: {', '.join(self.sessions)})")
        for session in targets:
            await self.process_cp_state(session, state)

    # --- reports --------------------------------------------------------------------------------

    def reports(self) -> list[StateReport]:
        return [StateReport.of(s) for s in self.sessions.values()]

    def _state_changed(self, session: SlacSession) -> None:
        report = StateReport.of(session)  # the state now; told a moment later
        try:
            asyncio.get_running_loop().call_soon(self._emit, report)
        except RuntimeError:  # no loop running (a session used outside asyncio)
            self._emit(report)

    def _emit(self, report: StateReport) -> None:
        """Tell the listeners, after the frames being handled now (printing and publishing
        must not delay the answers of a car park's burst of requests)."""
        for listener in self.listeners:
            try:
                listener(report)
            except Exception:
                logger.exception("state listener failed")


# --- control pilot from stdin ------------------------------------------------------------------

STDIN_HELP = (
    "control pilot: type a state (A to F, e.g. B, C, A) for every EVSE, or "
    "'<evse_id> <state>' for one; 'status' prints every EVSE's state"
)


def parse_cp_line(line: str) -> tuple[Optional[str], str]:
    """("evse id" or None, state) from "B" or "DE*SWT*E123 B"; UsageError (a ValueError)
    when empty."""
    words = line.split()
    if not words:
        raise UsageError("empty line")
    if len(words) == 1:
        return None, words[0]
    return " ".join(words[:-1]), words[-1]


async def run_stdin(service: EvseService, stream: Optional[TextIO] = None) -> None:
    """Read CP states from ``stream`` (stdin) line by line until it ends.

    Lines are read in a daemon thread (works for terminals, pipes and files alike); errors
    in a line are one line on stderr and do not stop the service.
    """
    source = stream or sys.stdin
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[Optional[str]] = asyncio.Queue()

    def reader() -> None:
        try:
            for line in source:
                loop.call_soon_threadsafe(lines.put_nowait, line)
        except (OSError, ValueError):
            pass
        finally:
            # RuntimeError: the loop is closed, nobody is listening any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=reader, name="slac-stdin", daemon=True).start()
    print(STDIN_HELP, file=sys.stderr, flush=True)
    while True:
        line = await lines.get()
        if line is None:
            logger.info("stdin closed: no more control-pilot input")
            return
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.lower() in ("status", "?", "help"):
            if text.lower() != "status":
                print(STDIN_HELP, file=sys.stderr, flush=True)
            for report in service.reports():
                print(report.to_json(), flush=True)
            continue
        try:
            evse_id, state = parse_cp_line(text)
            await service.set_cp(state, evse_id)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
