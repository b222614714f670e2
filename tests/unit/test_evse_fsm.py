"""The EVSE state machine, driven with a hand-moved clock.

Requirement names are ISO 15118-3's timers and counts as the design notes (section 5) and
the wire-format reference (section 6) give them.
"""

from __future__ import annotations

import logging

import pytest

from slac.environment import Config
from slac.fsm.events import (
    AttemptFailed,
    FailureReason,
    Matched,
    MatchingFailed,
    MatchingOngoing,
    MatchingStarted,
    Outgoing,
    RunEnded,
    Stopped,
)
from slac.fsm.evse import EvseState, RunState, parse_cp_state, plug_in_time_limit
from slac.messages import (
    AmpMapCnf,
    AmpMapReq,
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    ValidateCnf,
    ValidateReq,
)
from slac.utils import MacAddress

from .evse_harness import BROADCAST, EVSE_MAC, MODEM_MAC, NID, NMK, Harness, ev_mac

EV = ev_mac(1)
RUN = bytes.fromhex("1111111111111111")


def test_parm_req_gets_unicast_cnf_with_iso_field_values() -> None:
    h = Harness()
    (out,) = h.parm(EV, RUN)
    assert out.dst == EV
    assert out.message == SlacParmCnf(
        msound_target=BROADCAST,
        num_sounds=10,
        time_out=6,
        resp_type=1,
        forwarding_sta=EV,
        application_type=0,
        security_type=0,
        run_id=RUN,
    )
    assert h.events_of(MatchingOngoing) == [MatchingOngoing(EV, RUN)]


def test_repeated_parm_req_gets_same_cnf() -> None:
    h = Harness()
    (first,) = h.parm(EV, RUN)
    h.advance(0.2)
    (second,) = h.parm(EV, RUN)
    assert second == first
    assert len(h.matcher.runs) == 1
    assert len(h.events_of(MatchingOngoing)) == 1


def test_repeated_parm_req_restarts_tt_match_sequence() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.advance(0.3)
    h.parm(EV, RUN)
    h.advance(0.3)  # 0.6 s after the first request, 0.3 s after the repeat
    assert len(h.matcher.runs) == 1


def test_new_run_id_from_same_ev_replaces_its_run() -> None:
    h = Harness()
    h.parm(EV, RUN)
    new_run = bytes.fromhex("2222222222222222")
    (cnf,) = h.parm(EV, new_run)
    assert cnf.message.run_id == new_run  # type: ignore[attr-defined]
    assert list(h.matcher.runs) == [(bytes(EV), new_run)]
    assert (EV, RUN, FailureReason.EV_STARTED_OVER, "the EV started a new run (new RunID)") in [
        (e.ev_mac, e.run_id, e.reason, e.detail) for e in h.events_of(RunEnded)
    ]


def test_full_match_hands_out_this_evses_key() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20 + i % 3] * 58 for i in range(10)])
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.dst == EV
    h.rsp(EV, RUN)
    (cnf,) = h.match_req(EV, RUN)
    assert cnf.dst == EV
    assert cnf.message == SlacMatchCnf(pev_mac=EV, evse_mac=EVSE_MAC, run_id=RUN, nid=NID, nmk=NMK)
    assert h.matcher.state is EvseState.MATCHED
    assert h.events_of(Matched) == [Matched(EV, RUN, NID)]
    assert h.matcher.deadline is None


def test_atten_char_is_the_rounded_mean_of_the_profiles_received() -> None:
    h = Harness()
    h.parm(EV, RUN)
    profiles = [[10 + (g + i) % 7 for g in range(58)] for i in range(10)]
    h.sounding(EV, RUN, profiles)
    (ind,) = h.sent_of(AttenCharInd)
    message = ind.message
    assert isinstance(message, AttenCharInd)
    expected = tuple(int(sum(p[g] for p in profiles) / 10 + 0.5) for g in range(58))
    assert message.aag == expected
    assert message.num_sounds == 10
    assert (message.source_address, message.run_id) == (EV, RUN)


def test_sounding_window_ends_with_the_profiles_received_so_far() -> None:
    """Without the indications' turns (ATTEN_CHAR_DELAY_PER_DB=0) the measurement of an EV
    whose last sounds were lost ends with TT_EVSE_match_MNBC; with them it ends at the turn
    (test_a_lost_last_profile_does_not_delay_the_atten_char_ind_past_its_turn)."""
    h = Harness(Config(atten_char_delay_per_db=0.0))
    h.parm(EV, RUN)
    h.start_atten(EV, RUN)
    for remaining in range(9, 2, -1):  # the last 3 sounds are lost
        h.advance(0.02)
        h.sound(EV, RUN, remaining, [30] * 58)
    assert h.sent_of(AttenCharInd) == []
    out = h.advance(0.6)  # TT_EVSE_match_MNBC (Time_Out 6) from CM_START_ATTEN_CHAR.IND
    (ind,) = [o for o in out if isinstance(o.message, AttenCharInd)]
    assert ind.message.num_sounds == 7  # type: ignore[attr-defined]
    assert ind.message.aag == (30,) * 58  # type: ignore[attr-defined]


def test_the_profile_of_the_last_sound_ends_sounding_when_earlier_sounds_were_lost() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.start_atten(EV, RUN)
    for remaining in (9, 8, 5, 3, 1, 0):  # 4 sounds lost on the way
        h.advance(0.02)
        h.feed(MnbcSoundInd(remaining_sounds=remaining, run_id=RUN), EV, BROADCAST)
        assert h.sent_of(AttenCharInd) == []  # the last sound's profile is still to come
        h.feed(AttenProfileInd(pev_mac=EV, aag=(25,) * 58), MODEM_MAC)
    last_sound = h.now
    h.wait_for_turn(EV, RUN)
    (ind,) = h.sent_of(AttenCharInd)  # at its turn, not at the end of the window
    assert h.when(AttenCharInd) == [pytest.approx(last_sound + 0.02 + 25 * 0.004)]
    assert ind.message.num_sounds == 6  # type: ignore[attr-defined]


def test_atten_results_timeout_replaces_the_evs_time_out() -> None:
    h = Harness(Config(atten_results_timeout=0.9))
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[30] * 58] * 2)
    h.advance(0.7)
    assert h.sent_of(AttenCharInd) == []
    h.advance(0.2)
    assert len(h.sent_of(AttenCharInd)) == 1


def test_start_atten_char_copies_count_once_and_profiles_never_exceed_num_sounds() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.start_atten(EV, RUN, copies=3)
    for i in range(12):
        h.sound(EV, RUN, max(9 - i, 0), [40] * 58)
    h.wait_for_turn(EV, RUN)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.num_sounds == 10  # type: ignore[attr-defined]


def test_no_profiles_in_the_window_ends_the_run() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.start_atten(EV, RUN)
    h.feed(MnbcSoundInd(remaining_sounds=9, run_id=RUN), EV, BROADCAST)
    h.advance(0.6)
    assert h.sent_of(AttenCharInd) == []
    assert h.events_of(RunEnded)[-1].detail.startswith("no CM_ATTEN_PROFILE.IND")


def test_atten_char_is_resent_every_tt_match_response_then_the_run_ends() -> None:
    h = Harness(Config(atten_char_retries=2))
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    assert len(h.sent_of(AttenCharInd)) == 1
    h.advance(0.2)
    assert len(h.sent_of(AttenCharInd)) == 2
    h.advance(0.2)
    assert len(h.sent_of(AttenCharInd)) == 3
    h.advance(0.2)
    assert len(h.sent_of(AttenCharInd)) == 3
    assert h.events_of(RunEnded)[-1].detail == "no CM_ATTEN_CHAR.RSP after every resend"
    failed = h.events_of(AttemptFailed)[-1]
    assert failed == AttemptFailed(
        1,
        FailureReason.NO_ATTEN_CHAR_RSP,
        "no CM_ATTEN_CHAR.RSP after every resend",
        EV,
        failed.attenuation,
    )
    assert failed.attenuation == 20.0  # what this EVSE measured, carried in the event
    assert h.matcher.state is EvseState.WAITING  # no pause: the next request is answered


def test_resent_atten_char_then_rsp_completes_the_match() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.advance(0.25)  # the first RSP was lost
    h.rsp(EV, RUN)
    h.match_req(EV, RUN)
    assert h.matcher.state is EvseState.MATCHED


def test_match_req_is_accepted_when_the_rsp_was_lost() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    (cnf,) = h.match_req(EV, RUN)
    assert isinstance(cnf.message, SlacMatchCnf)


