"""The EV side: an asyncio session around :class:`slac.fsm.station.EvStation`.

    session = SlacEvSession("eth0")
    result = await session.match()      # SLAC, then the received key into the EV's modem
    print(result.evse_mac, result.reason)

Before matching, the EV's modem gets a random key (it leaves any logical network); after
CM_SLAC_MATCH.CNF it gets the EVSE's NMK and NID, and joins the EVSE's network. Every step
is decided in the machine; this session runs it with the one driver
(:class:`slac.driver.Driver`) and awaits its events.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from slac.driver import DrivenSession
from slac.environment import Config
from slac.errors import EvMatchingFailedError
from slac.fsm.ev import EvConfig, EvMatcher
from slac.fsm.events import (
    EvMatched,
    EvMatchingFailed,
    EvseCandidate,
    EvseChosen,
    Joined,
    KeyNotSet,
    KeySet,
    SessionState,
)
from slac.fsm.station import EvStation
from slac.host import ModemHost
from slac.utils import MacAddress

__all__ = ["EvLogAdapter", "EvMatchResult", "EvMatchingFailedError", "SlacEvSession"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvMatchResult:
    """The EV's match: which EVSE, why it was chosen, and what it took."""

    evse_mac: MacAddress
    run_id: bytes
    nid: bytes
    average_attenuation: float
    reason: str
    attempts: int
    duration: float
    candidates: tuple[EvseCandidate, ...] = ()
    nmk: bytes = field(default=b"", repr=False)


class EvLogAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        return f"EV {(self.extra or {}).get('ev')}: {msg}", kwargs


class SlacEvSession(DrivenSession[EvStation]):
    """One EV on one interface, matching with whichever EVSE it hears best.

    The verbs, as on :class:`slac.session.SlacEvseSession`: :meth:`open`, :meth:`close`
    (or ``async with``), :meth:`set_key`, :meth:`leave`, :meth:`match`, :meth:`next_event`,
    :attr:`state`.
    """

    TASK_EVENTS = (EvseChosen, EvMatched, EvMatchingFailed, Joined)

    def __init__(
        self,
        network_interface: str,
        config: Optional[Config] = None,
        ev_config: Optional[EvConfig] = None,
        *,
        run_id_source: Callable[[], bytes] = lambda: secrets.token_bytes(8),
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
        sudo_hint: Optional[str] = None,
        netns: Optional[str] = None,
    ) -> None:
        self.network_interface = network_interface
        self.config = config or Config()
        self.ev_config = ev_config or EvConfig()
        self.log = EvLogAdapter(logger, {"ev": network_interface})
        self.host = ModemHost(
            network_interface, lambda f, n: None, self.log, sudo_hint=sudo_hint, netns=netns
        )
        self.state = SessionState.UNMATCHED
        self.ev_mac: Optional[MacAddress] = None
        self.run_id: Optional[bytes] = None
        self._run_id_source = run_id_source
        self._token_bytes = token_bytes
        self._init_driver()

    @property
    def mac(self) -> Optional[MacAddress]:
        return self.host.mac

    @property
    def station(self) -> Optional[EvStation]:
        return self.machine

    @property
    def matcher(self) -> Optional[EvMatcher]:
        return None if self.machine is None else self.machine.matcher

    def _new_machine(self, mac: MacAddress) -> EvStation:
        self.log = EvLogAdapter(logger, {"ev": str(mac)})
        self.host.log = self.log
        return EvStation(
            mac,
            self.config,
            self.ev_config,
            interface=self.network_interface,
            run_id_source=self._run_id_source,
            token_bytes=self._token_bytes,
            log=self.log,
        )

    async def open(self) -> None:
        if not self.host.is_open:
            self._open_driver()

    async def close(self) -> None:
        station = self.machine
        if station is not None:
            station.stop()
        self._close_driver(f"the session on {self.network_interface} closed")

    async def __aenter__(self) -> SlacEvSession:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def set_key(self, nmk: bytes, nid: bytes) -> None:
        """This NMK and NID to the EV's modem (CM_SET_KEY, with its retries)."""
        await self._modem_call(lambda station, now: station.set_key(nmk, nid, now), KeySet)

    async def leave(self) -> None:
        """A random key to the EV's modem: out of any logical network."""
        await self._modem_call(EvStation.leave, KeySet)

    async def match(self, *, leave_first: bool = True, join: bool = True) -> EvMatchResult:
        """Run SLAC until matched (then join the EVSE's network) or every attempt failed."""
        await self.open()
        station = self.machine
        assert station is not None
        ends = (Joined if join else EvMatched, EvMatchingFailed, KeyNotSet)
        outcome = await self._call_and_wait(
            lambda now: station.match(now, leave_first=leave_first, join=join), ends
        )
        if isinstance(outcome, KeyNotSet):
            raise outcome.error(self.network_interface)
        if isinstance(outcome, EvMatchingFailed):
            raise EvMatchingFailedError(
                f"no match after {outcome.attempts} attempts: {outcome.detail}", outcome
            )
        matched, chosen = station.matched, station.matcher.chosen
        assert matched is not None and chosen is not None and station.started_at is not None
        return EvMatchResult(
            evse_mac=matched.evse_mac,
            run_id=matched.run_id,
            nid=matched.nid,
            average_attenuation=chosen.average,
            reason=chosen.reason,
            attempts=station.matcher.attempt,
            duration=self.host.now() - station.started_at,
            candidates=tuple(station.matcher.candidates.values()),
            nmk=matched.nmk,
        )
