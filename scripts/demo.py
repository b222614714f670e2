"""`make demo`: SLAC from plug-in to IPv6, on a machine without any modem (needs root).

1. creates test hosts (network namespaces, veth pairs) around a virtual powerline;
2. runs the EVSE of examples/single_slac_session.py on the EVSE host, unchanged;
3. when the EVSE signals that it is ready (5 % PWM), plugs in an EV (this library's EV side);
4. shows the match as it happens, then pings the EVSE from the EV over IPv6 link-local
   through the logical network the match created (and shows that it failed before);
5. removes everything it created, also when interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slac.ev import SlacEvSession  # noqa: E402
from slac.testing import fast_config  # noqa: E402
from slac.testing.netns import can_create_namespaces  # noqa: E402
from slac.testing.powerline import Powerline, Topology  # noqa: E402

EVSE_ID = "DE*SWT*E123456789"


def say(who: str, text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} [{who:<9}] {text}", flush=True)


async def stream_evse(
    process: asyncio.subprocess.Process, ready: asyncio.Event, matched: asyncio.Event
) -> None:
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode(errors="replace").rstrip()
        text = line.split(": ", 1)[-1] if " slac." in line else line
        say("EVSE", text)
        if "ready to match" in line:
            ready.set()
        if "matched with EV" in line:
            matched.set()


async def demo(hold: float) -> int:
    with (
        tempfile.TemporaryDirectory(prefix="slac-demo-") as tmp,
        Topology(evs=1, evses=1, evse_netns=True) as topo,
    ):
        assert topo.evse_netns is not None
        say(
            "demo",
            f"test hosts: EVSE in namespace {topo.evse_netns.name} "
            f"({topo.evse_interfaces[0]}), EV in {topo.ev_netns[0].name} "
            f"({topo.ev_interface}); modems in {topo.plc_netns.name}",
        )
        medium = topo.medium(attenuation=20.0)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns):
            say("powerline", "virtual GreenPHY powerline up (EV to EVSE: 20 dB)")
            config = Path(tmp) / "cs_configuration.json"
            config.write_text(
                json.dumps(
                    {
                        "number_of_evses": 1,
                        "parameters": [
                            {"evse_id": EVSE_ID, "network_interface": topo.evse_interfaces[0]}
                        ],
                    }
                )
            )
            env = Path(tmp) / "demo.env"
            env.write_text("LOG_LEVEL=INFO\nSET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=500\n")
            command = [
                sys.executable,
                str(ROOT / "examples" / "single_slac_session.py"),
                "--config",
                str(config),
                "--env",
                str(env),
                "--cp-delay",
                "0.5",
                "--hold",
                str(hold),
            ]
            say("demo", "starting examples/single_slac_session.py on the EVSE host")
            evse = await asyncio.create_subprocess_exec(
                *topo.evse_netns.command(command),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            ready, evse_matched = asyncio.Event(), asyncio.Event()
            streamer = asyncio.ensure_future(stream_evse(evse, ready, evse_matched))
            try:
                await asyncio.wait_for(ready.wait(), 20)
                reachable = await topo.ping_evse(0, 0, count=1)
                say(
                    "demo",
                    f"before the match, IPv6 from EV to EVSE: "
                    f"{'reachable (unexpected)' if reachable else 'unreachable'}",
                )
                plugged = time.monotonic()
                ev = SlacEvSession(topo.ev_interface, fast_config(), netns=topo.ev_netns[0].name)
                say("EV", "plugged in (CP B), starting SLAC")
                try:
                    result = await asyncio.wait_for(ev.match(), 30)
                finally:
                    await ev.close()
                await asyncio.wait_for(evse_matched.wait(), 5)
                took = time.monotonic() - plugged
                say("EV", f"matched EVSE {result.evse_mac}: {result.reason}")
                say(
                    "demo",
                    f"plug-in to match: {took * 1000:.0f} ms "
                    f"(SLAC itself {result.duration * 1000:.0f} ms)",
                )
                address = f"{topo.evse_ports[0].link_local()}%{topo.ev_interface}"
                code, output = await topo.run_in_ev(
                    0, ["ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", address]
                )
                for line in output.strip().splitlines():
                    say("EV ping", line)
                if code != 0:
                    say("demo", "FAILED: no IPv6 over the logical network")
                    return 1
                say("demo", "IPv6 works over the logical network the match created")
                await asyncio.wait_for(evse.wait(), hold + 30)
                await streamer
                return 0 if evse.returncode == 0 else 1
            finally:
                if evse.returncode is None:
                    evse.terminate()
                    try:
                        await asyncio.wait_for(evse.wait(), 5)
                    except asyncio.TimeoutError:
                        evse.kill()
                        await evse.wait()
                streamer.cancel()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--hold",
        type=float,
        default=4.0,
        help="seconds the EVSE stays matched before unplugging (default 4)",
    )
    args = parser.parse_args(argv)
    ok, why = can_create_namespaces()
    if not ok:
        print(f"error: the demo {why}: run `sudo make demo`", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    loop = asyncio.new_event_loop()
    task = loop.create_task(demo(args.hold))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    try:
        code = loop.run_until_complete(task)
    except asyncio.CancelledError:
        say("demo", "interrupted: everything the demo created is removed")
        code = 130
    finally:
        loop.close()
    say("demo", "cleaned up" if code != 130 else "done")
    return code


if __name__ == "__main__" and os.name == "posix":
    sys.exit(main())
