"""EVSE response times over a veth pair (needs root).

One SlacEvseSession on one end of a veth pair; on the other end, in its own network
namespace, the scripted peer of the test suite plays the EVSE's modem and an EV. For each
match, the peer takes the time just before it sends a request and the kernel's receive
timestamp (SO_TIMESTAMPNS) of the answer, so the figures include both crossings of the veth
pair: an upper bound of the EVSE's own processing time.

    sudo .venv/bin/python benchmarks/latency.py [--matches 50] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slac import Config, SlacEvseSession, SlacSessionController
from slac.netns import Netns, VethPair, can_create_namespaces
from slac.utils import MacAddress
from tests.peer import ScriptedPeer

EV_MAC = MacAddress("02:00:00:00:40:01")


class QuietController(SlacSessionController):
    """No log lines; ``hlc`` is set when the EVSE signals 5 % PWM (an EV waits for it)."""

    def __init__(self) -> None:
        self.hlc = asyncio.Event()

    async def enable_hlc_charging(self, evse_id: str) -> None:
        self.hlc.set()

    async def notify_matching_ongoing(self, evse_id: str) -> None:
        pass

    async def notify_matched(self, evse_id: str, result: Any) -> None:
        pass


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure(matches: int) -> dict[str, list[float]]:
    netns = Netns().create()
    pair = VethPair(netns_b=netns, mac_b=str(EV_MAC))
    try:
        pair.create()
        peer = await ScriptedPeer(netns, pair.name_b, EV_MAC).start()
        config = Config(set_key_settle_time=0.0, set_key_timeout=0.5)
        session = SlacEvseSession("DE*BENCH*E1", pair.name_a, config)
        controller = QuietController()
        figures: dict[str, list[float]] = {
            "CM_SLAC_PARM.CNF": [],
            "CM_ATTEN_CHAR.IND": [],
            "CM_SLAC_MATCH.CNF": [],
            "PARM.REQ to MATCH.CNF": [],
        }
        try:
            await session.evse_set_key()
            for i in range(matches):
                controller.hlc.clear()
                await controller.process_cp_state(session, "B")
                await controller.hlc.wait()
                outcome = await peer.run_ev(i.to_bytes(8, "big"))
                await session.wait_matched(timeout=2)
                figures["CM_SLAC_PARM.CNF"].append(outcome.parm_cnf_after)
                figures["CM_ATTEN_CHAR.IND"].append(outcome.atten_char_after_last_sound)
                figures["CM_SLAC_MATCH.CNF"].append(outcome.match_cnf_after)
                figures["PARM.REQ to MATCH.CNF"].append(outcome.parm_req_to_match_cnf)
                await controller.process_cp_state(session, "A")
        finally:
            await session.close()
            peer.close()
        return figures
    finally:
        pair.delete()
        netns.delete()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ok, why = can_create_namespaces()
    if not ok:
        print(f"latency benchmark skipped: {why}", file=sys.stderr)
        return 0
    figures = asyncio.run(measure(args.matches))
    print(
        f"EVSE response times over veth, {args.matches} matches, Python "
        f"{platform.python_version()} ({platform.machine()})"
    )
    print(f"{'':<24}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    rows = {}
    for name, values in figures.items():
        rows[name] = {
            "p50_ms": statistics.median(values) * 1000,
            "p99_ms": percentile(values, 99) * 1000,
            "max_ms": max(values) * 1000,
        }
        r = rows[name]
        print(f"{name:<24}{r['p50_ms']:>10.3f}{r['p99_ms']:>10.3f}{r['max_ms']:>10.3f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