def test_repeated_match_req_gets_the_same_cnf() -> None:
    h = Harness()
    h.full_match(EV, RUN)
    (first,) = h.sent_of(SlacMatchCnf)
    (again,) = h.match_req(EV, RUN)
    assert again == first


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (SlacMatchReq(pev_mac=EV, evse_mac=MacAddress("02:00:00:00:ee:99"), run_id=RUN), "EVSE"),
        (SlacMatchReq(pev_mac=ev_mac(9), evse_mac=EVSE_MAC, run_id=RUN), "PEV"),
        (SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=b"\x99" * 8), "RunID"),
        (SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=RUN, application_type=1), "APP"),
        (SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=RUN, security_type=1), "SEC"),
        (SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=RUN, mvf_length=0), "MVFLength"),
        (
            SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=RUN, pev_id=bytes(16) + b"\1"),
            "PEV_ID",
        ),
        (
            SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=RUN, evse_id=bytes(16) + b"\1"),
            "EVSE_ID",
        ),
        (SlacMatchReq(pev_mac=MacAddress(bytes(6)), evse_mac=EVSE_MAC, run_id=RUN), "PEV_MAC-0"),
        (SlacMatchReq(pev_mac=EV, evse_mac=MacAddress(bytes(6)), run_id=RUN), "EVSE_MAC-0"),
    ],
)
def test_invalid_match_req_is_ignored_and_timers_keep_running(
    request_: SlacMatchReq, why: str
) -> None:
    """TC_SECC_CMN_VTB_CmSlacMatch_007 to _022: APPLICATION_TYPE 0xFF, SECURITY_TYPE 0xFF,
    MVFLength 0, PEV_ID or EVSE_ID 0...01, PEV_MAC or EVSE_MAC 0, another RunID."""
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.rsp(EV, RUN)
    deadline = h.matcher.deadline
    assert h.feed(request_, EV) == []
    assert h.matcher.deadline == deadline
    assert h.matcher.state is EvseState.WAITING
    h.match_req(EV, RUN)  # the right one still works
    assert h.matcher.state is EvseState.MATCHED


@pytest.mark.parametrize(
    "message",
    [
        SlacParmReq(run_id=RUN, application_type=1),
        SlacParmReq(run_id=RUN, security_type=1, cipher_suites=(1,)),
    ],
)
def test_parm_req_with_other_application_or_security_type_is_ignored(
    message: SlacParmReq,
) -> None:
    h = Harness()
    assert h.feed(message, EV, BROADCAST) == []
    assert h.matcher.runs == {}


def test_frames_of_a_foreign_run_or_ev_are_ignored() -> None:
    h = Harness()
    h.parm(EV, RUN)
    other = bytes.fromhex("3333333333333333")
    h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=other), EV, BROADCAST)
    h.feed(StartAttenCharInd(forwarding_sta=ev_mac(7), run_id=RUN), ev_mac(7), BROADCAST)
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.WAIT_START_ATTEN
    h.feed(AttenProfileInd(pev_mac=ev_mac(7), aag=(1,) * 58), MODEM_MAC)
    h.feed(AttenCharRsp(source_address=EV, run_id=other), EV)
    h.feed(SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=other), EV)
    assert h.sent_of(SlacMatchCnf) == []


def test_profiles_with_other_group_counts_are_ignored() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.start_atten(EV, RUN)
    h.feed(AttenProfileInd(pev_mac=EV, aag=(1,) * 57), MODEM_MAC)
    assert h.matcher.runs[(bytes(EV), RUN)].profiles == 0


def test_empty_profiles_count_as_heard_and_only_profiles_with_values_are_averaged() -> None:
    """Real modems (Ioniq and Model Y captures) send CM_ATTEN_PROFILE.IND with NumGroups 0."""
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[]] * 8 + [[30] * 58, [32] * 58])
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.num_sounds == 10  # type: ignore[attr-defined]
    assert ind.message.aag == (31,) * 58  # type: ignore[attr-defined]


def test_only_empty_profiles_give_the_substitute_never_all_zero_silently(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 15 item 6: profiles with NumGroups 0 (older QCA firmware) do not fail the car,
    and the car does not get an all-zero CM_ATTEN_CHAR.IND (some refuse it; DIN 70121
    Annex C calls under 20 dB implausible): EMPTY_PROFILE_ATTENUATION (20 dB), a WARNING,
    a counter."""
    h = Harness()
    h.parm(EV, RUN)
    with caplog.at_level(logging.WARNING):
        h.sounding(EV, RUN, [[]] * 10)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.aag == (20,) * 58  # type: ignore[attr-defined]
    assert "NumGroups 0): reporting 20 dB in every group" in caplog.text
    assert h.matcher.empty_profile_runs == 1


def test_the_empty_profile_substitute_is_a_setting_and_zero_is_still_possible() -> None:
    h = Harness(Config(empty_profile_attenuation=0.0))
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[]] * 10)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.aag == (0,) * 58  # type: ignore[attr-defined]
    assert h.matcher.empty_profile_runs == 1  # counted (and warned) all the same


def test_sounding_attenuation_offset_is_added_to_every_group_within_a_byte() -> None:
    """Issue 15 item 6: SOUNDING_ATTENUATION_OFFSET (EVerest's
    sounding_attenuation_adjustment), rounded, kept within 0 to 255 dB."""
    h = Harness(Config(sounding_attenuation_offset=-12.0))
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[10] * 29 + [30] * 29] * 10)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.aag == (0,) * 29 + (18,) * 29  # type: ignore[attr-defined]
    high = Harness(Config(sounding_attenuation_offset=7.4))
    high.parm(EV, RUN)
    high.sounding(EV, RUN, [[250] * 29 + [40] * 29] * 10)
    (ind,) = high.sent_of(AttenCharInd)
    assert ind.message.aag == (255,) * 29 + (47,) * 29  # type: ignore[attr-defined]
    assert high.matcher.empty_profile_runs == 0


def test_the_offset_is_added_to_the_empty_profile_substitute_too() -> None:
    h = Harness(Config(sounding_attenuation_offset=5.0))
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[]] * 10)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.aag == (25,) * 58  # type: ignore[attr-defined]


def test_late_sound_after_the_window_is_ignored() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.sound(EV, RUN, 0, [90] * 58)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.aag == (20,) * 58  # type: ignore[attr-defined]
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.WAIT_RSP


def test_validate_req_restarts_tt_evse_match_session() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.rsp(EV, RUN)
    h.advance(9.0)
    h.feed(ValidateReq(), EV)
    h.advance(9.0)
    h.match_req(EV, RUN)
    assert h.matcher.state is EvseState.MATCHED


def test_no_parm_req_within_tt_evse_slac_init_fails_the_plug_in() -> None:
    """V2G3-M06-07: without CM_SLAC_PARM.REQ within TT_EVSE_SLAC_init matching has failed; the
    station's own fallback (E/F, a new CP cycle) is what may start it again."""
    h = Harness(Config(slac_init_timeout=20.0, matching_attempts=3))
    assert h.events_of(MatchingStarted) == [MatchingStarted(1)]
    h.advance(19.9)
    assert h.matcher.state is EvseState.WAITING
    h.advance(0.1)
    (failed,) = h.events_of(MatchingFailed)
    assert failed.reason is FailureReason.NO_PARM_REQ
    assert failed.detail == "no CM_SLAC_PARM.REQ within TT_EVSE_SLAC_init (20 s)"
    assert failed.attempts == 0
    assert h.matcher.state is EvseState.FAILED
    assert h.matcher.deadline is None


def test_parm_req_after_tt_evse_slac_init_is_not_answered() -> None:
    """TC_SECC_CMN_VTB_CmSlacParm_004: CM_SLAC_PARM.REQ after TT_EVSE_SLAC_init expired gets
    no CM_SLAC_PARM.CNF."""
    h = Harness(Config(slac_init_timeout=20.0))
    h.advance(20.0)
    assert h.parm(EV, RUN) == []
    h.advance(0.4)
    assert h.parm(EV, RUN) == []


def test_silent_ev_after_parm_cnf_fails_the_attempt_after_tt_match_sequence() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.advance(0.39)
    assert h.matcher.runs
    h.advance(0.02)
    assert not h.matcher.runs
    assert h.events_of(AttemptFailed)[0].detail.startswith("no CM_START_ATTEN_CHAR.IND")


def test_ev_that_chose_another_evse_does_not_use_up_an_attempt() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[50] * 58] * 10)
    h.rsp(EV, RUN)
    h.advance(10.0)  # TT_EVSE_match_session without CM_SLAC_MATCH.REQ
    assert not h.matcher.runs
    assert h.events_of(AttemptFailed) == []
    assert h.matcher.state is EvseState.WAITING
    assert h.matcher.attempt == 1


def test_two_to_five_evs_sounding_interleaved_each_get_their_own_averages() -> None:
    h = Harness()
    evs = [ev_mac(i) for i in range(1, 6)]
    runs = [bytes([i]) * 8 for i in range(1, 6)]
    for ev, run in zip(evs, runs):
        h.parm(ev, run)
        h.start_atten(ev, run)
    for sound in range(10):
        h.advance(0.02)
        for ev, run in zip(evs, runs):
            h.feed(MnbcSoundInd(remaining_sounds=9 - sound, run_id=run), ev, BROADCAST)
        for n, ev in enumerate(reversed(evs)):  # profiles come back in another order
            atten = 10 * (len(evs) - n) + (sound % 2)
            h.feed(AttenProfileInd(pev_mac=ev, aag=(atten,) * 58), MODEM_MAC)
    h.advance(0.25)  # each IND at its turn: 4 ms per dB after the last sound
    turns = [h.when(AttenCharInd, ev)[0] for ev in evs]
    assert turns == sorted(turns)  # the EV heard best first
    indications = {o.dst: o.message for o in h.sent_of(AttenCharInd)}
    assert set(indications) == set(evs)
    for i, ev in enumerate(evs, start=1):
        message = indications[ev]
        assert isinstance(message, AttenCharInd)
        assert message.run_id == runs[i - 1]
        assert message.aag == (10 * i + 1,) * 58  # mean of 10i and 10i+1, rounded half up
    for ev, run in zip(evs, runs):
        h.rsp(ev, run)
    h.match_req(evs[0], runs[0])  # the EV heard best (the others' requests would wait for it)
    assert h.matcher.match is not None
    assert h.matcher.match.ev_mac == evs[0]
    assert not h.matcher.runs
    ended = {e.ev_mac for e in h.events_of(RunEnded)}
    assert ended == set(evs) - {evs[0]}


