"""D-LINK requests of the HLC side (ISO 15118-3 D-LINK_TERMINATE, D-LINK_ERROR,
D-LINK_PAUSE; issue 16 item 1) and the per-reason counters (item 2), decided by the EVSE's
sans-IO host machine (EvseStation): our EV and our EVSE on one hand-moved clock through the
virtual powerline (slac.testing.pair)."""

from __future__ import annotations

from typing import Any

import pytest

from slac.fsm.events import (
    DlinkCommand,
    DlinkDone,
    FailureReason,
    LinkLost,
    LinkUp,
    MatchingFailed,
    MatchingStarted,
    SessionState,
    Stopped,
    StopReason,
)
from slac.fsm.station import CpAction
from slac.fsm.stats import EvseCounters, reason_key
from slac.messages import SetKeyReq, VsPlLinkStatusReq
from slac.testing.config import fast_config
from slac.testing.pair import Pairing


def matched_pair(**settings: Any) -> Pairing:
    pair = Pairing(fast_config(**settings) if settings else None)
    pair.plug_in()
    pair.run(5.0)
    assert pair.evse().machine.state is SessionState.MATCHED
    return pair


def dlink(pair: Pairing, command: DlinkCommand, index: int = 0) -> CpAction:
    host = pair.evse(index)
    action = host.call(lambda now: host.machine.dlink(command, now))
    pair._transmit()
    return action


# --- D-LINK_TERMINATE ----------------------------------------------------------------------------


def test_terminate_leaves_the_network_with_a_fresh_key_and_goes_back_to_unmatched() -> None:
    pair = matched_pair()
    evse = pair.evse()
    key_before = evse.machine.nmk
    assert dlink(pair, DlinkCommand.TERMINATE) is CpAction.STOP  # the matching task ends
    pair.run(1.0)
    stopped = evse.events_of(Stopped)[-1]
    assert stopped.reason is StopReason.DLINK_TERMINATE and stopped.was_matched
    assert evse.machine.state is SessionState.UNMATCHED
    assert len(evse.sent_of(SetKeyReq)) == 2  # at power-on, and to leave the EV's network
    assert evse.machine.nmk != key_before and not evse.machine.key_given_out
    assert not pair.medium.linked(pair.ev_port)  # the EV is out of this EVSE's network
    assert evse.machine.terminated
    assert evse.events_of(DlinkDone)[-1] == DlinkDone(DlinkCommand.TERMINATE, True)


def test_after_terminate_no_new_match_until_the_control_pilot_cycles() -> None:
    """ISO 15118-3: after D-LINK_TERMINATE the EVSE does not match again within the same
    plug-in; B, C or D start nothing until CP A (or E, F) came first."""
    pair = matched_pair()
    evse = pair.evse()
    dlink(pair, DlinkCommand.TERMINATE)
    pair.run(1.0)
    assert pair.cp("C") is CpAction.NONE
    assert pair.cp("B") is CpAction.NONE
    started = len(evse.events_of(MatchingStarted))
    pair.ev.call(pair.ev.machine.match)  # the EV tries again on its own
    pair._transmit()
    pair.run(10.0)
    assert len(evse.events_of(MatchingStarted)) == started
    assert evse.machine.state is SessionState.UNMATCHED
    assert pair.cp("A") is CpAction.STOP
    assert not evse.machine.terminated
    assert pair.cp("B") is CpAction.START  # the CP cycle: matching again
    assert len(evse.events_of(MatchingStarted)) == started + 1


def test_terminate_while_matching_keeps_the_key_no_ev_received() -> None:
    pair = Pairing()
    pair.start()
    pair.run(1.0)
    pair.cp("B")
    pair.run(0.5)
    evse = pair.evse()
    assert dlink(pair, DlinkCommand.TERMINATE) is CpAction.STOP
    pair.run(1.0)
    assert evse.events_of(Stopped)[-1].reason is StopReason.DLINK_TERMINATE
    assert len(evse.sent_of(SetKeyReq)) == 1  # no EV had the key: nothing to leave
    assert evse.machine.state is SessionState.UNMATCHED


# --- D-LINK_ERROR ---------------------------------------------------------------------------------


