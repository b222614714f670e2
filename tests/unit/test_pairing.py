"""Our EV and our EVSE, whole hosts without I/O, on one hand-moved clock through the virtual
powerline (slac.testing.pair, issue 14 item 1): keys, SLAC, joining the logical network,
link supervision, unplugging, crosstalk, and the failure reasons issue 16 builds on."""

from __future__ import annotations

import pytest

from slac.fsm.events import (
    AttemptFailed,
    EvMatched,
    FailureReason,
    Joined,
    KeySet,
    LinkLost,
    LinkUp,
    Matched,
    MatchingFailed,
    MatchingOngoing,
    MatchingStarted,
    ModemReady,
    SessionState,
    StateChanged,
    Stopped,
    StopReason,
)
from slac.fsm.station import CpAction
from slac.messages import SetKeyReq, SlacMatchCnf
from slac.testing.config import fast_config
from slac.testing.pair import EV_MAC, Pairing, evse_mac


def test_our_ev_and_our_evse_match_and_join_one_logical_network() -> None:
    pair = Pairing()
    pair.plug_in()
    pair.run(5.0)
    evse, ev = pair.evse(), pair.ev
    assert evse.machine.state is SessionState.MATCHED
    assert ev.machine.state is SessionState.MATCHED
    (matched,) = evse.events_of(Matched)
    assert matched.ev_mac == EV_MAC
    assert matched.attenuation == pytest.approx(20.0, abs=1.0)  # what this EVSE measured
    (ev_matched,) = ev.events_of(EvMatched)
    assert ev_matched.evse_mac == evse_mac(0)
    assert ev_matched.nmk == evse.machine.nmk
    assert ev.events_of(Joined) == [Joined(evse_mac(0), matched.nid)]
    # the two modems now hold one key: the link is up, and supervision saw it
    assert pair.medium.linked(pair.ev_port)
    assert evse.events_of(LinkUp) == [LinkUp()]
    assert [e.state for e in evse.events_of(StateChanged)] == [
        SessionState.MATCHING,
        SessionState.MATCHED,
    ]


def test_the_matcher_starts_only_once_the_modem_took_its_key_and_settled() -> None:
    pair = Pairing(fast_config(set_key_settle_time=2.0))
    pair.start()
    pair.run(0.5)
    assert pair.cp("B") is CpAction.START  # while the modem settles
    evse = pair.evse()
    assert evse.events_of(MatchingStarted) == []
    pair.run(3.0)
    (key_set_at,) = evse.when(KeySet)
    (ready_at,) = evse.when(ModemReady)
    assert ready_at == pytest.approx(key_set_at + 2.0)
    (started_at,) = evse.when(MatchingStarted)
    assert started_at == ready_at  # the plug-in waited for the settling modem


def test_unplug_after_a_match_leaves_the_network_with_a_fresh_key() -> None:
    pair = Pairing()
    pair.plug_in()
    pair.run(5.0)
    evse = pair.evse()
    key_before = evse.machine.nmk
    assert pair.cp("A") is CpAction.STOP
    pair.run(1.0)
    assert evse.machine.state is SessionState.UNMATCHED
    stopped = evse.events_of(Stopped)[-1]
    assert stopped.reason is StopReason.UNPLUGGED and stopped.was_matched
    assert len(evse.sent_of(SetKeyReq)) == 2  # at power-on, and at unplug
    assert evse.machine.nmk != key_before and not evse.machine.key_given_out
    assert not pair.medium.linked(pair.ev_port)  # the EV is out of the EVSE's network


