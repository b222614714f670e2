"""The car park (slac.powerline.carpark): EVSEs and cars on one hand-moved clock, real frames
through the virtual powerline's medium. Seeded random episodes, and the car-park scenarios
of issue 12 (items 6, 7, 8 and 14). No sockets, no root."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from slac.environment import Config
from slac.fsm.ev import EvAttemptFailed, EvEvent
from slac.fsm.evse import plug_in_time_limit
from slac.testing.powerline.carpark import (
    Carpark,
    CarSpec,
    EpisodeSpec,
    Layout,
    PlugIn,
    random_episode,
    run_episodes,
)

from ..conftest import ROOT

SEEDS = range(4)


def describe(plug_ins: Sequence[PlugIn]) -> str:
    """One line per plug-in, for assertion messages."""
    lines = []
    for p in plug_ins:
        lines.append(
            f"{p.car.name} ({p.car.habits}) at EVSE {p.evse}: {p.result}; plugged "
            f"{p.plugged_at:.2f} s, SLAC from {p.slac_at}, EVSE {p.evse_outcome} at "
            f"{p.evse_outcome_at}, confirmed {[str(m) for m in p.evse_confirmed]}, car "
            f"{p.car_outcome} at {p.car_outcome_at} keyed by EVSE {p.car_keyed_by}, left "
            f"{p.left_at}"
        )
    return "\n".join(lines)


def not_matched(park: Carpark) -> str:
    return describe([p for p in park.plug_ins if p.result != "matched"])


def ended_within(plug_in: PlugIn, bound: float) -> bool:
    """The EVSE's outcome (Matched or MatchingFailed) came within ``bound`` seconds of the
    start of matching (5 % PWM)."""
    if plug_in.evse_outcome_at is None or plug_in.pwm_at is None:
        return False
    return plug_in.evse_outcome_at - plug_in.pwm_at <= bound


def late_ends(park: Carpark) -> str:
    """The plug-ins whose EVSE took longer than the README's bound (none restarted)."""
    bound = plug_in_time_limit(park.config)
    return describe(
        [p for p in park.plug_ins if not p.link_restarts and not ended_within(p, bound)]
    )


# --- seeded random episodes ---------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_random_car_park_pairs_every_car_with_its_own_evse(seed: int) -> None:
    """8 charge points, 16 cars over 5 minutes, crosstalk 26-50 dB, 3 % loss, cars reusing
    their RunID, cars starting 15 s late and cars without SLAC, all comparing every
    CM_ATTEN_CHAR.IND: no wrong pairing, no plug-in left unresolved or ended later than the
    README's bound, every car that could match its own EVSE did (issue 12: the car-park
    deliverable, items 7 and 8)."""
    park = random_episode(seed, EpisodeSpec(choice="lowest")).run()
    figures = park.figures()
    assert figures.plug_ins == 16
    assert figures.wrong_pairings == 0, not_matched(park)
    assert figures.wrong_confirmations == 0, not_matched(park)
    assert figures.stuck == 0, not_matched(park)
    assert not late_ends(park), late_ends(park)
    assert figures.reused_keys == 0
    assert figures.could_match == sum(p.car.slac for p in park.plug_ins)
    assert figures.missed == 0, not_matched(park)


@pytest.mark.parametrize("choice", ["first", "mixed"])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_car_park_with_naive_cars_pairs_no_car_wrongly(seed: int, choice: str) -> None:
    """The same car parks with cars that take the first CM_ATTEN_CHAR.IND under their limit
    (all of them, or half): still no wrong pairing, no plug-in left unresolved or ended later
    than the README's bound, and every car that could match its own EVSE did (issue 12 item
    14)."""
    park = random_episode(seed, EpisodeSpec(choice=choice)).run()
    figures = park.figures()
    assert figures.wrong_pairings == 0, not_matched(park)
    assert figures.wrong_confirmations == 0, not_matched(park)
    assert figures.stuck == 0, not_matched(park)
    assert not late_ends(park), late_ends(park)
    assert figures.missed == 0, not_matched(park)


