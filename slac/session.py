"""The asyncio glue and the public API: sessions per EVSE and the controller users subclass.

- :class:`SlacSession` holds one EVSE's data (state, key, matched EV).
- :class:`SlacEvseSession` adds the I/O: a raw socket on the EVSE's interface and two sans-IO
  machines, :class:`~slac.fsm.evse.EvseMatcher` (matching) and
  :class:`~slac.fsm.modem.ModemMachine` (the local modem's key, link supervision), driven by
  frames as they arrive and one timer, armed at the earlier of their deadlines.
- :class:`SlacSessionController` turns control-pilot states into matching tasks and tells
  the application what happens through hooks that subclasses override.

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
from typing import Any, Callable, Optional, Union

from slac.environment import Config
from slac.errors import ConfigError, SlacError, TransportError
from slac.fsm.events import (
    Event,
    Matched,
    MatchingFailed,
    MatchingOngoing,
    Stopped,
)
from slac.fsm.evse import EvseMatcher, parse_cp_state
from slac.fsm.modem import (
    KeyNotSet,
    KeySet,
    LinkLost,
    LinkStatus,
    ModemEvent,
    ModemFound,
    ModemMachine,
)
from slac.fsm.station_view import StationView
from slac.host import ModemHost
from slac.messages import Frame
from slac.sockets.async_linux_socket import RawSocket
from slac.tools.pcap import SharedPcap
from slac.utils import MacAddress, generate_nmk, nid_from_nmk

logger = logging.getLogger(__name__)


#: the events the matching task acts on; the others (a run ended, an attempt began or
#: failed) are in the log, and waking the task for each would cost a car park dearly
_TASK_EVENTS = (MatchingOngoing, Matched, MatchingFailed, Stopped)


class SessionState(str, Enum):
    """Where one EVSE stands."""

    UNMATCHED = "unmatched"
    MATCHING = "matching"
    MATCHED = "matched"
    FAILED = "failed"


class MatchingFailedError(SlacError):
    """Matching ended without a match (every attempt failed, or it was stopped)."""


class RestartCause(Enum):
    """Why matching starts again within one plug-in, without a CP cycle."""

    #: link supervision found the link to the EV lost
    LINK_LOST = "link lost"
    #: the HLC side asked for it (:meth:`SlacSessionController.restart_matching`)
    REQUESTED = "requested"


@dataclass(frozen=True)
class MatchingRestart:
    """For the matching task: leave the logical network and match again, and why."""

    cause: RestartCause
    reason: str


TaskItem = Union[Event, MatchingRestart]
ModemWaiter = tuple[tuple[type, ...], "asyncio.Future[ModemEvent]"]


@dataclass(frozen=True)
class MatchResult:
    """A match: the EV, its RunID, and the network ID it was given."""

    evse_id: str
    ev_mac: MacAddress
    run_id: bytes
    nid: bytes


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
            raise ValueError("an EVSE needs an id")
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

    def _set_state(self, state: SessionState) -> None:
        if state is not self.state:
            self.state = state
            for listener in self.state_listeners:
                listener(self)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.evse_id} on {self.network_interface}: "
            f"{self.state.value}>"
        )


class SlacEvseSession(SlacSession):
    """One EVSE: its interface, its modem, its matching state machine.

    ``token_bytes`` is the source of fresh keys (:func:`secrets.token_bytes` unless a test
    injects another). ``sudo_hint``: how your program runs as root (a command), added to the
    error when the raw socket may not be opened. ``station``: what the other EVSEs of this
    station (this process) heard of each EV, shared by their sessions (see
    :mod:`slac.fsm.station_view`); None: this EVSE decides alone.
    """

    def __init__(
        self,
        evse_id: str,
        network_interface: str,
        config: Optional[Config] = None,
        *,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
        sudo_hint: Optional[str] = None,
        station: Optional[StationView] = None,
    ) -> None:
        super().__init__(evse_id, network_interface, config)
        self.log = EvseLogAdapter(logger, {"evse_id": evse_id})
        #: shared with the station's other sessions (set it before open())
        self.station = station
        self.host = ModemHost(
            network_interface,
            self._on_frame,
            self.log,
            on_modem_answer=self._on_modem_frame,
            sudo_hint=sudo_hint,
        )
        self._token_bytes = token_bytes
        self.matcher: Optional[EvseMatcher] = None
        #: CM_SET_KEY and link supervision (created in open(), with the interface's MAC)
        self.modem: Optional[ModemMachine] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        # Created in open(), inside the running loop (Python 3.9 binds them at creation).
        self._events: asyncio.Queue[Union[TaskItem, BaseException]]
        self._changed: asyncio.Event
        self._key_lock: asyncio.Lock
        self._key_set: asyncio.Event
        self._leave_task: Optional[asyncio.Task[None]] = None
        self._modem_waiters: list[ModemWaiter] = []
        self._start_waiters: list[asyncio.Future[None]] = []
        #: an EV received the current key: the next match needs a fresh one
        self.key_given_out = False
        #: a CM_SET_KEY.REQ went out unconfirmed: which key the modem holds is not known
        self._key_unsure = False
        self.last_result: Optional[MatchResult] = None
        self._pcap: Optional[SharedPcap] = None

    @property
    def socket(self) -> RawSocket:
        return self.host.socket

    @property
    def modem_mac(self) -> Optional[MacAddress]:
        """The local modem's own MAC address, learned from its answers (None until then)."""
        return None if self.modem is None else self.modem.modem_mac

    # --- life cycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Open the raw socket (idempotent). Raises TransportError in plain words."""
        if self.host.is_open:
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._events = asyncio.Queue()
            self._changed = asyncio.Event()
            self._key_lock = asyncio.Lock()
            self._key_set = asyncio.Event()  # a key went to the modem (its settle pause runs)
        self.host.open()
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
        if self.matcher is not None and self.host.mac != self.evse_mac:
            # the interface was created again with another MAC: new machines for it
            self.matcher = None
            self.modem = None
        self.evse_mac = self.host.mac
        assert self.evse_mac is not None
        if self.modem is None:
            self.modem = ModemMachine(self.evse_mac, self.config, log=self.log)
        if self.matcher is None:
            self.matcher = EvseMatcher(
                self.evse_mac,
                nmk=self.nmk or bytes(16),
                nid=self.nid or bytes(7),
                config=self.config,
                log=self.log,
                station=self.station,
            )
            self.matcher.modem_mac = self.modem.modem_mac

    async def close(self) -> None:
        """Stop matching, cancel this session's tasks and close the socket."""
        task = self.matching_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task  # a failure was already reported by the task itself
        leave = self._leave_task
        if leave is not None and not leave.done():
            # The EV still has the key: let the modem get a fresh one before closing. The
            # pause after it (SET_KEY_SETTLE_TIME) does not matter to a closing session, and
            # must not outlast a service manager's stop timeout.
            key_set = asyncio.ensure_future(self._key_set.wait())
            await asyncio.wait({leave, key_set}, return_when=asyncio.FIRST_COMPLETED)
            key_set.cancel()
            leave.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await leave
        if self.matcher is not None and self._loop is not None:
            self.matcher.stop(self._loop.time(), "session closed")
            self._flush()
        if self.modem is not None:
            self.modem.stop()
        self._fail_modem_waiters(TransportError(f"the session on {self.network_interface} closed"))
        self.host.close()
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

    # --- the local modem ------------------------------------------------------------------------

    async def evse_set_key(self) -> None:
        """Give the local modem a fresh NMK (and its NID) with CM_SET_KEY.REQ.

        Sent to 00:B0:52:00:00:01; waits ``set_key_timeout`` for CM_SET_KEY.CNF, doubling the
        wait at each of ``set_key_retries`` resends; accepts the Result values in
        ``set_key_result_ok`` (QCA modems answer 0x01); then pauses ``set_key_settle_time``
        while the modem restarts. Raises :class:`ModemTimeoutError` (no answer) or
        :class:`ModemError` (refused); the next matching then sets a key first, since which
        key the modem holds is not known.
        """
        await self.open()
        async with self._key_lock:
            self._key_set.clear()
            nmk = generate_nmk(self._token_bytes)
            nid = nid_from_nmk(nmk)
            self._key_unsure = True
            outcome = await self._modem_call(
                lambda modem, now: modem.set_key(nmk, nid, now),
                (KeySet, KeyNotSet),
                abort=ModemMachine.abort_key,
            )
            if isinstance(outcome, KeyNotSet):
                raise outcome.error(self.network_interface)
            self.log.info("new network key set on the modem (NID %s)", nid.hex())
            self.log.debug("NMK %s", nmk.hex())
            self._key_set.set()
            if self.config.set_key_settle_time > 0:
                await asyncio.sleep(self.config.set_key_settle_time)

    async def leave_logical_network(self) -> None:
        """Leave the EV's network: a fresh key to the modem, back to Unmatched."""
        self.log.info("leaving the logical network")
        self.ev_mac = self.run_id = None
        self._set_state(SessionState.UNMATCHED)
        await self.evse_set_key()

    def schedule_leave(self) -> None:
        """Leave the logical network in the background; the next matching waits for it."""
        if self._leave_task is not None and not self._leave_task.done():
            return
        self._leave_task = asyncio.get_running_loop().create_task(
            self._leave_in_background(), name=f"slac-leave-{self.evse_id}"
        )

    async def _leave_in_background(self) -> None:
        try:
            await self.leave_logical_network()
        except (SlacError, OSError) as exc:
            # The plug-in that needs the key says so: the next one sets a key first, and
            # fails with the modem's error if it cannot (never matching with this key).
            self.log.warning(
                "could not give the modem a fresh key after unplug: %s; the next plug-in "
                "sets one before matching",
                exc,
            )

    async def ready(self) -> None:
        """Wait until the modem can match: the interface open (again, if it failed), a
        pending key change done, and a key that no EV received: set again when an EV
        received the current one (after RESET_KEY_ON_UNPLUG=false, or when the key change
        after unplug failed), when a key change failed, and after the interface failed (the
        modem behind it may have restarted). Raises the modem's error if it cannot."""
        failed = self.host.socket.closed_reason is not None
        if failed:
            self.log.info(
                "opening %s again after: %s", self.network_interface, self.host.socket.closed_reason
            )
            self.host.socket.closed_reason = None
        await self.open()
        if self._leave_task is not None:
            await asyncio.shield(self._leave_task)
        if self.key_given_out:
            self.log.info("leaving the logical network: an EV received the current key")
        if self.nmk is None or failed or self.key_given_out or self._key_unsure:
            await self.evse_set_key()

    async def link_is_up(self) -> Optional[bool]:
        """The modem's VS_PL_LINK_STATUS: True in a logical network, None without answer
        within ``set_key_timeout``."""
        await self.open()
        timeout = self.config.set_key_timeout
        outcome = await self._modem_call(
            lambda modem, now: modem.query_link(now, timeout), (LinkStatus,)
        )
        assert isinstance(outcome, LinkStatus)
        return outcome.linked

    async def _modem_call(
        self,
        call: Callable[[ModemMachine, float], None],
        outcomes: tuple[type, ...],
        abort: Optional[Callable[[ModemMachine], None]] = None,
    ) -> ModemEvent:
        """Make a request of the modem machine and wait for its first event of a kind in
        ``outcomes``. ``abort`` ends the request in the machine when the wait ends
        otherwise (cancelled, the interface failed)."""
        modem, loop = self.modem, self._loop
        assert modem is not None and loop is not None, "open() first"
        waiter: asyncio.Future[ModemEvent] = loop.create_future()
        entry: ModemWaiter = (outcomes, waiter)
        self._modem_waiters.append(entry)
        try:
            call(modem, loop.time())
            self._flush()
            return await waiter
        finally:
            self._modem_waiters.remove(entry)
            if abort is not None:
                abort(modem)  # a no-op once the request ended in the machine

    def _fail_modem_waiters(self, exc: BaseException) -> None:
        for _, waiter in self._modem_waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    # --- matching ---------------------------------------------------------------------------------

    def start_matcher(self) -> None:
        """Start the state machine now (the controller calls it when the modem is ready)."""
        assert self.matcher is not None
        assert self._loop is not None
        while not self._events.empty():  # restarts asked for meanwhile: this start is theirs
            self._events.get_nowait()
        self.matcher.start(self._loop.time())
        self._flush()
        waiters, self._start_waiters = self._start_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def stop_matcher(self, reason: str) -> None:
        if self.matcher is not None and self._loop is not None:
            self.matcher.stop(self._loop.time(), reason)
            self._flush()

    async def restart_matcher(self, reason: str) -> None:
        """Stop matching (or the match), leave the logical network when an EV received the
        key, and start matching again: the matching task does this for a
        :class:`MatchingRestart`."""
        self.stop_matcher(f"matching again ({reason})")
        await self.ready()
        self.start_matcher()

    def request_restart(self, cause: RestartCause, reason: str) -> None:
        """Ask the matching task to match again (see :meth:`restart_matcher`)."""
        self._events.put_nowait(MatchingRestart(cause, reason))

    def matching_started(self) -> asyncio.Future[None]:
        """A future that is done when the state machine is started next."""
        loop = self._loop or asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._start_waiters.append(waiter)
        return waiter

    def cp_state_changed(self, state: str) -> bool:
        """Feed a control-pilot state to the state machine; True when matching should start."""
        letter = parse_cp_state(state)
        self.cp_state = letter
        if self.matcher is None:  # not open yet: nothing is matching
            return letter in "BCD"
        loop = self._loop or asyncio.get_running_loop()
        starts = self.matcher.cp_state_changed(letter, loop.time())
        self._flush()
        return starts

    async def next_event(self, timeout: Optional[float] = None) -> Optional[TaskItem]:
        """The next event for the matching task (the state machine's events it acts on, and
        :class:`MatchingRestart`); None after ``timeout`` seconds without one.

        Raises what broke the frame handling, if anything did.
        """
        try:
            item = await asyncio.wait_for(self._events.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    async def wait_matched(self, timeout: Optional[float] = None) -> MatchResult:
        """Wait until this EVSE is matched; MatchingFailedError when matching failed."""

        async def wait() -> MatchResult:
            while True:
                if self.state is SessionState.MATCHED and self.last_result is not None:
                    return self.last_result
                if self.state is SessionState.FAILED:
                    raise MatchingFailedError(f"EVSE {self.evse_id}: matching failed")
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), timeout)

    # --- the event loop side ------------------------------------------------------------------

    def _on_frame(self, frame: Frame, now: float) -> None:
        if self.matcher is None:
            return
        try:
            self.matcher.receive_frame(frame, now)
            self._flush()
        except Exception as exc:  # a bug must end the task loudly, not vanish in a callback
            self._broken(exc)

    def _on_modem_frame(self, frame: Frame, now: float) -> None:
        if self.modem is None:
            return
        try:
            self.modem.receive_frame(frame, now)
            self._flush()
        except Exception as exc:
            self._broken(exc)

    def _on_timer(self) -> None:
        if self._loop is None:
            return
        now = self._loop.time()
        try:
            if self.matcher is not None:
                self.matcher.handle_timer(now)
            if self.modem is not None:
                self.modem.handle_timer(now)
            self._flush()
        except Exception as exc:
            self._broken(exc)

    def _broken(self, exc: Exception) -> None:
        """Frame handling failed (the interface, or a bug): whoever waits hears of it."""
        self._fail_modem_waiters(exc)
        self._events.put_nowait(exc)

    def _flush(self) -> None:
        """Send what the state machines want sent, apply their events, re-arm the timer at
        the earlier of their deadlines."""
        matcher, modem = self.matcher, self.modem
        if matcher is not None:
            for item in matcher.frames_to_send():
                self.host.send(item.message, item.dst)
            for event in matcher.events():
                self._apply(event)
                if isinstance(event, _TASK_EVENTS):  # the matching task waits for these only
                    self._events.put_nowait(event)
        if modem is not None:
            for item in modem.frames_to_send():
                self.host.send(item.message, item.dst)
            for modem_event in modem.events():
                self._apply_modem(modem_event)
        deadline = None if matcher is None else matcher.deadline
        if modem is not None and modem.deadline is not None:
            deadline = modem.deadline if deadline is None else min(deadline, modem.deadline)
        self.host.arm_timer(deadline, self._on_timer)

    def _apply(self, event: Event) -> None:
        if isinstance(event, MatchingOngoing):
            self.ev_mac, self.run_id = event.ev_mac, event.run_id
            if self.modem is not None:
                self.modem.stop_supervision()  # the match (if any) is over
            self._set_state(SessionState.MATCHING)
        elif isinstance(event, Matched):
            self.key_given_out = True
            self.ev_mac, self.run_id = event.ev_mac, event.run_id
            self.last_result = MatchResult(self.evse_id, event.ev_mac, event.run_id, event.nid)
            if self.modem is not None and self._loop is not None:
                self.modem.start_supervision(self._loop.time())
            self._set_state(SessionState.MATCHED)
        elif isinstance(event, (MatchingFailed, Stopped)):
            if self.modem is not None:
                self.modem.stop_supervision()
            if isinstance(event, MatchingFailed):
                self._set_state(SessionState.FAILED)
            else:
                self.ev_mac = self.run_id = None
                self._set_state(SessionState.UNMATCHED)

    def _apply_modem(self, event: ModemEvent) -> None:
        if isinstance(event, KeySet):
            # at once, before any other frame: CM_SLAC_MATCH.CNF hands out what the modem holds
            self.nmk, self.nid = event.nmk, event.nid
            self.key_given_out = False
            self._key_unsure = False
            if self.matcher is not None:
                self.matcher.set_key(event.nmk, event.nid)
        elif isinstance(event, ModemFound):
            if self.matcher is not None:
                self.matcher.modem_mac = event.mac
        elif isinstance(event, LinkLost):
            self.request_restart(RestartCause.LINK_LOST, f"link lost: {event.reason}")
        for outcomes, waiter in self._modem_waiters:
            if isinstance(event, outcomes) and not waiter.done():
                waiter.set_result(event)

    def _set_state(self, state: SessionState) -> None:
        if state is not self.state:
            super()._set_state(state)
            if self._loop is not None:
                self._changed.set()