@pytest.mark.parametrize("letter", ["E", "F"])
def test_e_or_f_while_matched_leaves_the_network_at_once(letter: str) -> None:
    """CP E or F while matched ends the match and the EV's key leaves with it (design 5.7),
    as at an unplug: the modem gets a fresh key now, not at the next plug-in."""
    pair = Pairing()
    pair.plug_in()
    pair.run(5.0)
    evse = pair.evse()
    key_before = evse.machine.nmk
    assert pair.cp(letter) is CpAction.STOP
    pair.run(1.0)
    assert evse.machine.state is SessionState.UNMATCHED
    stopped = evse.events_of(Stopped)[-1]
    assert stopped.reason is StopReason.CP_ERROR and stopped.was_matched
    assert len(evse.sent_of(SetKeyReq)) == 2  # at power-on, and at E/F
    assert evse.machine.nmk != key_before and not evse.machine.key_given_out
    assert not pair.medium.linked(pair.ev_port)
    assert pair.cp("B") is CpAction.START  # the next B matches again, with that fresh key


def test_without_reset_on_unplug_the_next_plug_in_sets_the_fresh_key() -> None:
    pair = Pairing(fast_config(reset_key_on_unplug=False))
    pair.plug_in()
    pair.run(5.0)
    evse = pair.evse()
    pair.cp("A")
    pair.run(1.0)
    assert len(evse.sent_of(SetKeyReq)) == 1  # nothing written at unplug
    assert pair.cp("B") is CpAction.START
    pair.run(1.0)
    assert len(evse.sent_of(SetKeyReq)) == 2  # the next plug-in: a key no EV received
    assert not evse.machine.key_given_out


def test_a_modem_that_does_not_take_the_key_fails_the_plug_in_with_that_reason() -> None:
    pair = Pairing(fast_config(set_key_timeout=0.1, set_key_retries=1))
    pair.medium.modems[pair.evse_ports[0]].answer_set_key = False
    assert pair.cp("B") is CpAction.START
    pair.run(1.0)
    evse = pair.evse()
    (failed,) = evse.events_of(MatchingFailed)
    assert failed.reason is FailureReason.KEY_NOT_SET
    assert "did not answer CM_SET_KEY.REQ (2 attempts" in failed.detail
    assert evse.machine.state is SessionState.FAILED
    assert evse.events_of(MatchingStarted) == []  # never matching with an unknown key


def test_a_lost_link_leaves_the_network_and_matches_again() -> None:
    pair = Pairing(fast_config(link_check_period=0.5))
    pair.plug_in()
    pair.run(5.0)
    evse = pair.evse()
    assert evse.events_of(LinkUp)
    pair.medium.modems[pair.ev_port].cut = True  # the car's modem is gone
    pair.run(3.0)
    (lost,) = evse.events_of(LinkLost)
    assert lost.loss.failure is FailureReason.LINK_LOST
    restart = evse.events_of(Stopped)[-1]
    assert restart.reason is StopReason.RESTART and restart.was_matched
    assert len(evse.sent_of(SetKeyReq)) == 2  # left the network: a fresh key
    assert len(evse.events_of(MatchingStarted)) == 2  # and matching again
    assert evse.machine.state is SessionState.UNMATCHED


def test_the_ev_chooses_the_evse_it_hears_best_and_the_neighbour_says_why_it_failed() -> None:
    """Crosstalk: EVSE 1 hears the EV at 45 dB, through the neighbour's cable. The EV
    chooses EVSE 0; EVSE 1's plug-in ends with "the EV chose another EVSE" and the
    attenuation it measured (issue 16 item 2)."""
    pair = Pairing(evses=2, attenuation=(20.0, 35.0))
    pair.start()
    pair.run(1.0)
    pair.cp("B", 1)  # the neighbour's charge point waits for a car of its own
    pair.plug_in(0)
    pair.run(120.0)
    own, neighbour = pair.evse(0), pair.evse(1)
    assert own.machine.state is SessionState.MATCHED
    assert not neighbour.sent_of(SlacMatchCnf)
    assert neighbour.events_of(MatchingOngoing)  # it heard and answered the EV
    assert neighbour.events_of(AttemptFailed) == []  # a car that went elsewhere: no attempt
    (failed,) = neighbour.events_of(MatchingFailed)
    assert failed.reason is FailureReason.EV_CHOSE_ANOTHER_EVSE
    assert failed.ev_mac == EV_MAC
    assert failed.attenuation == pytest.approx(35.0, abs=1.0)