def test_an_episode_is_the_same_for_the_same_seed() -> None:
    def outcome(seed: int) -> list[tuple[object, ...]]:
        park = random_episode(seed, EpisodeSpec(cars=10, choice="mixed")).run()
        return [
            (p.car, p.evse, p.result, p.plugged_at, p.car_outcome_at, p.evse_outcome_at)
            for p in park.plug_ins
        ]

    assert outcome(11) == outcome(11)
    assert outcome(11) != outcome(12)


def test_every_plug_in_is_counted_once_in_the_figures() -> None:
    summary = run_episodes(range(2), EpisodeSpec(choice="mixed"))
    figures = summary.figures()
    assert figures.plug_ins == 32
    assert (
        figures.matched + figures.wrong_pairings + figures.failed + figures.stuck
        == figures.plug_ins
    )
    assert figures.time_to_match_p50 is not None and figures.time_to_match_p99 is not None
    assert 0 < figures.time_to_match_p50 <= figures.time_to_match_p99
    assert sum(f.plug_ins for f in summary.by_habit().values()) == 32


# --- what the simulation itself must get right -----------------------------------------------


def test_a_car_alone_matches_and_its_modem_joins_the_evse_network() -> None:
    park = Carpark(Layout.uniform(1), seed=3)
    car = park.arrive(CarSpec(dwell=30.0), at=5.0, evse=0)
    park.run()
    plug_in = park.plug_in_of(car)
    assert plug_in.result == "matched"
    assert plug_in.pwm_at == 5.0 and plug_in.slac_at == 6.0
    assert plug_in.time_to_match is not None and 1.0 < plug_in.time_to_match < 2.0
    assert plug_in.link_restarts == 0
    # the car left after its dwell: CP A, and the EVSE's modem got a fresh key
    assert plug_in.left_at == pytest.approx(35.0)
    assert park.medium.modems[0].keys_set == 2


def test_a_wrong_pairing_is_seen_from_the_key_the_car_received() -> None:
    """Guard of the figures themselves: a car whose own EVSE never hears it (its cable at
    more than its limit), next to a waiting EVSE heard under the limit, is keyed by that
    EVSE: counted as a wrong pairing and a wrong confirmation, not as a match."""
    layout = Layout(((45.0, 30.0), (30.0, 20.0)))
    park = Carpark(layout, seed=1)
    park.arrive(CarSpec(name="far", dwell=5.0), at=0.0, evse=0)
    park.arrive(CarSpec(name="late", slac_delay=30.0, dwell=5.0), at=0.0, evse=1)
    park.run(until=10.0)
    far = park.plug_in_of("far")
    assert far.wrong_pairing and far.car_keyed_by == 1 and far.result == "wrong"
    assert park.plug_in_of("late").wrong_confirmations == 1


def test_an_evse_whose_car_never_joins_matches_again_then_ends() -> None:
    """The service's link supervision, as modelled: every CM_SLAC_MATCH.CNF to the car is
    lost, so its modem never joins; TT_match_join after the match the EVSE restarts matching
    with a fresh key, and the plug-in still ends (the car gave up: MatchingFailed)."""
    park = Carpark(Layout.uniform(1), seed=4)
    car = park.arrive(CarSpec(name="car", dwell=200.0), at=0.0, evse=0)
    park.lose(car, 0, "CM_SLAC_MATCH.CNF")
    park.run()
    plug_in = park.plug_in_of(car)
    assert plug_in.link_restarts == 1
    assert plug_in.car_outcome == "failed" and plug_in.car_keyed_by is None
    assert plug_in.evse_outcome == "failed" and plug_in.result == "failed"
    # start-up, then after the lost link (that key went to no EV: none after unplug)
    assert park.medium.modems[0].keys_set == 2


