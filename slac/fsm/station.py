"""A whole host, EVSE or EV, as one sans-IO machine: its matcher, its local modem, and every
decision between them.

:class:`EvseStation` is what ``slac evse`` runs per charge point; :class:`EvStation` is what
``slac ev`` runs. Each joins its role's matcher (:mod:`slac.fsm.evse`, :mod:`slac.fsm.ev`)
and a :class:`~slac.fsm.modem.ModemMachine` (CM_SET_KEY with its retries, link
supervision), and adds the rules that used to live in asyncio code:

EVSE (everything about the control pilot and the key lives here)

==========================================  ==================================================
input                                       what the station does
==========================================  ==================================================
:meth:`EvseStation.cp_state_changed` B/C/D  :attr:`CpAction.START` (after A, E, F or at the
after A/E/F (or first report)               first report, while not matching): the driver
                                            starts its matching task, which calls
                                            :meth:`~EvseStation.begin_matching`
CP A                                        stop matching or the match (:attr:`CpAction.STOP`),
                                            leave the logical network when an EV received
                                            the key and ``reset_key_on_unplug`` (a fresh key,
                                            CM_SET_KEY, in the background)
CP E/F while matched                        end the match (the matching task ends on Stopped)
:meth:`~EvseStation.begin_matching`         a fresh key first when one is needed (none yet,
                                            an EV received the current one, a key change
                                            failed, or the interface failed), then
                                            ``set_key_settle_time``, then the matcher starts
the modem does not take that key            MatchingFailed(KEY_NOT_SET), state FAILED
Matched                                     link supervision starts (VS_PL_LINK_STATUS)
supervision: link lost                      LinkLost, then: stop, a fresh key, match again
:meth:`~EvseStation.restart`                the same, asked by the HLC side
:meth:`~EvseStation.dlink` TERMINATE        stop, leave (a fresh key when an EV received the
                                            current one), UNMATCHED; B/C/D start nothing
                                            until the control pilot was A, E or F
:meth:`~EvseStation.dlink` ERROR            as :meth:`~EvseStation.restart` (START when
                                            nothing runs and an EV is plugged in)
:meth:`~EvseStation.dlink` PAUSE / RESUME   matched: supervision off, the key stays; resume:
                                            supervision on, the link up within TT_match_join
==========================================  ==================================================

Every event is counted by reason (:attr:`EvseStation.counters`, :mod:`slac.fsm.stats`).

The state the user sees (:class:`~slac.fsm.events.SessionState`) is derived here from the
matcher's events only, and each change is a :class:`~slac.fsm.events.StateChanged` event.

EV: :meth:`EvStation.match`: a random key (out of any logical network), then SLAC, then the
EVSE's key into the modem (:class:`~slac.fsm.events.Joined`).

Same shape as every machine (:mod:`slac.fsm.base`): inputs ``receive_frame``,
``handle_timer`` and the API calls, each with ``now``; outputs ``frames_to_send``,
``events`` and ``deadline``; one driver (:class:`slac.driver.Driver`) runs either.
"""

from __future__ import annotations

import logging
import secrets
from enum import Enum
from typing import TYPE_CHECKING, Callable, Generic, Optional, Protocol, TypeVar

from slac.config import EvseConfig
from slac.fsm.base import Log, Machine, earliest
from slac.fsm.ev import EvConfig, EvMatcher
from slac.fsm.events import (
    DlinkCommand,
    DlinkDone,
    EvMatched,
    EvMatchingFailed,
    FailureReason,
    Joined,
    KeyNotSet,
    KeySet,
    LinkLost,
    Matched,
    MatchingFailed,
    MatchingOngoing,
    ModemFound,
    ModemReady,
    ModemRestarted,
    ModemUnresponsive,
    RestartSign,
    SessionState,
    SlacEvent,
    StateChanged,
    Stopped,
    StopReason,
)
from slac.fsm.evse import EvseMatcher, EvseState, parse_cp_state
from slac.fsm.modem import ModemConfig, ModemMachine
from slac.fsm.station_view import StationView
from slac.fsm.stats import EvseCounters
from slac.messages import Frame
from slac.utils import MacAddress, generate_nmk, nid_from_nmk

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

TokenBytes = Callable[[int], bytes]


