"""The EV side: an asyncio session around :class:`slac.fsm.ev.EvMatcher`.

    session = SlacEvSession("eth0")
    result = await session.match()      # SLAC, then the received key into the EV's modem
    print(result.evse_mac, result.reason)

Before matching, the EV's modem gets a random key (it leaves any logical network); after
CM_SLAC_MATCH.CNF it gets the EVSE's NMK and NID, and joins the EVSE's network.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from slac.environment import Config
from slac.errors import SlacError
from slac.fsm.ev import (
    EvConfig,
    EvEvent,
    EvMatched,
    EvMatcher,
    EvMatchingFailed,
    EvseCandidate,
    EvseChosen,
)
from slac.host import ModemHost
from slac.messages import Frame
from slac.utils import MacAddress, generate_nmk, nid_from_nmk

logger = logging.getLogger(__name__)


class EvMatchingFailedError(SlacError):
    """The EV found no EVSE to match with (every attempt failed)."""


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


class SlacEvSession:
    """One EV on one interface, matching with whichever EVSE it hears best."""

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
            network_interface, self._on_frame, self.log, sudo_hint=sudo_hint, netns=netns
        )
        self._run_id_source = run_id_source
        self._token_bytes = token_bytes
        self.matcher: Optional[EvMatcher] = None
        self._events: Optional[asyncio.Queue[EvEvent]] = None

    @property
    def mac(self) -> Optional[MacAddress]:
        return self.host.mac

    async def open(self) -> None:
        if self.host.is_open:
            return
        self.host.open()
        assert self.host.mac is not None
        self.log = EvLogAdapter(logger, {"ev": str(self.host.mac)})
        self.host.log = self.log
        self._events = asyncio.Queue()
        self.matcher = EvMatcher(
            self.host.mac, self.ev_config, run_id_source=self._run_id_source, log=self.log
        )

    async def close(self) -> None:
        if self.matcher is not None:
            self.matcher.stop()
        self.host.close()

    async def __aenter__(self) -> SlacEvSession:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def set_key(self, nmk: bytes, nid: bytes) -> None:
        await self.host.set_modem_key(
            nmk,
            nid,
            timeout=self.config.set_key_timeout,
            retries=self.config.set_key_retries,
            accepted=self.config.set_key_result_ok,
        )

    async def leave(self) -> None:
        """A random key to the EV's modem: out of any logical network."""
        nmk = generate_nmk(self._token_bytes)
        await self.set_key(nmk, nid_from_nmk(nmk))

    async def match(self, *, leave_first: bool = True, join: bool = True) -> EvMatchResult:
        """Run SLAC until matched (then join the EVSE's network) or every attempt failed."""
        await self.open()
        assert self.matcher is not None and self._events is not None
        if leave_first:
            await self.leave()
        while not self._events.empty():
            self._events.get_nowait()
        started = self.host.now()
        self.matcher.start(started)
        self._flush()
        chosen: Optional[EvseChosen] = None
        while True:
            event = await self._events.get()
            if isinstance(event, EvseChosen):
                chosen = event
            elif isinstance(event, EvMatched):
                break
            elif isinstance(event, EvMatchingFailed):
                raise EvMatchingFailedError(
                    f"no match after {event.attempts} attempts: {event.reason}"
                )
        assert chosen is not None
        if join:
            await self.set_key(event.nmk, event.nid)
            self.log.info("joined the logical network of EVSE %s", event.evse_mac)
        return EvMatchResult(
            evse_mac=event.evse_mac,
            run_id=event.run_id,
            nid=event.nid,
            average_attenuation=chosen.average,
            reason=chosen.reason,
            attempts=self.matcher.attempt,
            duration=self.host.now() - started,
            candidates=tuple(self.matcher.candidates.values()),
            nmk=event.nmk,
        )

    # --- event loop side ------------------------------------------------------------------------

    def _on_frame(self, frame: Frame, now: float) -> None:
        if self.matcher is not None:
            self.matcher.receive_frame(frame, now)
            self._flush()

    def _on_timer(self) -> None:
        if self.matcher is not None:
            self.matcher.handle_timer(self.host.now())
            self._flush()

    def _flush(self) -> None:
        matcher = self.matcher
        assert matcher is not None and self._events is not None
        for item in matcher.frames_to_send():
            self.host.send(item.message, item.dst)
        for event in matcher.events():
            self._events.put_nowait(event)
        self.host.arm_timer(matcher.deadline, self._on_timer)
