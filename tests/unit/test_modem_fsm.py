"""The modem machine (slac.fsm.modem) with a hand-moved clock: no sockets, no root.

CM_SET_KEY with its retries and doubling wait, the Result values accepted, the modem's own
MAC learned from its answers, and link supervision deciding on what the modem reports
(issue 12, items 10, 11 and 13)."""

from __future__ import annotations

import logging
from typing import Optional

import pytest

from slac import Config, ModemError, ModemTimeoutError
from slac.enums import PLC_LOCAL_MAC
from slac.fsm.base import Outgoing
from slac.fsm.modem import (
    KeyFailure,
    KeyNotSet,
    KeySet,
    LinkLoss,
    LinkLost,
    LinkStatus,
    LinkUp,
    ModemEvent,
    ModemFound,
    ModemMachine,
    ModemSettings,
    SupervisionOff,
)
from slac.messages import (
    Frame,
    Message,
    SetKeyCnf,
    SetKeyReq,
    VsPlLinkStatusCnf,
    VsPlLinkStatusReq,
    decode_frame,
)
from slac.testing.clock import MachineClock
from slac.utils import MacAddress

HOST = MacAddress("02:00:00:00:ee:01")
MODEM = MacAddress("00:b0:52:12:34:56")
NMK = bytes(range(16))
NID = bytes(range(7))


def frame(message: Message, src: MacAddress = MODEM, dst: MacAddress = HOST) -> Frame:
    return decode_frame(message.to_frame(dst, src))


class Driver(MachineClock[ModemMachine]):
    """The machine, a clock and what came out of it."""

    def __init__(self, config: Optional[Config] = None, /, **settings: object) -> None:
        values: dict[str, object] = {"set_key_timeout": 1.0, "set_key_retries": 2}
        values.update(settings)
        super().__init__(ModemMachine(HOST, config or Config(**values)), HOST)  # type: ignore[arg-type]

    @property
    def sent(self) -> list[tuple[float, Message]]:
        assert all(o.dst == PLC_LOCAL_MAC for _, o in self.sent_at)  # all to the local modem
        return [(t, o.message) for t, o in self.sent_at]

    def advance(self, until: float) -> list[Outgoing]:
        """Move the clock to ``until``, firing every deadline on the way, as a driver does."""
        return self.advance_to(until)

    def receive(self, message: Message, src: MacAddress = MODEM, dst: MacAddress = HOST) -> bool:
        handled = self.machine.receive_frame(frame(message, src, dst), self.now)
        self.collect()
        return handled

    def set_key(self) -> None:
        self.machine.set_key(NMK, NID, self.now)
        self.collect()

    def polls(self) -> list[float]:
        return [t for t, m in self.sent if isinstance(m, VsPlLinkStatusReq)]

    def of(self, kind: type) -> list[ModemEvent]:
        return self.events_of(kind)


# --- CM_SET_KEY ----------------------------------------------------------------------------------


def test_set_key_is_sent_to_the_local_modem_and_confirmed_by_its_cnf() -> None:
    d = Driver()
    d.set_key()
    ((at, request),) = d.sent
    assert at == 0.0
    assert isinstance(request, SetKeyReq)
    assert (request.new_key, request.nid) == (NMK, NID)
    d.advance(0.3)
    assert d.receive(SetKeyCnf(result=1))
    (done,) = d.of(KeySet)
    assert isinstance(done, KeySet)
    assert (done.nmk, done.nid, done.attempts) == (NMK, NID, 1)
    assert d.machine.deadline is None
    assert not d.machine.key_pending


def test_unanswered_set_key_is_resent_with_a_doubling_wait_then_fails_clearly() -> None:
    d = Driver(set_key_timeout=1.0, set_key_retries=2)
    d.set_key()
    d.advance(100.0)
    assert [t for t, m in d.sent if isinstance(m, SetKeyReq)] == [0.0, 1.0, 3.0]
    (failed,) = d.of(KeyNotSet)
    assert isinstance(failed, KeyNotSet)
    assert (failed.failure, failed.attempts, failed.waited) == (KeyFailure.NO_ANSWER, 3, 7.0)
    error = failed.error("eth1")
    assert isinstance(error, ModemTimeoutError)
    assert str(error) == (
        "the modem on eth1 did not answer CM_SET_KEY.REQ (3 attempts, 7.0 s); check that the "
        "GreenPHY modem is connected and powered"
    )
    assert d.machine.deadline is None