def test_at_most_max_parallel_runs_and_busy_runs_are_never_evicted() -> None:
    h = Harness()
    for i in range(1, 6):
        h.parm(ev_mac(i), bytes([i]) * 8)
        h.start_atten(ev_mac(i), bytes([i]) * 8)
    assert h.parm(ev_mac(6), b"\x06" * 8) == []
    assert len(h.matcher.runs) == 5


def test_silent_runs_make_room_for_a_new_ev_oldest_first() -> None:
    h = Harness()
    for i in range(1, 6):
        h.parm(ev_mac(i), bytes([i]) * 8)
        h.advance(0.01)
    (cnf,) = h.parm(ev_mac(6), b"\x06" * 8)
    assert cnf.dst == ev_mac(6)
    assert (bytes(ev_mac(1)), b"\x01" * 8) not in h.matcher.runs
    assert len(h.matcher.runs) == 5


def test_runs_whose_ev_chose_another_evse_make_room_after_tt_ev_atten_results() -> None:
    # five neighbours' cars, heard through crosstalk, completed sounding and went elsewhere
    h = Harness()
    for i in range(1, 6):
        run = bytes([i]) * 8
        h.parm(ev_mac(i), run)
        h.sounding(ev_mac(i), run, [[50] * 58] * 10, gap=0.0)
        h.rsp(ev_mac(i), run)
    own = ev_mac(9)
    first_rsp = h.when(AttenCharInd, ev_mac(1))[0]
    h.advance(first_rsp + 1.0 - h.now)  # the EVs may still be deciding: their runs stay
    assert h.parm(own, b"\x09" * 8) == []
    h.advance(0.3)  # TT_EV_atten_results (1.2 s) after the first CM_ATTEN_CHAR.RSP
    (cnf,) = h.parm(own, b"\x09" * 8)
    assert cnf.dst == own
    assert len(h.matcher.runs) == 5
    ended = [e for e in h.events_of(RunEnded) if "chose another EVSE" in e.detail]
    assert [e.ev_mac for e in ended] == [ev_mac(1)]
    h.sounding(own, b"\x09" * 8, [[20] * 58] * 10)
    h.rsp(own, b"\x09" * 8)
    h.match_req(own, b"\x09" * 8)
    assert h.events_of(Matched) == [Matched(own, b"\x09" * 8, NID)]
    assert h.events_of(AttemptFailed) == []


def test_the_ev_heard_best_takes_the_slot_of_the_worst_heard_sounding_run() -> None:
    # eight cars plug in at once: five neighbours take the slots, our own car was answered
    # but evicted; its profiles show it is on this EVSE's cable
    h = Harness()
    own, own_run = ev_mac(9), b"\x09" * 8
    h.parm(own, own_run)
    for i in range(1, 6):
        h.parm(ev_mac(i), bytes([i]) * 8)
    assert (bytes(own), own_run) not in h.matcher.runs
    for i in range(1, 6):
        h.start_atten(ev_mac(i), bytes([i]) * 8)
        h.sound(ev_mac(i), bytes([i]) * 8, 9, [40 + i] * 58)
    h.start_atten(own, own_run)  # no WAIT_START_ATTEN run left to evict
    assert (bytes(own), own_run) not in h.matcher.runs
    h.sound(own, own_run, 9, [44] * 58)  # not clearly better than the worst (45 dB): no
    assert (bytes(own), own_run) not in h.matcher.runs
    for remaining in range(8, -1, -1):
        h.sound(own, own_run, remaining, [20] * 58)
    assert (bytes(own), own_run) in h.matcher.runs
    assert (bytes(ev_mac(5)), b"\x05" * 8) not in h.matcher.runs  # the worst-heard went
    # the last sound's profile ends sounding: the IND covers the profiles received
    h.wait_for_turn(own, own_run)
    ind = [o for o in h.sent_of(AttenCharInd) if o.dst == own]
    assert len(ind) == 1
    assert isinstance(ind[0].message, AttenCharInd)
    assert ind[0].message.aag == (20,) * 58
    assert ind[0].message.num_sounds == 9


def test_matched_evse_ignores_other_evs() -> None:
    h = Harness()
    h.full_match(EV, RUN)
    assert h.parm(ev_mac(2), b"\x02" * 8) == []
    assert h.match_req(ev_mac(2), b"\x02" * 8) == []


def test_amp_map_from_the_matched_ev_is_confirmed_but_not_an_empty_one() -> None:
    h = Harness()
    h.full_match(EV, RUN)
    (cnf,) = h.feed(AmpMapReq(amplitudes=(1,) * 20), EV)
    assert cnf.message == AmpMapCnf(result=0)
    assert h.feed(AmpMapReq(amplitudes=()), EV) == []


def test_frames_are_ignored_while_idle(caplog: pytest.LogCaptureFixture) -> None:
    h = Harness(start=False)
    with caplog.at_level(logging.DEBUG, logger="slac.fsm.evse"):
        assert h.parm(EV, RUN) == []
    assert "not expected while idle" in caplog.text
    assert h.matcher.deadline is None


def test_cp_b_after_a_starts_and_c_after_b_does_not() -> None:
    h = Harness(start=False)
    assert h.cp("A") is False
    assert h.cp("B1") is True
    assert h.cp("C2") is False
    assert h.matcher.state is EvseState.WAITING


def test_cp_a_stops_matching_in_any_phase() -> None:
    for phase in range(4):
        h = Harness()
        h.parm(EV, RUN)
        if phase >= 1:
            h.sounding(EV, RUN, [[20] * 58] * 3)
        if phase >= 2:
            h.advance(0.6)
            h.rsp(EV, RUN)
        if phase >= 3:
            h.match_req(EV, RUN)
        h.cp("A")
        assert h.matcher.state is EvseState.IDLE
        assert h.matcher.runs == {}
        assert h.matcher.deadline is None
        assert h.events_of(Stopped)[-1].was_matched is (phase == 3)


def test_cp_e_stops_only_a_match() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.cp("E")
    assert h.matcher.state is EvseState.WAITING
    h.cp("B")  # E -> B while matching: matching goes on, no second start
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.rsp(EV, RUN)
    h.match_req(EV, RUN)
    h.cp("F")
    assert h.matcher.state is EvseState.IDLE


def test_a_later_cp_cycle_starts_afresh_after_failure() -> None:
    h = Harness(Config(slac_init_timeout=20.0, matching_attempts=1))
    h.advance(20.0)
    assert h.matcher.state is EvseState.FAILED
    assert h.cp("C") is False  # no cycle yet
    h.cp("A")
    assert h.cp("B") is True
    assert h.matcher.state is EvseState.WAITING
    assert h.matcher.attempt == 1


@pytest.mark.parametrize("state", ["G", "", "BB", "B-", "1", None])
def test_invalid_cp_states_are_rejected(state: object) -> None:
    with pytest.raises(ValueError, match="control-pilot"):
        parse_cp_state(state)  # type: ignore[arg-type]


def test_a_deadline_is_set_whenever_waiting() -> None:
    h = Harness()
    assert h.matcher.deadline == pytest.approx(h.now + 50.0)
    h.parm(EV, RUN)
    assert h.matcher.deadline == pytest.approx(h.now + 0.4)
    h.start_atten(EV, RUN)
    assert h.matcher.deadline == pytest.approx(h.now + 0.6)


def test_new_key_is_what_the_next_match_hands_out() -> None:
    h = Harness()
    new_nmk = b"\x42" * 16
    h.matcher.set_key(new_nmk, b"\x07" * 7)
    h.full_match(EV, RUN)
    (cnf,) = h.sent_of(SlacMatchCnf)
    assert cnf.message.nmk == new_nmk  # type: ignore[attr-defined]
    assert cnf.message.nid == b"\x07" * 7  # type: ignore[attr-defined]


def test_after_a_new_match_is_asked_for_no_other_ev_gets_the_same_key() -> None:
    h = Harness()
    h.full_match(EV, RUN)
    h.matcher.stop(h.now, "the HLC side asks for a new match")  # without a new key
    h.matcher.start(h.now)
    other, other_run = ev_mac(2), b"\x02" * 8
    h.parm(other, other_run)
    h.sounding(other, other_run, [[20] * 58] * 10)
    h.rsp(other, other_run)
    assert h.match_req(other, other_run) == []
    assert [o.dst for o in h.sent_of(SlacMatchCnf)] == [EV]
    h.matcher.set_key(b"\x09" * 16, b"\x09" * 7)  # with a fresh key, it may
    (cnf,) = h.match_req(other, other_run)
    assert cnf.message.nmk == b"\x09" * 16  # type: ignore[attr-defined]


# --- issue 12: what ISO 15118-5 test labs check, and what real cars need ------------------------
#
# TC_SECC_* names are the ISO 15118-5 SLAC cases of the public catalogue (nvdungx/
# ISO15118_3_TestEnv, src/testcase/tc_secc_*.cpp) whose stimulus the test repeats.

ONE_ID = bytes(16) + b"\x01"
NEIGHBOUR = ev_mac(0x20)


