"""`make demo-hlc`: SLAC, then a whole ISO 15118-2 AC session, on a virtual powerline (root).

1. creates test hosts (network namespaces, veth pairs) around a virtual powerline and runs
   examples/iso15118_station.py on the EVSE host;
2. plugs in (CP B at the station); our EV matches with it and its modem joins the logical
   network; the match starts iso15118's SECC on the EVSE host (notify_matched);
3. runs iso15118's EVCC (its simulated EV) on the EV host, over the IPv6 link the match
   created: SDP, then ISO 15118-2 AC from SessionSetup to SessionStop;
4. unplugs (CP A): the station stops the SECC, and UDP port 15118 is free again;
5. prints the time from plug-in to SessionSetupRes, split into SLAC, joining the logical
   network, SDP and SessionSetup, and the worst event-loop stall the SLAC side saw;
6. removes everything it created, also when interrupted (Ctrl-C).

Needs the hlc extra (make install-local installs it) and Java (default-jre-headless).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slac.testing.hlc import HlcSite, hlc_missing  # noqa: E402
from slac.testing.netns import can_create_namespaces  # noqa: E402

SHOWN = ("secc started", "secc status", "session ended", "secc stopped", "D-LINK_ERROR")


class Echo:
    """Prints what the station and the EVCC say, in short, as it happens."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def __call__(self, source: str, line: str) -> None:
        if source.endswith("log"):
            if self.verbose or " slac." in line or "ERROR" in line:
                say("EVSE" if source.startswith("station") else "EV", line.split(": ", 1)[-1])
            return
        try:
            event: dict[str, Any] = json.loads(line)
        except ValueError:
            return
        if source == "evcc":
            say("EVCC", event.get("event", line))
        elif "state" in event and "hlc" not in event:
            say("EVSE", f"state {event['state']}")
        elif event.get("hlc") in SHOWN:
            details = {k: v for k, v in event.items() if k not in ("t", "hlc", "evse_id")}
            say("SECC" if "secc_lag_ms" in event else "EVSE", f"{event['hlc']} {details}")


def say(who: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} [{who:<9}] {text}", flush=True)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.0f} ms"


async def demo(verbose: bool, json_out: Optional[Path]) -> int:
    async with HlcSite(Echo(verbose)) as site:
        assert site.station is not None
        say("demo", "virtual powerline up; examples/iso15118_station.py runs on the EVSE host")
        plugged = await site.plug_in()
        say("EV", "plugged in (CP B): SLAC starts")
        matched, joined = await site.match()
        assert site.ev_result is not None
        say("EV", f"matched EVSE {site.ev_result.evse_mac}, joined its logical network")
        evcc = await site.start_evcc("ISO_15118_2")
        started = time.time()
        code = await evcc.wait(90)
        if code != 0:
            say("demo", f"FAILED: the EVCC ended with exit code {code}")
            return 1
        ended = await site.station.wait_for(lambda e: e.get("hlc") == "session ended", 15)
        if ended["error"]:
            say("demo", f"FAILED: the SECC's session ended in error: {ended['reason']}")
            return 1
        await site.cp("A")
        await site.station.wait_for(lambda e: e.get("hlc") == "secc stopped", 15)
        if await site.udp_15118_bound():
            say("demo", "FAILED: UDP port 15118 is still bound after the unplug")
            return 1
        say("EV", "unplugged (CP A): the SECC stopped, UDP port 15118 is free")
        times = {e["event"]: e["t"] for e in reversed(evcc.events)}  # the first of each
        station = {e["hlc"]: e for e in reversed(site.station.events) if "hlc" in e}
        figures = {
            "slac_s": matched - plugged,
            "join_s": joined - matched,
            "sdp_s": times["SDPResponse"] - joined,
            "evcc_startup_s": times["SDPRequest"] - started,
            "sdp_exchange_s": times["SDPResponse"] - times["SDPRequest"],
            "session_setup_s": times["SessionSetupRes"] - times["SDPResponse"],
            "plug_in_to_session_setup_res_s": times["SessionSetupRes"] - plugged,
            "secc_ready_after_match_s": station["secc status"]["t"] - matched,
            "slac_loop_worst_stall_ms": ended["lag_ms"],
            "secc_loop_worst_stall_ms": ended["secc_lag_ms"],
        }
        print()
        print("plug-in to SessionSetupRes (ISO 15118-2 AC, iso15118's simulated EV and EVSE)")
        print(f"  SLAC (CP B to CM_SLAC_MATCH.CNF at the EV)        {ms(figures['slac_s'])}")
        print(f"  joining the logical network (EV modem's key)     {ms(figures['join_s'])}")
        print(f"  SDP (EVCC start to SDPResponse)                  {ms(figures['sdp_s'])}")
        print(f"    of which the EVCC's start (Python, Java)       {ms(figures['evcc_startup_s'])}")
        print(f"    of which SDPRequest to SDPResponse             {ms(figures['sdp_exchange_s'])}")
        print(
            f"  SessionSetup (TCP, supportedAppProtocol, setup)  {ms(figures['session_setup_s'])}"
        )
        total = figures["plug_in_to_session_setup_res_s"]
        print(f"  total                                            {ms(total)}")
        print(f"  the SECC was ready (Java up, UDP 15118) {ms(figures['secc_ready_after_match_s'])}"
              " after the match")  # fmt: skip
        print(f"worst event-loop stall, the SLAC side (station)    "
              f"{figures['slac_loop_worst_stall_ms']:7.1f} ms")  # fmt: skip
        print(f"worst event-loop stall, the SECC's own process     "
              f"{figures['secc_loop_worst_stall_ms']:7.1f} ms")  # fmt: skip
        if json_out is not None:
            json_out.write_text(json.dumps({**figures, "load": os.getloadavg()}, indent=2))  # noqa: ASYNC240
        print()
        return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="every log line")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    ok, why = can_create_namespaces()
    if not ok:
        print(f"error: the demo {why}: run `sudo make demo-hlc`", file=sys.stderr)
        return 2
    missing = hlc_missing()
    if missing is not None:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    loop = asyncio.new_event_loop()
    task = loop.create_task(demo(args.verbose, args.json))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        code = loop.run_until_complete(task)
    except asyncio.CancelledError:
        say("demo", "interrupted: everything the demo created is removed")
        code = 130
    except TimeoutError as exc:
        say("demo", f"FAILED: {exc}")
        code = 1
    finally:
        loop.close()
    say("demo", "cleaned up")
    return code


if __name__ == "__main__" and os.name == "posix":
    sys.exit(main())
