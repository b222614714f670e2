"""The EVSE handler shared by the two examples: reads cs_configuration.json, sets up one
:class:`SlacEvseSession` per EVSE and drives the control pilot B, C, A.

In a real charging station the control-pilot state comes from another service (a GPIO
reader, MQTT, RabbitMQ, ...) and is fed to ``process_cp_state``; here a fixed sequence
stands in for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from slac import (
    Config,
    ConfigError,
    MatchingFailedError,
    MatchResult,
    SlacEvseSession,
    SlacSessionController,
    StationView,
)
from slac.app.logs import configure_logging
from slac.app.station import load_station, parse_station

logger = logging.getLogger("slac.examples")


class SlacHandler(SlacSessionController):
    """A controller that runs the EVSEs of a charging-station configuration."""

    def __init__(
        self,
        config: Config,
        cp_delay: float = 2.0,
        hold: float = 1.0,
        sudo_hint: Optional[str] = None,
    ) -> None:
        self.config = config
        #: how to run the example as root, for the error when raw sockets are not allowed
        self.sudo_hint = sudo_hint
        self.cp_delay = cp_delay
        self.hold = hold
        self.running_sessions: list[SlacEvseSession] = []
        self.matched: dict[str, MatchResult] = {}

    async def start(self, cs_config: dict[str, Any]) -> bool:
        """Set every EVSE's key, then drive its control pilot. True when all matched.

        ConfigError when the station configuration is not valid."""
        specs = parse_station(cs_config)
        station = StationView()  # what this station's EVSEs heard of each EV, shared
        for spec in specs:
            evse_id, interface = spec.evse_id, spec.network_interface
            session = SlacEvseSession(
                evse_id, interface, self.config, sudo_hint=self.sudo_hint, station_view=station
            )
            try:
                await session.evse_set_key()
            except (OSError, TimeoutError, ValueError) as exc:
                logger.error(
                    "PLC chip initialization failed for EVSE %s, interface %s: %s. "
                    "Please check your settings.",
                    evse_id,
                    interface,
                    exc,
                )
                await session.close()
                continue
            self.running_sessions.append(session)
        if not self.running_sessions:
            return False
        results = await asyncio.gather(*(self.drive_cp(s) for s in self.running_sessions))
        return len(self.running_sessions) == len(specs) and all(results)

    async def drive_cp(self, session: SlacEvseSession) -> bool:
        """Plug in (B), start charging (C), wait for the match, unplug (A)."""
        await self.process_cp_state(session, "B")
        await asyncio.sleep(self.cp_delay)
        await self.process_cp_state(session, "C")
        try:
            result = await session.wait_matched()
        except MatchingFailedError:
            matched = False
        else:
            matched = True
            logger.info(
                "EVSE %s: EV %s matched, holding %.1f s", session.evse_id, result.ev_mac, self.hold
            )
            await asyncio.sleep(self.hold)
        await self.process_cp_state(session, "A")
        return matched

    async def close(self) -> None:
        for session in self.running_sessions:
            await session.close()

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        self.matched[evse_id] = result
        logger.info(
            "EVSE %s: matched with EV %s (RunID %s, NID %s)",
            evse_id,
            result.ev_mac,
            result.run_id.hex(),
            result.nid.hex(),
        )


def load_cs_config(path: Path) -> dict[str, Any]:
    """The station file as a dictionary, checked (ConfigError in plain words)."""
    load_station(path)  # every check of the file
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def parse_args(argv: Optional[list[str]], description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("cs_configuration.json"),
        help="charging-station configuration (default: cs_configuration.json)",
    )
    parser.add_argument(
        "--env",
        type=Path,
        default=None,
        help=".env file with the settings (default: ./.env if present)",
    )
    parser.add_argument(
        "--cp-delay",
        type=float,
        default=2.0,
        help="seconds between control-pilot B and C (default 2)",
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=1.0,
        help="seconds to stay matched before unplugging (default 1)",
    )
    return parser.parse_args(argv)


def main(argv: Optional[list[str]], *, only_first: bool, description: str) -> int:
    """Run the example; the exit code is 0 when every EVSE matched."""
    args = parse_args(argv, description)
    try:
        config = Config().load_envs(args.env)
        cs_config = load_cs_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config)
    if only_first and cs_config.get("parameters"):
        cs_config = {**cs_config, "number_of_evses": 1, "parameters": cs_config["parameters"][:1]}
    target = "run-local-sudo-single" if only_first else "run-local-sudo-multiple"
    return asyncio.run(_run(config, cs_config, args.cp_delay, args.hold, f"`make {target}`"))


async def _run(
    config: Config, cs_config: dict[str, Any], cp_delay: float, hold: float, sudo_hint: str
) -> int:
    handler = SlacHandler(config, cp_delay=cp_delay, hold=hold, sudo_hint=sudo_hint)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    stopping = False

    def stop(signame: str) -> None:
        nonlocal stopping
        if not stopping and main_task is not None:
            stopping = True
            logger.info("%s received: shutting down", signame)
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        ok = await handler.start(cs_config)
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    except asyncio.CancelledError:
        if not stopping:
            raise
        ok = True
    finally:
        await handler.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if stopping:
        return 0
    return 0 if ok else 1
