"""Soak: plug, match, unplug, many times on one EVSE over a veth pair (needs root).

    sudo .venv/bin/python benchmarks/soak.py [--cycles 1000] [--json out.json]

Prints, every 100 cycles, the matches so far, open file descriptors, asyncio tasks and the
RSS of this process (which runs the EVSE), so that a leak shows as a trend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slac import SlacEvseSession, SlacSessionController
from slac.testing import fast_config
from slac.testing.netns import Netns, VethPair, can_create_namespaces
from slac.testing.peer import ScriptedPeer
from slac.utils import MacAddress

EV_MAC = MacAddress("02:00:00:00:50:01")


class QuietController(SlacSessionController):
    """No log lines; ``hlc`` is set when the EVSE signals 5 % PWM (the EV waits for it)."""

    def __init__(self) -> None:
        self.hlc = asyncio.Event()

    async def enable_hlc_charging(self, evse_id: str) -> None:
        self.hlc.set()

    async def notify_matching_ongoing(self, evse_id: str) -> None:
        pass

    async def notify_matched(self, evse_id: str, result: object) -> None:
        pass


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


async def soak(cycles: int) -> list[dict[str, Any]]:
    rows = []
    with Netns() as netns, VethPair(netns_b=netns, mac_b=str(EV_MAC)) as pair:
        peer = await ScriptedPeer(netns, pair.name_b, EV_MAC).start()
        session = SlacEvseSession("DE*SOAK*E1", pair.name_a, fast_config(set_key_timeout=0.5))
        controller = QuietController()
        matched = 0
        started = time.monotonic()
        try:
            await session.evse_set_key()
            for i in range(1, cycles + 1):
                controller.hlc.clear()
                await controller.process_cp_state(session, "B")
                await controller.hlc.wait()
                await peer.run_ev(i.to_bytes(8, "big"))
                await session.wait_matched(timeout=5)
                matched += 1
                await controller.process_cp_state(session, "A")
                if i == 1 or i % 100 == 0:
                    row = {
                        "cycle": i,
                        "matched": matched,
                        "fds": len(os.listdir("/proc/self/fd")),
                        "tasks": len(asyncio.all_tasks()),
                        "rss_kib": rss_kib(),
                        "elapsed_s": round(time.monotonic() - started, 1),
                    }
                    rows.append(row)
                    print(row, flush=True)
        finally:
            await session.close()
            peer.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ok, why = can_create_namespaces()
    if not ok:
        print(f"soak skipped: {why}", file=sys.stderr)
        return 0
    rows = asyncio.run(soak(args.cycles))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
