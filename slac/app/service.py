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
from slac.fsm.events import DlinkCommand, SessionState
from slac.fsm.station_view import StationView
from slac.fsm.stats import reason_key
from slac.session import SlacEvseSession, SlacSession, SlacSessionController
from slac.sockets.async_linux_socket import interface_unavailable

__all__ = [
    "DlinkCommand",
    "EvseService",
    "StateReport",
    "StatsReport",
    "parse_cp_line",
    "parse_stdin_line",
    "run_stdin",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateReport:
    """One EVSE's state after a change (also the MQTT status payload)."""

    evse_id: str
    state: str
    ev_mac: Optional[str]
    run_id: Optional[str]
    timestamp: float
    #: failed: why (a FailureReason's name in lower case, e.g. "ev_chose_another_evse");
    #: unavailable: why (the interface does not exist yet, or is down)
    reason: Optional[str] = None
    #: failed: the sentence for the log
    detail: Optional[str] = None
    #: matched, or failed about one EV: the mean attenuation this EVSE measured (dB)
    attenuation: Optional[float] = None
    #: matched and the HLC side paused the data link (D-LINK_PAUSE)
    paused: bool = False

    #: restarts of the EVSE's modem noticed so far (VS_HOST_ACTION.IND, the heartbeat)
    modem_restarts: int = 0
    #: soundings whose profiles had no values (NumGroups 0: EMPTY_PROFILE_ATTENUATION sent)
    empty_profile_soundings: int = 0
    #: VS_RS_DEV.REQ sent to the modem, and hardware resets asked for
    modem_resets: int = 0
    hardware_resets: int = 0

    @classmethod
    def of(cls, session: SlacSession) -> StateReport:
        reason = detail = None
        attenuation: Optional[float] = None
        paused = False
        if isinstance(session, SlacEvseSession):
            failure, result = session.last_failure, session.last_result
            if session.state is SessionState.FAILED and failure is not None:
                reason, detail = reason_key(failure.reason), failure.detail
                attenuation = failure.attenuation
            elif session.state is SessionState.MATCHED and result is not None:
                attenuation = result.attenuation
            paused = session.dlink_paused
        counters = session.modem_counters if isinstance(session, SlacEvseSession) else {}
        if session.state is SessionState.UNAVAILABLE:
            reason = getattr(session, "unavailable_reason", None)
        return cls(
            evse_id=session.evse_id,
            state=session.state.value,
            ev_mac=str(session.ev_mac) if session.ev_mac is not None else None,
            run_id=session.run_id.hex() if session.run_id is not None else None,
            timestamp=round(time.time(), 3),
            reason=reason,
            detail=detail,
            attenuation=None if attenuation is None else round(attenuation, 1),
            paused=paused,
            modem_restarts=counters.get("modem_restarts", 0),
            empty_profile_soundings=counters.get("empty_profile_soundings", 0),
            modem_resets=counters.get("modem_resets", 0),
            hardware_resets=counters.get("hardware_resets", 0),
        )

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "evse_id": self.evse_id,
            "state": self.state,
            "ev_mac": self.ev_mac,
            "run_id": self.run_id,
            "timestamp": self.timestamp,
            "reason": self.reason,
            "detail": self.detail,
            "attenuation": self.attenuation,
            "paused": self.paused,
            "modem_restarts": self.modem_restarts,
            "empty_profile_soundings": self.empty_profile_soundings,
            "modem_resets": self.modem_resets,
            "hardware_resets": self.hardware_resets,
        }
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


StateListener = Callable[[StateReport], None]
#: how long a station file's reset_command may run (s)
RESET_COMMAND_TIMEOUT = 30.0


@dataclass(frozen=True)
class StatsReport:
    """One EVSE's counters (:mod:`slac.fsm.stats`): the MQTT ``stats`` payload, and part of
    the stdin ``status`` answer."""

    evse_id: str
    counters: dict[str, Any]
    timestamp: float

    @classmethod
    def of(cls, session: SlacEvseSession) -> StatsReport:
        counters = {**session.counters.to_dict(), **session.modem_counters}
        return cls(session.evse_id, counters, round(time.time(), 3))

    def to_dict(self) -> dict[str, Any]:
        return {"evse_id": self.evse_id, **self.counters, "timestamp": self.timestamp}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