def _ind_count(h: Harness, dst: MacAddress = EV) -> int:
    return len(h.sent_of(AttenCharInd, dst))


def _sounded(h: Harness, ev: MacAddress = EV, run: bytes = RUN, atten: int = 20) -> None:
    """CM_SLAC_PARM.REQ, three CM_START_ATTEN_CHAR.IND, ten sounds and profiles."""
    h.parm(ev, run)
    h.sounding(ev, run, [[atten] * 58] * 10)


# 1. CM_ATTEN_CHAR.RSP is validated before it counts


@pytest.mark.parametrize(
    "rsp",
    [
        AttenCharRsp(source_address=EV, run_id=RUN, application_type=0xFF),
        AttenCharRsp(source_address=EV, run_id=RUN, security_type=0xFF),
        AttenCharRsp(source_address=MacAddress(bytes(6)), run_id=RUN),
        AttenCharRsp(source_address=EV, run_id=RUN, source_id=ONE_ID),
        AttenCharRsp(source_address=EV, run_id=RUN, resp_id=ONE_ID),
        AttenCharRsp(source_address=EV, run_id=RUN, result=0xFF),
    ],
    ids=["APPLICATION_TYPE", "SECURITY_TYPE", "SOURCE_ADDRESS", "SOURCE_ID", "RESP_ID", "Result"],
)
def test_invalid_atten_char_rsp_is_ignored_and_the_ind_resent_up_to_c_ev_match_retry(
    rsp: AttenCharRsp,
) -> None:
    """TC_SECC_CMN_VTB_AttenuationCharacterization_005 to _011: every CM_ATTEN_CHAR.IND is
    answered with an invalid RSP; the IND comes 1 + C_EV_match_retry times, TT_match_response
    apart, and the run is over: a valid RSP and CM_SLAC_MATCH.REQ afterwards get nothing."""
    h = Harness()
    _sounded(h)
    for _ in range(3):
        h.feed(rsp, EV)
        h.advance(0.2)
    assert _ind_count(h) == 3
    assert h.when(AttenCharInd, EV) == pytest.approx([h.now - 0.6, h.now - 0.4, h.now - 0.2])
    h.advance(0.2)
    assert _ind_count(h) == 3
    h.rsp(EV, RUN)
    assert h.match_req(EV, RUN) == []
    assert h.events_of(Matched) == []


def test_a_valid_rsp_after_invalid_ones_stops_the_resends() -> None:
    h = Harness()
    _sounded(h)
    h.feed(AttenCharRsp(source_address=EV, run_id=RUN, source_id=ONE_ID), EV)
    h.advance(0.2)
    assert _ind_count(h) == 2
    h.rsp(EV, RUN)
    h.advance(1.0)
    assert _ind_count(h) == 2
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.WAIT_MATCH


# 2. An invalid CM_START_ATTEN_CHAR.IND starts nothing


@pytest.mark.parametrize(
    "start",
    [
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN, application_type=0xFF),
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN, security_type=0xFF),
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN, num_sounds=0),
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN, num_sounds=8),
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN, time_out=0),
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN, resp_type=0),
        StartAttenCharInd(forwarding_sta=ev_mac(7), run_id=RUN),
        StartAttenCharInd(forwarding_sta=EV, run_id=b"\x99" * 8),
    ],
    ids=[
        "APPLICATION_TYPE",
        "SECURITY_TYPE",
        "NUM_SOUNDS-0",
        "NUM_SOUNDS-not-the-CNF's",
        "Time_Out",
        "RESP_TYPE",
        "FORWARDING_STA",
        "RunID",
    ],
)
def test_invalid_start_atten_char_followed_by_valid_sounds_gets_no_atten_char_ind(
    start: StartAttenCharInd,
) -> None:
    """TC_SECC_CMN_VTB_AttenuationCharacterization_013 to _018: three invalid
    CM_START_ATTEN_CHAR.IND, then ten valid sounds (with their profiles): no CM_ATTEN_CHAR.IND
    within TT_EV_atten_results, nor later."""
    h = Harness()
    h.parm(EV, RUN)
    for _ in range(3):
        h.feed(start, EV, BROADCAST)
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.WAIT_START_ATTEN
    for i in range(10):
        h.advance(0.02)
        h.sound(EV, RUN, 9 - i, [20] * 58)
    h.advance(2.0)
    assert h.sent_of(AttenCharInd) == []


def test_sounds_without_any_start_atten_char_start_nothing_by_default() -> None:
    """ISO 15118-3: sounding starts with CM_START_ATTEN_CHAR.IND; when all three are lost the
    run ends after TT_match_sequence and the EV starts over."""
    h = Harness()
    h.parm(EV, RUN)
    for i in range(10):
        h.sound(EV, RUN, 9 - i, [25] * 58)
    h.advance(1.0)
    assert h.sent_of(AttenCharInd) == []
    assert h.events_of(RunEnded)[-1].detail.startswith("no CM_START_ATTEN_CHAR.IND")


def test_sounding_without_start_is_an_opt_in_setting() -> None:
    h = Harness(Config(sounding_without_start=True))
    h.parm(EV, RUN)
    for i in range(10):
        h.sound(EV, RUN, 9 - i, [25] * 58)
    h.wait_for_turn(EV, RUN)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.num_sounds == 10  # type: ignore[attr-defined]


def test_sounding_without_start_still_ignores_invalid_sounds() -> None:
    h = Harness(Config(sounding_without_start=True))
    h.parm(EV, RUN)
    h.feed(MnbcSoundInd(remaining_sounds=9, run_id=RUN, application_type=1), EV, BROADCAST)
    h.feed(MnbcSoundInd(remaining_sounds=12, run_id=RUN), EV, BROADCAST)  # Cnt >= NUM_SOUNDS
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.WAIT_START_ATTEN


# 3. CM_SLAC_MATCH.REQ is validated completely (see also the parametrized test above)


def test_a_valid_match_req_after_tt_evse_match_session_is_not_answered() -> None:
    """TC_SECC_CMN_VTB_CmSlacMatch_007 to _022: an invalid CM_SLAC_MATCH.REQ is ignored, its
    timer keeps running, and a valid request after TT_EVSE_match_session gets no answer."""
    h = Harness()
    _sounded(h)
    h.rsp(EV, RUN)
    bad = SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=RUN, mvf_length=0)
    assert h.feed(bad, EV) == []
    h.advance(10.0)
    assert h.match_req(EV, RUN) == []
    assert h.events_of(Matched) == []


# 4. No CM_SLAC_PARM.CNF while matched


@pytest.mark.parametrize(
    ("src", "request_"),
    [
        (EV, SlacParmReq(run_id=b"\x55" * 8)),
        (EV, SlacParmReq(run_id=RUN)),
        (EV, SlacParmReq(run_id=b"\x55" * 8, application_type=1)),
        (ev_mac(2), SlacParmReq(run_id=b"\x02" * 8)),
    ],
    ids=["matched-EV-new-RunID", "matched-EV-same-RunID", "matched-EV-invalid", "other-EV"],
)
def test_a_matched_evse_ignores_every_parm_req_and_stays_matched(
    src: MacAddress, request_: SlacParmReq
) -> None:
    """TC_SECC_CMN_VTB_PLCLinkStatus: "no SLAC messages should be sent in state Matched"."""
    h = Harness()
    h.full_match(EV, RUN)
    events = len(h.all_events)
    assert h.feed(request_, src, BROADCAST) == []
    assert h.matcher.state is EvseState.MATCHED
    assert h.matcher.match is not None and h.matcher.match.run_id == RUN
    assert len(h.all_events) == events
    assert h.matcher.deadline is None
    (again,) = h.match_req(EV, RUN)  # the match is still there
    assert isinstance(again.message, SlacMatchCnf)


def test_a_new_match_is_stop_then_start_with_fresh_attempts() -> None:
    """The driver's way to match again (HLC request, lost link): stop(), then start()."""
    h = Harness(Config(matching_attempts=1))
    h.full_match(EV, RUN)
    h.matcher.stop(h.now, "the HLC side asks for a new match")
    h.matcher.start(h.now)
    h.collect()
    assert h.matcher.state is EvseState.WAITING
    assert h.matcher.attempt == 1
    assert h.events_of(MatchingStarted)[-1] == MatchingStarted(1)
    new_run = bytes.fromhex("5555555555555555")
    h.full_match(EV, new_run)
    assert h.events_of(Matched)[-1] == Matched(EV, new_run, NID)


# 5. CM_VALIDATE.REQ: "not required", in both steps


def test_validate_req_is_answered_not_required_in_both_steps_then_the_match_goes_on() -> None:
    """This EVSE does not count CP toggles: its matching never depends on validation, which is
    what Result 4 "not required" says (ISO 15118-3 V2G3-A09-72 keeps such an EVSE among the
    EV's candidates; "failure" after step 1 removes it, V2G3-A09-73). TC_SECC_CMN_VTB_
    CmValidate_012: "not required", then CM_SLAC_MATCH succeeds."""
    h = Harness()
    _sounded(h)
    h.rsp(EV, RUN)
    (step1,) = h.feed(ValidateReq(timer=0, result=1), EV)
    assert step1.dst == EV
    assert step1.message == ValidateCnf(result=4, toggle_num=0, signal_type=0)
    (step2,) = h.feed(ValidateReq(timer=19, result=1), EV)
    assert step2.message == ValidateCnf(result=4, toggle_num=0, signal_type=0)
    (cnf,) = h.match_req(EV, RUN)
    assert isinstance(cnf.message, SlacMatchCnf)


