"""The EVSE's asyncio session and the public API: sessions per EVSE and the controller users
subclass.

- :class:`SlacSession` holds one EVSE's data (state, key, matched EV), as its machine's
  events say.
- :class:`SlacEvseSession` runs one :class:`~slac.fsm.station.EvseStation` (matcher, local
  modem, control pilot and key policy: every decision) over a raw socket with the one
  :class:`~slac.driver.Driver`; what it adds is awaiting: a key, a match, a link status.
- :class:`SlacSessionController` turns control-pilot states into matching tasks; the task
  reads the machine's events and calls the hooks that subclasses override, each with the
  event's data.

Nothing here blocks: frames are handled in the event loop's reader callback, in the order
they arrive, and answers leave at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Optional

from slac.driver import DrivenSession
from slac.environment import Config
from slac.errors import ConfigError, MatchingFailedError, SlacError, TransportError, UsageError
from slac.fsm.events import (
    DlinkCommand,
    DlinkDone,
    FailureReason,
    KeyNotSet,
    KeySet,
    LinkLost,
    LinkStatus,
    Matched,
    MatchingFailed,
    MatchingOngoing,
    MatchingStarted,
    ModemReady,
    ModemRestarted,
    ModemUnresponsive,
    SessionState,
    SlacEvent,
    StateChanged,
    Stopped,
    StopReason,
)
from slac.fsm.evse import EvseMatcher, parse_cp_state
from slac.fsm.interface import InterfaceWait
from slac.fsm.modem import ModemMachine
from slac.fsm.station import CpAction, EvseStation
from slac.fsm.station_view import StationView
from slac.fsm.stats import EvseCounters
from slac.host import ModemHost
from slac.sockets.async_linux_socket import RawSocket, interface_unavailable
from slac.tools.pcap import SharedPcap
from slac.utils import MacAddress

__all__ = [
    "CpAction",
    "DlinkCommand",
    "EvseLogAdapter",
    "MatchResult",
    "MatchingFailedError",
    "RestartCause",
    "SessionState",
    "SlacEvseSession",
    "SlacSession",
    "SlacSessionController",
]

logger = logging.getLogger(__name__)


class RestartCause(Enum):
    """Why matching starts again within one plug-in, without a CP cycle."""

    #: link supervision found the link to the EV lost
    LINK_LOST = "link lost"
    #: the HLC side asked for it (:meth:`SlacSessionController.restart_matching`)
    REQUESTED = "requested"


@dataclass(frozen=True)
class MatchResult:
    """A match: the EV, its RunID, the network ID it was given, and the mean attenuation
    this EVSE measured for it (dB)."""

    evse_id: str
    ev_mac: MacAddress
    run_id: bytes
    nid: bytes
    attenuation: Optional[float] = None


class EvseLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Prefixes every line with the EVSE id (and carries it as ``evse_id`` for formatters)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = self.extra or {}
        kwargs.setdefault("extra", {}).update(extra)
        return f"EVSE {extra.get('evse_id')}: {msg}", kwargs


class SlacSession:
    """The data of one EVSE: state, network key, and the EV it is matched with."""

    def __init__(self, evse_id: str, network_interface: str, config: Optional[Config] = None):
        if not evse_id:
            raise UsageError("an EVSE needs an id")
        self.evse_id = evse_id
        self.network_interface = network_interface
        self.config = config or Config()
        self.state = SessionState.UNMATCHED
        self.nmk: Optional[bytes] = None
        self.nid: Optional[bytes] = None
        self.evse_mac: Optional[MacAddress] = None
        self.ev_mac: Optional[MacAddress] = None
        self.run_id: Optional[bytes] = None
        self.cp_state: Optional[str] = None
        self.matching_task: Optional[asyncio.Task[None]] = None
        #: Called with the session after every change of :attr:`state` (ev_mac and run_id
        #: already updated); for status publishers such as the MQTT bridge.
        self.state_listeners: list[Callable[[SlacSession], None]] = []

    def _tell_listeners(self) -> None:
        for listener in self.state_listeners:
            listener(self)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.evse_id} on {self.network_interface}: "
            f"{self.state.value}>"
        )


class SlacEvseSession(SlacSession, DrivenSession[EvseStation]):
    """One EVSE: its interface, its modem, its state machine (:attr:`station`).

    ``token_bytes`` is the source of fresh keys (:func:`secrets.token_bytes` unless a test
    injects another). ``sudo_hint``: how your program runs as root (a command), added to the
    error when the raw socket may not be opened. ``station_view``: what the other EVSEs of this
    station (this process) heard of each EV, shared by their sessions (see
    :mod:`slac.fsm.station_view`); None: this EVSE decides alone.

    The verbs, as on :class:`slac.ev.SlacEvSession`: :meth:`open`, :meth:`close` (or
    ``async with``), :meth:`set_key`, :meth:`leave`, :meth:`match`, :meth:`next_event`,
    :meth:`link_is_up`, :attr:`state`.
    """

    TASK_EVENTS = (MatchingStarted, MatchingOngoing, Matched, MatchingFailed, Stopped, LinkLost)

    def __init__(
        self,
        evse_id: str,
        network_interface: str,
        config: Optional[Config] = None,
        *,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
        sudo_hint: Optional[str] = None,
        station_view: Optional[StationView] = None,
    ) -> None:
        super().__init__(evse_id, network_interface, config)
        self.log = EvseLogAdapter(logger, {"evse_id": evse_id})
        #: what the station's other EVSEs heard, shared by their sessions (set it before open())
        self.station_view = station_view
        self.host = ModemHost(network_interface, lambda f, n: None, self.log, sudo_hint=sudo_hint)
        self._init_driver()
        self._token_bytes = token_bytes
        self.last_result: Optional[MatchResult] = None
        #: the failure that ended the last plug-in (None after a match)
        self.last_failure: Optional[MatchingFailed] = None
        #: called with the session when a counter changed (:attr:`counters`): a match, a
        #: failure, a lost link, a D-LINK request; for publishers such as the MQTT bridge
        self.counter_listeners: list[Callable[[SlacEvseSession], None]] = []
        self._counted = 0
        #: why the interface cannot be opened while the state is UNAVAILABLE
        self.unavailable_reason: Optional[str] = None
        #: called (in the loop) when the modem does not answer any more, even after
        #: VS_RS_DEV.REQ: the controller's hardware reset hook (``reset_modem_hardware``)
        self.unresponsive_listeners: list[Callable[[SlacEvseSession, ModemUnresponsive], None]] = []
        self._pcap: Optional[SharedPcap] = None

    # --- what the machine knows ----------------------------------------------------------------

    @property
    def station(self) -> Optional[EvseStation]:
        """The sans-IO machine of this EVSE (None before :meth:`open`)."""
        return self.machine

    @property
    def matcher(self) -> Optional[EvseMatcher]:
        return None if self.machine is None else self.machine.matcher

    @property
    def modem(self) -> Optional[ModemMachine]:
        """CM_SET_KEY and link supervision (None before :meth:`open`)."""
        return None if self.machine is None else self.machine.modem

    @property
    def socket(self) -> RawSocket:
        return self.host.socket

    @property
    def modem_mac(self) -> Optional[MacAddress]:
        """The local modem's own MAC address, learned from its answers (None until then)."""
        return None if self.machine is None else self.machine.modem_mac

    @property
    def counters(self) -> EvseCounters:
        """Matches, failures, lost links and D-LINK requests by reason, since :meth:`open`
        (:mod:`slac.fsm.stats`; empty before it)."""
        return EvseCounters() if self.machine is None else self.machine.counters

    @property
    def dlink_terminated(self) -> bool:
        """The HLC side ended the data link (D-LINK_TERMINATE) and the control pilot was not
        A, E or F since: B, C or D start no matching."""
        return self.machine is not None and self.machine.terminated

    @property
    def dlink_paused(self) -> bool:
        """The HLC side paused the data link (D-LINK_PAUSE): matched, link not supervised."""
        return self.machine is not None and self.machine.paused

    @property
    def key_given_out(self) -> bool:
        """An EV received the current key: the next match needs a fresh one."""
        return self.machine is not None and self.machine.key_given_out

    @property
    def modem_counters(self) -> dict[str, int]:
        """What the status reports of the modem besides the state: restarts noticed, resets,
        and soundings whose profiles carried no values (EMPTY_PROFILE_ATTENUATION reported)."""
        station = self.machine
        if station is None:
            return {}
        return station.modem_counters

    # --- life cycle ---------------------------------------------------------------------------

    def _new_machine(self, mac: MacAddress) -> EvseStation:
        return EvseStation(
            mac,
            self.config,
            interface=self.network_interface,
            token_bytes=self._token_bytes,
            log=self.log,
            station_view=self.station_view,
        )

    async def open(self) -> None:
        """Open the raw socket (idempotent). Raises TransportError in plain words."""
        if self.host.is_open:
            return
        self._open_driver()
        if self.config.pcap_file and self._pcap is None:
            try:
                self._pcap = SharedPcap.acquire(self.config.pcap_file)
            except OSError as exc:
                self.host.close()
                raise ConfigError(
                    {"PCAP_FILE": f"cannot write {self.config.pcap_file}: {exc.strerror}"}
                ) from None
            self.host.observers.append(self._capture)
            self.log.info("writing every SLAC frame to %s", self.config.pcap_file)
        self.evse_mac = self.host.mac

    async def wait_open(self, *, strict: bool = False) -> None:
        """Open the interface, waiting for it while it does not exist yet or is down (issue
        15 item 1): state :attr:`SessionState.UNAVAILABLE` meanwhile (the listeners hear
        it), an INFO line, tries with a growing pause (:class:`~slac.fsm.interface.InterfaceWait`),
        a WARNING after 30 s; then state UNMATCHED. ``strict``, a bad interface name or a
        missing permission: the error at once (TransportError), as :meth:`open`."""
        loop = asyncio.get_running_loop()
        wait = InterfaceWait(self.network_interface, self.log)
        while True:
            try:
                await self.open()
                break
            except TransportError as exc:
                if strict or interface_unavailable(self.network_interface) is None:
                    raise
                self.unavailable_reason = str(exc)
                if self.state is not SessionState.UNAVAILABLE:
                    self.state = SessionState.UNAVAILABLE
                    self._tell_listeners()
                again = wait.failed(loop.time(), str(exc))
                await asyncio.sleep(max(0.0, again - loop.time()))
        if wait.opened(loop.time()) is not None or self.state is SessionState.UNAVAILABLE:
            self.unavailable_reason = None
            self.state = SessionState.UNMATCHED
            self._tell_listeners()

    async def close(self) -> None:
        """Stop matching, cancel this session's task and close the socket; a key change
        under way (leaving the logical network) is let finish first."""
        task = self.matching_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # a failure was already reported by the task itself
        station = self.machine
        if station is not None and self.host.is_open:
            if station.key_pending:
                # The EV still has the key: let the modem get a fresh one before closing. The
                # pause after it (SET_KEY_SETTLE_TIME) does not matter to a closing session.
                with contextlib.suppress(SlacError, OSError):
                    await self.wait_for((KeySet, KeyNotSet))
            self._need_driver().call(station.close)
        self._close_driver(f"the session on {self.network_interface} closed")
        if self._pcap is not None:
            self.host.observers.remove(self._capture)
            self._pcap.release()
            self._pcap = None

    def _capture(self, frame: bytes, _loop_time: float, _sent: bool) -> None:
        if self._pcap is not None:
            self._pcap.write(frame)

    async def __aenter__(self) -> SlacEvseSession:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- events -------------------------------------------------------------------------------

    def _on_event(self, event: SlacEvent) -> None:
        if isinstance(event, KeySet):
            self.nmk, self.nid = event.nmk, event.nid
        elif isinstance(event, Matched):
            self.last_failure = None
            self.last_result = MatchResult(
                self.evse_id, event.ev_mac, event.run_id, event.nid, event.attenuation
            )
        elif isinstance(event, MatchingFailed):
            self.last_failure = event
        super()._on_event(event)
        if isinstance(event, ModemRestarted):
            self._tell_listeners()  # the status carries the restart counter
        elif isinstance(event, ModemUnresponsive):
            for listener in self.unresponsive_listeners:
                listener(self, event)
        if (
            isinstance(event, DlinkDone)
            and event.applied
            and event.command in (DlinkCommand.PAUSE, DlinkCommand.RESUME)
        ):
            self._tell_listeners()  # still matched, but the status says "paused" now
        station = self.machine
        counted = (
            0
            if station is None
            else station.counters.changes + sum(station.modem_counters.values())
        )
        if station is not None and counted != self._counted:
            self._counted = counted
            for told in self.counter_listeners:
                told(self)

    def _state_changed(self, event: StateChanged, changed: bool) -> None:
        if changed:
            self._tell_listeners()

    # --- the local modem ------------------------------------------------------------------------

    async def set_key(self) -> None:
        """Give the local modem a fresh NMK (and its NID) with CM_SET_KEY.REQ.

        Sent to 00:B0:52:00:00:01; waits ``set_key_timeout`` for CM_SET_KEY.CNF, doubling the
        wait at each of ``set_key_retries`` resends; accepts the Result values in
        ``set_key_result_ok`` (QCA modems answer 0x01); then pauses ``set_key_settle_time``
        while the modem restarts. Raises :class:`ModemTimeoutError` (no answer) or
        :class:`ModemError` (refused); the next matching then sets a key first, since which
        key the modem holds is not known.
        """
        await self._modem_call(EvseStation.set_key, ModemReady)

    #: the name of :meth:`set_key` in the README and the seed
    evse_set_key = set_key

    async def leave(self) -> None:
        """Leave the EV's network: the match ends, a fresh key to the modem."""
        await self._modem_call(EvseStation.leave, ModemReady)

    #: the older name of :meth:`leave`
    leave_logical_network = leave

    def reset_modem(self, why: str = "asked") -> None:
        """Reset the modem now (VS_RS_DEV.REQ); it is waited for and keyed in the background."""
        station = self.machine
        if station is not None and self.host.is_open:
            self._need_driver().call(lambda now: station.reset_modem(now, why))

    def hardware_reset_done(self) -> None:
        """A hardware reset of the modem ran: wait for it (VS_SW_VER), then a fresh key."""
        station = self.machine
        if station is not None and self.host.is_open:
            self._need_driver().call(station.hardware_reset_done)

    def schedule_leave(self) -> None:
        """Leave the logical network in the background; the next matching waits for it."""
        station = self.machine
        if station is not None and self.host.is_open:
            self._need_driver().call(station.leave)

    async def link_is_up(self) -> Optional[bool]:
        """The modem's VS_PL_LINK_STATUS: True in a logical network, None without answer
        within ``set_key_timeout``."""
        timeout = self.config.set_key_timeout
        outcome = await self._modem_call(
            lambda station, now: station.query_link(now, timeout), LinkStatus
        )
        assert isinstance(outcome, LinkStatus)
        return outcome.linked

    # --- matching ---------------------------------------------------------------------------------

    async def begin(self) -> None:
        """Open the interface (again, if it failed) and let the machine match as soon as the
        modem can: with a fresh key first when an EV received the current one, when a key
        change failed, and after the interface failed (the modem behind it may have
        restarted). What follows are events (:meth:`next_event`)."""
        failed = self.host.socket.closed_reason is not None
        if failed:
            self.log.info(
                "opening %s again after: %s", self.network_interface, self.host.socket.closed_reason
            )
            self.host.socket.closed_reason = None
        await self.open()
        station = self.machine
        assert station is not None
        self._drain()  # what a task before this one left unread
        self._need_driver().call(lambda now: station.begin_matching(now, key_needed=failed))

    def control_pilot(self, state: str) -> CpAction:
        """Feed a control-pilot state to the machine: what the matching task must do.

        :class:`~slac.errors.CpStateError` for anything but A to F (B1, C2 count by letter).
        """
        letter = parse_cp_state(state)
        station = self.machine
        if self.state is SessionState.UNAVAILABLE:  # kept for when the interface comes
            self.cp_state = letter
            self.log.info("control pilot %s while the EVSE is unavailable: kept", letter)
            return CpAction.NONE
        if station is None or not self.host.is_open:  # not open yet: nothing is matching
            self.cp_state = letter
            if letter in "BCD":
                return CpAction.START
            return CpAction.STOP if letter == "A" else CpAction.NONE
        action = self._need_driver().call(lambda now: station.cp_state_changed(letter, now))
        self.cp_state = letter
        return action

    def cp_state_changed(self, state: str) -> bool:
        """Feed a control-pilot state; True when matching should start (see
        :meth:`control_pilot`, which says what else the state asks)."""
        return self.control_pilot(state) is CpAction.START

    def stop_matcher(self, reason: str) -> None:
        """Stop matching or the match (the task that ran it ends)."""
        station = self.machine
        if station is not None and self._loop is not None and self.host.is_open:
            self._need_driver().call(lambda now: station.stop(now, reason))

    def fail(self, reason: FailureReason, detail: str) -> MatchingFailed:
        """The matching task failed (the interface, a bug): stop, state FAILED."""
        station = self.machine
        if station is None or self._loop is None or not self.host.is_open:
            failed = MatchingFailed(reason, 0, detail)
            self.last_failure = failed
            self.state = SessionState.FAILED
            self._tell_listeners()
            return failed
        return self._need_driver().call(lambda now: station.fail(now, reason, detail))

    def request_restart(self, cause: RestartCause, reason: str) -> None:
        """Match again now, within the plug-in (the machine stops, leaves the logical network
        when an EV received the key, and starts again)."""
        station = self.machine
        if station is not None:
            self._need_driver().call(lambda now: station.restart(now, reason))

    def dlink(self, command: DlinkCommand, reason: str = "") -> CpAction:
        """Apply a D-LINK request to the machine (:meth:`EvseStation.dlink
        <slac.fsm.station.EvseStation.dlink>`): what the matching task must do. Open the
        session first."""
        station = self.machine
        if station is None or not self.host.is_open:
            raise UsageError("open() the session first")
        return self._need_driver().call(lambda now: station.dlink(command, now, reason))

    def matching_started(self) -> asyncio.Future[Any]:
        """A future that is done when the state machine is started next."""
        return self.expect((MatchingStarted,))

    async def match(self, timeout: Optional[float] = None) -> MatchResult:
        """Wait until this EVSE is matched; :class:`MatchingFailedError` (with the failure's
        reason) when matching failed."""

        async def wait() -> MatchResult:
            while True:
                if self.state is SessionState.MATCHED and self.last_result is not None:
                    return self.last_result
                if self.state is SessionState.FAILED:
                    failure = self.last_failure
                    why = f": {failure.reason.value}" if failure is not None else ""
                    raise MatchingFailedError(f"EVSE {self.evse_id}: matching failed{why}", failure)
                changed = self._changed
                if changed is None:
                    raise UsageError("open() the session first")
                changed.clear()
                await changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    #: the name of :meth:`match` in the README and the seed
    wait_matched = match