class CpAction(Enum):
    """What a control-pilot state asks of the driver's matching task."""

    #: start the matching task (when none runs)
    START = "start"
    #: stop the matching task (unplugged)
    STOP = "stop"
    #: nothing for the task (the station did what the state asks, if anything)
    NONE = "none"


class KeyPurpose(Enum):
    """Why a key goes to the modem."""

    #: asked by the driver (start-up, ``evse_set_key``)
    ASKED = "asked"
    #: leaving the logical network after unplug (in the background)
    LEAVE = "leave"
    #: before matching (an EV received the current key, or none is known)
    MATCH = "match"
    #: EV: the EVSE's key, to join its network
    JOIN = "join"
    #: the modem restarted and lost its key (in the background, before the next plug-in)
    RESTART = "restart"


class _Matcher(Protocol):
    def receive_frame(self, frame: Frame, now: float) -> None: ...

    def handle_timer(self, now: float) -> None: ...


MatcherT = TypeVar("MatcherT", bound=_Matcher)


class _Host(Machine[SlacEvent], Generic[MatcherT]):
    """What both stations share: the modem machine beside a matcher, the inputs (the
    modem's answers go to the modem machine, every other frame to the matcher), the state,
    the key in the modem."""

    matcher: MatcherT

    def __init__(
        self,
        host_mac: bytes,
        modem_config: ModemConfig,
        *,
        interface: str,
        token_bytes: TokenBytes,
        log: Optional[Log],
    ) -> None:
        super().__init__()
        self.host_mac = MacAddress(host_mac)
        self.interface = interface
        self.log: Log = log or logger
        self.modem = ModemMachine(self.host_mac, modem_config, log=self.log)
        self._token_bytes = token_bytes
        self.state = SessionState.UNMATCHED
        self.ev_mac: Optional[MacAddress] = None
        self.run_id: Optional[bytes] = None
        #: the key the modem confirmed last (None until one is confirmed)
        self.nmk: Optional[bytes] = None
        self.nid: Optional[bytes] = None
        #: a CM_SET_KEY.REQ went out unconfirmed: which key the modem holds is not known
        self.key_unsure = False
        self._key_purpose: Optional[KeyPurpose] = None

    @property
    def key_pending(self) -> bool:
        return self.modem.key_pending

    # --- inputs -------------------------------------------------------------------------------

    def receive_frame(self, frame: Frame, now: float) -> None:
        """A decoded frame from the interface."""
        if not self.modem.receive_frame(frame, now):
            self.matcher.receive_frame(frame, now)
        self._pump(now)

    def handle_timer(self, now: float) -> None:
        self.matcher.handle_timer(now)
        self.modem.handle_timer(now)
        self._own_timers(now)
        self._pump(now)

    def _own_timers(self, now: float) -> None:
        """The station's own deadlines (none by default)."""

    def _pump(self, now: float) -> None:
        """Take the sub-machines' frames and events: apply what they mean, pass them on."""
        raise NotImplementedError

    def _set_key(self, nmk: bytes, nid: bytes, purpose: KeyPurpose, now: float) -> None:
        self.key_unsure = True
        self._key_purpose = purpose
        self.modem.set_key(nmk, nid, now)

    def _fresh_key(self, purpose: KeyPurpose, now: float) -> None:
        nmk = generate_nmk(self._token_bytes)
        self._set_key(nmk, nid_from_nmk(nmk), purpose, now)

    def _set_state(
        self,
        state: SessionState,
        ev_mac: Optional[MacAddress] = None,
        run_id: Optional[bytes] = None,
    ) -> None:
        if (state, ev_mac, run_id) == (self.state, self.ev_mac, self.run_id):
            return
        self.state, self.ev_mac, self.run_id = state, ev_mac, run_id
        self._emit(StateChanged(state, ev_mac, run_id))