@pytest.mark.parametrize(
    "request_",
    [
        ValidateReq(signal_type=0xFF, timer=19, result=1),
        ValidateReq(timer=19, result=0),
        ValidateReq(timer=19, result=2),
        ValidateReq(timer=19, result=3),
        ValidateReq(timer=19, result=4),
    ],
    ids=["SignalType", "Result-not-ready", "Result-success", "Result-failure", "Result-not-req"],
)
def test_an_invalid_validate_req_is_not_answered(request_: ValidateReq) -> None:
    """TC_SECC_CMN_VTB_CmValidate_004 to _008: a CM_VALIDATE.REQ whose SignalType is not 0 or
    whose Result is not 1 (ready) gets no CNF."""
    h = Harness()
    _sounded(h)
    h.rsp(EV, RUN)
    assert h.feed(request_, EV) == []


def test_validate_req_is_answered_only_for_an_ev_that_completed_sounding() -> None:
    h = Harness()
    h.parm(EV, RUN)
    assert h.feed(ValidateReq(), EV) == []  # still waiting for its CM_START_ATTEN_CHAR.IND
    assert h.feed(ValidateReq(), ev_mac(9)) == []  # no run at all
    h.sounding(EV, RUN, [[20] * 58] * 10)
    (cnf,) = h.feed(ValidateReq(), EV)  # its RSP was lost: the request proves the IND arrived
    assert cnf.message == ValidateCnf(result=4)
    h.advance(1.0)
    assert _ind_count(h) == 1  # no more resends
    h.full_match(EV, bytes.fromhex("4444444444444444"))
    assert h.feed(ValidateReq(), EV) == []  # no SLAC messages in state Matched


def test_validation_never_keeps_a_run_beyond_twice_tt_evse_match_session() -> None:
    h = Harness()
    _sounded(h)
    h.rsp(EV, RUN)
    for _ in range(5):
        h.advance(9.0)
        h.feed(ValidateReq(), EV)
    assert h.matcher.runs == {}
    assert h.match_req(EV, RUN) == []


# 6. Cars that reuse their RunID recover

IONIQ = MacAddress("04:65:65:00:64:c3")
IONIQ_RUN = bytes.fromhex("0465650064c30000")


@pytest.mark.parametrize("pause", [0.4, 0.05], ids=["after-TT_matching_rate", "at-once"])
def test_a_car_reusing_its_run_id_after_losing_every_atten_char_ind_matches(pause: float) -> None:
    """The Ioniq sends RunID 0465650064c30000 (its MAC + 0000) in every attempt. Its first
    attempt loses every CM_ATTEN_CHAR.IND; TT_EV_atten_results (1.2 s from its first
    CM_START_ATTEN_CHAR.IND) ends it, and it starts over with the same RunID: that restarts
    the run (fresh confirmation, fresh sounding; EVerest does the same, citing V2G3-A09-16)."""
    h = Harness(Config(atten_results_timeout=1.0))
    h.parm(IONIQ, IONIQ_RUN)
    h.advance(0.02)
    first_start = h.now
    h.start_atten(IONIQ, IONIQ_RUN)
    for i in range(9):  # the last sound's profile is lost: the window runs to its end
        h.advance(0.02)
        h.sound(IONIQ, IONIQ_RUN, 9 - i, [22] * 58)
    h.advance(first_start + 1.2 + pause - h.now)  # every IND so far was lost
    lost = _ind_count(h, IONIQ)
    assert lost >= 1
    (cnf,) = h.parm(IONIQ, IONIQ_RUN)
    assert cnf.message.run_id == IONIQ_RUN  # type: ignore[attr-defined]
    restarted = h.now
    h.sounding(IONIQ, IONIQ_RUN, [[22] * 58] * 10)
    # the second attempt is sounded afresh: its indication covers its own ten sounds
    (ind,) = [
        o
        for at, o in h.timeline
        if at > restarted and isinstance(o, Outgoing) and isinstance(o.message, AttenCharInd)
    ]
    assert ind.message.num_sounds == 10  # type: ignore[attr-defined]
    h.rsp(IONIQ, IONIQ_RUN)
    (match,) = h.match_req(IONIQ, IONIQ_RUN)
    assert isinstance(match.message, SlacMatchCnf)
    assert h.events_of(Matched) == [Matched(IONIQ, IONIQ_RUN, NID)]


def test_a_repeated_parm_req_while_sounding_is_a_duplicate_not_a_restart() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 5)
    (again,) = h.parm(EV, RUN)
    assert isinstance(again.message, SlacParmCnf)
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.SOUNDING
    assert h.matcher.runs[(bytes(EV), RUN)].profiles == 5


def test_a_run_that_timed_out_is_restarted_by_its_run_id_but_not_by_a_late_start() -> None:
    """TC_SECC_CMN_VTB_AttenuationCharacterization_012: CM_START_ATTEN_CHAR.IND after
    TT_match_sequence is over starts nothing; a new CM_SLAC_PARM.REQ with the same RunID
    starts a fresh run."""
    h = Harness()
    h.parm(EV, RUN)
    h.advance(0.45)
    assert h.matcher.runs == {}
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.advance(1.2)
    assert h.sent_of(AttenCharInd) == []
    h.advance(0.4)
    (cnf,) = h.parm(EV, RUN)
    assert isinstance(cnf.message, SlacParmCnf)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    assert _ind_count(h) == 1


# 7. Neighbours' runs never use up this EVSE's attempts


def test_neighbours_failing_runs_neither_use_up_attempts_nor_lock_out_the_own_car() -> None:
    """Three neighbours' cars (crosstalk, 40 dB) sound with this EVSE again and again and
    never answer its CM_ATTEN_CHAR.IND; the own car's first CM_SLAC_PARM.REQ comes 15 s after
    plug-in (within TT_EVSE_SLAC_init): it is answered and matches."""
    h = Harness()
    plugged = h.now
    neighbours = [ev_mac(0x30 + k) for k in range(3)]
    for round_ in range(4):
        for k, neighbour in enumerate(neighbours):
            run = bytes([round_, k]) * 4
            h.parm(neighbour, run)
            h.sounding(neighbour, run, [[40] * 58] * 10, gap=0.0)
        h.advance(2.5)
    assert len(h.events_of(AttemptFailed)) >= 9  # each neighbour's attempts failed
    assert h.matcher.state is EvseState.WAITING
    h.advance(plugged + 15.0 - h.now)
    (cnf,) = h.parm(EV, RUN)
    assert cnf.dst == EV
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.rsp(EV, RUN)
    h.match_req(EV, RUN)
    assert h.events_of(Matched) == [Matched(EV, RUN, NID)]
    assert h.events_of(MatchingFailed) == []


def test_a_neighbours_failed_run_does_not_make_the_evse_drop_the_next_request() -> None:
    h = Harness()
    h.parm(NEIGHBOUR, b"\x20" * 8)
    h.advance(0.41)  # the neighbour's run failed (no CM_START_ATTEN_CHAR.IND)
    assert h.events_of(AttemptFailed)[-1].ev_mac == NEIGHBOUR
    (cnf,) = h.parm(EV, RUN)
    assert cnf.dst == EV


def test_an_ev_that_used_up_its_attempts_is_not_answered_but_others_are() -> None:
    h = Harness(Config(matching_attempts=3))
    for n in range(3):
        h.parm(NEIGHBOUR, bytes([n]) * 8)
        h.advance(0.5)
    assert [e.attempt for e in h.events_of(AttemptFailed)] == [1, 2, 3]
    assert h.parm(NEIGHBOUR, b"\x09" * 8) == []
    (cnf,) = h.parm(EV, RUN)
    assert cnf.dst == EV


# 8. Every plug-in ends, in bounded time


@pytest.mark.parametrize("behaviour", ["silent", "no-rsp", "elsewhere", "no-rsp-fresh-macs"])
def test_every_plug_in_ends_within_the_iso_bound_even_with_requests_forever(
    behaviour: str,
) -> None:
    """Other stations send CM_SLAC_PARM.REQ every 3 s, forever; the own car never comes.
    The plug-in ends with MatchingFailed within plug_in_time_limit (82.1 s with the ISO
    defaults), so that the station falls back to basic charging."""
    h = Harness()
    plugged = h.now
    limit = plug_in_time_limit(h.config)
    assert limit == pytest.approx(82.1)
    i = 0
    while h.matcher.state is EvseState.WAITING and h.now - plugged < 600:
        if behaviour == "no-rsp-fresh-macs":
            station = MacAddress(bytes([0x02, 0x77]) + i.to_bytes(4, "big"))
        else:
            station = ev_mac(0x40 + i % 4)
        run = i.to_bytes(8, "big")
        h.parm(station, run)
        if behaviour != "silent":
            h.sounding(station, run, [[30] * 58] * 10, gap=0.0)
        if behaviour == "elsewhere":
            h.rsp(station, run)  # ... and asks another EVSE for the match
        h.advance(3.0)
        i += 1
    (failed,) = h.events_of(MatchingFailed)
    (ended,) = h.when(MatchingFailed)
    assert ended - plugged <= limit
    assert h.matcher.state is EvseState.FAILED
    assert h.matcher.deadline is None
    assert h.parm(ev_mac(0x50), b"\x50" * 8) == []
    assert failed.reason