def test_error_leaves_the_network_and_matches_again_without_a_cp_cycle() -> None:
    pair = matched_pair()
    evse = pair.evse()
    key_before = evse.machine.nmk
    assert dlink(pair, DlinkCommand.ERROR) is CpAction.NONE  # the task goes on
    pair.run(1.0)
    assert evse.events_of(Stopped)[-1].reason is StopReason.RESTART
    assert len(evse.sent_of(SetKeyReq)) == 2 and evse.machine.nmk != key_before
    assert len(evse.events_of(MatchingStarted)) == 2
    assert evse.machine.state is SessionState.UNMATCHED
    pair.ev.call(pair.ev.machine.match)  # the EV's HLC side saw the error too
    pair._transmit()
    pair.run(5.0)
    assert evse.machine.state is SessionState.MATCHED
    assert evse.machine.counters.matches == 2


def test_error_after_terminate_or_failure_asks_the_driver_to_start_matching() -> None:
    pair = matched_pair()
    dlink(pair, DlinkCommand.TERMINATE)
    pair.run(1.0)
    assert dlink(pair, DlinkCommand.ERROR) is CpAction.START
    assert not pair.evse().machine.terminated


def test_error_without_an_ev_plugged_in_changes_nothing() -> None:
    pair = Pairing()
    pair.start()
    pair.run(1.0)
    evse = pair.evse()
    assert dlink(pair, DlinkCommand.ERROR) is CpAction.NONE
    assert evse.events_of(DlinkDone) == [DlinkDone(DlinkCommand.ERROR, False, "no EV plugged in")]
    assert evse.machine.counters.dlink == {}


# --- D-LINK_PAUSE and resume ---


def test_pause_stays_matched_keeps_the_key_and_stops_link_supervision() -> None:
    pair = matched_pair(link_check_period=0.5)
    evse = pair.evse()
    key_before, keys_before = evse.machine.nmk, len(evse.sent_of(SetKeyReq))
    assert dlink(pair, DlinkCommand.PAUSE) is CpAction.NONE
    polls = len(evse.sent_of(VsPlLinkStatusReq))
    pair.medium.modems[pair.ev_port].cut = True  # the EV powers its modem down
    pair.run(10.0)  # longer than TT_match_join: no verdict while paused
    assert len(evse.sent_of(VsPlLinkStatusReq)) == polls
    assert evse.events_of(LinkLost) == []
    assert evse.machine.state is SessionState.MATCHED and evse.machine.paused
    assert evse.machine.nmk == key_before and len(evse.sent_of(SetKeyReq)) == keys_before


def test_resume_supervises_again_and_the_link_must_come_back_within_tt_match_join() -> None:
    pair = matched_pair(link_check_period=0.5)
    evse = pair.evse()
    dlink(pair, DlinkCommand.PAUSE)
    pair.medium.modems[pair.ev_port].cut = True
    pair.run(5.0)
    pair.medium.modems[pair.ev_port].cut = False  # the EV woke up: its modem is back
    ups = len(evse.events_of(LinkUp))
    assert dlink(pair, DlinkCommand.RESUME) is CpAction.NONE
    pair.run(3.0)
    assert len(evse.events_of(LinkUp)) == ups + 1
    assert evse.machine.state is SessionState.MATCHED and not evse.machine.paused
    assert evse.events_of(LinkLost) == []


def test_resume_without_the_link_back_leaves_and_matches_again() -> None:
    config = fast_config(link_check_period=0.5)
    pair = matched_pair(link_check_period=0.5)
    evse = pair.evse()
    dlink(pair, DlinkCommand.PAUSE)
    pair.medium.modems[pair.ev_port].cut = True
    resumed_at = pair.now
    dlink(pair, DlinkCommand.RESUME)
    pair.run(config.link_join_timeout + 2.0)
    (lost,) = evse.events_of(LinkLost)
    (lost_at,) = evse.when(LinkLost)
    assert lost_at - resumed_at >= config.link_join_timeout
    assert lost.loss.failure in (FailureReason.NOT_JOINED, FailureReason.LINK_LOST)
    assert evse.events_of(Stopped)[-1].reason is StopReason.RESTART
    assert len(evse.events_of(MatchingStarted)) == 2


def test_pause_while_not_matched_and_resume_while_not_paused_are_ignored() -> None:
    pair = Pairing()
    pair.start()
    pair.run(1.0)
    pair.cp("B")
    pair.run(0.5)
    evse = pair.evse()
    dlink(pair, DlinkCommand.PAUSE)
    dlink(pair, DlinkCommand.RESUME)
    assert [(d.command, d.applied) for d in evse.events_of(DlinkDone)] == [
        (DlinkCommand.PAUSE, False),
        (DlinkCommand.RESUME, False),
    ]
    assert not evse.machine.paused