def test_each_unanswered_attempt_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    d = Driver(set_key_timeout=0.2, set_key_retries=1)
    with caplog.at_level(logging.WARNING, logger="slac"):
        d.set_key()
        d.advance(10.0)
    assert [r.getMessage() for r in caplog.records] == [
        "no CM_SET_KEY.CNF from the modem within 0.2 s (attempt 1/2)",
        "no CM_SET_KEY.CNF from the modem within 0.4 s (attempt 2/2)",
    ]


def test_a_late_confirmation_of_the_first_attempt_confirms_the_key() -> None:
    d = Driver(set_key_timeout=0.2, set_key_retries=2)
    d.set_key()
    d.advance(0.3)  # resent at 0.2
    d.receive(SetKeyCnf(result=1))
    (done,) = d.of(KeySet)
    assert isinstance(done, KeySet)
    assert done.attempts == 2
    d.advance(10.0)
    assert len([m for _, m in d.sent if isinstance(m, SetKeyReq)]) == 2
    assert not d.of(KeyNotSet)


def test_a_result_that_is_not_accepted_fails_at_once_and_names_the_setting() -> None:
    d = Driver()  # SET_KEY_RESULT_OK: 1, the QCA modems' success
    d.set_key()
    d.receive(SetKeyCnf(result=0))
    (failed,) = d.of(KeyNotSet)
    assert isinstance(failed, KeyNotSet)
    assert (failed.failure, failed.result) == (KeyFailure.REFUSED, 0)
    error = failed.error("eth1")
    assert isinstance(error, ModemError)
    assert not isinstance(error, ModemTimeoutError)
    assert str(error) == (
        "the modem on eth1 refused the key: CM_SET_KEY.CNF Result 0 (accepted: 1; set "
        "SET_KEY_RESULT_OK if this modem reports success differently)"
    )
    assert d.machine.deadline is None


def test_the_homeplug_result_is_accepted_when_configured() -> None:
    d = Driver(set_key_result_ok=(0, 1))
    d.set_key()
    d.receive(SetKeyCnf(result=0))
    assert d.of(KeySet)


def test_changed_settings_apply_to_the_next_key() -> None:
    config = Config(set_key_timeout=1.0, set_key_retries=0)
    d = Driver(config)
    d.set_key()
    d.receive(SetKeyCnf(result=0))
    with pytest.deprecated_call(match="Config is frozen"):  # replace() is the way now
        config.set_key_result_ok = (0,)  # type: ignore[misc]
    d.set_key()
    d.receive(SetKeyCnf(result=0))
    assert len(d.of(KeyNotSet)) == 1
    assert len(d.of(KeySet)) == 1


def test_one_key_at_a_time() -> None:
    d = Driver()
    d.set_key()
    with pytest.raises(RuntimeError, match="waiting for its confirmation"):
        d.machine.set_key(NMK, NID, d.now)


def test_an_aborted_key_request_ends_without_an_event_and_its_late_cnf_is_ignored() -> None:
    d = Driver()
    d.set_key()
    d.machine.abort_key()
    assert d.machine.deadline is None
    assert d.receive(SetKeyCnf(result=1))  # the modem's answer: for no other machine
    assert d.events == []
    assert d.machine.modem_mac is None


# --- the modem's own address (item 10) -----------------------------------------------------------


def test_the_modem_address_is_learned_from_its_confirmation() -> None:
    d = Driver()
    assert d.machine.modem_mac is None  # unknown until the modem answered
    d.set_key()
    d.receive(SetKeyCnf(result=1))
    assert d.machine.modem_mac == MODEM
    assert d.of(ModemFound) == [ModemFound(MODEM)]
    d.set_key()
    d.receive(SetKeyCnf(result=1))
    assert d.of(ModemFound) == [ModemFound(MODEM)]  # told once, not at every answer


def test_the_modem_address_is_learned_from_link_status_and_a_new_modem_is_told() -> None:
    d = Driver()
    d.machine.query_link(d.now, 1.0)
    d.collect()
    d.receive(VsPlLinkStatusCnf(link_status=0))
    assert d.machine.modem_mac == MODEM
    other = MacAddress("00:b0:52:aa:bb:cc")
    d.set_key()
    d.receive(SetKeyCnf(result=1), src=other)
    assert d.machine.modem_mac == other
    assert d.of(ModemFound) == [ModemFound(MODEM), ModemFound(other)]


@pytest.mark.parametrize(
    ("src", "dst", "why"),
    [
        (MODEM, MacAddress("ff:ff:ff:ff:ff:ff"), "broadcast, not an answer to this host"),
        (MacAddress("01:00:00:00:00:01"), HOST, "a multicast source is no station"),
    ],
)
def test_an_answer_that_is_not_to_this_host_confirms_and_teaches_nothing(
    src: MacAddress, dst: MacAddress, why: str
) -> None:
    d = Driver()
    d.set_key()
    assert d.receive(SetKeyCnf(result=1), src=src, dst=dst), why
    assert d.machine.modem_mac is None
    assert d.events == []
    assert d.machine.key_pending


