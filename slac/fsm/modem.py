"""What a host asks its own GreenPHY modem, as a sans-IO state machine.

Two procedures, each with its timers inside, no sockets, no asyncio, no clock:

- **the key** (:meth:`ModemMachine.set_key`): CM_SET_KEY.REQ to the local modem
  (00:B0:52:00:00:01), resent without an answer, the wait doubling each time
  (``set_key_timeout``, ``set_key_retries``); CM_SET_KEY.CNF with a Result in
  ``set_key_result_ok`` is :class:`KeySet`, another Result or no answer at all is
  :class:`KeyNotSet`;
- **link supervision** (:meth:`ModemMachine.start_supervision`): after a match,
  VS_PL_LINK_STATUS.REQ every ``link_check_period``, decided on what the modem *reports*:

  ===================================  ====================================================
  the modem answers "linked"           the link is up (:class:`LinkUp` the first time)
  it answers "no link", never up yet   wait; after TT_match_join (``link_join_timeout``):
                                       :class:`LinkLost` (NOT_JOINED)
  it answers "no link", was up         LINK_DOWN_ANSWERS (2) such answers in a row:
                                       :class:`LinkLost` (LINK_DOWN)
  a poll unanswered until the next     not "link down": counted apart;
                                       ``link_check_max_unanswered`` in a row (once the
                                       modem has answered at all; 0: never):
                                       :class:`LinkLost` (MODEM_SILENT)
  never answered, TT_match_join over   a modem without that vendor message:
                                       :class:`SupervisionOff`, one warning
  ===================================  ====================================================

The driver feeds :meth:`~ModemMachine.receive_frame` (it returns True for the modem's
answers, which are for no other machine), :meth:`~ModemMachine.handle_timer` and the API
calls, each with ``now``, and pulls :meth:`~ModemMachine.frames_to_send`,
:meth:`~ModemMachine.events` and :attr:`~ModemMachine.deadline`.

- **restarts** (issue 15 item 2): a modem that restarts forgets the key it was given.
  VS_HOST_ACTION.IND from the modem (QCA firmware sends it once started) is answered with
  VS_HOST_ACTION.RSP and is :class:`ModemRestarted` (HOST_ACTION); while the heartbeat runs
  (:meth:`ModemMachine.start_heartbeat`, the station runs it while no EV is plugged in),
  VS_SW_VER.REQ goes out every ``modem_heartbeat_period``: unanswered until the next beat is
  :class:`ModemSilent` (each miss), answered again after misses is :class:`ModemRestarted`
  (HEARTBEAT), a firmware string other than the last is :class:`ModemRestarted`
  (FIRMWARE_CHANGED).

- **resets** (issue 15 item 3): :meth:`ModemMachine.reset` sends VS_RS_DEV.REQ (resent
  like the key); VS_RS_DEV.CNF with MSTATUS 0 starts the wait for the modem: VS_SW_VER.REQ
  every PROBE_PERIOD until it answers (or VS_HOST_ACTION.IND comes), which is
  :class:`ModemRestarted` (RESET); no CNF, a refusal, or no answer within
  ``modem_reset_wait`` is :class:`ModemUnresponsive`. :meth:`ModemMachine.await_modem` starts
  the same wait after a hardware reset.

The modem's own MAC address is learned from its answers (the source of CM_SET_KEY.CNF and
VS_PL_LINK_STATUS.CNF, unicast to this host while a request waits for them):
:attr:`~ModemMachine.modem_mac`, and :class:`ModemFound` when it is first learned or
changes. Until then it is None.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional, Protocol, Union

from slac import enums
from slac.enums import PLC_LOCAL_MAC
from slac.fsm.base import Log, Machine
from slac.fsm.events import (
    KeyFailure,
    KeyNotSet,
    KeySet,
    LinkLoss,
    LinkLost,
    LinkStatus,
    LinkUp,
    ModemEvent,
    ModemFound,
    ModemRestarted,
    ModemSilent,
    ModemUnresponsive,
    RestartSign,
    SupervisionOff,
)
from slac.messages import (
    Frame,
    SetKeyCnf,
    SetKeyReq,
    VsHostActionInd,
    VsHostActionRsp,
    VsPlLinkStatusCnf,
    VsPlLinkStatusReq,
    VsRsDevCnf,
    VsRsDevReq,
    VsSwVerCnf,
    VsSwVerReq,
)
from slac.utils import MacAddress

__all__ = [
    "LINK_DOWN_ANSWERS",
    "MODEM_ANSWERS",
    "KeyFailure",
    "KeyNotSet",
    "KeySet",
    "LinkLoss",
    "LinkLost",
    "LinkStatus",
    "LinkUp",
    "ModemConfig",
    "ModemEvent",
    "ModemFound",
    "ModemMachine",
    "ModemRestarted",
    "ModemSettings",
    "ModemSilent",
    "RestartSign",
    "SupervisionOff",
]

logger = logging.getLogger(__name__)

#: "no link" answers in a row, after the link was up, that mean it is lost
LINK_DOWN_ANSWERS = 2
#: the modem's answers to the host's requests: for this machine, never for a matcher
MODEM_ANSWERS = (SetKeyCnf, VsPlLinkStatusCnf, VsSwVerCnf, VsHostActionInd, VsRsDevCnf)
#: after a reset, VS_SW_VER.REQ this often until the modem answers (s)
PROBE_PERIOD = 0.5
_LOCAL_MODEM = MacAddress(PLC_LOCAL_MAC)


class ModemConfig(Protocol):
    """The settings the machine reads (``slac.environment.Config`` has them all)."""

    @property
    def set_key_timeout(self) -> float: ...

    @property
    def set_key_retries(self) -> int: ...

    @property
    def set_key_result_ok(self) -> tuple[int, ...]: ...

    @property
    def link_check_period(self) -> float: ...

    @property
    def link_join_timeout(self) -> float: ...

    @property
    def link_check_max_unanswered(self) -> int: ...


@dataclass(frozen=True)
class ModemSettings:
    """Settings for a driver without a ``Config`` (the key alone: supervision off)."""

    set_key_timeout: float
    set_key_retries: int
    set_key_result_ok: tuple[int, ...]
    link_check_period: float = 0.0
    link_join_timeout: float = enums.TT_MATCH_JOIN
    link_check_max_unanswered: int = 0
    modem_heartbeat_period: float = 0.0


# --- events: in slac.fsm.events (KeySet, KeyNotSet, ModemFound, LinkStatus, LinkUp, LinkLost,
# SupervisionOff; the enums KeyFailure and LinkLoss) -------------------------------------------


# --- the machine -------------------------------------------------------------------------------


@dataclass
class _KeyRequest:
    nmk: bytes = field(repr=False)
    nid: bytes
    request: SetKeyReq = field(repr=False)
    attempts: int
    wait: float
    deadline: float
    waited: float = 0.0
    attempt: int = 1


@dataclass
class _Supervision:
    since: float
    next_poll: float
    up: bool = False
    answered: bool = False
    #: "no link" answers in a row since the link was up
    down: int = 0
    #: polls in a row without an answer
    unanswered: int = 0


class ModemMachine(Machine[ModemEvent]):
    """The host's requests to its own modem, without I/O.

    ``host_mac`` is this host's MAC (the modem answers to it); ``config`` is read at each
    request, so that changed settings apply to the next one.
    """

    def __init__(self, host_mac: bytes, config: ModemConfig, *, log: Optional[Log] = None):
        super().__init__()
        self.host_mac = MacAddress(host_mac)
        self.config = config
        self.log: Log = log or logger
        #: the modem's own address, once an answer told it
        self.modem_mac: Optional[MacAddress] = None
        self._key: Optional[_KeyRequest] = None
        self._supervision: Optional[_Supervision] = None
        #: a VS_PL_LINK_STATUS.REQ went out and its answer has not come
        self._poll_out = False
        self._query_deadline: Optional[float] = None
        #: the idle heartbeat: when the next VS_SW_VER.REQ goes out (None: off)
        self._beat_at: Optional[float] = None
        #: a VS_SW_VER.REQ of the heartbeat waits for its answer
        self._beat_out = False
        #: heartbeats in a row left unanswered
        self.heartbeat_misses = 0
        #: the firmware string of the modem's last VS_SW_VER.CNF
        self.firmware: Optional[str] = None
        #: VS_RS_DEV.REQ waits for its CNF: (deadline, attempts left)
        self._reset: Optional[tuple[float, int]] = None
        #: after a reset: until when the modem may take to answer again (None: not waiting)
        self._probe_until: Optional[float] = None

    # --- outputs (frames_to_send and events: Machine) ---------------------------------------

    @property
    def deadline(self) -> Optional[float]:
        """When :meth:`handle_timer` must be called next (None: no timer runs)."""
        soonest = self._query_deadline
        if self._key is not None and (soonest is None or self._key.deadline < soonest):
            soonest = self._key.deadline
        sup = self._supervision
        if sup is not None and (soonest is None or sup.next_poll < soonest):
            soonest = sup.next_poll
        if self._beat_at is not None and (soonest is None or self._beat_at < soonest):
            soonest = self._beat_at
        if self._reset is not None and (soonest is None or self._reset[0] < soonest):
            soonest = self._reset[0]
        return soonest

    @property
    def resetting(self) -> bool:
        """A reset is under way: VS_RS_DEV.REQ unconfirmed, or the modem not back yet."""
        return self._reset is not None or self._probe_until is not None

    @property
    def heartbeat_running(self) -> bool:
        return self._beat_at is not None

    @property
    def key_pending(self) -> bool:
        """A CM_SET_KEY.REQ waits for its confirmation."""
        return self._key is not None

    @property
    def supervising(self) -> bool:
        return self._supervision is not None

    # --- API ----------------------------------------------------------------------------------

    def set_key(self, nmk: bytes, nid: bytes, now: float) -> None:
        """Send CM_SET_KEY.REQ for this NMK/NID; ends in :class:`KeySet` or :class:`KeyNotSet`.

        One key at a time: RuntimeError while another waits for its confirmation.
        """
        if self._key is not None:
            raise RuntimeError("a CM_SET_KEY.REQ is waiting for its confirmation")
        wait = self.config.set_key_timeout
        self._key = _KeyRequest(
            nmk=nmk,
            nid=nid,
            request=SetKeyReq(nid=nid, new_key=nmk),
            attempts=1 + self.config.set_key_retries,
            wait=wait,
            deadline=now + wait,
        )
        self._to_modem(self._key.request)

    def abort_key(self) -> None:
        """Forget the pending CM_SET_KEY.REQ (its driver gave up): no event follows."""
        self._key = None

    def start_supervision(self, now: float) -> None:
        """Supervise the link from now on (after CM_SLAC_MATCH.CNF); off with period 0."""
        period = self.config.link_check_period
        if period <= 0:
            self._supervision = None
            return
        self._supervision = _Supervision(since=now, next_poll=now + period)
        self._poll_out = False

    def stop_supervision(self) -> None:
        self._supervision = None

    def query_link(self, now: float, timeout: float) -> None:
        """Ask the modem once; :class:`LinkStatus` follows (linked None after ``timeout``)."""
        if self._query_deadline is None:  # else the query waiting gets the same answer
            self._query_deadline = now + timeout
            self._poll()

    def start_heartbeat(self, now: float) -> None:
        """VS_SW_VER.REQ every ``modem_heartbeat_period`` from now on (off with 0; the first
        goes out now). Idempotent while it runs."""
        period = _heartbeat_period(self.config)
        if period <= 0 or self._beat_at is not None:
            return
        self._beat_at = now
        self._beat_out = False

    def stop_heartbeat(self) -> None:
        """No more heartbeats (an EV plugged in); an answer still on its way is taken. The
        wait for a modem after a reset goes on."""
        if self._probe_until is None:
            self._beat_at = None

    def reset(self, now: float) -> None:
        """VS_RS_DEV.REQ to the local modem; then wait for it to answer again (ModemRestarted
        RESET) or ModemUnresponsive."""
        if self.resetting:
            return
        self._reset = (now + self.config.set_key_timeout, self.config.set_key_retries)
        self._to_modem(VsRsDevReq())

    def await_modem(self, now: float) -> None:
        """Wait for the modem to answer (after a hardware reset): VS_SW_VER.REQ every
        PROBE_PERIOD, up to ``modem_reset_wait``."""
        self._reset = None
        self._probe_until = now + _reset_wait(self.config)
        self._beat_at = now
        self._beat_out = False

    def stop(self) -> None:
        """Forget every procedure (the driver closes): no events follow."""
        self._key = None
        self._supervision = None
        self._query_deadline = None
        self._poll_out = False
        self._beat_at = None
        self._beat_out = False
        self._reset = None
        self._probe_until = None

    # --- inputs ---------------------------------------------------------------------------------

    def receive_frame(self, frame: Frame, now: float) -> bool:
        """Feed a received frame; True when it is an answer of a modem (for no one else)."""
        message = frame.message
        if isinstance(message, SetKeyCnf):
            self._on_set_key_cnf(frame, message, now)
            return True
        if isinstance(message, VsPlLinkStatusCnf):
            self._on_link_status_cnf(frame, message, now)
            return True
        if isinstance(message, VsSwVerCnf):
            self._on_sw_ver_cnf(frame, message)
            return True
        if isinstance(message, VsHostActionInd):
            self._on_host_action(frame, message)
            return True
        if isinstance(message, VsRsDevCnf):
            self._on_rs_dev_cnf(frame, message, now)
            return True
        return False

    def handle_timer(self, now: float) -> None:
        """Process every deadline that has come by ``now``."""
        key = self._key
        if key is not None and now >= key.deadline:
            self._set_key_timeout(key, now)
        if self._query_deadline is not None and now >= self._query_deadline:
            self._query_deadline = None
            self._emit(LinkStatus(None))
        supervision = self._supervision
        if supervision is not None and now >= supervision.next_poll:
            self._poll_due(supervision, now)
        if self._reset is not None and now >= self._reset[0]:
            self._reset_timeout(now)
        if self._beat_at is not None and now >= self._beat_at:
            self._beat(now)

    # --- resets ---------------------------------------------------------------------------------

    def _reset_timeout(self, now: float) -> None:
        assert self._reset is not None
        left = self._reset[1]
        if left <= 0:
            self._reset = None
            self._unresponsive("the modem did not answer VS_RS_DEV.REQ")
            return
        self._reset = (now + self.config.set_key_timeout, left - 1)
        self._to_modem(VsRsDevReq())

    def _on_rs_dev_cnf(self, frame: Frame, message: VsRsDevCnf, now: float) -> None:
        if self._reset is None or not self._from_modem(frame):
            self.log.debug("unexpected VS_RS_DEV.CNF from %s ignored", frame.src)
            return
        self._learn(frame.src)
        self._reset = None
        if message.status != 0:
            self._unresponsive(f"the modem refused VS_RS_DEV.REQ (MSTATUS 0x{message.status:02x})")
            return
        self.log.info("the modem resets (VS_RS_DEV.CNF); waiting for it to answer again")
        self.await_modem(now + PROBE_PERIOD)

    def _unresponsive(self, detail: str) -> None:
        self._probe_until = None
        self._beat_at = None
        self.log.error("%s: it needs a hardware reset", detail)
        self._emit(ModemUnresponsive(detail))

    def _back(self, how: str) -> None:
        """The modem answers again after a reset."""
        self._probe_until = None
        self._beat_at = None  # the station starts the heartbeat again when idle
        self.heartbeat_misses = 0
        self._emit(ModemRestarted(RestartSign.RESET, f"the modem is back after its reset ({how})"))

    # --- restarts -------------------------------------------------------------------------------

    def _beat(self, now: float) -> None:
        if self._probe_until is not None:  # after a reset: is the modem back?
            if now >= self._probe_until:
                wait = _reset_wait(self.config)
                self._unresponsive(f"the modem did not answer within {wait:g} s of its reset")
                return
            self._beat_at = now + PROBE_PERIOD
            self._beat_out = True
            self._to_modem(VsSwVerReq())
            return
        if self._beat_out:  # the last heartbeat went unanswered
            self.heartbeat_misses += 1
            level = logging.WARNING if self.heartbeat_misses == 1 else logging.DEBUG
            self.log.log(
                level,
                "the modem does not answer VS_SW_VER.REQ (heartbeat; %d in a row)",
                self.heartbeat_misses,
            )
            self._emit(ModemSilent(self.heartbeat_misses))
        self._beat_at = now + _heartbeat_period(self.config)
        self._beat_out = True
        self._to_modem(VsSwVerReq())

    def _on_sw_ver_cnf(self, frame: Frame, message: VsSwVerCnf) -> None:
        if not self._beat_out or not self._from_modem(frame):
            self.log.debug("unexpected VS_SW_VER.CNF from %s ignored", frame.src)
            return
        self._beat_out = False
        self._learn(frame.src)
        misses, self.heartbeat_misses = self.heartbeat_misses, 0
        before, self.firmware = self.firmware, message.version
        if self._probe_until is not None:
            self._back("VS_SW_VER answered")
        elif misses:
            self._emit(
                ModemRestarted(
                    RestartSign.HEARTBEAT,
                    f"the modem answers VS_SW_VER again after {misses} unanswered heartbeat(s)",
                )
            )
        elif before is not None and before != message.version:
            self._emit(
                ModemRestarted(
                    RestartSign.FIRMWARE_CHANGED,
                    f"the modem's firmware changed from {before!r} to {message.version!r}",
                )
            )

    def _on_host_action(self, frame: Frame, message: VsHostActionInd) -> None:
        if frame.src.is_multicast or (self.modem_mac is not None and frame.src != self.modem_mac):
            self.log.debug("VS_HOST_ACTION.IND from %s (not our modem) ignored", frame.src)
            return
        self._send(frame.src, VsHostActionRsp(status=0))  # stops the modem's resends
        self._learn(frame.src)
        if self._probe_until is not None or self._reset is not None:
            self._reset = None
            self._back("VS_HOST_ACTION.IND")
            return
        action = enums.HOST_ACTIONS.get(message.action, f"action 0x{message.action:02x}")
        self._emit(
            ModemRestarted(
                RestartSign.HOST_ACTION,
                f"the modem sent VS_HOST_ACTION.IND ({action}, firmware "
                f"{message.major_version}.{message.minor_version})",
            )
        )

    # --- the key --------------------------------------------------------------------------------

    def _set_key_timeout(self, key: _KeyRequest, now: float) -> None:
        key.waited += key.wait
        self.log.warning(
            "no CM_SET_KEY.CNF from the modem within %.1f s (attempt %d/%d)",
            key.wait,
            key.attempt,
            key.attempts,
        )
        if key.attempt >= key.attempts:
            self._key = None
            self._emit(KeyNotSet(KeyFailure.NO_ANSWER, key.attempts, key.waited))
            return
        key.attempt += 1
        key.wait *= 2
        key.deadline = now + key.wait
        self._to_modem(key.request)

    def _on_set_key_cnf(self, frame: Frame, message: SetKeyCnf, now: float) -> None:
        key = self._key
        if key is None or not self._from_modem(frame):
            self.log.debug("unexpected CM_SET_KEY.CNF from %s ignored", frame.src)
            return
        self._learn(frame.src)
        self._key = None
        accepted = tuple(self.config.set_key_result_ok)
        if message.result in accepted:
            self._emit(KeySet(key.nmk, key.nid, key.attempt))
        else:
            self._emit(
                KeyNotSet(KeyFailure.REFUSED, key.attempt, key.waited, message.result, accepted)
            )

    # --- the link -------------------------------------------------------------------------------

    def _poll(self) -> None:
        self._poll_out = True
        self._to_modem(VsPlLinkStatusReq())

    def _poll_due(self, sup: _Supervision, now: float) -> None:
        if self._poll_out:  # the last poll went unanswered: not "link down", counted apart
            sup.unanswered += 1
            limit = self.config.link_check_max_unanswered
            self.log.debug(
                "VS_PL_LINK_STATUS.REQ unanswered (%d in a row, limit %s)",
                sup.unanswered,
                limit or "none",
            )
            if sup.answered and limit and sup.unanswered >= limit:
                self._lost(
                    LinkLoss.MODEM_SILENT,
                    f"the modem left {sup.unanswered} VS_PL_LINK_STATUS polls in a row "
                    "unanswered (LINK_CHECK_MAX_UNANSWERED)",
                )
                return
        if not sup.up and now - sup.since >= self.config.link_join_timeout:
            if not sup.answered:
                reason = "the modem does not answer VS_PL_LINK_STATUS: link supervision off"
                self.log.warning("%s", reason)
                self._supervision = None
                self._emit(SupervisionOff(reason))
                return
            self._lost(LinkLoss.NOT_JOINED, "the EV did not join within TT_match_join")
            return
        sup.next_poll = now + self.config.link_check_period
        self._poll()

    def _on_link_status_cnf(self, frame: Frame, message: VsPlLinkStatusCnf, now: float) -> None:
        if not self._poll_out or not self._from_modem(frame):
            self.log.debug("unexpected VS_PL_LINK_STATUS.CNF from %s ignored", frame.src)
            return
        self._poll_out = False
        self._learn(frame.src)
        linked = message.linked
        self._query_deadline = None
        self._emit(LinkStatus(linked))
        sup = self._supervision
        if sup is None:
            return
        if sup.unanswered:
            self.log.info(
                "the modem answers VS_PL_LINK_STATUS again after %d unanswered polls",
                sup.unanswered,
            )
            sup.unanswered = 0
        sup.answered = True
        if linked:
            if not sup.up:
                self.log.info("link to the EV is up")
                self._emit(LinkUp())
            sup.up = True
            sup.down = 0
            return
        if not sup.up:
            if now - sup.since >= self.config.link_join_timeout:
                self._lost(LinkLoss.NOT_JOINED, "the EV did not join within TT_match_join")
            return
        sup.down += 1
        if sup.down >= LINK_DOWN_ANSWERS:
            self._lost(
                LinkLoss.LINK_DOWN,
                f"the modem reported no link {sup.down} times in a row",
            )

    def _lost(self, loss: LinkLoss, reason: str) -> None:
        self._supervision = None
        self.log.warning("link to the EV lost: %s", reason)
        self._emit(LinkLost(loss, reason))

    # --- helpers --------------------------------------------------------------------------------

    def _from_modem(self, frame: Frame) -> bool:
        """An answer to this host (unicast) from a station (a modem has a unicast MAC)."""
        return frame.dst == self.host_mac and not frame.src.is_multicast

    def _learn(self, mac: MacAddress) -> None:
        if mac == self.modem_mac:
            return
        if self.modem_mac is None:
            self.log.info("the modem is %s", mac)
        else:
            self.log.info("the modem's address changed from %s to %s", self.modem_mac, mac)
        self.modem_mac = mac
        self._emit(ModemFound(mac))

    def _to_modem(
        self, message: Union[SetKeyReq, VsPlLinkStatusReq, VsSwVerReq, VsRsDevReq]
    ) -> None:
        self._send(_LOCAL_MODEM, message)


def _heartbeat_period(config: ModemConfig) -> float:
    """MODEM_HEARTBEAT_PERIOD of ``config`` (0 for a config without it: off)."""
    return float(getattr(config, "modem_heartbeat_period", 0.0))


def _reset_wait(config: ModemConfig) -> float:
    """MODEM_RESET_WAIT of ``config`` (30 s for a config without it)."""
    return float(getattr(config, "modem_reset_wait", 30.0))
