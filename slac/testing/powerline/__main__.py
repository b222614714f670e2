"""Run a virtual powerline with test hosts:
``python -m slac.testing.powerline --evs 1 --evses 1``.

It creates a network namespace per EV host (interface ``plc0``), one for the EVSE hosts
(interfaces ``evse0``, ``evse1``, ...), and one for the emulated modems, runs the medium
until interrupted, then removes everything. Needs root. SIGUSR1 restarts the EVSE hosts'
modems (they lose their key and send VS_HOST_ACTION.IND), as a power glitch would.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Optional

from slac.testing.netns import can_create_namespaces
from slac.testing.powerline.medium import EV, EVSE, Medium
from slac.testing.powerline.runner import Powerline
from slac.testing.powerline.topology import Topology


def parse_loss(items: list[str]) -> dict[str, float]:
    loss = {}
    for item in items:
        name, _, rate = item.partition("=")
        try:
            value = float(rate)
        except ValueError:
            raise SystemExit(
                f"error: --loss takes NAME=RATE (e.g. CM_MNBC_SOUND.IND=0.3), not {item!r}"
            ) from None
        if not 0 <= value <= 1:
            raise SystemExit(f"error: loss rate {value} is not between 0 and 1")
        loss[name or "*"] = value
    return loss


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slac powerline", description=__doc__.splitlines()[0])
    parser.add_argument("--evs", type=int, default=1, help="EV hosts (default 1)")
    parser.add_argument("--evses", type=int, default=1, help="EVSE hosts (default 1)")
    parser.add_argument(
        "--attenuation", type=float, default=20.0, help="dB between EV i and EVSE i (default 20)"
    )
    parser.add_argument(
        "--crosstalk",
        type=float,
        default=None,
        help="dB between an EV and the other EVSEs (default: not heard)",
    )
    parser.add_argument("--jitter", type=float, default=1.0, help="+/- dB per group (1)")
    parser.add_argument(
        "--loss",
        action="append",
        default=[],
        metavar="NAME=RATE",
        help="drop this share of a message type (NAME * for all)",
    )
    parser.add_argument("--delay", type=float, default=0.0, help="ms added to every frame")
    parser.add_argument(
        "--set-key-result",
        type=int,
        default=1,
        help="Result of CM_SET_KEY.CNF (1 as QCA modems, 0 as HomePlug)",
    )
    parser.add_argument(
        "--firmware", default=None, help="firmware string of the modems' VS_SW_VER.CNF"
    )
    parser.add_argument(
        "--evse-role",
        choices=("evse", "ev"),
        default="evse",
        help="role of the EVSE hosts' modems (ev: misconfigured, they measure no sounds)",
    )
    parser.add_argument(
        "--profiles-without-data",
        action="store_true",
        help="CM_ATTEN_PROFILE.IND with NumGroups 0 (as older QCA firmware)",
    )
    parser.add_argument(
        "--silent-evse-modems",
        action="store_true",
        help="the EVSE hosts' modems answer nothing (off, wedged)",
    )
    return parser


def configure_modems(medium: Medium, args: argparse.Namespace) -> None:
    """The modem knobs of the command line."""
    for port, modem in enumerate(medium.modems):
        modem.set_key_result = args.set_key_result
        if args.firmware is not None:
            modem.firmware = args.firmware
        if modem.role == EVSE:
            modem.profile_data = not args.profiles_without_data
            modem.silent = args.silent_evse_modems
            if args.evse_role == "ev":
                medium.set_role(port, EV)


async def serve(args: argparse.Namespace, stop: Optional[asyncio.Event] = None) -> None:
    with Topology(evs=args.evs, evses=args.evses, evse_netns=True) as topo:
        medium = topo.medium(
            attenuation=args.attenuation, crosstalk=args.crosstalk, jitter=args.jitter
        )
        medium.faults.loss.update(parse_loss(args.loss))
        medium.faults.delay = args.delay / 1000.0
        evse_ports = [i for i, p in enumerate(topo.ports) if p.role == EVSE]
        configure_modems(medium, args)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns) as powerline:
            assert topo.evse_netns is not None
            print(
                f"EVSE hosts: ip netns exec {topo.evse_netns.name} ... "
                f"(interfaces {', '.join(topo.evse_interfaces)})"
            )
            for i, ns in enumerate(topo.ev_netns):
                print(f"EV host {i}: ip netns exec {ns.name} ... (interface {topo.ev_interface})")
            print("virtual powerline running; Ctrl-C stops it and removes the hosts", flush=True)
            done = stop or asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, done.set)

            def restart() -> None:
                for port in evse_ports:
                    powerline.restart_modem(port)
                print(f"restarted {len(evse_ports)} EVSE modem(s)", flush=True)

            loop.add_signal_handler(signal.SIGUSR1, restart)
            await done.wait()
            print("frames crossed:", dict(sorted(medium.counters.items())))


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    ok, why = can_create_namespaces()
    if not ok:
        print(f"error: the virtual powerline {why}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
