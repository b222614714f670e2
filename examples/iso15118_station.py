"""Example: SLAC, then ISO 15118-2 / DIN 70121 with iso15118's SECC on each matched EVSE.

    python examples/iso15118_station.py [--config cs_configuration.json] [--env .env]

CP states on stdin as for ``slac evse``; EVSE states, HLC events (``lag_ms``: the SLAC loop's
worst stall) as JSON lines on stdout. Needs root, slac[hlc], Java. A match starts iso15118_secc.py
in its own process (each EXI call blocks its loop, for tenths of a second), unplugging stops it;
a failed session or an SECC that ends is D-LINK_ERROR: leave the logical network, match again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from iso15118_secc import LAG, emit, probe_loop_lag

from slac import Config, MatchResult, SessionState, SlacEvseSession
from slac.app.logs import configure_logging
from slac.app.service import EvseService, run_stdin
from slac.app.station import load_station

SECC = [sys.executable, str(Path(__file__).with_name("iso15118_secc.py"))]


class Iso15118Station(EvseService):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secc: dict[str, asyncio.subprocess.Process] = {}  # by EVSE id
        self.tasks = {asyncio.ensure_future(probe_loop_lag())}  # the SECC watchers too

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        await super().notify_matched(evse_id, result)
        if evse_id not in self.secc:  # in /: iso15118 reads ./.env, and ours is not for it
            session = self.sessions[evse_id]
            self.secc[evse_id] = process = await asyncio.create_subprocess_exec(
                *SECC, session.network_interface, stdout=asyncio.subprocess.PIPE, cwd="/"
            )
            self.report(evse_id, hlc="secc started", pid=process.pid)
            self.tasks.add(watcher := asyncio.ensure_future(self.watch(session, process)))
            watcher.add_done_callback(self.tasks.discard)

    async def watch(self, session: SlacEvseSession, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:  # the SECC's news
            self.report(session.evse_id, **(event := json.loads(line)))
            if event.get("error"):
                await self.dlink_error(session, event["reason"])
        code = await process.wait()
        if self.secc.get(session.evse_id) is process:  # it ended by itself
            del self.secc[session.evse_id]
            await self.dlink_error(session, f"the SECC ended (exit code {code})")

    async def dlink_error(self, session: SlacEvseSession, reason: str) -> None:
        """D-LINK_ERROR from the HLC side: leave the logical network (fresh key), match again."""
        self.report(session.evse_id, hlc="D-LINK_ERROR", reason=reason)
        await self.restart_matching(session, f"D-LINK_ERROR: {reason}")

    async def stop_secc(self, evse_id: str) -> None:
        if (process := self.secc.pop(evse_id, None)) is not None:
            process.terminate()  # its Java codec follows it (py4j: die_on_exit)
            await process.wait()
            self.report(evse_id, hlc="secc stopped")

    async def process_cp_state(self, session: SlacEvseSession, state: str) -> None:
        await super().process_cp_state(session, state)
        if session.state is SessionState.UNMATCHED:  # unplugged (A), or E/F
            await self.stop_secc(session.evse_id)

    def report(self, evse_id: str, **fields: Any) -> None:  # lag_ms: of this loop
        emit(**fields, evse_id=evse_id, lag_ms=LAG[0])

    async def close(self) -> None:
        for evse_id in list(self.secc):
            await self.stop_secc(evse_id)
        await super().close()


async def serve(config: Config, station: Path) -> None:
    service = Iso15118Station(load_station(station), config)
    service.listeners.append(lambda state: print(state.to_json(), flush=True))
    try:
        await service.start()
        await run_stdin(service)  # until stdin ends
    finally:
        await service.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("cs_configuration.json"))
    parser.add_argument("--env", type=Path, help=".env file with the settings")
    args = parser.parse_args()
    configure_logging(config := Config().load_envs(args.env))
    asyncio.run(serve(config, args.config))