def test_cars_queue_for_a_free_charge_point() -> None:
    park = Carpark(Layout.uniform(1), seed=2, turnover=20.0)
    park.arrive(CarSpec(name="first", dwell=60.0), at=0.0)
    park.arrive(CarSpec(name="second", dwell=60.0), at=10.0)
    park.run()
    first, second = park.plug_in_of("first"), park.plug_in_of("second")
    assert first.left_at == pytest.approx(60.0)
    assert second.arrived_at == 10.0 and second.plugged_at == pytest.approx(80.0)
    assert first.result == second.result == "matched"


# --- issue 12, car-park scenarios -----------------------------------------------------------


def test_neighbours_failed_runs_leave_a_late_own_car_its_match() -> None:
    """Issue 12 item 7: three neighbours' cars, plugged one after the other, sound with
    EVSE 0 (crosstalk 30 dB) and never answer its CM_ATTEN_CHAR.IND (their answers to it
    never arrive); EVSE 0's own car sends its first CM_SLAC_PARM.REQ 15 s after plug-in.
    The neighbours' failed runs may not use up EVSE 0's attempts: its car matches."""
    park = Carpark(Layout.uniform(4, crosstalk=30.0), seed=1)
    own = park.arrive(CarSpec(name="own", slac_delay=15.0, dwell=30.0), at=0.0, evse=0)
    for i in (1, 2, 3):
        name = park.arrive(CarSpec(name=f"neighbour{i}", slac_delay=0.5), at=(i - 1) * 2.5, evse=i)
        park.lose(name, 0, "CM_ATTEN_CHAR.RSP")
    park.run()
    for i in (1, 2, 3):
        assert park.plug_in_of(f"neighbour{i}").result == "matched"
    plug_in = park.plug_in_of(own)
    assert plug_in.result == "matched", describe([plug_in])
    assert plug_in.slac_at == 15.0


@pytest.mark.parametrize("run_ids", ["fresh", "ioniq", "tesla"])
def test_a_car_that_starts_over_after_losing_every_atten_char_ind_matches(run_ids: str) -> None:
    """Issue 12 item 6: the car's first attempt loses every CM_ATTEN_CHAR.IND; it starts
    over (after TT_matching_rate), the Ioniq and the Tesla with the same RunID: it matches,
    as the same car with a fresh RunID does."""
    park = Carpark(Layout.uniform(1), seed=1)
    car = park.arrive(CarSpec(name="car", run_ids=run_ids, dwell=30.0), at=0.0, evse=0)
    park.lose(car, 0, "CM_ATTEN_CHAR.IND")

    def after_first_attempt(park: Carpark, host: object, event: EvEvent) -> None:
        if isinstance(event, EvAttemptFailed) and event.attempt == 1:
            park.restore(car, 0)

    park.car_observers.append(after_first_attempt)
    park.run()
    plug_in = park.plug_in_of(car)
    assert plug_in.result == "matched", describe([plug_in])


def test_every_plug_in_ends_while_other_stations_keep_asking() -> None:
    """Issue 12 item 8: two stations outside the car park, heard by both EVSEs at 45 dB
    (over their limit), send CM_SLAC_PARM.REQ and sound every few seconds, forever. EVSE 0's
    car does no SLAC (basic charging), EVSE 1's starts 15 s late. Both plug-ins end (Matched
    or MatchingFailed) within the README's bound from the start of matching
    (plug_in_time_limit: 82 s with the ISO values); EVSE 1's car matches."""
    config = Config()
    bound = plug_in_time_limit(config)
    park = Carpark(Layout.uniform(2, crosstalk=None), config=config, seed=1, max_plugged=3 * bound)
    park.arrive(CarSpec(name="basic", slac=False, dwell=10.0), at=0.0, evse=0)
    park.arrive(CarSpec(name="late", slac_delay=15.0, dwell=10.0), at=0.0, evse=1)
    for i in range(2):
        pest = CarSpec(name=f"station{i}", attempt_pause=2.0, matching_repetition=1e9)
        park.add_foreign_car(pest, {0: 45.0, 1: 45.0}, at=1.3 * i)
    park.run()
    basic, late = park.plug_in_of("basic"), park.plug_in_of("late")
    assert late.result == "matched", describe([late])
    for plug_in in (basic, late):
        assert ended_within(plug_in, bound), describe([plug_in])
    assert basic.evse_outcome == "failed"