def test_the_plug_in_bound_holds_for_the_longest_possible_run() -> None:
    """A new EV just before TT_EVSE_SLAC_init ends, whose last attempt starts just before
    its TT_matching_repetition ends, repeats CM_SLAC_PARM.REQ, sounds as slowly as it may
    (50 ms apart) and is heard so badly that its CM_ATTEN_CHAR.IND waits for the latest turn,
    answers the last resend of CM_ATTEN_CHAR.IND and validates to keep the run waiting as
    long as it may: the plug-in still ends within plug_in_time_limit, and close to it."""
    config = Config()
    h = Harness(config)
    plugged = h.now
    limit = plug_in_time_limit(config)
    h.advance(config.slac_init_timeout - 0.01)
    h.parm(EV, b"\x01" * 8)  # first attempt: silent, it fails
    h.advance(config.matching_repetition - 0.02)
    h.parm(EV, RUN)
    h.advance(0.2)
    h.parm(EV, RUN)
    h.advance(0.2)
    h.parm(EV, RUN)
    h.advance(0.39)
    h.start_atten(EV, RUN)
    for i in range(9):
        h.advance(0.05)
        h.sound(EV, RUN, 9 - i, [90] * 58)
    h.advance(0.7 + 0.4 - 9 * 0.05 + 0.01)  # the latest turn and two resends
    h.rsp(EV, RUN)
    for _ in range(3):
        h.advance(9.99)
        h.feed(ValidateReq(), EV)
    h.advance(60.0)
    (ended,) = h.when(MatchingFailed)
    assert limit - 1.0 < ended - plugged <= limit


# 9. No invalid frame changes anything


def test_a_fragment_is_never_answered_nor_changes_anything() -> None:
    h = Harness()
    assert h.feed_with_header(SlacParmReq(run_id=RUN), EV, BROADCAST, fmi=0x21) == []
    assert h.matcher.runs == {}
    h.parm(EV, RUN)
    start = StartAttenCharInd(forwarding_sta=EV, run_id=RUN)
    h.feed_with_header(start, EV, BROADCAST, fmi=0x10)
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.WAIT_START_ATTEN
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.rsp(EV, RUN)
    request = SlacMatchReq(pev_mac=EV, evse_mac=EVSE_MAC, run_id=RUN)
    assert h.feed_with_header(request, EV, fmi=0x11) == []
    assert h.matcher.state is EvseState.WAITING


@pytest.mark.parametrize("mmv", [0x00, 0x02, 0xFF])
def test_a_slac_message_with_an_unknown_mmv_is_ignored(mmv: int) -> None:
    h = Harness()
    assert h.feed_with_header(SlacParmReq(run_id=RUN), EV, BROADCAST, mmv=mmv) == []
    assert h.matcher.runs == {}
    assert h.events_of(MatchingOngoing) == []


def test_frames_from_a_multicast_source_or_from_this_evse_itself_are_ignored() -> None:
    h = Harness()
    assert h.parm(MacAddress("03:00:00:00:00:01"), RUN) == []
    assert h.parm(EVSE_MAC, RUN) == []
    assert h.matcher.runs == {}


def test_an_invalid_start_or_sound_never_readmits_a_run_that_made_room() -> None:
    """The own car's run made room for five others (all waiting for their
    CM_START_ATTEN_CHAR.IND); only a valid CM_START_ATTEN_CHAR.IND brings it back."""
    h = Harness(Config(sounding_without_start=True))
    h.parm(EV, RUN)
    for i in range(1, 6):
        h.advance(0.01)
        h.parm(ev_mac(0x60 + i), bytes([i]) * 8)
    assert (bytes(EV), RUN) not in h.matcher.runs
    h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=RUN, resp_type=0), EV, BROADCAST)
    h.feed(MnbcSoundInd(remaining_sounds=9, run_id=RUN, security_type=1), EV, BROADCAST)
    assert (bytes(EV), RUN) not in h.matcher.runs
    h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=RUN), EV, BROADCAST)
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.SOUNDING


def test_an_invalid_repeat_of_parm_req_does_not_refresh_tt_match_sequence() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.advance(0.3)
    assert h.feed(SlacParmReq(run_id=RUN, application_type=1), EV, BROADCAST) == []
    h.advance(0.11)
    assert h.matcher.runs == {}


# 10. CM_ATTEN_PROFILE.IND only from this EVSE's own modem


def test_profiles_count_only_from_this_evses_modem() -> None:
    """A forged profile from another host must not turn a car heard at 40 dB into 1 dB."""
    h = Harness()
    h.parm(EV, RUN)
    h.start_atten(EV, RUN)
    forger = MacAddress("02:00:00:00:66:66")
    for i in range(10):
        h.advance(0.02)
        h.feed(AttenProfileInd(pev_mac=EV, aag=(1,) * 58), forger)
        h.sound(EV, RUN, 9 - i, [40] * 58)
    h.wait_for_turn(EV, RUN)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.aag == (40,) * 58  # type: ignore[attr-defined]
    assert ind.message.num_sounds == 10  # type: ignore[attr-defined]


def test_before_the_modem_is_known_no_ev_station_counts_and_the_first_source_is_kept() -> None:
    """While ``modem_mac`` is None (the driver has not learned it), profiles are taken from
    one station for the plug-in: the first one that is neither this EVSE nor an EV doing
    SLAC with it."""
    h = Harness(known_modem=False)
    assert h.matcher.modem_mac is None
    other, other_run = ev_mac(2), b"\x02" * 8
    h.parm(EV, RUN)
    h.parm(other, other_run)
    h.start_atten(EV, RUN)
    h.feed(AttenProfileInd(pev_mac=EV, aag=(1,) * 58), other)  # an EV forging
    assert h.matcher.runs[(bytes(EV), RUN)].profiles == 0
    h.feed(AttenProfileInd(pev_mac=EV, aag=(40,) * 58), MODEM_MAC)
    h.feed(AttenProfileInd(pev_mac=EV, aag=(1,) * 58), MacAddress("02:00:00:00:66:66"))
    assert h.matcher.runs[(bytes(EV), RUN)].profiles == 1
    assert h.matcher.runs[(bytes(EV), RUN)].aag_sum == [40] * 58


# 11. Key hygiene: no EV ever receives a key an earlier EV of this EVSE received


def test_after_unplug_without_a_new_key_the_next_ev_is_refused_until_the_key_changes() -> None:
    """The re-key after car 1's unplug failed: car 2 must not get car 1's NMK."""
    h = Harness()
    h.full_match(EV, RUN)
    h.cp("A")
    assert h.cp("B")  # the next plug-in; the modem still has car 1's key
    car2, run2 = ev_mac(2), b"\x02" * 8
    _sounded(h, car2, run2)
    h.rsp(car2, run2)
    assert h.match_req(car2, run2) == []
    assert [o.dst for o in h.sent_of(SlacMatchCnf)] == [EV]
    h.matcher.set_key(b"\x09" * 16, b"\x09" * 7)  # the driver re-keyed the modem
    (cnf,) = h.match_req(car2, run2)
    assert cnf.message.nmk == b"\x09" * 16  # type: ignore[attr-defined]


def test_match_cnf_always_carries_the_key_the_modem_holds() -> None:
    h = Harness()
    h.full_match(EV, RUN)
    h.matcher.set_key(b"\x07" * 16, b"\x07" * 7)  # a key set while matched
    (again,) = h.match_req(EV, RUN)
    assert again.message.nmk == b"\x07" * 16  # type: ignore[attr-defined]
    assert again.message.nid == b"\x07" * 7  # type: ignore[attr-defined]


def test_the_matched_ev_may_match_again_with_the_key_it_holds() -> None:
    h = Harness()
    h.full_match(EV, RUN)
    h.matcher.stop(h.now, "link lost")
    h.matcher.start(h.now)
    h.full_match(EV, b"\x33" * 8)
    assert len(h.events_of(Matched)) == 2


def test_the_key_holder_survives_stop_whatever_reset_key_on_unplug_says() -> None:
    """RESET_KEY_ON_UNPLUG=false moves the session's key change to the next plug-in; until it
    happened, the next EV is refused as with the default."""
    h = Harness(Config(reset_key_on_unplug=False))
    h.full_match(EV, RUN)
    h.cp("A")
    h.cp("B")
    car2, run2 = ev_mac(2), b"\x02" * 8
    _sounded(h, car2, run2)
    h.rsp(car2, run2)
    assert h.match_req(car2, run2) == []
    h.matcher.set_key(b"\x05" * 16, b"\x05" * 7)
    (cnf,) = h.match_req(car2, run2)
    assert cnf.message.nmk == b"\x05" * 16  # type: ignore[attr-defined]


# 14. Do not pair with the wrong car when the EV is naive


def _two_sounding(h: Harness, own_db: int = 20, neighbour_db: int = 26) -> None:
    """The own car and a neighbour's car sound at the same time (crosstalk)."""
    nb_run = b"\x20" * 8
    h.parm(EV, RUN)
    h.parm(NEIGHBOUR, nb_run)
    h.start_atten(EV, RUN)
    h.start_atten(NEIGHBOUR, nb_run)
    for i in range(10):
        h.advance(0.02)
        h.sound(EV, RUN, 9 - i, [own_db] * 58)
        h.sound(NEIGHBOUR, nb_run, 9 - i, [neighbour_db] * 58)
    h.wait_for_turn(EV, RUN)
    h.wait_for_turn(NEIGHBOUR, nb_run)