def test_unknown_command_is_a_value_error() -> None:
    pair = Pairing()
    with pytest.raises(ValueError, match="sleep"):
        pair.evse().machine.dlink("sleep", 0.0)  # type: ignore[arg-type]


# --- failure reasons and counters ---


def test_no_cm_slac_parm_req_is_counted_by_its_reason() -> None:
    pair = Pairing(fast_config(slac_init_timeout=1.0))
    pair.start()
    pair.run(1.0)
    pair.cp("B")
    pair.run(3.0)
    evse = pair.evse()
    (failed,) = evse.events_of(MatchingFailed)
    assert failed.reason is FailureReason.NO_PARM_REQ
    assert evse.machine.counters.to_dict()["failures"] == {"no_parm_req": 1}


def test_no_sounds_fails_with_that_reason_and_counts_every_attempt() -> None:
    pair = Pairing(fast_config(matching_attempts=2))
    pair.medium.faults.loss["CM_ATTEN_PROFILE.IND"] = 1.0  # the modem hears no sound
    pair.plug_in()
    pair.run(120.0)
    evse = pair.evse()
    (failed,) = evse.events_of(MatchingFailed)
    assert failed.reason is FailureReason.NO_SOUNDS
    counters = evse.machine.counters.to_dict()
    assert counters["failures"] == {"no_sounds": 1}
    assert counters["attempts"]["no_sounds"] == 2  # C_conn_max_match attempts, each counted
    assert counters["matches"] == 0


def test_the_ev_chose_another_evse_is_counted_with_this_evses_attenuation() -> None:
    pair = Pairing(evses=2, attenuation=(20.0, 35.0))
    pair.start()
    pair.run(1.0)
    pair.cp("B", 1)
    pair.plug_in(0)
    pair.run(120.0)
    own, neighbour = pair.evse(0).machine.counters, pair.evse(1).machine.counters
    assert own.matches == 1 and own.failures == {}
    assert neighbour.failures == {"ev_chose_another_evse": 1}
    assert neighbour.runs["ev_chose_another_evse"] >= 1  # runs that do not count as attempts
    assert neighbour.attempts == {}
    (failed,) = pair.evse(1).events_of(MatchingFailed)
    assert failed.attenuation == pytest.approx(35.0, abs=1.0)


def test_a_modem_that_does_not_take_the_key_is_counted() -> None:
    pair = Pairing(fast_config(set_key_timeout=0.1, set_key_retries=1))
    pair.medium.modems[pair.evse_ports[0]].answer_set_key = False
    pair.cp("B")
    pair.run(1.0)
    assert pair.evse().machine.counters.failures == {"key_not_set": 1}


def test_a_lost_link_and_d_link_requests_are_counted() -> None:
    pair = matched_pair(link_check_period=0.5)
    evse = pair.evse()
    pair.medium.modems[pair.ev_port].cut = True
    pair.run(3.0)
    pair.medium.modems[pair.ev_port].cut = False
    dlink(pair, DlinkCommand.TERMINATE)
    counters = evse.machine.counters.to_dict()
    assert counters["links_lost"] == {"link_lost": 1}
    assert counters["dlink"] == {"terminate": 1}
    assert counters["matches"] == 1


def test_the_counters_change_only_on_what_they_count() -> None:
    counters = EvseCounters()
    counters.count(DlinkDone(DlinkCommand.PAUSE, False, "nothing to pause"))
    assert counters.changes == 0
    counters.count(MatchingFailed(FailureReason.NOT_JOINED, 1))
    assert counters.changes == 1 and counters.failures == {"not_joined": 1}
    assert reason_key(FailureReason.EV_CHOSE_ANOTHER_EVSE) == "ev_chose_another_evse"


def test_no_cm_slac_match_req_after_the_ev_heard_this_evse_says_the_ev_chose_another() -> None:
    """The EV answered CM_ATTEN_CHAR.IND and its CM_SLAC_MATCH.REQ never arrived: from this
    EVSE's side, the EV chose another EVSE; the failure carries what this EVSE measured."""
    pair = Pairing(fast_config(matching_attempts=1))
    pair.medium.faults.loss["CM_SLAC_MATCH.REQ"] = 1.0
    pair.plug_in()
    pair.run(120.0)
    evse = pair.evse()
    (failed,) = evse.events_of(MatchingFailed)
    assert failed.reason is FailureReason.EV_CHOSE_ANOTHER_EVSE
    assert failed.attenuation == pytest.approx(20.0, abs=1.0)
    assert evse.machine.counters.failures == {"ev_chose_another_evse": 1}


