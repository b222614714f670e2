"""Modem restarts noticed (issue 15 item 2) with a hand-moved clock: VS_HOST_ACTION.IND and the
idle VS_SW_VER heartbeat in the modem machine, and what the EVSE station does about them (a
fresh key before the next plug-in, a counter, a WARNING line). No sockets, no root."""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable

import pytest

from slac import Config
from slac.enums import PLC_LOCAL_MAC
from slac.fsm.events import KeySet, ModemRestarted, ModemSilent, ModemUnresponsive, RestartSign
from slac.fsm.modem import ModemMachine
from slac.fsm.station import CpAction, EvseStation
from slac.messages import (
    SetKeyCnf,
    SetKeyReq,
    SlacParmReq,
    VsHostActionInd,
    VsHostActionRsp,
    VsRsDevCnf,
    VsRsDevReq,
    VsSwVerCnf,
    VsSwVerReq,
)
from slac.testing.clock import MachineClock
from slac.utils import MacAddress

HOST = MacAddress("02:00:00:00:ee:01")
MODEM = MacAddress("00:b0:52:12:34:56")
EV = MacAddress("02:00:00:00:0e:01")
FIRMWARE = "MAC-QCA7000-1.2.5"


def config(**values: object) -> Config:
    base: dict[str, object] = {
        "set_key_timeout": 1.0,
        "set_key_settle_time": 0.0,
        "modem_heartbeat_period": 30.0,
    }
    base.update(values)
    return Config(**base)  # type: ignore[arg-type]


def requests_of(clock: MachineClock[Any], kind: type) -> list[float]:
    return [at for at, o in clock.sent_at if isinstance(o.message, kind)]


# --- the modem machine ---------------------------------------------------------------------------


def modem(**values: object) -> MachineClock[ModemMachine]:
    return MachineClock(ModemMachine(HOST, config(**values)), HOST)


def test_the_heartbeat_is_off_with_period_zero() -> None:
    m = modem(modem_heartbeat_period=0.0)
    m.call(m.machine.start_heartbeat)
    assert m.machine.deadline is None
    m.advance(3600)
    assert m.sent_at == []


def test_the_heartbeat_asks_the_local_modem_for_its_firmware_every_period() -> None:
    m = modem()
    m.call(m.machine.start_heartbeat)
    for _ in range(3):
        m.advance(1.0)
        m.feed(VsSwVerCnf(version=FIRMWARE), MODEM)
        m.advance(29.0)
    assert requests_of(m, VsSwVerReq) == [0.0, 30.0, 60.0, 90.0]
    assert {o.dst for _, o in m.sent_at} == {MacAddress(PLC_LOCAL_MAC)}
    assert m.events_of(ModemRestarted) == [] and m.events_of(ModemSilent) == []
    assert m.machine.firmware == FIRMWARE and m.machine.modem_mac == MODEM


def test_a_heartbeat_answered_again_after_misses_means_the_modem_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    m = modem()
    m.call(m.machine.start_heartbeat)
    m.advance(0.5)
    m.feed(VsSwVerCnf(version=FIRMWARE), MODEM)
    with caplog.at_level(logging.WARNING):
        m.advance(90.5)  # the beats at 30, 60 and 90 s go unanswered
    assert [e.misses for e in m.events_of(ModemSilent)] == [1, 2]
    assert "does not answer VS_SW_VER.REQ" in caplog.text
    m.feed(VsSwVerCnf(version=FIRMWARE), MODEM)
    (restarted,) = m.events_of(ModemRestarted)
    assert restarted.sign is RestartSign.HEARTBEAT
    assert "after 2 unanswered heartbeat(s)" in restarted.detail
    assert m.machine.heartbeat_misses == 0


def test_another_firmware_string_means_the_modem_restarted() -> None:
    m = modem()
    m.call(m.machine.start_heartbeat)
    m.advance(0.0)
    m.feed(VsSwVerCnf(version=FIRMWARE), MODEM)
    m.advance(30.0)
    m.feed(VsSwVerCnf(version="MAC-QCA7000-1.2.6"), MODEM)
    (restarted,) = m.events_of(ModemRestarted)
    assert restarted.sign is RestartSign.FIRMWARE_CHANGED


def test_an_unasked_sw_ver_cnf_is_taken_but_means_nothing() -> None:
    m = modem()
    assert m.feed(VsSwVerCnf(version=FIRMWARE), MODEM) == []
    assert m.events == [] and m.machine.firmware is None