class EvseStation(_Host[EvseMatcher]):
    """One EVSE host without I/O: matcher, local modem, control pilot and key policy.

    ``evse_mac`` is the interface's MAC; ``interface`` names it in error texts;
    ``token_bytes`` is the source of fresh keys (:func:`secrets.token_bytes` unless a test
    injects another).
    """

    def __init__(
        self,
        evse_mac: bytes,
        config: Optional[EvseConfig] = None,
        *,
        interface: str = "",
        token_bytes: TokenBytes = secrets.token_bytes,
        log: Optional[Log] = None,
        station_view: Optional[StationView] = None,
    ) -> None:
        config = config if config is not None else EvseConfig()
        matcher = EvseMatcher(
            evse_mac,
            nmk=bytes(16),
            nid=bytes(7),
            config=config,
            log=log,
            station_view=station_view,
        )
        #: the settings (the matcher's defaults when None was given)
        self.config: EvseConfig = config
        super().__init__(
            evse_mac, self.config, interface=interface, token_bytes=token_bytes, log=log
        )
        self.matcher = matcher
        self.cp_state: Optional[str] = None
        #: the last match (None before the first)
        self.last_match: Optional[Matched] = None
        #: an EV received the current key: the next match needs a fresh one
        self.key_given_out = False
        #: matching waits for the modem (a key, its settle pause) and starts then
        self._match_wanted = False
        self._settle_until: Optional[float] = None
        #: the HLC side ended the data link (D-LINK_TERMINATE): no new match until the
        #: control pilot is A, E or F
        self.terminated = False
        #: the HLC side paused the data link (D-LINK_PAUSE): matched, link not supervised
        self.paused = False
        #: every match, failure, lost link and D-LINK request, by reason
        self.counters = EvseCounters()
        #: restarts of the modem noticed (VS_HOST_ACTION.IND, the idle heartbeat)
        self.modem_restarts = 0
        #: the last restart noticed (None before the first)
        self.last_modem_restart: Optional[ModemRestarted] = None
        #: plug-ins in a row that ended without a match (RESET_AFTER_FAILURES)
        self.failed_plugins = 0
        #: VS_RS_DEV.REQ sent, and hardware resets asked for (ModemUnresponsive)
        self.modem_resets = 0
        self.hardware_resets = 0
        self._plugin_failed = False

    # --- outputs ------------------------------------------------------------------------------

    @property
    def deadline(self) -> Optional[float]:
        return earliest(self.matcher.deadline, self.modem.deadline, self._settle_until)

    @property
    def modem_mac(self) -> Optional[MacAddress]:
        return self.modem.modem_mac

    @property
    def modem_counters(self) -> dict[str, int]:
        """What the status reports of the modem: restarts noticed, resets, soundings without
        values."""
        return {
            "modem_restarts": self.modem_restarts,
            "modem_resets": self.modem_resets,
            "hardware_resets": self.hardware_resets,
            "empty_profile_soundings": self.matcher.empty_profile_runs,
        }

    @property
    def idle(self) -> bool:
        """No EV plugged in (CP A, E, F or none reported yet) and nothing to match."""
        return (
            (self.cp_state is None or self.cp_state not in "BCD")
            and not self._match_wanted
            and self.matcher.state is not EvseState.WAITING
            and self.matcher.state is not EvseState.MATCHED
        )

    @property
    def settling(self) -> bool:
        """A key was set and the modem is still settling (SET_KEY_SETTLE_TIME)."""
        return self._settle_until is not None

    # --- inputs (receive_frame, handle_timer: _Host) ---------------------------------------

    def _own_timers(self, now: float) -> None:
        if self._settle_until is not None and now >= self._settle_until:
            self._settle_until = None
            self._modem_ready(now)

    def cp_state_changed(self, state: str, now: float) -> CpAction:
        """A control-pilot state ("A".."F"; "B1", "C2" count by their letter).

        :class:`~slac.errors.CpStateError` for anything else."""
        letter = parse_cp_state(state)
        previous = self.cp_state
        self.cp_state = letter
        if letter in "AEF" and self.terminated:
            self.terminated = False
            self.log.info("control pilot %s: the next B, C or D may match again", letter)
        was_matched = self.matcher.state is EvseState.MATCHED
        starts = self.matcher.cp_state_changed(letter, now)
        self._pump(now)
        if starts:
            return CpAction.START
        if letter in "EF" and was_matched:
            # E or F while matched ends the match; the EV's key leaves with it at once, as
            # at an unplug (RESET_KEY_ON_UNPLUG), so no EV keeps the logical network
            self._match_wanted = False
            if self.key_given_out and self.config.reset_key_on_unplug:
                self.leave(now)
            self._set_state(SessionState.UNMATCHED)
            return CpAction.STOP
        if letter != "A":
            if previous != letter:
                self.log.debug("control pilot %s (was %s)", letter, previous)
            return CpAction.NONE
        self._match_wanted = False
        reset = self._reset_wanted(previous)
        if reset:
            self.matcher.stop(now, StopReason.DRIVER, "unplugged")
            self._reset_modem(now, reset)
        elif self.key_given_out and self.config.reset_key_on_unplug:
            self.leave(now)
        self._set_state(SessionState.UNMATCHED)
        return CpAction.STOP

    def _reset_wanted(self, previous: Optional[str]) -> str:
        """Why the modem is reset at this unplug ("" if not): RESET_ON_UNPLUG, or
        RESET_AFTER_FAILURES plug-ins in a row without a match."""
        if self._plugin_failed:
            self.failed_plugins += 1
        self._plugin_failed = False
        limit = self.config.reset_after_failures
        if limit and self.failed_plugins >= limit:
            return f"{self.failed_plugins} plug-ins in a row without a match"
        if self.config.reset_on_unplug and previous is not None and previous in "BCD":
            return "reset after every unplug (RESET_ON_UNPLUG)"
        return ""

    def _reset_modem(self, now: float, why: str) -> None:
        self.failed_plugins = 0
        self.modem_resets += 1
        self.key_unsure = True
        self.log.warning("resetting the modem (VS_RS_DEV.REQ): %s", why)
        self.modem.abort_key()
        self.modem.stop_supervision()
        self.modem.reset(now)
        self._pump(now)

    def reset_modem(self, now: float, why: str = "asked") -> None:
        """Reset the modem now (VS_RS_DEV.REQ), then wait for it and give it a fresh key."""
        self._reset_modem(now, why)

    def hardware_reset_done(self, now: float) -> None:
        """The hardware reset hook ran: wait for the modem (VS_SW_VER), then a fresh key."""
        self.key_unsure = True
        self.modem.abort_key()
        self.modem.await_modem(now)
        self._pump(now)

    def set_key(self, now: float) -> None:
        """A fresh NMK (and its NID) to the local modem: KeySet then ModemReady (after
        ``set_key_settle_time``), or KeyNotSet. While a key is pending, that one counts."""
        if not self.modem.key_pending:
            self._fresh_key(KeyPurpose.ASKED, now)
        self._pump(now)

    def leave(self, now: float) -> None:
        """Leave the EV's logical network: the match (if any) ends, a fresh key to the modem,
        in the background: KeySet, then ModemReady or KeyNotSet."""
        self.log.info("leaving the logical network")
        self.matcher.stop(now, StopReason.DRIVER, "leaving the logical network")
        if not self.modem.key_pending:
            self._fresh_key(KeyPurpose.LEAVE, now)
        self._pump(now)
        self._set_state(SessionState.UNMATCHED)

    def begin_matching(self, now: float, *, key_needed: bool = False) -> None:
        """Match as soon as the modem can (the driver's matching task calls this once the
        interface is open): a fresh key first when one is needed (``key_needed``: the
        interface failed, so the modem behind it may have restarted)."""
        self._match_wanted = True
        if self.modem.key_pending or self._settle_until is not None:
            return  # the matcher starts when that key is in and settled
        if self.key_given_out:
            self.log.info("leaving the logical network: an EV received the current key")
        if key_needed or self.nmk is None or self.key_given_out or self.key_unsure:
            self._fresh_key(KeyPurpose.MATCH, now)
        else:
            self._start_matcher(now)
        self._pump(now)

    def restart(self, now: float, detail: str) -> None:
        """Match again within this plug-in without a CP cycle (a lost link, or the HLC side):
        stop, a fresh key when an EV received the current one, then match with every attempt
        available (also after D-LINK_TERMINATE: the HLC side asks for it)."""
        self.terminated = False
        self.matcher.stop(now, StopReason.RESTART, f"matching again ({detail})")
        self._pump(now)
        self.begin_matching(now)
        self._pump(now)

    def dlink(self, command: DlinkCommand, now: float, reason: str = "") -> CpAction:
        """A D-LINK request of the HLC side (ISO 15118-3), then :class:`DlinkDone`; what the
        driver's matching task must do:

        - TERMINATE: matching or the match stops (Stopped, DLINK_TERMINATE: the task ends),
          the EVSE leaves the logical network when an EV received the current key (a fresh
          key to the modem, in the background), UNMATCHED; B, C or D start nothing until
          the control pilot was A, E or F (:attr:`terminated`). :attr:`CpAction.STOP`.
        - ERROR: leave the logical network and match again without a CP cycle: while
          matching or matched, :meth:`restart` here (NONE); when nothing runs (unmatched
          after TERMINATE, or failed) and an EV is plugged in (B, C, D), START; without an
          EV, nothing (NONE).
        - PAUSE: while matched, stay matched (the key stays in the modem, the match record
          stays), link supervision stops (:attr:`paused`); nothing otherwise.
        - RESUME: after PAUSE, link supervision starts again as after a match: the link
          must be up within TT_match_join, else LinkLost (NOT_JOINED) and matching again.
        """
        command = DlinkCommand(command)
        action, applied, detail = CpAction.NONE, True, ""
        why = reason or f"D-LINK_{command.name} from the HLC side"
        if command is DlinkCommand.TERMINATE:
            self.log.info("D-LINK_TERMINATE: leaving the data link, no new match until a CP cycle")
            self._match_wanted = False
            self.paused = False
            self.terminated = True
            self.matcher.stop(now, StopReason.DLINK_TERMINATE, why)
            self._pump(now)
            if self.key_given_out and not self.modem.key_pending:
                self.log.info("leaving the logical network")
                self._fresh_key(KeyPurpose.LEAVE, now)
            self._set_state(SessionState.UNMATCHED)
            action = CpAction.STOP
        elif command is DlinkCommand.ERROR:
            if self.matcher.state in (EvseState.WAITING, EvseState.MATCHED):
                self.paused = False
                self.restart(now, why)
            elif self.cp_state is not None and self.cp_state in "BCD":
                self.log.info("matching again: %s", why)
                self.terminated = False
                action = CpAction.START
            else:
                applied, detail = False, "no EV plugged in"
        elif command is DlinkCommand.PAUSE:
            if self.matcher.state is not EvseState.MATCHED:
                applied, detail = False, f"nothing to pause while {self.state.value}"
            elif self.paused:
                applied, detail = False, "paused already"
            else:
                self.log.info("D-LINK_PAUSE: staying matched, link supervision stopped")
                self.paused = True
                self.modem.stop_supervision()
        elif not self.paused:
            applied, detail = False, "not paused"
        else:
            self.log.info(
                "D-LINK resumed: link supervision again (the link up within TT_match_join)"
            )
            self.paused = False
            self.modem.start_supervision(now)
        if not applied:
            self.log.info("D-LINK %s ignored: %s", command.value, detail)
        self._emit(DlinkDone(command, applied, detail))
        self._pump(now)
        return action

    def stop(self, now: float, detail: str) -> None:
        """Stop matching or the match (the driver's task ended); supervision stops too."""
        self._match_wanted = False
        self.matcher.stop(now, StopReason.DRIVER, detail)
        self._pump(now)

    def fail(self, now: float, reason: FailureReason, detail: str) -> MatchingFailed:
        """The driver's matching task failed (the interface, a bug): stop, state FAILED."""
        self.stop(now, detail)
        failed = MatchingFailed(reason, self.matcher.attempt, detail)
        self._emit(failed)
        self._set_state(SessionState.FAILED)
        return failed

    def query_link(self, now: float, timeout: float) -> None:
        """Ask the modem once: LinkStatus follows (linked None after ``timeout``)."""
        self.modem.query_link(now, timeout)
        self._pump(now)

    def close(self, now: float) -> None:
        """Forget every procedure (the driver closes): no events follow but Stopped."""
        self.stop(now, "session closed")
        self.modem.stop()
        self._settle_until = None

    # --- the sub-machines' events -------------------------------------------------------------

    def _pump(self, now: float) -> None:
        """Take the sub-machines' frames and events: apply what they mean here, pass them on."""
        self._outgoing.extend(self.modem.frames_to_send())
        for modem_event in self.modem.events():
            if isinstance(modem_event, KeySet):
                self._key_set(modem_event, now)
            elif isinstance(modem_event, KeyNotSet):
                self._key_not_set(modem_event, now)
            elif isinstance(modem_event, ModemFound):
                self.matcher.modem_mac = modem_event.mac
            self._emit(modem_event)
            if isinstance(modem_event, LinkLost):
                self.restart(now, f"link lost: {modem_event.reason}")
            elif isinstance(modem_event, ModemRestarted):
                self._modem_restarted(modem_event, now)
            elif isinstance(modem_event, ModemUnresponsive):
                self.hardware_resets += 1
        self._outgoing.extend(self.matcher.frames_to_send())
        for event in self.matcher.events():
            self._emit(event)
            if isinstance(event, (MatchingOngoing, MatchingFailed, Stopped)):
                self.paused = False  # the match (if any) is over
            if isinstance(event, MatchingOngoing):
                self.modem.stop_supervision()  # the match (if any) is over
                self._set_state(SessionState.MATCHING, event.ev_mac, event.run_id)
            elif isinstance(event, Matched):
                self.failed_plugins = 0
                self._plugin_failed = False
                self.key_given_out = True
                self.last_match = event
                self.modem.start_supervision(now)
                self._set_state(SessionState.MATCHED, event.ev_mac, event.run_id)
            elif isinstance(event, MatchingFailed):
                self.modem.stop_supervision()
                self._plugin_failed = True
                self._set_state(SessionState.FAILED, self.ev_mac, self.run_id)
            elif isinstance(event, Stopped):
                self.modem.stop_supervision()
                self._set_state(SessionState.UNMATCHED)
        self._heartbeat(now)
        self._outgoing.extend(self.modem.frames_to_send())

    def _heartbeat(self, now: float) -> None:
        """The idle heartbeat runs while no EV is plugged in and no key is being set."""
        if self.modem.resetting:
            return  # the wait for the modem after its reset runs instead
        if self.idle and not self.modem.key_pending and self._settle_until is None:
            self.modem.start_heartbeat(now)
        else:
            self.modem.stop_heartbeat()

    def _modem_restarted(self, event: ModemRestarted, now: float) -> None:
        """The modem lost its key: a fresh one now while idle (before the next plug-in),
        else matching starts again with a fresh key."""
        self.key_unsure = True
        plugged = not self.idle
        then = "matching again with a fresh key" if plugged else "a fresh key now"
        if event.sign is RestartSign.RESET:
            self.log.info("%s: %s", event.detail, then)
        else:
            self.modem_restarts += 1
            self.last_modem_restart = event
            self.log.warning(
                "the modem restarted (%s; %d restart(s) noticed): it lost its key; %s",
                event.detail,
                self.modem_restarts,
                then,
            )
        if plugged:
            if self._match_wanted or self.modem.key_pending:
                return  # a key for this plug-in is on its way (or sent again: key_unsure)
            self.restart(now, f"the modem restarted: {event.detail}")
        elif not self.modem.key_pending:
            self._fresh_key(KeyPurpose.RESTART, now)

    def _key_set(self, event: KeySet, now: float) -> None:
        # at once, before any other frame: CM_SLAC_MATCH.CNF hands out what the modem holds
        self.nmk, self.nid = event.nmk, event.nid
        self.key_given_out = False
        self.key_unsure = False
        self._key_purpose = None
        self.matcher.set_key(event.nmk, event.nid)
        self.log.info("new network key set on the modem (NID %s)", event.nid.hex())
        self.log.debug("NMK %s", event.nmk.hex())
        settle = self.config.set_key_settle_time
        if settle > 0:
            self._settle_until = now + settle
        else:
            self._modem_ready(now)

    def _modem_ready(self, now: float) -> None:
        assert self.nid is not None
        self._emit(ModemReady(self.nid))
        if self._match_wanted and self.matcher.state is not EvseState.WAITING:
            self._start_matcher(now)

    def _key_not_set(self, event: KeyNotSet, now: float) -> None:
        purpose, self._key_purpose = self._key_purpose, None
        error = event.error(self.interface)
        if purpose in (KeyPurpose.LEAVE, KeyPurpose.RESTART):
            # The plug-in that needs the key says so: the next one sets a key first, and
            # fails with the modem's error if it cannot (never matching with this key).
            self.log.warning(
                "could not give the modem a fresh key after %s: %s; the next plug-in "
                "sets one before matching",
                "unplug" if purpose is KeyPurpose.LEAVE else "its restart",
                error,
            )
            if self._match_wanted:  # a plug-in waits for this key: it sets its own
                self._fresh_key(KeyPurpose.MATCH, now)
            return
        if not self._match_wanted:
            return  # the driver that asked for it hears KeyNotSet
        self._match_wanted = False
        self._plugin_failed = True
        self.log.error("matching failed: %s", error)
        self._emit(MatchingFailed(FailureReason.KEY_NOT_SET, self.matcher.attempt, str(error)))
        self._set_state(SessionState.FAILED)

    def _start_matcher(self, now: float) -> None:
        self._match_wanted = False
        self.matcher.start(now)

    def _emit(self, event: SlacEvent) -> None:
        self.counters.count(event)
        super()._emit(event)