def test_a_naive_neighbours_match_req_waits_and_the_own_car_heard_best_gets_the_match() -> None:
    """Four `pev`s on one medium: a neighbour's car heard 6 dB worse asked first (it takes the
    first CM_ATTEN_CHAR.IND), 1 ms before the own car's request. The neighbour's request
    waits; the own car is matched."""
    h = Harness()
    _two_sounding(h)
    nb_run = b"\x20" * 8
    h.rsp(NEIGHBOUR, nb_run)
    assert h.match_req(NEIGHBOUR, nb_run) == []
    h.rsp(EV, RUN)
    h.advance(0.001)
    (cnf,) = h.match_req(EV, RUN)
    assert cnf.dst == EV
    h.advance(0.2)
    assert h.match_req(NEIGHBOUR, nb_run) == []  # its retry: this EVSE is taken
    assert [o.dst for o in h.sent_of(SlacMatchCnf)] == [EV]
    assert (NEIGHBOUR, nb_run, FailureReason.OTHER_EV_MATCHED) in [
        (e.ev_mac, e.run_id, e.reason) for e in h.events_of(RunEnded)
    ]


@pytest.mark.parametrize("later", [0.0, 0.2, 0.3])
def test_a_comparing_ev_heard_worse_gets_its_cnf_within_its_retries_once_the_better_ev_left(
    later: float,
) -> None:
    """The EV heard best sounded here but chose another EVSE. An EV that compares every
    CM_ATTEN_CHAR.IND asks TT_EV_atten_results after its first CM_START_ATTEN_CHAR.IND and
    resends every TT_match_response, C_EV_match_retry times: it gets its CNF within that
    window as long as the better EV started sounding at most 300 ms after it (the CNF goes
    out within TP_match_response of the EV's last request, while the EV still listens)."""
    h = Harness()
    worse, worse_run = NEIGHBOUR, b"\x20" * 8
    h.parm(worse, worse_run)
    h.start_atten(worse, worse_run)
    worse_start = h.now
    h.advance(later)
    h.parm(EV, RUN)
    h.start_atten(EV, RUN)
    for i in range(10):
        h.sound(worse, worse_run, 9 - i, [26] * 58)
        h.sound(EV, RUN, 9 - i, [20] * 58)
        h.advance(0.02)
    h.wait_for_turn(EV, RUN)
    h.wait_for_turn(worse, worse_run)
    h.rsp(worse, worse_run)
    h.rsp(EV, RUN)  # ... and EV asks another EVSE for the match
    h.advance(worse_start + 1.2 - h.now)
    first_request = h.now
    h.match_req(worse, worse_run)
    for _ in range(2):  # its resends, as long as it has no answer
        h.advance(0.2)
        if not h.sent_of(SlacMatchCnf):
            h.match_req(worse, worse_run)
    h.advance(0.2)
    confirmed = h.when(SlacMatchCnf)
    assert confirmed and confirmed[0] <= first_request + 0.5  # while it still listens
    assert {o.dst for o in h.sent_of(SlacMatchCnf)} == {worse}
    assert h.events_of(Matched) == [Matched(worse, worse_run, NID)]


def test_a_held_request_is_confirmed_when_the_better_evs_run_ends() -> None:
    """The better-heard EV never answers this EVSE's CM_ATTEN_CHAR.IND (it went elsewhere):
    when its run ends (after the IND and its C_EV_match_retry resends), the waiting EV,
    still asking (its last request came less than TP_match_response before), is confirmed
    at once."""
    h = Harness()
    _two_sounding(h)
    nb_run = b"\x20" * 8
    h.rsp(NEIGHBOUR, nb_run)
    h.advance(0.0)
    better_ind = h.when(AttenCharInd, EV)[0]
    h.advance(better_ind + 0.15 - h.now)
    assert h.match_req(NEIGHBOUR, nb_run) == []
    out = h.advance(0.2) + h.match_req(NEIGHBOUR, nb_run)
    out += h.advance(0.2) + h.match_req(NEIGHBOUR, nb_run)  # 50 ms before the run ends
    out += h.advance(0.2)
    assert [o.dst for o in out if isinstance(o.message, SlacMatchCnf)] == [NEIGHBOUR]
    assert h.events_of(Matched) == [Matched(NEIGHBOUR, nb_run, NID)]


def test_a_held_request_that_the_ev_stopped_sending_is_never_confirmed() -> None:
    h = Harness()
    _two_sounding(h)
    nb_run = b"\x20" * 8
    h.rsp(NEIGHBOUR, nb_run)
    assert h.match_req(NEIGHBOUR, nb_run) == []  # ... and no retries: the EV gave up on us
    h.rsp(EV, RUN)  # the better EV went elsewhere
    h.advance(3.0)
    assert h.sent_of(SlacMatchCnf) == []


def test_the_own_car_heard_best_is_never_held() -> None:
    h = Harness()
    _two_sounding(h)
    h.rsp(EV, RUN)
    (cnf,) = h.match_req(EV, RUN)
    assert cnf.dst == EV


@pytest.mark.parametrize(("margin", "held"), [(0.0, False), (3.0, True), (7.0, False)])
def test_the_hold_margin_is_a_setting(margin: float, held: bool) -> None:
    h = Harness(Config(match_hold_margin=margin))
    _two_sounding(h)  # 20 dB and 26 dB
    nb_run = b"\x20" * 8
    h.rsp(NEIGHBOUR, nb_run)
    assert (h.match_req(NEIGHBOUR, nb_run) == []) is held


def test_a_better_heard_ev_that_starts_over_still_comes_first() -> None:
    """The own car starts over with a new RunID while a neighbour's request waits for it: as
    heard in its last run, it is still the better EV, and it gets the match."""
    h = Harness()
    _two_sounding(h)
    nb_run, again = b"\x20" * 8, b"\x77" * 8
    h.rsp(NEIGHBOUR, nb_run)
    assert h.match_req(NEIGHBOUR, nb_run) == []
    h.advance(0.01)
    h.parm(EV, again)
    h.advance(0.19)
    assert h.match_req(NEIGHBOUR, nb_run) == []
    h.sounding(EV, again, [[20] * 58] * 10)
    h.advance(0.2)
    assert h.match_req(NEIGHBOUR, nb_run) == []
    h.rsp(EV, again)
    (cnf,) = h.match_req(EV, again)
    assert cnf.dst == EV
    assert [o.dst for o in h.sent_of(SlacMatchCnf)] == [EV]


@pytest.mark.parametrize(
    ("decided_after", "confirmed"), [(0.05, True), (0.15, False), (0.2, False)]
)
def test_a_held_request_is_confirmed_only_while_the_ev_still_listens(
    decided_after: float, confirmed: bool
) -> None:
    """The EV asks C_EV_match_retry + 1 times, TT_match_response apart, and gives up
    TT_match_response after its last request. A held request is answered within
    TP_match_response (100 ms) of the EV's latest request, so that the CNF reaches the EV
    before it gives up; when the better-heard EV is known to have chosen (TT_EV_atten_results
    after its first CM_START_ATTEN_CHAR.IND, and one TT_match_response) only later than that,
    the request is not confirmed at all (the EV starts over), and the EVSE is not matched
    with an EV that never received its key."""
    h = Harness()
    started = h.now
    _two_sounding(h)  # both EVs' CM_START_ATTEN_CHAR.IND at `started`
    nb_run = b"\x20" * 8
    h.rsp(NEIGHBOUR, nb_run)
    h.rsp(EV, RUN)  # the better-heard EV asks another EVSE
    better_decided = started + 1.2 + 0.2
    last_request = better_decided - decided_after
    h.advance(last_request - 0.4 - h.now)
    assert h.match_req(NEIGHBOUR, nb_run) == []
    for _ in range(2):  # its resends
        h.advance(0.2)
        assert h.match_req(NEIGHBOUR, nb_run) == []
    assert h.now == pytest.approx(last_request)
    h.advance(0.5)
    sent = h.when(SlacMatchCnf)
    if confirmed:
        assert sent and sent[0] <= last_request + 0.1
        assert h.events_of(Matched) == [Matched(NEIGHBOUR, nb_run, NID)]
    else:
        assert sent == []
        assert h.matcher.state is EvseState.WAITING


# Lost CM_SLAC_PARM.REQ or CM_SLAC_PARM.CNF (a car park with loss): the EV hears only a
# neighbour's EVSE, unless this EVSE confirms again when the EV announces its sounding.


def test_each_start_atten_char_of_a_confirmed_run_gets_its_parm_cnf_again() -> None:
    """The EV's CM_SLAC_PARM.CNF may have been lost while a neighbour's EVSE confirmed: the EV
    then sounds without counting this EVSE, and would ignore its CM_ATTEN_CHAR.IND (issue 13
    item 3). Each valid CM_START_ATTEN_CHAR.IND is answered with the run's CNF, so the EV
    counts this EVSE while it sounds, even when a copy is lost too (ISO 15118-5's SECC
    sounding cases ignore CM_SLAC_PARM.CNF)."""
    h = Harness()
    (cnf,) = h.parm(EV, RUN)
    out = []
    for _ in range(3):
        out += h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=RUN), EV, BROADCAST)
    assert out == [cnf, cnf, cnf]
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.SOUNDING