def test_an_ev_that_never_joins_is_counted_as_not_joined_within_tt_match_join() -> None:
    config = fast_config(link_check_period=0.5)
    pair = Pairing(config)
    pair.start()
    pair.run(1.0)
    pair.cp("B")
    pair.run(1.0)
    pair.ev.call(lambda now: pair.ev.machine.match(now, join=False))  # takes the key, keeps it
    pair._transmit()
    pair.run(config.link_join_timeout + 5.0)
    evse = pair.evse()
    (lost,) = evse.events_of(LinkLost)
    assert lost.loss.failure is FailureReason.NOT_JOINED
    assert evse.machine.counters.links_lost == {"not_joined": 1}


def test_the_protocol_page_lists_every_failure_reason_by_its_json_name() -> None:
    from pathlib import Path

    page = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    missing = [r for r in FailureReason if f"`{reason_key(r)}`" not in page]
    assert not missing, missing


# --- slac evse: stdin lines and the status report ---


def test_stdin_lines_name_an_evse_a_cp_state_or_a_dlink_command() -> None:
    from slac.app.service import parse_stdin_line

    assert parse_stdin_line("DE*SWT*E1 dlink terminate") == (
        "DE*SWT*E1",
        "",
        DlinkCommand.TERMINATE,
    )
    assert parse_stdin_line("dlink PAUSE") == (None, "", DlinkCommand.PAUSE)
    assert parse_stdin_line("DE*SWT*E1 B") == ("DE*SWT*E1", "B", None)
    assert parse_stdin_line("C") == (None, "C", None)
    with pytest.raises(ValueError, match="no D-LINK command 'sleep'"):
        parse_stdin_line("DE*SWT*E1 dlink sleep")


def test_the_status_report_says_the_reason_and_the_attenuation_of_a_failure() -> None:
    from slac.app.service import StateReport
    from slac.session import SlacEvseSession
    from slac.utils import MacAddress

    session = SlacEvseSession("DE*TST*E1", "eth9")
    session.state = SessionState.FAILED
    session.last_failure = MatchingFailed(
        FailureReason.EV_CHOSE_ANOTHER_EVSE,
        2,
        "no CM_SLAC_MATCH.REQ",
        31.26,
        MacAddress(b"\x02" * 6),
    )
    data = StateReport.of(session).to_dict()
    assert data["state"] == "failed" and data["reason"] == "ev_chose_another_evse"
    assert data["attenuation"] == 31.3 and data["detail"] == "no CM_SLAC_MATCH.REQ"
    session.state = SessionState.MATCHING  # a new plug-in: the old failure is not news
    assert StateReport.of(session).to_dict()["reason"] is None


@pytest.mark.parametrize(
    ("lost", "reason"),
    [
        ("CM_SLAC_PARM.REQ", FailureReason.NO_PARM_REQ),
        ("CM_START_ATTEN_CHAR.IND", FailureReason.NO_START_ATTEN_CHAR),
        ("CM_MNBC_SOUND.IND", FailureReason.NO_SOUNDS),
    ],
)
def test_each_lost_message_fails_the_plug_in_with_its_reason_and_counts_it(
    lost: str, reason: FailureReason
) -> None:
    pair = Pairing(fast_config(matching_attempts=1))
    pair.medium.faults.loss[lost] = 1.0
    pair.plug_in()
    pair.run(120.0)
    evse = pair.evse()
    assert [f.reason for f in evse.events_of(MatchingFailed)] == [reason]
    assert evse.machine.counters.failures == {reason_key(reason): 1}
    assert evse.machine.state is SessionState.FAILED


def test_a_modem_that_stops_answering_link_polls_is_counted_as_modem_silent() -> None:
    pair = matched_pair(link_check_period=0.5, link_check_max_unanswered=2)
    pair.medium.modems[pair.evse_ports[0]].answer_link_status = False
    pair.run(10.0)
    evse = pair.evse()
    assert [lost.loss.failure for lost in evse.events_of(LinkLost)] == [FailureReason.MODEM_SILENT]
    assert evse.machine.counters.links_lost == {"modem_silent": 1}
