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
    Matched,
    MatchingFailed,
    MatchingOngoing,
    MatchingStarted,
    RunEnded,
    Stopped,
)
from slac.fsm.evse import EvseState, RunState, parse_cp_state
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
    assert RunEnded(EV, RUN, "the EV started a new run (new RunID)") in h.all_events


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
    h = Harness()
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
    (ind,) = h.sent_of(AttenCharInd)  # at once, not at the end of the window
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
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.num_sounds == 10  # type: ignore[attr-defined]


def test_no_profiles_in_the_window_ends_the_run() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.start_atten(EV, RUN)
    h.feed(MnbcSoundInd(remaining_sounds=9, run_id=RUN), EV, BROADCAST)
    h.advance(0.6)
    assert h.sent_of(AttenCharInd) == []
    assert h.events_of(RunEnded)[-1].reason.startswith("no CM_ATTEN_PROFILE.IND")


def test_sounds_start_sounding_when_every_start_atten_char_was_lost() -> None:
    h = Harness()
    h.parm(EV, RUN)
    for i in range(10):
        h.sound(EV, RUN, 9 - i, [25] * 58)
    assert len(h.sent_of(AttenCharInd)) == 1


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
    assert h.events_of(RunEnded)[-1].reason == "no CM_ATTEN_CHAR.RSP after every resend"
    assert h.matcher.state is EvseState.PAUSED


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
    ],
)
def test_invalid_match_req_is_ignored_and_timers_keep_running(
    request_: SlacMatchReq, why: str
) -> None:
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


def test_only_empty_profiles_give_zero_db_rather_than_failing_the_car(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Harness()
    h.parm(EV, RUN)
    with caplog.at_level(logging.WARNING):
        h.sounding(EV, RUN, [[]] * 10)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.aag == (0,) * 58  # type: ignore[attr-defined]
    assert "NumGroups 0" in caplog.text


def test_late_sound_after_the_window_is_ignored() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.sounding(EV, RUN, [[20] * 58] * 10)
    h.sound(EV, RUN, 0, [90] * 58)
    (ind,) = h.sent_of(AttenCharInd)
    assert ind.message.aag == (20,) * 58  # type: ignore[attr-defined]
    assert h.matcher.runs[(bytes(EV), RUN)].state is RunState.WAIT_RSP


def test_validate_req_always_gets_a_failure_cnf() -> None:
    h = Harness()
    h.parm(EV, RUN)
    (cnf,) = h.feed(ValidateReq(timer=0, result=1), EV)
    assert cnf.dst == EV
    assert cnf.message == ValidateCnf(result=3)
    h.full_match(EV, bytes.fromhex("4444444444444444"))
    (cnf,) = h.feed(ValidateReq(timer=5, result=1), EV)
    assert cnf.message == ValidateCnf(result=3)


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


def test_no_parm_req_within_tt_evse_slac_init_retries_then_fails() -> None:
    h = Harness(Config(slac_init_timeout=20.0, matching_attempts=3, matching_rate=0.4))
    assert h.events_of(MatchingStarted) == [MatchingStarted(1)]
    h.advance(20.0)
    assert h.events_of(AttemptFailed)[0].attempt == 1
    assert h.matcher.state is EvseState.PAUSED
    h.advance(0.4)  # TT_matching_rate
    assert h.events_of(MatchingStarted)[-1] == MatchingStarted(2)
    h.advance(20.4)
    h.advance(20.1)
    (failed,) = h.events_of(MatchingFailed)
    assert failed.attempts == 3
    assert h.matcher.state is EvseState.FAILED
    assert h.matcher.deadline is None


def test_parm_req_during_the_pause_is_ignored() -> None:
    h = Harness(Config(slac_init_timeout=20.0))
    h.advance(20.0)
    assert h.parm(EV, RUN) == []
    h.advance(0.4)
    assert len(h.parm(EV, RUN)) == 1


def test_silent_ev_after_parm_cnf_fails_the_attempt_after_tt_match_sequence() -> None:
    h = Harness()
    h.parm(EV, RUN)
    h.advance(0.39)
    assert h.matcher.runs
    h.advance(0.02)
    assert not h.matcher.runs
    assert h.events_of(AttemptFailed)[0].reason.startswith("no CM_START_ATTEN_CHAR.IND")


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
    indications = {o.dst: o.message for o in h.sent_of(AttenCharInd)}
    assert set(indications) == set(evs)
    for i, ev in enumerate(evs, start=1):
        message = indications[ev]
        assert isinstance(message, AttenCharInd)
        assert message.run_id == runs[i - 1]
        assert message.aag == (10 * i + 1,) * 58  # mean of 10i and 10i+1, rounded half up
    for ev, run in zip(evs, runs):
        h.rsp(ev, run)
    h.match_req(evs[2], runs[2])
    assert h.matcher.match is not None
    assert h.matcher.match.ev_mac == evs[2]
    assert not h.matcher.runs
    ended = {e.ev_mac for e in h.events_of(RunEnded)}
    assert ended == set(evs) - {evs[2]}


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
    h.advance(1.0)  # the EVs may still be deciding: their runs stay
    assert h.parm(own, b"\x09" * 8) == []
    h.advance(0.3)  # TT_EV_atten_results (1.2 s) after their CM_ATTEN_CHAR.RSP
    (cnf,) = h.parm(own, b"\x09" * 8)
    assert cnf.dst == own
    assert len(h.matcher.runs) == 5
    ended = [e for e in h.events_of(RunEnded) if "chose another EVSE" in e.reason]
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


def test_matched_ev_that_starts_over_is_served_again() -> None:
    h = Harness()
    h.full_match(EV, RUN)
    new_run = bytes.fromhex("5555555555555555")
    (cnf,) = h.parm(EV, new_run)
    assert cnf.message.run_id == new_run  # type: ignore[attr-defined]
    assert h.matcher.state is EvseState.WAITING
    h.sounding(EV, new_run, [[20] * 58] * 10)
    h.rsp(EV, new_run)
    h.match_req(EV, new_run)
    assert h.matcher.state is EvseState.MATCHED


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


def test_after_the_matched_ev_starts_over_no_other_ev_gets_the_same_key() -> None:
    h = Harness()
    h.full_match(EV, RUN)
    h.parm(EV, bytes.fromhex("5555555555555555"))  # the matched EV starts over
    other, other_run = ev_mac(2), b"\x02" * 8
    h.parm(other, other_run)
    h.sounding(other, other_run, [[20] * 58] * 10)
    h.rsp(other, other_run)
    assert h.match_req(other, other_run) == []
    assert [o.dst for o in h.sent_of(SlacMatchCnf)] == [EV]
    h.matcher.set_key(b"\x09" * 16, b"\x09" * 7)  # with a fresh key, it may
    (cnf,) = h.match_req(other, other_run)
    assert cnf.message.nmk == b"\x09" * 16  # type: ignore[attr-defined]