class SlacSessionController:
    """Turns control-pilot states into SLAC matching; subclass it and override the hooks.

    Feed it :meth:`process_cp_state` from wherever the control pilot is read (GPIO, MQTT,
    ...). The hooks are coroutines called from the matching task, each with the data of the
    machine's event: override ``on_matching_ongoing``, ``notify_matched``,
    ``on_matching_failed`` and ``on_link_lost`` for the event itself, or the older
    ``notify_matching_ongoing``, ``notify_matching_failed`` and ``notify_link_lost`` (the
    EVSE id alone), which the ``on_*`` hooks call by default. By default they only log.
    """

    async def process_cp_state(self, session: SlacEvseSession, state: str) -> None:
        """React to a control-pilot state ("A" to "F"; "B1", "C2" count by their letter).

        What a state means is decided by the session's machine
        (:meth:`EvseStation.cp_state_changed <slac.fsm.station.EvseStation.cp_state_changed>`):
        B, C or D after A, E or F starts :meth:`start_matching` as a task named
        ``slac-matching-<evse id>``; A stops it (and, if the EV got the key, leaves the
        logical network in the background); E or F end a match.
        """
        self.watch_modem(session)
        action = session.control_pilot(state)
        task = session.matching_task
        running = task is not None and not task.done()
        if action is CpAction.START and not running:
            self._start_task(session)
        elif action is CpAction.STOP and running:
            assert task is not None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start_task(self, session: SlacEvseSession) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(
            self.start_matching(session), name=f"slac-matching-{session.evse_id}"
        )
        session.matching_task = task
        return task

    async def start_matching(self, session: SlacEvseSession) -> None:
        """Run matching for one plug-in: until it fails, or until cancelled (unplug).

        Once matched, the machine supervises the link (VS_PL_LINK_STATUS every
        ``link_check_period``): when it finds the link lost, it leaves the logical network
        and matches again, and :meth:`notify_link_lost` is called; so it does for
        :meth:`restart_matching`.
        """
        hlc_enabled = False
        try:
            await session.begin()
            while True:
                event = await session.next_event()
                if isinstance(event, MatchingStarted):
                    if not hlc_enabled:
                        hlc_enabled = True
                        await self.enable_hlc_charging(session.evse_id)
                elif isinstance(event, MatchingOngoing):
                    await self.on_matching_ongoing(session.evse_id, event)
                elif isinstance(event, Matched):
                    result = MatchResult(
                        session.evse_id, event.ev_mac, event.run_id, event.nid, event.attenuation
                    )
                    await self.notify_matched(session.evse_id, result)
                elif isinstance(event, MatchingFailed):
                    await self.on_matching_failed(session.evse_id, event)
                    return
                elif isinstance(event, Stopped):
                    if event.reason is not StopReason.RESTART:
                        return  # the control pilot, or the session closed
                elif isinstance(event, LinkLost):
                    await self.on_link_lost(session.evse_id, event)
        except asyncio.CancelledError:
            session.stop_matcher("matching task cancelled")
            raise
        except (SlacError, OSError) as exc:  # the interface or the modem: one clear line
            session.log.error("matching failed: %s", exc)
            failure = session.fail(FailureReason.INTERFACE, str(exc))
            await self._report_failure(session, failure)
        except Exception as exc:
            session.log.exception("matching task failed")
            failure = session.fail(FailureReason.INTERNAL, f"matching task failed: {exc}")
            await self._report_failure(session, failure)

    async def restart_matching(
        self, session: SlacEvseSession, reason: str = "requested by the HLC side"
    ) -> None:
        """Match again within this plug-in, without a CP cycle (ISO 15118-3 gives three ways
        to a new match: a CP cycle, a lost link, or a request from the HLC side; this is the
        third): :meth:`dlink_request` with :attr:`DlinkCommand.ERROR`, ``reason`` in the log.

        The EVSE stops matching (or ends the match), leaves the logical network (a fresh key
        to the modem, when an EV received the current one) and waits for CM_SLAC_PARM.REQ
        again, with every attempt (``MATCHING_ATTEMPTS``) available; also after matching
        failed for this plug-in, and after D-LINK_TERMINATE. Returns once matching runs
        again, or once the attempt to get there failed (which goes the usual way: one error
        line and :meth:`notify_matching_failed`). Without an EV plugged in (CP A, E or F, or
        no CP state yet) nothing happens.
        """
        await self.dlink_request(session, DlinkCommand.ERROR, reason)

    async def dlink_request(
        self, session: SlacEvseSession, command: DlinkCommand, reason: str = ""
    ) -> None:
        """A D-LINK request of the HLC side (ISO 15118-3 D-LINK_TERMINATE, D-LINK_ERROR,
        D-LINK_PAUSE, and the resume that ends a pause), decided by the session's machine
        (:meth:`EvseStation.dlink <slac.fsm.station.EvseStation.dlink>`); ``command`` is a
        :class:`DlinkCommand` or its value ("terminate", "error", "pause", "resume").

        - TERMINATE: leave the logical network (a fresh key to the modem when an EV received
          the current one), unmatched; no new match until the control pilot was A, E or F.
          Returns once the matching task ended.
        - ERROR: leave the logical network and match again without a CP cycle (as
          :meth:`restart_matching`). Returns once matching runs again (or failed to).
        - PAUSE: stay matched, link supervision stops; the key stays in the modem.
        - RESUME: link supervision again; the link must be up within TT_match_join, else
          the EVSE leaves the network and matches again (:meth:`on_link_lost`).

        A request that does not apply (PAUSE while not matched, ERROR without an EV plugged
        in, ...) changes nothing and says so in the log. ValueError for an unknown command.
        """
        command = DlinkCommand(command)
        await session.open()
        task = session.matching_task
        started = session.matching_started()
        try:
            action = session.dlink(command, reason)
            running = task is not None and not task.done()
            if action is CpAction.STOP and running:
                assert task is not None
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # it ends on Stopped (D-LINK_TERMINATE)
            elif action is CpAction.START and not running:
                task = self._start_task(session)
            elif not (command is DlinkCommand.ERROR and running):
                return
            if command is DlinkCommand.ERROR:
                assert task is not None
                await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()

    async def _report_failure(self, session: SlacEvseSession, failure: MatchingFailed) -> None:
        try:
            await self.on_matching_failed(session.evse_id, failure)
        except Exception:
            session.log.exception("notify_matching_failed raised")

    # --- hooks ------------------------------------------------------------------------------------

    def watch_modem(self, session: SlacEvseSession) -> None:
        """Run :meth:`reset_modem_hardware` when this session's modem answers nothing any
        more (:meth:`process_cp_state` does this for every session it is given)."""
        if self._modem_unresponsive not in session.unresponsive_listeners:
            session.unresponsive_listeners.append(self._modem_unresponsive)

    def hardware_resets_running(self) -> dict[str, asyncio.Task[None]]:
        """The hardware resets under way, by EVSE id."""
        running: Optional[dict[str, asyncio.Task[None]]] = getattr(self, "_hardware_resets", None)
        if running is None:
            running = {}
            self._hardware_resets = running
        return running

    def _modem_unresponsive(self, session: SlacEvseSession, event: ModemUnresponsive) -> None:
        running = self.hardware_resets_running()
        if session.evse_id in running:
            return
        running[session.evse_id] = asyncio.get_running_loop().create_task(
            self._hardware_reset(session, event.detail),
            name=f"slac-hardware-reset-{session.evse_id}",
        )

    async def _hardware_reset(self, session: SlacEvseSession, reason: str) -> None:
        try:
            if await self.reset_modem_hardware(session.evse_id, reason):
                session.hardware_reset_done()
        except Exception:
            session.log.exception("the hardware reset failed")
        finally:
            self.hardware_resets_running().pop(session.evse_id, None)

    async def reset_modem_hardware(self, evse_id: str, reason: str) -> bool:
        """The EVSE's modem does not answer any more, not even VS_RS_DEV.REQ (``reason``):
        reset it by hardware (a reset line, its power) and return True once done; the
        session then waits for the modem and gives it a fresh key. Default: a WARNING, False
        (nothing done). ``slac evse`` runs the station file's ``reset_command``."""
        logger.warning(
            "EVSE %s: the modem needs a hardware reset (%s), but none is configured",
            evse_id,
            reason,
        )
        return False

    async def enable_hlc_charging(self, evse_id: str) -> None:
        """The EVSE is ready to match: signal high-level communication (5 % PWM on the CP).

        ISO 15118-3: the EV starts SLAC when it sees the 5 % duty cycle. Default: log only.
        """
        logger.info("EVSE %s: ready to match (set 5 %% PWM for HLC)", evse_id)

    async def on_matching_ongoing(self, evse_id: str, event: MatchingOngoing) -> None:
        """An EV started matching: ``event.ev_mac`` and ``event.run_id`` of its first
        CM_SLAC_PARM.REQ. Default: :meth:`notify_matching_ongoing`."""
        await self.notify_matching_ongoing(evse_id)

    async def notify_matching_ongoing(self, evse_id: str) -> None:
        """An EV started matching (its first CM_SLAC_PARM.REQ arrived). Default: a DEBUG line
        (the state machine's INFO line about that request says it already)."""
        logger.debug("EVSE %s: matching ongoing", evse_id)

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        """The EV got this EVSE's network key: ISO 15118-2/-20 can start. Default: log only.

        ``await session.match()`` is the awaitable form of the same news.
        """
        logger.info("EVSE %s: matched with EV %s", evse_id, result.ev_mac)

    async def on_matching_failed(self, evse_id: str, failure: MatchingFailed) -> None:
        """Matching failed for this plug-in (or the task broke): ``failure.reason`` says why
        (a :class:`~slac.fsm.events.FailureReason`), ``failure.attenuation`` what this EVSE
        measured for ``failure.ev_mac``, where known (the machine's WARNING line said it
        already). Default: :meth:`notify_matching_failed`."""
        await self.notify_matching_failed(evse_id)

    async def notify_matching_failed(self, evse_id: str) -> None:
        """Matching failed for this plug-in (or the task broke). Default: log only."""
        logger.warning("EVSE %s: matching failed", evse_id)

    async def on_link_lost(self, evse_id: str, event: LinkLost) -> None:
        """Link supervision found the link to the matched EV lost: ``event.loss`` (its
        ``.failure`` is the :class:`~slac.fsm.events.FailureReason`: NOT_JOINED, LINK_LOST,
        MODEM_SILENT). Default: :meth:`notify_link_lost`."""
        await self.notify_link_lost(evse_id)

    async def notify_link_lost(self, evse_id: str) -> None:
        """Link supervision found the link to the matched EV lost (the modem reported no
        link, the EV did not join within TT_match_join, or the modem stopped answering).
        Default: a DEBUG line (the supervision's WARNING line says why already).

        The EVSE then leaves the network itself (a fresh key) and matches again.
        """
        logger.debug("EVSE %s: link to the EV lost", evse_id)