@pytest.mark.parametrize("seed", range(8))
def test_four_naive_cars_plugged_in_at_once_pair_with_no_neighbour(seed: int) -> None:
    """Issue 12 item 14: four cars that take the first CM_ATTEN_CHAR.IND under their limit,
    plugged in at once, own cable 20 dB, every neighbour 26 dB (as with four Qualcomm pevs):
    no car is keyed by a neighbour's EVSE, no EVSE confirms a neighbour's car, every
    plug-in ends. The seed moves the delivery jitter, so which IND comes first."""
    park = Carpark(Layout.uniform(4, own=20.0, crosstalk=26.0), seed=seed)
    for i in range(4):
        park.arrive(CarSpec(name=f"pev{i}", choice="first", dwell=30.0), at=0.0, evse=i)
    park.run()
    figures = park.figures()
    assert figures.wrong_pairings == 0, not_matched(park)
    assert figures.wrong_confirmations == 0, not_matched(park)
    assert figures.stuck == 0, not_matched(park)


def test_a_car_whose_only_parm_req_its_own_evse_missed_is_not_keyed_by_a_neighbour() -> None:
    """What every wrong pairing of the random car parks with cars comparing every IND comes
    from (3 % loss): the car's one CM_SLAC_PARM.REQ is lost on its own cable, so only the
    neighbour's EVSE (30 dB, waiting for its own car, which starts SLAC later) answers; the
    car hears its IND alone, under its 40 dB limit, and asks that EVSE, which confirms.
    Its own EVSE heard the car's CM_START_ATTEN_CHAR.IND and sounds (and ignored them: no
    run). Then the neighbour's car, refused by its matched EVSE, matches the first car's.
    Wrong pairings must be 0 (issue 12, the car-park deliverable)."""
    park = Carpark(Layout.uniform(2, crosstalk=30.0), seed=1)
    park.arrive(CarSpec(name="missed", dwell=30.0), at=0.0, evse=0)
    park.arrive(CarSpec(name="neighbour", slac_delay=5.0, dwell=30.0), at=0.0, evse=1)
    park.lose("missed", 0, "CM_SLAC_PARM.REQ")
    park.at(1.1, lambda park: park.restore("missed", 0))  # its first request only
    park.run()
    figures = park.figures()
    assert figures.wrong_pairings == 0, not_matched(park)
    assert figures.missed == 0, not_matched(park)


@pytest.mark.parametrize("seed", range(4))
def test_a_car_whose_own_parm_cnf_was_lost_is_not_keyed_by_a_neighbour(seed: int) -> None:
    """The other way the random car parks pair wrongly: the own EVSE's CM_SLAC_PARM.CNF is
    lost, so the car counts only the neighbour's EVSE (30 dB, waiting for its own car,
    which starts SLAC later) as a candidate. Both EVSEs sound it; the car takes (or, when
    it trusts only EVSEs that confirmed, hears) only the neighbour's CM_ATTEN_CHAR.IND,
    under its 40 dB limit, and asks that EVSE, which confirms. Wrong pairings must be 0
    (issue 12, the car-park deliverable)."""
    park = Carpark(Layout.uniform(2, crosstalk=30.0), seed=seed)
    park.arrive(CarSpec(name="unconfirmed", dwell=30.0), at=0.0, evse=0)
    park.arrive(CarSpec(name="neighbour", slac_delay=5.0, dwell=30.0), at=0.0, evse=1)
    park.lose("unconfirmed", 0, "CM_SLAC_PARM.CNF")
    park.at(1.1, lambda park: park.restore("unconfirmed", 0))  # its first answer only
    park.run()
    figures = park.figures()
    assert figures.wrong_pairings == 0, not_matched(park)
    assert figures.missed == 0, not_matched(park)