StatsListener = Callable[[StatsReport], None]


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
        self.station_view = StationView()
        self.specs: dict[str, EvseSpec] = {}
        for spec in evses:
            config = self.config
            if spec.sounding_attenuation_offset is not None:
                config = replace(
                    config, sounding_attenuation_offset=spec.sounding_attenuation_offset
                )
            session = session_factory(spec.evse_id, spec.network_interface, config)
            if session.station_view is None:
                session.station_view = self.station_view
            session.state_listeners.append(self._state_changed)
            session.counter_listeners.append(self._counted)
            self.watch_modem(session)
            self.sessions[spec.evse_id] = session
            self.specs[spec.evse_id] = spec
        if not self.sessions:
            raise ConfigError({"station": "no EVSE to run"})
        self.listeners: list[StateListener] = []
        #: told each EVSE's counters after they changed (a match, a failure, ...)
        self.stats_listeners: list[StatsListener] = []
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

    async def enter_bcd(self, evse_id: str) -> None:
        """The control pilot entered B, C or D (EVerest's enter_bcd): start matching, unless
        it runs already, or the HLC side terminated the data link (D-LINK_TERMINATE) and the
        control pilot did not leave B, C and D since. Also after a failed matching: then it
        starts again without a CP cycle (EvseManager's error routine sends enter_bcd)."""
        session = self.sessions.get(evse_id)
        if session is None:
            raise ValueError(f"no EVSE {evse_id!r} (known: {', '.join(self.sessions)})")
        if session.dlink_terminated:
            session.log.info(
                "control pilot B, C or D: no new match after D-LINK_TERMINATE "
                "until the control pilot leaves B, C and D"
            )
            return
        if session.cp_state is None or session.cp_state not in "BCD":
            await self.set_cp("B", evse_id)
            return
        task = session.matching_task
        if task is not None and not task.done():
            session.log.debug("control pilot B, C or D again: matching runs already")
            return
        await self.restart_matching(session, "control pilot B, C or D again")

    # --- the data link, as the HLC side asks ----------------------------------------------------

    async def dlink(self, evse_id: str, command: DlinkCommand) -> None:
        """Apply a D-LINK request of the HLC side (ISO 15118-3) to one EVSE:
        :meth:`~slac.session.SlacSessionController.dlink_request` (TERMINATE, ERROR, PAUSE,
        RESUME; a command's value, e.g. "terminate", works too).

        UsageError (a ValueError) for an unknown EVSE id, ValueError for an unknown command.
        """
        session = self.sessions.get(evse_id)
        if session is None:
            raise UsageError(f"no EVSE {evse_id!r} (known: {', '.join(self.sessions)})")
        await self.dlink_request(session, DlinkCommand(command))

    # --- reports --------------------------------------------------------------------------------

    def reports(self) -> list[StateReport]:
        return [StateReport.of(s) for s in self.sessions.values()]

    def stats(self) -> list[StatsReport]:
        """Every EVSE's counters now."""
        return [StatsReport.of(s) for s in self.sessions.values()]

    def status(self) -> list[dict[str, Any]]:
        """What the stdin ``status`` command prints: each EVSE's state and its counters."""
        return [
            {**report.to_dict(), "stats": stats.counters}
            for report, stats in zip(self.reports(), self.stats())
        ]

    def _counted(self, session: SlacEvseSession) -> None:
        report = StatsReport.of(session)
        for listener in self.stats_listeners:
            try:
                listener(report)
            except Exception:
                logger.exception("stats listener failed")

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
    "'<evse_id> <state>' for one; '<evse_id> dlink terminate|error|pause|resume' for a "
    "D-LINK request of the HLC side; 'status' prints every EVSE's state and counters"
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


def parse_stdin_line(line: str) -> tuple[Optional[str], str, Optional[DlinkCommand]]:
    """(evse id or None, CP state, None) from a CP line (:func:`parse_cp_line`), or
    (evse id or None, "", command) from "[<evse_id>] dlink <command>" (no id: every EVSE).
    UsageError (a ValueError) for an empty line or an unknown command."""
    words = line.split()
    if len(words) >= 2 and words[-2].lower() == "dlink":
        name = words[-1].lower()
        try:
            command = DlinkCommand(name)
        except ValueError:
            known = ", ".join(c.value for c in DlinkCommand)
            raise UsageError(f"no D-LINK command {name!r} (known: {known})") from None
        return " ".join(words[:-2]) or None, "", command
    evse_id, state = parse_cp_line(line)
    return evse_id, state, None


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
            for status in service.status():
                print(json.dumps(status), flush=True)
            continue
        try:
            evse_id, state, command = parse_stdin_line(text)
            if command is None:
                await service.set_cp(state, evse_id)
            else:
                for target in [evse_id] if evse_id is not None else list(service.sessions):
                    await service.dlink(target, command)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