def test_an_answer_without_a_request_teaches_nothing() -> None:
    d = Driver()
    d.receive(SetKeyCnf(result=1))
    d.receive(VsPlLinkStatusCnf(link_status=1))
    assert d.machine.modem_mac is None
    assert d.events == []


def test_other_frames_are_not_the_modem_machine_s() -> None:
    d = Driver()
    assert not d.receive(SetKeyReq(nid=NID, new_key=NMK))


# --- link supervision (item 13) ------------------------------------------------------------------


def supervising(**settings: object) -> Driver:
    values: dict[str, object] = {
        "link_check_period": 1.0,
        "link_join_timeout": 12.0,
        "link_check_max_unanswered": 5,
    }
    values.update(settings)
    d = Driver(**values)
    d.machine.start_supervision(d.now)
    return d


def answer_polls(d: Driver, until: float, linked: Optional[bool]) -> None:
    """Move on to ``until``, answering every poll at once (None: leave them unanswered)."""
    while True:
        deadline = d.machine.deadline
        if deadline is None or deadline > until:
            break
        d.advance(deadline)
        if linked is not None:
            d.receive(VsPlLinkStatusCnf(link_status=1 if linked else 0))
    d.now = until


def test_supervision_polls_every_period_and_reports_the_link_up_once() -> None:
    d = supervising()
    answer_polls(d, 5.5, linked=True)
    assert d.polls() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert d.of(LinkUp) == [LinkUp()]
    assert not d.of(LinkLost)


def test_two_no_link_answers_in_a_row_after_the_link_was_up_mean_it_is_lost() -> None:
    d = supervising()
    answer_polls(d, 2.5, linked=True)
    answer_polls(d, 3.5, linked=False)
    assert not d.of(LinkLost)  # one answer could be a blip
    answer_polls(d, 4.5, linked=False)
    (lost,) = d.of(LinkLost)
    assert isinstance(lost, LinkLost)
    assert lost.loss is LinkLoss.LINK_DOWN
    assert lost.reason == "the modem reported no link 2 times in a row"
    assert not d.machine.supervising
    assert d.machine.deadline is None


def test_a_busy_modem_that_leaves_polls_unanswered_does_not_drop_the_car() -> None:
    """An unanswered VS_PL_LINK_STATUS poll is not "link down" (issue 12, item 13): four
    in a row (the limit is five) and the modem answers "linked" again: still matched."""
    d = supervising(link_check_max_unanswered=5)
    answer_polls(d, 2.5, linked=True)
    answer_polls(d, 6.5, linked=None)  # polls at 3, 4, 5, 6 unanswered
    answer_polls(d, 7.5, linked=True)  # the one at 7 is answered
    answer_polls(d, 11.5, linked=None)  # four more unanswered: the count started again
    answer_polls(d, 30.0, linked=True)
    assert not d.of(LinkLost)
    assert d.machine.supervising


def test_an_unanswered_poll_does_not_count_as_one_of_the_no_link_answers() -> None:
    d = supervising()
    answer_polls(d, 2.5, linked=True)
    answer_polls(d, 3.5, linked=False)
    answer_polls(d, 5.5, linked=None)
    answer_polls(d, 20.0, linked=True)
    assert not d.of(LinkLost)


def test_a_late_answer_within_the_period_counts_as_an_answer() -> None:
    d = supervising(link_check_max_unanswered=1)
    answer_polls(d, 2.5, linked=True)
    for _ in range(10):
        d.advance(d.now + 0.5)  # the poll goes out on the way
        d.advance(d.now + 0.45)
        d.receive(VsPlLinkStatusCnf(link_status=1))  # 0.95 s after it
        d.advance(d.now + 0.05)
    assert not d.of(LinkLost)


def test_a_modem_silent_for_the_configured_number_of_polls_means_the_link_is_lost() -> None:
    d = supervising(link_check_max_unanswered=5)
    answer_polls(d, 2.5, linked=True)
    answer_polls(d, 7.5, linked=None)  # polls at 3 to 7: the fifth is counted at 8
    assert not d.of(LinkLost)
    answer_polls(d, 8.5, linked=None)
    (lost,) = d.of(LinkLost)
    assert isinstance(lost, LinkLost)
    assert lost.loss is LinkLoss.MODEM_SILENT
    assert "5 VS_PL_LINK_STATUS polls in a row unanswered" in lost.reason
    assert "LINK_CHECK_MAX_UNANSWERED" in lost.reason