class SlacSessionController:
    """Turns control-pilot states into SLAC matching; subclass it and override the hooks.

    Feed it :meth:`process_cp_state` from wherever the control pilot is read (GPIO, MQTT,
    ...). The hooks are coroutines called from the matching task; by default they only log.
    """

    async def process_cp_state(self, session: SlacEvseSession, state: str) -> None:
        """React to a control-pilot state ("A" to "F"; "B1", "C2" count by their letter).

        B, C or D after A, E or F starts :meth:`start_matching` as a task named
        ``slac-matching-<evse id>``. A stops it (and, if the EV got the key, leaves the
        logical network in the background); E or F stop it only when matched.
        """
        letter = parse_cp_state(state)
        previous = session.cp_state
        starts = session.cp_state_changed(letter)
        task = session.matching_task
        running = task is not None and not task.done()
        if starts:
            if not running:
                session.matching_task = asyncio.get_running_loop().create_task(
                    self.start_matching(session), name=f"slac-matching-{session.evse_id}"
                )
            return
        stop = letter == "A" or (letter in "EF" and session.state is SessionState.MATCHED)
        if stop and running:
            assert task is not None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if stop:
            if session.key_given_out and session.config.reset_key_on_unplug:
                session.schedule_leave()
            session.ev_mac = session.run_id = None
            session._set_state(SessionState.UNMATCHED)
        elif previous != letter:
            session.log.debug("control pilot %s (was %s)", letter, previous)

    async def start_matching(self, session: SlacEvseSession) -> None:
        """Run matching for one plug-in: until it fails, or until cancelled (unplug).

        Once matched, the modem machine supervises the link (VS_PL_LINK_STATUS every
        ``link_check_period``): when it finds the link lost, :meth:`notify_link_lost` is
        called, the EVSE leaves the logical network and matching starts again; so it does
        for :meth:`restart_matching`.
        """
        try:
            await session.ready()
            session.start_matcher()
            await self.enable_hlc_charging(session.evse_id)
            while True:
                event = await session.next_event()
                if isinstance(event, MatchingOngoing):
                    await self.notify_matching_ongoing(session.evse_id)
                elif isinstance(event, Matched):
                    assert session.last_result is not None
                    await self.notify_matched(session.evse_id, session.last_result)
                elif isinstance(event, MatchingFailed):
                    await self.notify_matching_failed(session.evse_id)
                    return
                elif isinstance(event, Stopped):
                    return  # the control pilot, or the session closed
                elif isinstance(event, MatchingRestart):
                    if event.cause is RestartCause.LINK_LOST:
                        await self.notify_link_lost(session.evse_id)
                    await session.restart_matcher(event.reason)
        except asyncio.CancelledError:
            session.stop_matcher("matching task cancelled")
            raise
        except (SlacError, OSError) as exc:  # the interface or the modem: one clear line
            session.log.error("matching failed: %s", exc)
            session.stop_matcher("matching failed")
            session._set_state(SessionState.FAILED)
            await self._report_failure(session)
        except Exception:
            session.log.exception("matching task failed")
            session.stop_matcher("matching task failed")
            session._set_state(SessionState.FAILED)
            await self._report_failure(session)

    async def restart_matching(
        self, session: SlacEvseSession, reason: str = "requested by the HLC side"
    ) -> None:
        """Match again within this plug-in, without a CP cycle (ISO 15118-3 gives three ways
        to a new match: a CP cycle, a lost link, or a request from the HLC side; this is the
        third).

        The EVSE stops matching (or ends the match), leaves the logical network (a fresh key
        to the modem, when an EV received the current one) and waits for CM_SLAC_PARM.REQ
        again, with every attempt (``MATCHING_ATTEMPTS``) available; also after matching
        failed for this plug-in. ``reason`` goes into the log. Returns once matching runs
        again, or once the attempt to get there failed (which goes the usual way: one error
        line and :meth:`notify_matching_failed`). Without an EV plugged in (CP A, E or F, or
        no CP state yet) nothing happens.
        """
        task = session.matching_task
        running = task is not None and not task.done()
        if not running and (session.cp_state is None or session.cp_state not in "BCD"):
            session.log.info("matching again requested (%s), but no EV is plugged in", reason)
            return
        started = session.matching_started()
        if running:
            session.request_restart(RestartCause.REQUESTED, reason)
        else:
            session.log.info("matching again: %s", reason)
            task = asyncio.get_running_loop().create_task(
                self.start_matching(session), name=f"slac-matching-{session.evse_id}"
            )
            session.matching_task = task
        assert task is not None
        try:
            await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()

    async def _report_failure(self, session: SlacEvseSession) -> None:
        try:
            await self.notify_matching_failed(session.evse_id)
        except Exception:
            session.log.exception("notify_matching_failed raised")

    # --- hooks ------------------------------------------------------------------------------------

    async def enable_hlc_charging(self, evse_id: str) -> None:
        """The EVSE is ready to match: signal high-level communication (5 % PWM on the CP).

        ISO 15118-3: the EV starts SLAC when it sees the 5 % duty cycle. Default: log only.
        """
        logger.info("EVSE %s: ready to match (set 5 %% PWM for HLC)", evse_id)

    async def notify_matching_ongoing(self, evse_id: str) -> None:
        """An EV started matching (its first CM_SLAC_PARM.REQ arrived). Default: a DEBUG line
        (the state machine's INFO line about that request says it already)."""
        logger.debug("EVSE %s: matching ongoing", evse_id)

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        """The EV got this EVSE's network key: ISO 15118-2/-20 can start. Default: log only.

        ``await session.wait_matched()`` is the awaitable form of the same news.
        """
        logger.info("EVSE %s: matched with EV %s", evse_id, result.ev_mac)

    async def notify_matching_failed(self, evse_id: str) -> None:
        """Matching failed for this plug-in (or the task broke). Default: log only."""
        logger.warning("EVSE %s: matching failed", evse_id)

    async def notify_link_lost(self, evse_id: str) -> None:
        """Link supervision found the link to the matched EV lost (the modem reported no
        link, the EV did not join within TT_match_join, or the modem stopped answering).
        Default: a DEBUG line (the supervision's WARNING line says why already).

        The EVSE then leaves the network itself (a fresh key) and matches again.
        """
        logger.debug("EVSE %s: link to the EV lost", evse_id)