def test_an_invalid_start_atten_char_is_not_confirmed() -> None:
    h = Harness()
    h.parm(EV, RUN)
    for bad in (
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN, resp_type=0),
        StartAttenCharInd(forwarding_sta=ev_mac(9), run_id=RUN),
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN, num_sounds=0),
    ):
        assert h.feed(bad, EV, BROADCAST) == []
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.WAIT_START_ATTEN
    h.start_atten(EV, RUN, copies=1)
    assert h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=RUN, time_out=0), EV, BROADCAST) == []


def test_a_start_atten_char_of_an_ev_whose_request_was_lost_opens_its_run() -> None:
    """The EV's only CM_SLAC_PARM.REQ was lost on its way to this EVSE, and a neighbour's EVSE
    confirmed it, so it sounds: its valid CM_START_ATTEN_CHAR.IND gets the CNF the request
    would have got, and the EV is sounded and can choose this EVSE."""
    h = Harness()
    out = h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=RUN), EV, BROADCAST)
    assert [o.message for o in out] == [
        SlacParmCnf(forwarding_sta=EV, run_id=RUN),
    ]
    assert out[0].dst == EV
    assert h.events_of(MatchingOngoing) == [MatchingOngoing(EV, RUN)]
    h.start_atten(EV, RUN, copies=2)
    for i in range(10):
        h.advance(0.02)
        h.sound(EV, RUN, 9 - i, [20] * 58)
    h.advance(0.5)
    ind = h.sent_of(AttenCharInd)[0]
    assert (ind.dst, ind.message.run_id) == (EV, RUN)  # type: ignore[attr-defined]
    h.rsp(EV, RUN)
    (match,) = h.match_req(EV, RUN)
    assert isinstance(match.message, SlacMatchCnf)


def test_a_start_atten_char_opens_no_run_for_an_ev_this_evse_answered_before() -> None:
    """What ISO 15118-5 checks stays: a START with another RunID than the EV's run
    (TC_SECC_CMN_VTB_AttenuationCharacterization_018) and a START after the run ended at
    TT_match_sequence (_012) are not answered and start nothing."""
    h = Harness()
    h.parm(EV, RUN)
    other = bytes.fromhex("3333333333333333")
    assert h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=other), EV, BROADCAST) == []
    h.advance(0.45)  # the run ends: no CM_START_ATTEN_CHAR.IND within TT_match_sequence
    assert h.matcher.runs == {}
    assert h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=RUN), EV, BROADCAST) == []
    assert h.matcher.runs == {}


def test_confirm_on_start_is_a_setting() -> None:
    h = Harness(Config(confirm_on_start=False))
    h.parm(EV, RUN)
    assert h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=RUN), EV, BROADCAST) == []
    other = ev_mac(9)
    assert h.feed(StartAttenCharInd(forwarding_sta=other, run_id=RUN), other, BROADCAST) == []
    assert list(h.matcher.runs) == [(bytes(EV), RUN)]


# Naive EVs take the first CM_ATTEN_CHAR.IND: the EVSE that hears an EV best answers first.


def _sound_at(
    h: Harness,
    atten: int,
    *,
    interval: float = 0.02,
    lose: frozenset[int] = frozenset(),
    lose_profiles: frozenset[int] = frozenset(),
) -> float:
    """The EV's three START copies and ten sounds, ``interval`` apart, as this EVSE hears
    them; returns the time of the first START. Sounds (their Cnt) in ``lose`` and profiles
    in ``lose_profiles`` do not arrive."""
    h.parm(EV, RUN)
    started = h.now
    for i in range(13):
        if i < 3:
            h.feed(StartAttenCharInd(forwarding_sta=EV, run_id=RUN), EV, BROADCAST)
        else:
            cnt = 12 - i
            if cnt not in lose:
                h.feed(MnbcSoundInd(remaining_sounds=cnt, run_id=RUN), EV, BROADCAST)
            if cnt not in lose_profiles:
                h.feed(AttenProfileInd(pev_mac=EV, aag=(atten,) * 58), MODEM_MAC)
        if i < 12:
            h.advance(interval)
    return started


def test_the_evse_that_hears_an_ev_better_sends_its_atten_char_ind_first() -> None:
    """Two EVSEs sound the same car (its own cable 20 dB, crosstalk 26 dB): the IND goes out
    ATTEN_CHAR_DELAY_PER_DB (4 ms) per dB after the EV's last sound, so the own EVSE's comes
    24 ms earlier, and a car that takes the first IND takes its own EVSE."""
    own, neighbour = Harness(), Harness()
    for h, atten in ((own, 20), (neighbour, 26)):
        _sound_at(h, atten)
        h.advance(1.0)
    (own_at,) = own.when(AttenCharInd)[:1]
    (neighbour_at,) = neighbour.when(AttenCharInd)[:1]
    last_sound = own.now - 1.0
    assert own_at == pytest.approx(last_sound + 0.02 + 20 * 0.004)
    assert neighbour_at - own_at == pytest.approx(6 * 0.004)


def test_a_lost_last_profile_does_not_delay_the_atten_char_ind_past_its_turn() -> None:
    """The last sound's profile (or the last sound and another profile) is lost: the EVSE
    does not wait for TT_EVSE_match_MNBC to end (600 ms after the START) but sends, at its
    turn after the EV's last sound, what it measured."""
    for lose, lose_profiles in ((frozenset(), frozenset({0})), (frozenset({0}), frozenset({4}))):
        h = Harness()
        started = _sound_at(h, 20, lose=lose, lose_profiles=lose_profiles)
        last_sound = started + 12 * 0.02
        h.advance(1.0)
        first = h.when(AttenCharInd)[0]
        assert first == pytest.approx(last_sound + 0.02 + 20 * 0.004)
        assert h.sent_of(AttenCharInd)[0].message.num_sounds == 9  # type: ignore[attr-defined]


@pytest.mark.parametrize("interval", [0.02, 0.03, 0.05])
@pytest.mark.parametrize("atten", [0, 20, 60, 90])
def test_the_atten_char_ind_and_its_resends_come_within_tt_ev_atten_results(
    interval: float, atten: int
) -> None:
    """TC_SECC_CMN_VTB_AttenuationCharacterization_004 counts CM_ATTEN_CHAR.IND and its
    C_EV_match_retry resends (no CM_ATTEN_CHAR.RSP) while TT_EV_atten_results (1200 ms from
    the first START) runs: however late its turn, the last resend goes out 100 ms before
    that, for EVs sounding every 20 to 50 ms (TP_EV_batch_msg_interval)."""
    h = Harness()
    started = _sound_at(h, atten, interval=interval)
    h.advance(2.0)
    sends = h.when(AttenCharInd)
    assert len(sends) == 3
    assert sends[-1] <= started + 1.2 - 0.1 + 1e-9
    assert sends[1] - sends[0] == pytest.approx(0.2)
    assert sends[2] - sends[1] == pytest.approx(0.2)


def test_atten_char_delay_per_db_is_a_setting() -> None:
    """ATTEN_CHAR_DELAY_PER_DB=0: the IND goes out with the last sound's profile."""
    h = Harness(Config(atten_char_delay_per_db=0.0))
    started = _sound_at(h, 20)
    assert h.when(AttenCharInd) == [pytest.approx(started + 12 * 0.02)]


def test_a_quick_first_resend_of_atten_char_ind_is_an_opt_in_setting() -> None:
    """ATTEN_CHAR_FIRST_RESEND (not ISO 15118-3: off by default): without CM_ATTEN_CHAR.RSP
    the first resend comes this soon instead of after TT_match_response, so that a lost
    first IND is repeated before the next EVSE's turn; the later resend and the count
    (C_EV_match_retry) stay."""
    h = Harness(Config(atten_char_first_resend=0.015))
    _sound_at(h, 20)
    h.advance(1.0)
    first, second, third = h.when(AttenCharInd)
    assert second - first == pytest.approx(0.015)
    assert third - second == pytest.approx(0.2)
    quiet = Harness()
    _sound_at(quiet, 20)
    quiet.advance(1.0)
    sends = quiet.when(AttenCharInd)
    assert [b - a for a, b in zip(sends, sends[1:])] == [pytest.approx(0.2)] * 2


def test_a_quick_first_resend_is_not_sent_when_the_rsp_came() -> None:
    h = Harness(Config(atten_char_first_resend=0.015))
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.advance(0.005)
    h.rsp(EV, RUN)
    h.advance(1.0)
    assert len(h.sent_of(AttenCharInd)) == 1


def test_a_start_of_an_unasked_ev_takes_no_slot_from_runs_waiting_for_their_start() -> None:
    """Every parallel slot is taken by EVs that were confirmed and are about to send their
    CM_START_ATTEN_CHAR.IND (a burst: all cars plug in at once): the START of an EV whose
    request this EVSE never received opens no run (it would take the slot of a car whose
    own START is on its way, which would then take another's: churn under load)."""
    h = Harness()
    waiting = [(ev_mac(0x30 + i), bytes([0x30 + i]) * 8) for i in range(5)]
    for ev, run in waiting:
        h.parm(ev, run)
    late, late_run = ev_mac(0x40), b"\x40" * 8  # its request was lost on the way here
    assert h.feed(StartAttenCharInd(forwarding_sta=late, run_id=late_run), late, BROADCAST) == []
    assert set(h.matcher.runs) == {(bytes(ev), run) for ev, run in waiting}
