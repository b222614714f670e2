"""The ``slac`` command (also ``python -m slac``).

Subcommands: run the station's EVSEs (``evse``), ``capture`` SLAC frames to a pcap file,
``analyze`` a capture, run our ``ev`` once, run a virtual ``powerline``, check the modems
(``doctor``), print the configuration table (``config``).
Errors are one line on stderr; exit codes: 0 success, 1 the thing checked failed (a
violation, no match), 2 bad usage or environment (a missing file, no permission).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path
from typing import Any, Optional

from slac import __version__
from slac.config import CHOICES, EvConfig
from slac.errors import ConfigError, DecodeError, SlacError


def _analyze(args: argparse.Namespace) -> int:
    from slac.tools.analyze import analyze_file, plot

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


def _evse(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from slac.app.logs import configure_logging
    from slac.app.settings import AppSettings, parse_mqtt_url
    from slac.app.station import load_station
    from slac.environment import Config, load_settings

    config, settings = load_settings(args.env, Config, AppSettings)
    cp_source = settings.cp_source if args.cp is None else args.cp
    if args.pcap is not None:  # the sessions write it: SlacEvseSession reads Config.pcap_file
        config = replace(config, pcap_file=str(args.pcap))
    specs = load_station(args.config)
    url = None
    everest = None
    if args.everest is not None:
        from slac.app.everest import parse_everest_url

        if args.cp is not None:
            print("error: --everest takes the control pilot from EVerest: no --cp", file=sys.stderr)
            return 2
        try:
            everest = parse_everest_url(args.everest)
        except ValueError as exc:
            print(f"error: --everest {exc}", file=sys.stderr)
            return 2
        try:
            import aiomqtt
        except ImportError:
            print("error: --everest needs aiomqtt: pip install 'slac[mqtt]'", file=sys.stderr)
            return 2
    elif cp_source != "stdin":  # with --everest, EVerest's enter_bcd/leave_bcd are the CP
        try:
            url = parse_mqtt_url(cp_source)
        except ValueError as exc:
            print(f"error: --cp {exc}", file=sys.stderr)
            return 2
        try:
            import aiomqtt  # noqa: F401
        except ImportError:
            print("error: --cp mqtt:// needs aiomqtt: pip install 'slac[mqtt]'", file=sys.stderr)
            return 2
    configure_logging(settings)
    return asyncio.run(_run_evse(config, settings, specs, url, args.print_states, everest))


async def _run_evse(
    config: Any, settings: Any, specs: Any, url: Any, print_states: bool, everest: Any = None
) -> int:
    from slac.app.service import EvseService, run_stdin

    service = EvseService(specs, config)
    api = None
    if everest is not None:
        from slac.app.everest import EverestSlacApi, module_ids

        api = EverestSlacApi(service, everest, module_ids(specs), settings)
    if print_states:
        service.listeners.append(lambda report: print(report.to_json(), flush=True))
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    stopping: list[str] = []

    def stop(name: str) -> None:
        if not stopping and main_task is not None:
            stopping.append(name)
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        await service.start()
        if api is not None:
            await api.run()
        elif url is None:
            await run_stdin(service)
        else:
            from slac.app.mqtt import MqttBridge

            await MqttBridge(service, url, settings).run()
    except asyncio.CancelledError:
        if not stopping:
            raise
        logging.getLogger(__name__).info("%s received: stopping", stopping[0])
    finally:
        with contextlib.suppress(asyncio.CancelledError):
            await service.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def _capture(args: argparse.Namespace) -> int:
    from slac.tools.capture import capture_to_pcap

    written = capture_to_pcap(
        args.iface, args.write, count=args.count, duration=args.duration, announce=True
    )
    print(f"{written} frame(s) written to {args.write}")
    return 0


def _ev(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from slac.app.logs import configure_logging
    from slac.app.settings import AppSettings
    from slac.config import EvConfig
    from slac.environment import Config, load_settings
    from slac.ev import EvMatchingFailedError, SlacEvSession

    config, settings, ev_config = load_settings(args.env, Config, AppSettings, EvConfig)
    options = {
        "atten_limit": args.atten_limit,
        "choice": args.choice,
        "accept_nonstandard_match_cnf": args.accept_nonstandard_match_cnf or None,
    }
    ev_config = replace(ev_config, **{k: v for k, v in options.items() if v is not None})
    configure_logging(settings)

    async def run() -> int:
        session = SlacEvSession(
            args.iface,
            config,
            ev_config,
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


def _doctor(args: argparse.Namespace) -> int:
    from slac.app.logs import configure_logging
    from slac.app.settings import AppSettings
    from slac.app.station import load_station
    from slac.environment import Config, load_settings
    from slac.tools.doctor import DoctorOptions, diagnose

    if args.timeout <= 0 or args.ev_timeout <= 0:
        print("error: --timeout and --ev-timeout must be more than 0 s", file=sys.stderr)
        return 2
    config, settings = load_settings(args.env, Config, AppSettings)
    if args.iface:
        interfaces: list[tuple[str, Optional[str]]] = [(name, None) for name in args.iface]
    else:
        specs = load_station(args.config or Path("cs_configuration.json"))
        interfaces = [(spec.network_interface, spec.evse_id) for spec in specs]
    configure_logging(settings)
    options = DoctorOptions(
        timeout=args.timeout,
        accepted=tuple(config.set_key_result_ok),
        key=args.key,
        with_ev=args.with_ev,
        ev_timeout=args.ev_timeout,
        settle_time=config.set_key_settle_time,
    )
    report = asyncio.run(diagnose(interfaces, options))
    print(report.to_json() if args.json else report.to_text())
    return report.exit_code


def _config(args: argparse.Namespace) -> int:
    from slac.environment import BEGIN, END, config_table, update_table

    if args.update:
        written = update_table(args.update)
        if written is None:
            names = " or ".join(str(p) for p in args.update)
            print(f"error: no {BEGIN} ... {END} in {names}", file=sys.stderr)
            return 2
        print(f"configuration table written to {written}")
        return 0
    sys.stdout.write(config_table())
    return 0


def _powerline(args: argparse.Namespace) -> int:
    from slac.testing.powerline.__main__ import main as powerline_main

    rest = list(args.rest)
    if rest[:1] == ["--"]:  # `slac powerline -- --evs 2`: the separator is not an option
        rest = rest[1:]
    return powerline_main(rest)


def _ev_default(name: str) -> Any:
    return getattr(EvConfig(), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slac", description="ISO 15118-3 SLAC tools (HomePlug GreenPHY matching)."
    )
    parser.add_argument("--version", action="version", version=f"slac {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    evse = sub.add_parser(
        "evse",
        help="run every EVSE of the station file; control pilot from stdin or MQTT",
        description="Run every EVSE of the station file (one interface to a GreenPHY modem "
        "each) until SIGINT/SIGTERM. Control-pilot states come from stdin (type B, C, A, "
        "optionally after the EVSE id; '<evse_id> dlink terminate|error|pause|resume' for "
        "the HLC side's D-LINK requests; 'status' for states and counters) or from MQTT "
        "(<prefix>/<evse_id>/cp_state and /dlink, with the state published retained to "
        "<prefix>/<evse_id>/slac and the counters to <prefix>/<evse_id>/stats). Every "
        "state change is printed on stdout as one JSON line; logs go to stderr.",
    )
    evse.add_argument(
        "--config",
        type=Path,
        default=Path("cs_configuration.json"),
        help="station file (default: cs_configuration.json)",
    )
    evse.add_argument("--env", type=Path, default=None, help=".env file (default: ./.env)")
    evse.add_argument(
        "--cp",
        default=None,
        metavar="stdin|mqtt://HOST:PORT/PREFIX",
        help="control-pilot source (default: CP_SOURCE, else stdin)",
    )
    evse.add_argument(
        "--everest",
        default=None,
        metavar="mqtt://HOST:PORT/PREFIX",
        help="serve EVerest's slac_API (replaces EvseSlac): commands on "
        "<prefix>/<module_id>/e2m/*, state on .../m2e/*; prefix default everest_api/1/slac, "
        "module id: the EVSE's everest_module_id, else its evse_id",
    )
    evse.add_argument(
        "--pcap", type=Path, default=None, help="write every SLAC frame to this pcap file"
    )
    evse.add_argument(
        "--no-print-states",
        dest="print_states",
        action="store_false",
        help="do not print state changes on stdout",
    )
    evse.set_defaults(func=_evse)

    capture = sub.add_parser(
        "capture",
        help="write the SLAC frames (EtherType 0x88E1) of an interface to a pcap file",
        description="Capture both directions of HomePlug traffic on IFACE with kernel "
        "timestamps until Ctrl-C, SIGTERM, --count or --duration (root or CAP_NET_RAW).",
    )
    capture.add_argument("--iface", required=True, help="interface to capture on")
    capture.add_argument("-w", "--write", type=Path, required=True, help="pcap file to write")
    capture.add_argument("--count", type=int, default=None, help="stop after this many frames")
    capture.add_argument("--duration", type=float, default=None, help="stop after (s)")
    capture.set_defaults(func=_capture)

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
        default=None,
        help="highest average attenuation accepted (dB; default: EV_ATTEN_LIMIT, else "
        f"{_ev_default('atten_limit'):g})",
    )
    ev.add_argument(
        "--choice",
        choices=CHOICES,
        default=None,
        help="lowest: wait for every EVSE, take the lowest attenuation (ISO 15118-3); first: "
        "take the first under the limit at once (a naive car, for simulations); default: "
        f"EV_CHOICE, else {_ev_default('choice')}",
    )
    ev.add_argument(
        "--accept-nonstandard-match-cnf",
        action="store_true",
        help="not conformant: take a CM_SLAC_MATCH.CNF whose NID is not derived from its NMK "
        "or whose PEV_ID/EVSE_ID are not zero (pyPLC's EVSE, Qualcomm's evse with a station "
        "identifier)",
    )
    ev.set_defaults(func=_ev)

    doctor = sub.add_parser(
        "doctor",
        help="check each interface's modem before the first car: permission, interface, "
        "firmware, key, link status, role, sounding (root)",
        description="Check each interface and its GreenPHY modem and say what to do about "
        "each finding. Exit code 0: nothing found, 1: a finding, 2: bad usage. The set-key "
        "check gives the modem a fresh random key (as slac evse does after an unplug); it is "
        "skipped while another program (a running slac evse) uses the interface.",
    )
    where = doctor.add_mutually_exclusive_group()
    where.add_argument(
        "--iface", action="append", metavar="IF", help="interface to check (repeatable)"
    )
    where.add_argument(
        "--config",
        type=Path,
        default=None,
        help="station file whose interfaces to check (default: cs_configuration.json)",
    )
    doctor.add_argument("--env", type=Path, default=None, help=".env file (SET_KEY_RESULT_OK, ...)")
    doctor.add_argument("--json", action="store_true", help="machine-readable output")
    doctor.add_argument(
        "--with-ev",
        action="store_true",
        help="wait for an EV to sound and check the modem's CM_ATTEN_PROFILE.IND",
    )
    doctor.add_argument(
        "--ev-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="wait this long for the EV (s, 30)",
    )
    doctor.add_argument(
        "--timeout",
        type=float,
        default=0.5,
        metavar="S",
        help="wait per request and try (s, 0.5; 3 tries)",
    )
    key = doctor.add_mutually_exclusive_group()
    key.add_argument(
        "--set-key",
        dest="key",
        action="store_const",
        const="set",
        default="auto",
        help="run the set-key check even while another program uses the interface",
    )
    key.add_argument(
        "--keep-key",
        dest="key",
        action="store_const",
        const="keep",
        help="skip the set-key check: leave the modem's key as it is",
    )
    doctor.set_defaults(func=_doctor)

    config = sub.add_parser(
        "config",
        help="print the table of every setting (environment variable, default, unit, rule)",
        description="Print the configuration table (Markdown), made from the settings' "
        "declarations (slac.config, slac.app.settings), as docs/configuration.md shows it.",
    )
    config.add_argument(
        "--markdown", action="store_true", help="print the table in Markdown (the default)"
    )
    config.add_argument(
        "--update",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="rewrite the table between the config-table markers of the first FILE that has "
        "them (make config-table)",
    )
    config.set_defaults(func=_config)

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
    except OSError as exc:  # a file that cannot be written, ...
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