def test_host_action_ind_is_answered_and_is_a_restart() -> None:
    m = modem(modem_heartbeat_period=0.0)  # heeded without the heartbeat too
    answer = m.feed(VsHostActionInd(action=0x00, major_version=1, minor_version=2), MODEM)
    ((rsp),) = answer
    assert isinstance(rsp.message, VsHostActionRsp) and rsp.dst == MODEM
    assert rsp.message.status == 0
    (restarted,) = m.events_of(ModemRestarted)
    assert restarted.sign is RestartSign.HOST_ACTION
    assert "start device" in restarted.detail


def test_host_action_ind_from_another_station_than_our_modem_is_ignored() -> None:
    m = modem()
    m.call(m.machine.start_heartbeat)
    m.advance(0.0)
    m.feed(VsSwVerCnf(version=FIRMWARE), MODEM)  # the modem is known now
    assert m.feed(VsHostActionInd(action=0x00), MacAddress("00:b0:52:99:99:99")) == []
    assert m.events_of(ModemRestarted) == []


# --- the EVSE station ----------------------------------------------------------------------------


def keys() -> Callable[[int], bytes]:
    counter = itertools.count(1)
    return lambda n: bytes([next(counter)]) * n


class Station(MachineClock[EvseStation]):
    def __init__(self, **values: object) -> None:
        station = EvseStation(HOST, config(**values), interface="eth9", token_bytes=keys())
        super().__init__(station, HOST)

    def key_requests(self) -> list[SetKeyReq]:
        return [o.message for _, o in self.sent_at if isinstance(o.message, SetKeyReq)]

    def confirm_key(self) -> None:
        self.feed(SetKeyCnf(result=1), MODEM)

    def answer_heartbeat(self) -> None:
        self.feed(VsSwVerCnf(version=FIRMWARE), MODEM)


def started() -> Station:
    s = Station()
    s.call(s.machine.set_key)
    s.confirm_key()
    s.advance(0.1)
    s.answer_heartbeat()
    return s


def test_an_idle_station_runs_the_heartbeat_once_its_key_is_set() -> None:
    s = started()
    assert requests_of(s, VsSwVerReq) == [0.0]
    s.advance(30.0)
    assert requests_of(s, VsSwVerReq) == [0.0, 30.0]