class EvStation(_Host[EvMatcher]):
    """One EV host without I/O: the EV matcher and the EV's own modem.

    :meth:`match`: a random key first (``leave_first``: out of any logical network), then
    SLAC, then (``join``) the EVSE's NMK and NID into the modem, :class:`Joined`.
    """

    def __init__(
        self,
        ev_mac: bytes,
        modem_config: ModemConfig,
        ev_config: Optional[EvConfig] = None,
        *,
        interface: str = "",
        run_id_source: Optional[Callable[[], bytes]] = None,
        token_bytes: TokenBytes = secrets.token_bytes,
        log: Optional[Log] = None,
    ) -> None:
        super().__init__(
            ev_mac, modem_config, interface=interface, token_bytes=token_bytes, log=log
        )
        if run_id_source is None:
            self.matcher = EvMatcher(self.host_mac, ev_config, log=self.log)
        else:
            self.matcher = EvMatcher(
                self.host_mac, ev_config, run_id_source=run_id_source, log=self.log
            )
        self.started_at: Optional[float] = None
        self.matched: Optional[EvMatched] = None
        self._join = True

    @property
    def deadline(self) -> Optional[float]:
        return earliest(self.matcher.deadline, self.modem.deadline)

    # --- inputs (receive_frame, handle_timer: _Host) ---------------------------------------

    def match(self, now: float, *, leave_first: bool = True, join: bool = True) -> None:
        """Run SLAC: EvMatched (and Joined with ``join``), or EvMatchingFailed; KeyNotSet
        when the modem does not take a key."""
        self.started_at = now
        self.matched = None
        self._join = join
        self._set_state(SessionState.MATCHING)
        if leave_first:
            self._fresh_key(KeyPurpose.LEAVE, now)
        else:
            self.matcher.start(now)
        self._pump(now)

    def set_key(self, nmk: bytes, nid: bytes, now: float) -> None:
        """This NMK and NID to the EV's modem: KeySet or KeyNotSet."""
        self._set_key(nmk, nid, KeyPurpose.ASKED, now)
        self._pump(now)

    def leave(self, now: float) -> None:
        """A random key to the EV's modem: out of any logical network."""
        self._fresh_key(KeyPurpose.ASKED, now)
        self._pump(now)

    def stop(self) -> None:
        self.matcher.stop()
        self.modem.stop()

    # --- the sub-machines' events -------------------------------------------------------------

    def _pump(self, now: float) -> None:
        self._outgoing.extend(self.modem.frames_to_send())
        for modem_event in self.modem.events():
            self._emit(modem_event)
            if isinstance(modem_event, KeySet):
                purpose, self._key_purpose = self._key_purpose, None
                self.nmk, self.nid, self.key_unsure = modem_event.nmk, modem_event.nid, False
                if purpose is KeyPurpose.LEAVE:
                    self.matcher.start(now)
                elif purpose is KeyPurpose.JOIN and self.matched is not None:
                    self.log.info("joined the logical network of EVSE %s", self.matched.evse_mac)
                    self._emit(Joined(self.matched.evse_mac, self.matched.nid))
            elif isinstance(modem_event, KeyNotSet):
                self._key_purpose = None
                if self.state is SessionState.MATCHING:
                    self._set_state(SessionState.FAILED)
        self._outgoing.extend(self.matcher.frames_to_send())
        for event in self.matcher.events():
            self._emit(event)
            if isinstance(event, EvMatched):
                self.matched = event
                self._set_state(SessionState.MATCHED, event.evse_mac, event.run_id)
                if self._join:
                    self._set_key(event.nmk, event.nid, KeyPurpose.JOIN, now)
            elif isinstance(event, EvMatchingFailed):
                self._set_state(SessionState.FAILED)
        self._outgoing.extend(self.modem.frames_to_send())
