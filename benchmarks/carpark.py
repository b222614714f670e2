"""Car park figures: seeded episodes of EVSEs and cars on one hand-moved clock.

Each episode (``slac.powerline.carpark.random_episode``): K charge points in a row (own cable
20 dB, neighbours' cables coupled at 26-50 dB up to 3 places apart), cars arriving at random
over a window into a free charge point, 3 % frame loss, some cars reusing one RunID (Ioniq,
Tesla), some starting SLAC 15 s late. The EVSEs are this library's state machine, driven as
``slac evse`` drives it; the cars its EV state machine. Run once per EV kind: cars that
compare every CM_ATTEN_CHAR.IND (ISO 15118-3) and naive cars that take the first under
their limit. No sockets, no root: the clock jumps from event to event.

    .venv/bin/python benchmarks/carpark.py [--episodes 200] [--json out.json] [--md out.md]
        [--set atten_char_first_resend=0.015 ...]

``--set NAME=VALUE`` changes a setting of the EVSEs (a field of ``slac.environment.Config``,
in its units: seconds, dB), e.g. to measure an opt-in that is off by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slac.environment import Config
from slac.testing.powerline.carpark import EpisodeSpec, Figures, RunSummary, run_episodes

KINDS = {"lowest": "compare all INDs", "first": "first IND (naive)", "mixed": "half and half"}


def _s(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def row(label: str, figures: Figures, episodes: Optional[int] = None) -> str:
    could = f"{figures.could_match - figures.missed}/{figures.could_match}"
    return (
        f"| {label} | {'' if episodes is None else episodes} | {figures.plug_ins} "
        f"| {figures.matched} | {figures.wrong_pairings} | {figures.wrong_confirmations} "
        f"| {figures.failed} | {figures.stuck} | {could} "
        f"| {_s(figures.time_to_match_p50)} / {_s(figures.time_to_match_p99)} "
        f"| {_s(figures.time_to_end_max)} |"
    )


HEADER = (
    "| {first} | episodes | plug-ins | matched own EVSE | wrong pairings | wrong MATCH.CNF "
    "| failed | stuck | could match: did | plug-in to match p50 / p99 s "
    "| longest plug-in to EVSE outcome s |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def report(summaries: dict[str, RunSummary], settings: str) -> str:
    lines = [settings, "", HEADER.format(first="EV kind")]
    for kind, summary in summaries.items():
        lines.append(row(KINDS[kind], summary.figures(), len(summary.seeds)))
    for kind, summary in summaries.items():
        lines += ["", f"By habit, {KINDS[kind]}:", "", HEADER.format(first="habits")]
        for habit, figures in summary.by_habit().items():
            lines.append(row(habit, figures))
        if summary.bad_seeds:
            shown = ", ".join(map(str, summary.bad_seeds[:20]))
            more = " ..." if len(summary.bad_seeds) > 20 else ""
            lines += [
                "",
                f"Seeds with a wrong pairing, a stuck plug-in or a missed match "
                f"({len(summary.bad_seeds)}): {shown}{more}",
            ]
    return "\n".join(lines)


def evse_config(settings: list[str]) -> Config:
    """The EVSEs' settings: the defaults, changed by NAME=VALUE items (Config fields)."""
    config = Config()
    fields = {f.name: f for f in dataclasses.fields(Config)}
    changes: dict[str, Any] = {}
    for item in settings:
        name, _, value = item.partition("=")
        if name not in fields or not value:
            raise ValueError(f"--set {item!r}: not NAME=VALUE with NAME a Config field")
        current = getattr(config, name)
        if isinstance(current, bool):
            parsed: Any = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(current, (int, float)):
            parsed = type(current)(value)
        else:
            parsed = value
        changes[name] = parsed
    return dataclasses.replace(config, **changes)  # checked: a bad value is a ConfigError


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200, help="episodes per EV kind")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from here")
    parser.add_argument("--kinds", default="lowest,first", help="EV kinds: lowest,first,mixed")
    parser.add_argument("--evses", type=int, default=EpisodeSpec.evses, help="charge points")
    parser.add_argument("--cars", type=int, default=EpisodeSpec.cars, help="cars per episode")
    parser.add_argument("--window", type=float, default=EpisodeSpec.window, help="arrivals (s)")
    parser.add_argument("--loss", type=float, default=EpisodeSpec.loss, help="frame loss share")
    parser.add_argument(
        "--station-size",
        type=int,
        default=EpisodeSpec.station_size,
        help="charge points per station (one process sharing what its EVSEs heard); 0: none",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an EVSE setting (slac.environment.Config field, its units), repeatable",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--md", type=Path, help="write the tables to this file")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 on a wrong pairing, a stuck plug-in or a car that could match and did not",
    )
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown EV kind(s) {unknown}: choose from {', '.join(KINDS)}")
    try:
        config = evse_config(args.set)
    except ValueError as error:
        parser.error(str(error))
    # The state machines log every failed attempt at WARNING: thousands of lines here.
    logging.basicConfig(level=logging.ERROR)
    seeds = range(args.first_seed, args.first_seed + args.episodes)
    summaries: dict[str, RunSummary] = {}
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "seeds": [seeds.start, seeds.stop - 1] if args.episodes else [],
        "kinds": {},
    }
    for kind in kinds:
        spec = EpisodeSpec(
            evses=args.evses,
            cars=args.cars,
            window=args.window,
            loss=args.loss,
            choice=kind,
            station_size=args.station_size,
        )
        started = time.process_time()
        summary = run_episodes(seeds, spec, config)
        cpu = time.process_time() - started
        summaries[kind] = summary
        figures = summary.figures()
        print(
            f"{KINDS[kind]}: {args.episodes} episodes, {figures.plug_ins} plug-ins, "
            f"{summary.events:,} events in {cpu:.1f} CPU s",
            flush=True,
        )
        results["kinds"][kind] = {
            "figures": figures.as_dict(),
            "by_habit": {h: f.as_dict() for h, f in summary.by_habit().items()},
            "bad_seeds": summary.bad_seeds,
            "events": summary.events,
            "cpu_s": round(cpu, 2),
        }
    spec = EpisodeSpec(evses=args.evses, cars=args.cars, window=args.window, loss=args.loss)
    results["settings"] = {k: v for k, v in dataclasses.asdict(spec).items() if k != "choice"}
    results["evse_settings"] = dict(item.partition("=")[::2] for item in args.set)
    settings = (
        f"Car park, {args.episodes} seeded episodes per EV kind (seeds "
        f"{seeds.start}-{seeds.stop - 1}): {spec.evses} charge points in a row, own cable "
        f"{spec.own_db:g} dB, neighbours {spec.nearest_db:g}-{spec.farthest_db:g} dB up to "
        f"{spec.reach} places apart, {spec.cars} cars arriving over {spec.window:g} s, "
        f"dwell {spec.dwell[0]:g}-{spec.dwell[1]:g} s, frame loss {spec.loss:.0%}, "
        f"{spec.reuse_share:.0%} reusing one RunID (Ioniq, Tesla), {spec.late_share:.0%} "
        f"starting SLAC {spec.late_delay:g} s after 5 % PWM, {spec.basic_share:.0%} without "
        "SLAC (basic charging), ISO 15118-3 timers"
        + (f"; EVSE settings {', '.join(args.set)}." if args.set else ", default EVSE settings.")
    )
    text = report(summaries, settings)
    print()
    print(text)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.md:
        args.md.write_text(text + "\n")
    if args.check:
        bad = any(s.bad_seeds for s in summaries.values())
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