def test_a_restart_while_idle_gets_a_fresh_key_before_the_next_plug_in(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = started()
    first = s.machine.nmk
    with caplog.at_level(logging.WARNING):
        s.feed(VsHostActionInd(action=0x00), MODEM)
    assert s.machine.modem_restarts == 1 and s.machine.modem_counters["modem_restarts"] == 1
    assert "the modem restarted (the modem sent VS_HOST_ACTION.IND" in caplog.text
    assert "a fresh key now" in caplog.text
    (_, again) = s.key_requests()
    assert again.new_key != first
    s.confirm_key()
    assert s.machine.nmk == again.new_key and not s.machine.key_unsure
    # the next plug-in matches with that key: no further CM_SET_KEY before SLAC
    assert s.call(lambda now: s.machine.cp_state_changed("B", now)) is CpAction.START
    s.call(lambda now: s.machine.begin_matching(now))
    assert len(s.key_requests()) == 2
    s.feed(SlacParmReq(run_id=bytes(8)), EV, MacAddress("ff:ff:ff:ff:ff:ff"))
    assert s.machine.state.value == "matching"


def test_a_restart_seen_by_the_heartbeat_gets_a_fresh_key() -> None:
    s = started()
    s.advance(60.5)  # the beats at 30 and 60 s unanswered: the modem is away
    assert len(s.key_requests()) == 1
    s.answer_heartbeat()
    assert len(s.key_requests()) == 2
    assert s.machine.last_modem_restart is not None
    assert s.machine.last_modem_restart.sign is RestartSign.HEARTBEAT


def test_no_heartbeat_while_an_ev_is_plugged_in_and_again_after_unplug() -> None:
    s = started()
    s.call(lambda now: s.machine.cp_state_changed("B", now))
    s.call(lambda now: s.machine.begin_matching(now))
    s.advance(120.0)
    assert requests_of(s, VsSwVerReq) == [0.0]
    unplugged = s.now
    s.call(lambda now: s.machine.cp_state_changed("A", now))
    s.advance(0.0)
    assert requests_of(s, VsSwVerReq) == [0.0, unplugged]


def test_a_restart_while_plugged_in_matches_again_with_a_fresh_key() -> None:
    s = started()
    s.call(lambda now: s.machine.cp_state_changed("B", now))
    s.call(lambda now: s.machine.begin_matching(now))
    assert len(s.key_requests()) == 1
    s.feed(VsHostActionInd(action=0x00), MODEM)
    assert len(s.key_requests()) == 2  # begin_matching again: the key is unsure
    s.confirm_key()
    assert s.events_of(KeySet)[-1].nmk == s.key_requests()[1].new_key


# --- resets (issue 15 item 3) ---------------------------------------------------------------------


def failed_plugin(s: Station) -> None:
    """A plug-in whose key the modem does not confirm (KEY_NOT_SET), then unplug."""
    s.call(lambda now: s.machine.cp_state_changed("B", now))
    s.call(lambda now: s.machine.begin_matching(now, key_needed=True))
    s.advance(10.0)  # CM_SET_KEY.REQ unanswered: 1 + 2 + 4 s
    s.call(lambda now: s.machine.cp_state_changed("A", now))


def test_no_reset_by_default_however_many_plug_ins_fail() -> None:
    s = started()
    for _ in range(5):
        failed_plugin(s)
    assert requests_of(s, VsRsDevReq) == []
    assert s.machine.failed_plugins == 5


def test_the_modem_is_reset_after_k_failed_plug_ins_then_waited_for_and_keyed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    s = Station(reset_after_failures=2)
    s.call(s.machine.set_key)
    s.confirm_key()
    failed_plugin(s)
    assert requests_of(s, VsRsDevReq) == []
    with caplog.at_level(logging.WARNING):
        failed_plugin(s)
    (reset_at,) = requests_of(s, VsRsDevReq)
    assert "resetting the modem (VS_RS_DEV.REQ): 2 plug-ins in a row without a match" in (
        caplog.text
    )
    keys_before = len(s.key_requests())
    s.feed(VsRsDevCnf(status=0), MODEM)
    s.advance(1.2)  # the modem restarts: VS_SW_VER every 0.5 s until it answers
    probes = [t for t in requests_of(s, VsSwVerReq) if t > reset_at]
    assert len(probes) >= 2
    assert len(s.key_requests()) == keys_before  # no key into a modem that is away
    s.answer_heartbeat()
    assert len(s.key_requests()) == keys_before + 1  # back: a fresh key
    s.confirm_key()
    assert not s.machine.key_unsure
    assert s.machine.modem_counters["modem_resets"] == 1 and s.machine.failed_plugins == 0
    assert s.machine.modem_restarts == 0  # a reset we asked for is no restart


def test_reset_on_unplug_resets_after_every_plug_in() -> None:
    s = Station(reset_on_unplug=True)
    s.call(s.machine.set_key)
    s.confirm_key()
    s.call(lambda now: s.machine.cp_state_changed("A", now))  # no plug-in yet: no reset
    assert requests_of(s, VsRsDevReq) == []
    s.call(lambda now: s.machine.cp_state_changed("B", now))
    s.call(lambda now: s.machine.cp_state_changed("A", now))
    assert len(requests_of(s, VsRsDevReq)) == 1


def test_a_modem_that_does_not_take_the_reset_is_unresponsive() -> None:
    s = Station(reset_on_unplug=True)
    s.call(s.machine.set_key)
    s.confirm_key()
    s.call(lambda now: s.machine.cp_state_changed("B", now))
    s.call(lambda now: s.machine.cp_state_changed("A", now))
    s.advance(5.0)  # VS_RS_DEV.REQ sent 3 times, never confirmed
    assert len(requests_of(s, VsRsDevReq)) == 3
    (unresponsive,) = s.events_of(ModemUnresponsive)
    assert "did not answer VS_RS_DEV.REQ" in unresponsive.detail
    assert s.machine.modem_counters["hardware_resets"] == 1
    # the hardware reset hook ran: the modem is waited for, then keyed
    keys = len(s.key_requests())
    s.call(s.machine.hardware_reset_done)
    s.advance(0.1)
    s.answer_heartbeat()
    assert len(s.key_requests()) == keys + 1


def test_a_modem_that_does_not_come_back_within_modem_reset_wait_is_unresponsive() -> None:
    s = Station(reset_on_unplug=True, modem_reset_wait=3.0)
    s.call(s.machine.set_key)
    s.confirm_key()
    s.call(lambda now: s.machine.cp_state_changed("B", now))
    s.call(lambda now: s.machine.cp_state_changed("A", now))
    s.feed(VsRsDevCnf(status=0), MODEM)
    s.advance(10.0)
    (unresponsive,) = s.events_of(ModemUnresponsive)
    assert "within 3 s of its reset" in unresponsive.detail
