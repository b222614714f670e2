"""The EV state machine, driven with a hand-moved clock."""

from __future__ import annotations

import pytest

from slac.errors import ConfigError
from slac.fsm.ev import (
    EvAttemptFailed,
    EvConfig,
    EvMatched,
    EvMatchingFailed,
    EvseChosen,
    EvState,
)
from slac.fsm.events import FailureReason
from slac.messages import (
    AttenCharRsp,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
)

from .ev_harness import BROADCAST, EV, EVSES, NID, NMK, EvHarness


def test_parm_req_is_broadcast_and_resent_then_the_attempt_fails() -> None:
    h = EvHarness(EvConfig(attempts=1))
    h.advance(1.0)
    requests = h.of(SlacParmReq)
    assert [t for t, _ in requests] == pytest.approx([0.0, 0.2, 0.4])
    assert all(o.dst == BROADCAST for _, o in requests)
    assert h.events[-1] == EvMatchingFailed(
        FailureReason.NO_PARM_CNF, 1, "no CM_SLAC_PARM.CNF from any EVSE"
    )


def test_sounding_follows_the_confirmations_batch_interval_apart() -> None:
    h = EvHarness()
    h.parm_cnf(EVSES[0])
    h.parm_cnf(EVSES[1])
    h.advance(0.2)
    assert set(h.m.candidates) == {bytes(EVSES[0]), bytes(EVSES[1])}
    h.advance(0.5)
    starts = h.of(StartAttenCharInd)
    sounds = h.of(MnbcSoundInd)
    assert len(starts) == 3
    assert [o.message.remaining_sounds for _, o in sounds] == list(range(9, -1, -1))  # type: ignore[attr-defined]
    times = [t for t, _ in starts + sounds]
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert gaps == pytest.approx([0.02] * 12)
    assert h.m.state is EvState.RESULTS


def test_every_atten_char_is_acknowledged_and_the_lowest_wins() -> None:
    h = EvHarness()
    for evse in EVSES:
        h.parm_cnf(evse)
    h.advance(0.5)
    h.atten_char(EVSES[0], 50)
    h.atten_char(EVSES[1], 20)
    assert h.m.state is EvState.RESULTS
    h.atten_char(EVSES[2], 35)  # all three reported: no need to wait for the window
    rsps = h.of(AttenCharRsp)
    assert [o.dst for _, o in rsps] == EVSES
    chosen = [e for e in h.events if isinstance(e, EvseChosen)]
    assert chosen[0].evse_mac == EVSES[1]
    assert "20.0 dB" in chosen[0].reason
    (_, request) = h.of(SlacMatchReq)[0]
    assert request.dst == EVSES[1]
    assert request.message == SlacMatchReq(pev_mac=EV, evse_mac=EVSES[1], run_id=h.m.run_id)


def test_results_window_ends_the_wait_for_silent_evses() -> None:
    h = EvHarness()
    h.parm_cnf(EVSES[0])
    h.parm_cnf(EVSES[1])
    h.advance(0.3)
    h.atten_char(EVSES[0], 30)
    assert h.of(SlacMatchReq) == []
    h.advance(1.2)
    assert h.of(SlacMatchReq)[0][1].dst == EVSES[0]


def test_above_the_limit_the_attempt_fails_and_a_new_run_id_follows() -> None:
    h = EvHarness(EvConfig(atten_limit=40))
    first = h.m.run_id
    h.parm_cnf(EVSES[0])
    h.advance(0.5)
    h.atten_char(EVSES[0], 55)
    failed = [e for e in h.events if isinstance(e, EvAttemptFailed)]
    assert "above the attenuation limit" in failed[0].detail
    h.advance(h.m.config.attempt_pause)
    assert h.m.run_id != first
    assert h.of(SlacParmReq)[-1][1].message.run_id == h.m.run_id  # type: ignore[attr-defined]


def test_match_req_is_resent_and_the_cnf_gives_the_key() -> None:
    h = EvHarness()
    h.parm_cnf(EVSES[0])
    h.advance(0.5)
    h.atten_char(EVSES[0], 20)
    h.advance(0.25)
    assert len(h.of(SlacMatchReq)) == 2
    h.match_cnf(EVSES[0], NMK)
    assert h.m.state is EvState.MATCHED
    assert h.events[-1] == EvMatched(EVSES[0], h.m.run_id, NID, NMK)


def test_answers_with_a_foreign_run_id_or_from_another_evse_are_ignored() -> None:
    h = EvHarness()
    h.feed(SlacParmCnf(forwarding_sta=EV, run_id=b"\x77" * 8), EVSES[0])
    assert h.m.candidates == {}
    h.parm_cnf(EVSES[0])
    h.advance(0.5)
    h.atten_char(EVSES[0], 20)
    h.feed(
        SlacMatchCnf(pev_mac=EV, evse_mac=EVSES[1], run_id=h.m.run_id, nid=bytes(7), nmk=bytes(16)),
        EVSES[1],
    )
    assert h.m.state is EvState.MATCH


def test_choice_lowest_waits_for_every_evse_and_takes_the_lowest() -> None:
    h = EvHarness(EvConfig(choice="lowest"))
    for evse in EVSES:
        h.parm_cnf(evse)
    h.advance(0.5)
    h.atten_char(EVSES[0], 30)  # under the limit, but others have not reported yet
    assert h.of(SlacMatchReq) == []
    h.atten_char(EVSES[1], 20)
    h.atten_char(EVSES[2], 25)
    chosen = [e for e in h.events if isinstance(e, EvseChosen)]
    assert [c.evse_mac for c in chosen] == [EVSES[1]]
    assert h.of(SlacMatchReq)[0][1].dst == EVSES[1]


def test_choice_first_takes_the_first_indication_under_the_limit_at_once() -> None:
    h = EvHarness(EvConfig(choice="first", atten_limit=40))
    for evse in EVSES:
        h.parm_cnf(evse)
    h.advance(0.5)
    h.atten_char(EVSES[0], 50)  # above the limit: acknowledged, not chosen
    assert h.of(SlacMatchReq) == []
    h.atten_char(EVSES[1], 30)  # first under the limit: chosen without waiting for EVSES[2]
    chosen = [e for e in h.events if isinstance(e, EvseChosen)]
    assert [c.evse_mac for c in chosen] == [EVSES[1]]
    assert "first" in chosen[0].reason
    assert [o.dst for _, o in h.of(SlacMatchReq)] == [EVSES[1]]
    h.atten_char(EVSES[2], 10)  # lower, but too late for a naive EV
    assert [o.dst for _, o in h.of(SlacMatchReq)] == [EVSES[1]]


def test_choice_first_with_none_under_the_limit_fails_the_attempt() -> None:
    h = EvHarness(EvConfig(choice="first", atten_limit=40, attempts=1))
    h.parm_cnf(EVSES[0])
    h.advance(0.5)
    h.atten_char(EVSES[0], 55)
    assert isinstance(h.events[-1], EvMatchingFailed)
    assert "above the attenuation limit" in h.events[-1].detail


def test_choice_must_be_lowest_or_first() -> None:
    with pytest.raises(ConfigError, match="EvConfig.choice: 'best' must be one of lowest, first"):
        EvConfig(choice="best")
