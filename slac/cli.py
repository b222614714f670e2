"""The ``slac`` command (also ``python -m slac``).

Subcommands: ``analyze`` a capture, run our ``ev`` once, run a virtual ``powerline``.
Errors are one line on stderr; exit codes: 0 success, 1 the thing checked failed (a
violation, no match), 2 bad usage or environment (a missing file, no permission).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Optional

from slac import __version__
from slac.errors import ConfigError, DecodeError, SlacError


def _analyze(args: argparse.Namespace) -> int:
    from slac.analyze import analyze_file, plot

    try:
        report = analyze_file(args.file)
    except FileNotFoundError:
        print(f"error: no such file: {args.file}", file=sys.stderr)
        return 2
    except DecodeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else report.to_text())
    if args.plot:
        try:
            plot(report, args.plot)
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not args.json:
            print(f"\nsequence chart written to {args.plot}")
    violations = sum(len(s.violations) for s in report.sessions)
    return 1 if args.strict and violations else 0


def _ev(args: argparse.Namespace) -> int:
    from slac.environment import Config
    from slac.ev import EvMatchingFailedError, SlacEvSession
    from slac.fsm.ev import EvConfig

    config = Config().load_envs(args.env)
    logging.basicConfig(
        level=config.log_level_number, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    async def run() -> int:
        session = SlacEvSession(
            args.iface,
            config,
            EvConfig(atten_limit=args.atten_limit),
            sudo_hint="`sudo slac ev ...`",
        )
        try:
            result = await asyncio.wait_for(session.match(), args.timeout)
        except EvMatchingFailedError as exc:
            print(f"no match: {exc}")
            return 1
        except asyncio.TimeoutError:
            print(f"no match within {args.timeout:g} s")
            return 1
        finally:
            await session.close()
        print(
            f"matched EVSE {result.evse_mac} in {result.duration * 1000:.0f} ms "
            f"(attempt {result.attempts}): {result.reason}"
        )
        return 0

    return asyncio.run(run())


def _powerline(args: argparse.Namespace) -> int:
    from slac.powerline.__main__ import main as powerline_main

    return powerline_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slac", description="ISO 15118-3 SLAC tools (HomePlug GreenPHY matching)."
    )
    parser.add_argument("--version", action="version", version=f"slac {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    analyze = sub.add_parser(
        "analyze",
        help="check the SLAC sessions of a pcap/pcapng capture",
        description="Group the frames of a capture into SLAC sessions (EV MAC, RunID) and "
        "check each against ISO 15118-3: timeline, field values, counts, timing, outcome.",
    )
    analyze.add_argument("file", type=Path, help="pcap or pcapng file")
    analyze.add_argument("--json", action="store_true", help="machine-readable output")
    analyze.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="also draw each session as a sequence chart (needs matplotlib)",
    )
    analyze.add_argument("--strict", action="store_true", help="exit 1 when any check failed")
    analyze.set_defaults(func=_analyze)

    ev = sub.add_parser(
        "ev",
        help="run the EV side of SLAC once and report the result",
        description="Match with the EVSE heard best on IFACE (through the "
        "EV's modem), then put the EVSE's key into the modem.",
    )
    ev.add_argument("--iface", required=True, help="interface to the EV's modem")
    ev.add_argument("--env", type=Path, default=None, help=".env file with settings")
    ev.add_argument("--timeout", type=float, default=30.0, help="give up after (s, 30)")
    ev.add_argument(
        "--atten-limit",
        type=float,
        default=40.0,
        help="highest average attenuation accepted (dB, 40)",
    )
    ev.set_defaults(func=_ev)

    powerline = sub.add_parser(
        "powerline",
        help="run a virtual powerline with test hosts (root)",
        description="See `slac powerline -- --help`.",
        add_help=True,
    )
    powerline.add_argument(
        "rest", nargs=argparse.REMAINDER, help="options of the powerline (--evs, --evses, ...)"
    )
    powerline.set_defaults(func=_powerline)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SlacError as exc:  # TransportError, ModemError: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