@pytest.mark.parametrize(
    ("config", "station_size", "wrong"),
    [
        (Config(), 0, 1),
        (Config(), 2, 0),
        (Config(match_hold_margin=0.0), 2, 1),
        (Config(atten_char_first_resend=0.015, atten_char_delay_per_db=0.006), 0, 0),
    ],
    ids=["alone", "one-station", "one-station-margin-0", "ATTEN_CHAR_FIRST_RESEND"],
)
def test_a_naive_car_whose_own_first_atten_char_ind_is_lost(
    config: Config, station_size: int, wrong: int
) -> None:
    """A car that takes the first CM_ATTEN_CHAR.IND: its own EVSE's IND (its turn comes
    first) is lost, and the neighbour's EVSE (30 dB, waiting for its own car, which starts
    SLAC later) has nobody better to wait for. An EVSE alone cannot tell: with the ISO resend
    after TT_match_response the neighbour's IND comes first and the car pairs with it. When
    both EVSEs are one station (one StationView), the neighbour's EVSE knows the car's own
    EVSE heard it 10 dB better and leaves its CM_SLAC_MATCH.REQ unanswered: the car starts
    over and takes its own EVSE (MATCH_HOLD_MARGIN 0 turns that off). With
    ATTEN_CHAR_FIRST_RESEND (not ISO) the lost IND is repeated before the neighbour's turn."""
    park = Carpark(
        Layout.uniform(2, crosstalk=30.0), config=config, seed=1, station_size=station_size
    )
    park.arrive(CarSpec(name="naive", choice="first", dwell=30.0), at=0.0, evse=0)
    park.arrive(CarSpec(name="late", slac_delay=5.0, dwell=30.0), at=0.0, evse=1)
    park.at(0.1, lambda park: park.drop_next("naive", 0, "CM_ATTEN_CHAR.IND"))
    park.run()
    naive = park.plug_in_of("naive")
    assert naive.wrong_pairing is bool(wrong), describe(park.plug_ins)
    assert naive.result == ("wrong" if wrong else "matched")


# --- the benchmark --------------------------------------------------------------------------


def test_car_park_benchmark_runs_quickly_and_writes_its_figures(tmp_path: Path) -> None:
    """`benchmarks/carpark.py` (run by `make bench` with 200 episodes), in a quick mode."""
    out, md = tmp_path / "carpark.json", tmp_path / "carpark.md"
    done = subprocess.run(
        [
            sys.executable,
            "benchmarks/carpark.py",
            "--episodes",
            "2",
            "--json",
            str(out),
            "--md",
            str(md),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| compare all INDs | 2 | 32 |" in done.stdout
    assert "| first IND (naive) | 2 | 32 |" in done.stdout
    results = json.loads(out.read_text())
    assert set(results["kinds"]) == {"lowest", "first"}
    for kind in results["kinds"].values():
        figures = kind["figures"]
        assert figures["plug_ins"] == 32
        assert (
            figures["matched"] + figures["wrong_pairings"] + figures["failed"] + figures["stuck"]
            == 32
        )
    assert md.read_text().startswith("Car park, 2 seeded episodes")


def test_car_park_benchmark_takes_evse_settings(tmp_path: Path) -> None:
    """`benchmarks/carpark.py --set NAME=VALUE` runs the EVSEs with a setting changed (the
    README's opt-in figures); an unknown setting is a usage error."""
    out = tmp_path / "carpark.json"
    command = [
        sys.executable,
        "benchmarks/carpark.py",
        "--set",
        "atten_char_first_resend=0.015",
        "--set",
        "atten_char_delay_per_db=0.006",
        "--episodes",
        "1",
        "--kinds",
        "first",
        "--json",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "EVSE settings atten_char_first_resend=0.015, atten_char_delay_per_db=0.006" in (
        done.stdout
    )
    results = json.loads(out.read_text())
    assert results["evse_settings"] == {
        "atten_char_first_resend": "0.015",
        "atten_char_delay_per_db": "0.006",
    }
    bad = subprocess.run(
        [sys.executable, "benchmarks/carpark.py", "--set", "no_such_setting=1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert bad.returncode == 2 and "no_such_setting" in bad.stderr