def test_limit_zero_never_ends_the_match_on_unanswered_polls() -> None:
    d = supervising(link_check_max_unanswered=0)
    answer_polls(d, 2.5, linked=True)
    answer_polls(d, 600.0, linked=None)
    assert not d.of(LinkLost)
    assert d.machine.supervising


def test_the_ev_that_does_not_join_within_tt_match_join_loses_the_link() -> None:
    d = supervising(link_join_timeout=12.0)
    answer_polls(d, 11.5, linked=False)
    assert not d.of(LinkLost)  # joining takes the EV's modem a while
    answer_polls(d, 12.5, linked=False)
    (lost,) = d.of(LinkLost)
    assert isinstance(lost, LinkLost)
    assert lost.loss is LinkLoss.NOT_JOINED
    assert lost.reason == "the EV did not join within TT_match_join"


def test_the_ev_joining_just_before_tt_match_join_keeps_the_link() -> None:
    d = supervising(link_join_timeout=12.0)
    answer_polls(d, 10.5, linked=False)
    answer_polls(d, 30.0, linked=True)
    assert not d.of(LinkLost)
    assert d.of(LinkUp)


def test_a_modem_that_never_answers_is_not_supervised_after_tt_match_join(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = supervising(link_join_timeout=12.0, link_check_max_unanswered=2)
    with caplog.at_level(logging.WARNING, logger="slac"):
        answer_polls(d, 100.0, linked=None)
    assert not d.of(LinkLost)  # the limit counts once the modem has answered at all
    (off,) = d.of(SupervisionOff)
    assert isinstance(off, SupervisionOff)
    assert off.reason == "the modem does not answer VS_PL_LINK_STATUS: link supervision off"
    assert [r.getMessage() for r in caplog.records] == [off.reason]
    assert d.polls()[-1] < 12.0 + 1.0
    assert d.machine.deadline is None


def test_period_zero_turns_supervision_off() -> None:
    d = Driver(link_check_period=0.0)
    d.machine.start_supervision(0.0)
    assert not d.machine.supervising
    assert d.machine.deadline is None


def test_stopped_supervision_sends_nothing_more() -> None:
    d = supervising()
    answer_polls(d, 2.5, linked=True)
    d.machine.stop_supervision()
    answer_polls(d, 50.0, linked=False)
    assert d.polls() == [1.0, 2.0]
    assert not d.of(LinkLost)


# --- one-off queries and the deadline ------------------------------------------------------------


def test_a_link_query_is_answered_or_times_out() -> None:
    d = Driver()
    d.machine.query_link(d.now, 0.5)
    d.collect()
    assert d.polls() == [0.0]
    d.receive(VsPlLinkStatusCnf(link_status=1))
    assert d.of(LinkStatus) == [LinkStatus(True)]
    d.machine.query_link(d.now, 0.5)
    d.collect()
    d.advance(1.0)
    assert d.of(LinkStatus) == [LinkStatus(True), LinkStatus(None)]
    assert d.machine.deadline is None


def test_a_query_after_an_unanswered_one_asks_the_modem_again() -> None:
    d = Driver()
    d.machine.query_link(d.now, 0.5)
    d.collect()
    d.advance(1.0)
    d.machine.query_link(d.now, 0.5)
    d.collect()
    assert d.polls() == [0.0, 1.0]
    d.receive(VsPlLinkStatusCnf(link_status=0))
    assert d.of(LinkStatus) == [LinkStatus(None), LinkStatus(False)]


def test_the_deadline_is_the_earliest_of_the_key_and_the_next_poll() -> None:
    d = supervising()
    assert d.machine.deadline == 1.0
    d.advance(0.5)
    d.set_key()
    assert d.machine.deadline == 1.0
    d.advance(1.2)  # the poll went out at 1.0
    assert d.machine.deadline == 1.5  # the key's wait (0.5 + 1.0) ends before the next poll
    d.receive(SetKeyCnf(result=1))
    assert d.machine.deadline == 2.0


def test_stop_forgets_everything() -> None:
    d = supervising()
    d.set_key()
    d.machine.query_link(d.now, 1.0)
    d.machine.stop()
    assert d.machine.deadline is None
    assert not d.machine.key_pending
    assert not d.machine.supervising


def test_settings_without_a_config_set_keys_and_do_not_supervise() -> None:
    machine = ModemMachine(HOST, ModemSettings(0.5, 0, (1,)))
    machine.start_supervision(0.0)
    machine.set_key(NMK, NID, 0.0)
    assert machine.deadline == 0.5
    machine.handle_timer(0.5)
    (failed,) = machine.events()
    assert isinstance(failed, KeyNotSet)
    assert failed.attempts == 1
