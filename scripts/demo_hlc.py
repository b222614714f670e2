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


#: the figures, in the order printed: (label, key, unit)
ROWS = [
    ("SLAC (CP B to CM_SLAC_MATCH.CNF at the EV)", "slac_s", "s"),
    ("joining the logical network (the EV modem takes the key)", "join_s", "s"),
    ("SDP (joined to SDPResponse)", "sdp_s", "s"),
    ("  the SECC's start (match to ready: Python, Java)", "secc_ready_after_match_s", "s"),
    ("  the EVCC's start (to its first SDPRequest)", "evcc_start_to_first_sdp_request_s", "s"),
    ("  the answered SDPRequest to SDPResponse", "sdp_exchange_s", "s"),
    ("  SDPRequests sent", "sdp_requests", ""),
    ("SessionSetup (TCP, supportedAppProtocol, SessionSetup)", "session_setup_s", "s"),
    ("plug-in to SessionSetupRes", "plug_in_to_session_setup_res_s", "s"),
    ("worst event-loop stall, the SLAC side (the station)", "slac_loop_worst_stall_ms", "ms"),
    ("worst event-loop stall, the SECC's own process", "secc_loop_worst_stall_ms", "ms"),
]


async def demo(verbose: bool, json_out: Optional[Path], evcc_at: str) -> int:
    async with HlcSite(Echo(verbose)) as site:
        assert site.station is not None
        say("demo", "virtual powerline up; examples/iso15118_station.py runs on the EVSE host")
        plugged = await site.plug_in()
        say("EV", "plugged in (CP B): SLAC starts")
        if evcc_at == "plug-in":  # a car's HLC stack runs already: SDP until the link is up
            evcc, started = await site.start_evcc("ISO_15118_2"), time.time()
        matched, joined = await site.match()
        assert site.ev_result is not None
        say("EV", f"matched EVSE {site.ev_result.evse_mac}, joined its logical network")
        if evcc_at == "join":
            evcc, started = await site.start_evcc("ISO_15118_2"), time.time()
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
        answered = times["SDPResponse"]
        requests = [e["t"] for e in evcc.events if e["event"] == "SDPRequest"]
        station = {e["hlc"]: e for e in reversed(site.station.events) if "hlc" in e}
        figures: dict[str, Any] = {
            "slac_s": matched - plugged,
            "join_s": joined - matched,
            "sdp_s": answered - joined,
            "secc_ready_after_match_s": station["secc status"]["t"] - matched,
            "evcc_start_to_first_sdp_request_s": requests[0] - started,
            "sdp_exchange_s": answered - max(t for t in requests if t <= answered),
            "sdp_requests": len(requests),
            "session_setup_s": times["SessionSetupRes"] - answered,
            "plug_in_to_session_setup_res_s": times["SessionSetupRes"] - plugged,
            "slac_loop_worst_stall_ms": ended["lag_ms"],
            "secc_loop_worst_stall_ms": ended["secc_lag_ms"],
        }
        print(f"\nISO 15118-2 AC after SLAC, the EVCC started at the {evcc_at}:")
        for label, key, unit in ROWS:
            value = figures[key]
            shown = f"{value * 1000:7.0f} ms" if unit == "s" else f"{value:7.0f} {unit}"
            print(f"  {label:<58} {shown}")
        print()
        if json_out is not None:
            record = {**figures, "evcc_at": evcc_at, "load": os.getloadavg()}
            json_out.write_text(json.dumps(record, indent=2))  # noqa: ASYNC240
        return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="every log line")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument(
        "--evcc-at",
        choices=("plug-in", "join"),
        default="plug-in",
        help="start the EVCC at the plug-in (default: as in a car, whose HLC stack runs "
        "already; it repeats SDP until the link is up) or once the EV joined",
    )
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
    task = loop.create_task(demo(args.verbose, args.json, args.evcc_at))
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
