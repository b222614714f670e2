"""The real controller and SlacEvseSession on a veth interface, the scripted peer on the far
end (in its own network namespace) playing the EVSE's modem and an EV. Needs root."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from slac import (
    Config,
    FailureReason,
    MatchingFailedError,
    MatchResult,
    ModemError,
    ModemTimeoutError,
    SessionState,
    SlacEvseSession,
    SlacSessionController,
    TransportError,
)
from slac.fsm.events import MatchingFailed, MatchingOngoing
from slac.messages import SlacMatchCnf, SlacParmReq, decode_frame
from slac.testing import fast_config
from slac.testing.peer import MODEM_MAC, ScriptedPeer
from slac.utils import MacAddress

from ..conftest import ROOT, needs_root
from .conftest import Link, make_link, remove_link

pytestmark = needs_root

RUN_ID = bytes.fromhex("0a0b0c0d0e0f1011")


class RecordingController(SlacSessionController):
    """Records every hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.results: list[MatchResult] = []

    async def enable_hlc_charging(self, evse_id: str) -> None:
        self.calls.append(("enable_hlc_charging", evse_id))

    async def notify_matching_ongoing(self, evse_id: str) -> None:
        self.calls.append(("notify_matching_ongoing", evse_id))

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        self.calls.append(("notify_matched", evse_id))
        self.results.append(result)

    async def notify_matching_failed(self, evse_id: str) -> None:
        self.calls.append(("notify_matching_failed", evse_id))

    async def notify_link_lost(self, evse_id: str) -> None:
        self.calls.append(("notify_link_lost", evse_id))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
async def session(link: Link) -> AsyncIterator[SlacEvseSession]:
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, fast_config())
    try:
        yield evse
    finally:
        await evse.close()


async def test_full_match_over_veth(session: SlacEvseSession, peer: ScriptedPeer) -> None:
    controller = RecordingController()
    await session.evse_set_key()
    assert peer.modem.keys == [session.nmk]
    await controller.process_cp_state(session, "B")
    outcome = await peer.run_ev(RUN_ID)
    result = await session.wait_matched(timeout=2)
    assert result.ev_mac == peer.ev_mac
    assert result.run_id == RUN_ID
    assert outcome.evse_mac == session.evse_mac
    assert outcome.match_cnf is not None
    assert outcome.match_cnf.nmk == session.nmk
    assert outcome.match_cnf.nid == session.nid
    assert session.state is SessionState.MATCHED
    await asyncio.sleep(0.05)  # the hooks run in the matching task
    assert [name for name, _ in controller.calls] == [
        "enable_hlc_charging",
        "notify_matching_ongoing",
        "notify_matched",
    ]
    task = session.matching_task
    assert task is not None
    assert task.get_name() == "slac-matching-DE*TST*E0001"


async def test_cp_a_cancels_matching(session: SlacEvseSession, peer: ScriptedPeer) -> None:
    controller = RecordingController()
    await session.evse_set_key()
    await controller.process_cp_state(session, "B")
    await asyncio.sleep(0.05)
    task = session.matching_task
    assert task is not None
    assert not task.done()
    await controller.process_cp_state(session, "A")
    assert task.cancelled()
    assert session.state is SessionState.UNMATCHED
    assert session.matcher is not None
    assert session.matcher.deadline is None
    assert len(peer.modem.keys) == 1  # the key was never handed out: no new one


async def test_unplug_and_replug_match_again_with_a_new_key(
    session: SlacEvseSession, peer: ScriptedPeer
) -> None:
    controller = RecordingController()
    await session.evse_set_key()
    await controller.process_cp_state(session, "B")
    first = await peer.run_ev(RUN_ID)
    await session.wait_matched(timeout=2)
    await controller.process_cp_state(session, "A")
    assert session.state is SessionState.UNMATCHED
    await controller.process_cp_state(session, "B")
    second = await peer.run_ev(bytes.fromhex("2020202020202020"))
    await session.wait_matched(timeout=2)
    assert first.match_cnf is not None
    assert second.match_cnf is not None
    assert second.match_cnf.nmk != first.match_cnf.nmk
    assert second.match_cnf.nmk == session.nmk
    assert peer.modem.keys == [first.match_cnf.nmk, second.match_cnf.nmk]


async def test_two_evses_in_one_process_match_two_evs_at_once() -> None:
    links = [make_link(MacAddress(f"02:00:00:00:20:0{i}")) for i in (1, 2)]
    sessions = [
        SlacEvseSession(f"DE*TST*E000{i}", link.evse_if, fast_config())
        for i, link in enumerate(links, start=1)
    ]
    peers: list[ScriptedPeer] = []
    try:
        for link in links:
            peers.append(await ScriptedPeer(link.netns, link.peer_if, link.ev_mac).start())
        controller = RecordingController()
        await asyncio.gather(*(s.evse_set_key() for s in sessions))
        for s in sessions:
            await controller.process_cp_state(s, "B")
        outcomes = await asyncio.gather(peers[0].run_ev(b"\x01" * 8), peers[1].run_ev(b"\x02" * 8))
        results = await asyncio.gather(*(s.wait_matched(timeout=2) for s in sessions))
        assert [r.ev_mac for r in results] == [link.ev_mac for link in links]
        assert sessions[0].nmk != sessions[1].nmk
        for outcome, s in zip(outcomes, sessions):
            assert outcome.match_cnf is not None
            assert outcome.match_cnf.nmk == s.nmk
    finally:
        for s in sessions:
            await s.close()
        for p in peers:
            p.close()
        for link in links:
            remove_link(link)


async def test_missing_interface_gives_a_clear_error() -> None:
    session = SlacEvseSession("DE*TST*E0009", "nosuchif0", fast_config())
    with pytest.raises(TransportError, match="'nosuchif0' does not exist"):
        await session.evse_set_key()


async def test_interface_that_is_down_gives_a_clear_error(link: Link) -> None:
    link.pair.set_up("a", False)
    session = SlacEvseSession("DE*TST*E0009", link.evse_if, fast_config())
    with pytest.raises(TransportError, match=f"{link.evse_if} is down"):
        await session.open()


@pytest.mark.parametrize(
    ("hint", "advice"),
    [("", ""), (", sudo_hint='`sudo my-station`'", "; try `sudo my-station`")],
    ids=["library", "with the application's hint"],
)
def test_missing_permission_gives_a_clear_error(link: Link, hint: str, advice: str) -> None:
    """The library says what is missing; how to run as root is the application's to say
    (the examples name their make targets, `slac evse` its command)."""
    code = (
        "import asyncio\n"
        "from slac import SlacEvseSession, TransportError\n"
        f"s = SlacEvseSession('x', '{link.evse_if}'{hint})\n"
        "try:\n"
        "    asyncio.run(s.open())\n"
        "except TransportError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-net_raw", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert done.stdout.strip() == (
        f"opening a raw socket on {link.evse_if} needs root or CAP_NET_RAW{advice}"
    )


async def test_unanswered_set_key_fails_clearly_within_the_configured_time(
    link: Link, peer: ScriptedPeer
) -> None:
    peer.modem.answer_set_key = False
    session = SlacEvseSession(
        "DE*TST*E0001", link.evse_if, fast_config(set_key_timeout=0.2, set_key_retries=1)
    )
    started = time.monotonic()
    try:
        with pytest.raises(ModemTimeoutError, match="did not answer CM_SET_KEY.REQ"):
            await session.evse_set_key()
    finally:
        await session.close()
    elapsed = time.monotonic() - started
    assert 0.55 <= elapsed < 1.5  # 0.2 s, then 0.4 s
    assert session.nmk is None


async def test_modem_refusing_the_key_names_the_setting(link: Link, peer: ScriptedPeer) -> None:
    peer.modem.result = 0x00  # HomePlug's "success", which QCA modems send for failure
    session = SlacEvseSession("DE*TST*E0001", link.evse_if, fast_config())
    try:
        with pytest.raises(ModemError, match="SET_KEY_RESULT_OK"):
            await session.evse_set_key()
        with pytest.deprecated_call(match="Config is frozen"):  # replace() is the way now
            session.config.set_key_result_ok = (0,)  # type: ignore[misc]
        await session.evse_set_key()
        assert session.nmk == peer.modem.keys[-1]
    finally:
        await session.close()


async def test_a_hook_that_raises_is_reported_and_the_next_cycle_works(
    session: SlacEvseSession, peer: ScriptedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(RecordingController):
        fail = True

        async def notify_matching_ongoing(self, evse_id: str) -> None:
            if self.fail:
                raise RuntimeError("hook bug")

    controller = Broken()
    await session.evse_set_key()
    await controller.process_cp_state(session, "B")
    peer.send(SlacParmReq(run_id=RUN_ID), MacAddress("ff:ff:ff:ff:ff:ff"))
    task = session.matching_task
    assert task is not None
    await asyncio.wait_for(task, 2)
    assert "matching task failed" in caplog.text
    assert "hook bug" in caplog.text
    assert ("notify_matching_failed", session.evse_id) in controller.calls
    assert session.state is SessionState.FAILED
    controller.fail = False
    await controller.process_cp_state(session, "A")
    await controller.process_cp_state(session, "B")
    await peer.run_ev(bytes.fromhex("3030303030303030"))
    await session.wait_matched(timeout=2)


# --- the modem (issue 12: items 4, 10, 11, 13) -----------------------------------------------

CAR_2 = MacAddress("02:00:00:00:10:02")


def match_confirmations(session: SlacEvseSession) -> list[tuple[MacAddress, SlacMatchCnf]]:
    """Every CM_SLAC_MATCH.CNF the session sends from now on, and to whom."""
    sent: list[tuple[MacAddress, SlacMatchCnf]] = []

    def observe(data: bytes, _at: float, outgoing: bool) -> None:
        if outgoing and data[15:17] == b"\x7d\x60":
            frame = decode_frame(data)
            assert isinstance(frame.message, SlacMatchCnf)
            sent.append((frame.dst, frame.message))

    session.host.observers.append(observe)
    return sent


async def test_the_modem_address_is_learned_from_its_answer_and_given_to_the_matcher(
    session: SlacEvseSession, peer: ScriptedPeer
) -> None:
    """Issue 12, item 10 (plumbing): the source MAC of CM_SET_KEY.CNF is the modem's."""
    await session.open()
    assert session.modem_mac is None  # unknown before the modem answered
    await session.evse_set_key()
    assert session.modem_mac == MODEM_MAC
    assert session.matcher is not None
    assert session.matcher.modem_mac == MODEM_MAC


async def test_a_failed_rekey_after_unplug_never_gives_car_2_the_key_of_car_1(
    link: Link, peer: ScriptedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12, item 11: the modem does not take the fresh key after car 1 unplugs. Car 2's
    plug-in sets a key first (SET_KEY_RETRIES), and fails with the modem's error, one ERROR
    line and notify_matching_failed; it is never matched with car 1's key. Once the modem
    answers again, the next plug-in matches car 2 with a fresh key."""
    config = fast_config(set_key_timeout=0.1, set_key_retries=1)
    session = SlacEvseSession("DE*TST*E0001", link.evse_if, config)
    controller = RecordingController()
    try:
        await session.evse_set_key()
        await controller.process_cp_state(session, "B")
        car_1 = await peer.run_ev(RUN_ID)
        await session.wait_matched(timeout=2)
        assert car_1.match_cnf is not None
        key_1 = car_1.match_cnf.nmk
        confirmations = match_confirmations(session)
        with caplog.at_level(logging.WARNING, logger="slac"):
            peer.modem.answer_set_key = False
            await controller.process_cp_state(session, "A")  # the re-key fails meanwhile
            await asyncio.sleep(0.5)
            peer.ev_mac = CAR_2
            controller.calls.clear()
            await controller.process_cp_state(session, "B")
            with pytest.raises(AssertionError, match="no CM_SLAC_PARM.CNF"):
                await peer.run_ev(bytes.fromhex("2222222222222222"), parm_tries=3)
            task = session.matching_task
            assert task is not None
            await asyncio.wait_for(task, 2)
        assert confirmations == []  # car 2 was never sent a key, car 1's least of all
        assert controller.names() == ["notify_matching_failed"]
        assert session.state is SessionState.FAILED
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "matching failed: the modem on" in errors[0]
        assert "did not answer CM_SET_KEY.REQ (2 attempts" in errors[0]
        assert "Traceback" not in caplog.text
        peer.modem.answer_set_key = True
        await controller.process_cp_state(session, "A")
        await controller.process_cp_state(session, "B")
        car_2 = await peer.run_ev(bytes.fromhex("2323232323232323"))
        assert car_2.match_cnf is not None
        assert car_2.match_cnf.nmk != key_1
        assert car_2.match_cnf.nmk == peer.modem.keys[-1] == session.nmk
        assert [dst for dst, _ in confirmations] == [CAR_2]
    finally:
        await session.close()


async def test_without_reset_on_unplug_the_fresh_key_is_set_when_the_next_ev_plugs_in(
    link: Link, peer: ScriptedPeer
) -> None:
    """Issue 12, item 11: RESET_KEY_ON_UNPLUG=false moves the key change from the unplug to
    the next plug-in; the next EV still never gets the key of the one before."""
    session = SlacEvseSession("DE*TST*E0001", link.evse_if, fast_config(reset_key_on_unplug=False))
    controller = RecordingController()
    try:
        await session.evse_set_key()
        await controller.process_cp_state(session, "B")
        car_1 = await peer.run_ev(RUN_ID)
        await session.wait_matched(timeout=2)
        await controller.process_cp_state(session, "A")
        await asyncio.sleep(0.1)
        assert len(peer.modem.keys) == 1  # nothing written at unplug
        peer.ev_mac = CAR_2
        await controller.process_cp_state(session, "B")
        car_2 = await peer.run_ev(bytes.fromhex("2222222222222222"))
        assert car_1.match_cnf is not None
        assert car_2.match_cnf is not None
        assert car_2.match_cnf.nmk != car_1.match_cnf.nmk
        assert peer.modem.keys == [car_1.match_cnf.nmk, car_2.match_cnf.nmk]
    finally:
        await session.close()


async def test_restart_matching_leaves_the_network_and_matches_again_without_a_cp_cycle(
    session: SlacEvseSession, peer: ScriptedPeer
) -> None:
    """Issue 12, item 4: the HLC side asks for a new match (e.g. D-LINK_ERROR)."""
    controller = RecordingController()
    await session.evse_set_key()
    await controller.process_cp_state(session, "B")
    first = await peer.run_ev(RUN_ID)
    await session.wait_matched(timeout=2)
    task = session.matching_task
    await controller.restart_matching(session, "the HLC side lost the EV")
    assert first.match_cnf is not None
    assert len(peer.modem.keys) == 2  # left the logical network: a fresh key
    assert session.nmk == peer.modem.keys[-1] != first.match_cnf.nmk
    assert session.state is SessionState.UNMATCHED
    assert session.matching_task is task  # the same plug-in, the same task
    second = await peer.run_ev(bytes.fromhex("3333333333333333"))
    await session.wait_matched(timeout=2)
    assert second.match_cnf is not None
    assert second.match_cnf.nmk == session.nmk
    await asyncio.sleep(0.05)
    assert controller.names() == [
        "enable_hlc_charging",
        "notify_matching_ongoing",
        "notify_matched",
        "notify_matching_ongoing",
        "notify_matched",
    ]


async def test_restart_matching_after_matching_failed_matches_again(
    link: Link, peer: ScriptedPeer
) -> None:
    session = SlacEvseSession(
        "DE*TST*E0001", link.evse_if, fast_config(slac_init_timeout=0.3, matching_attempts=1)
    )
    controller = RecordingController()
    try:
        await session.evse_set_key()
        await controller.process_cp_state(session, "B")
        await asyncio.sleep(0.6)
        assert session.state is SessionState.FAILED
        await controller.restart_matching(session, "a new try")
        assert session.matching_task is not None
        assert not session.matching_task.done()
        await peer.run_ev(RUN_ID)
        await session.wait_matched(timeout=2)
        assert len(peer.modem.keys) == 1  # no EV had the key: none written
    finally:
        await session.close()


async def test_restart_matching_without_an_ev_plugged_in_does_nothing(
    session: SlacEvseSession, peer: ScriptedPeer
) -> None:
    controller = RecordingController()
    await session.evse_set_key()
    await controller.restart_matching(session)
    await controller.process_cp_state(session, "B")
    await controller.process_cp_state(session, "A")
    await controller.restart_matching(session)
    assert session.matching_task is not None
    assert session.matching_task.done()
    assert len(peer.modem.keys) == 1


def supervised(**overrides: object) -> Config:
    values: dict[str, object] = {
        "link_check_period": 0.1,
        "link_join_timeout": 2.0,
        "link_check_max_unanswered": 20,
    }
    values.update(overrides)
    return fast_config(**values)


async def test_a_busy_modem_leaving_link_polls_unanswered_keeps_the_match(
    link: Link, peer: ScriptedPeer
) -> None:
    """Issue 12, item 13: an unanswered VS_PL_LINK_STATUS poll is not "link down": a modem
    busy for ten polls (one second) does not drop the charging car."""
    session = SlacEvseSession("DE*TST*E0001", link.evse_if, supervised())
    controller = RecordingController()
    try:
        peer.modem.link_status = 1
        await session.evse_set_key()
        await controller.process_cp_state(session, "B")
        await peer.run_ev(RUN_ID)
        await session.wait_matched(timeout=2)
        await asyncio.sleep(0.5)  # the link is seen up
        peer.modem.link_status = None  # busy: no answers
        polls = peer.modem.link_polls
        await asyncio.sleep(1.0)
        unanswered = peer.modem.link_polls - polls
        peer.modem.link_status = 1
        await asyncio.sleep(0.5)
        assert "notify_link_lost" not in controller.names()
        assert session.state is SessionState.MATCHED
        assert len(peer.modem.keys) == 1  # never left the logical network
        assert unanswered >= 8  # it kept asking, every LINK_CHECK_PERIOD
    finally:
        await session.close()


async def test_a_modem_silent_for_the_configured_polls_is_a_lost_link(
    link: Link, peer: ScriptedPeer
) -> None:
    session = SlacEvseSession("DE*TST*E0001", link.evse_if, supervised(link_check_max_unanswered=3))
    controller = RecordingController()
    try:
        peer.modem.link_status = 1
        await session.evse_set_key()
        await controller.process_cp_state(session, "B")
        await peer.run_ev(RUN_ID)
        await session.wait_matched(timeout=2)
        await asyncio.sleep(0.3)
        peer.modem.link_status = None
        for _ in range(30):
            if len(peer.modem.keys) == 2:
                break
            await asyncio.sleep(0.05)
        assert "notify_link_lost" in controller.names()
        assert len(peer.modem.keys) == 2  # it left the logical network
        assert session.state is SessionState.UNMATCHED
        peer.modem.link_status = 1
        await peer.run_ev(bytes.fromhex("4444444444444444"))  # and matches again
        await session.wait_matched(timeout=2)
    finally:
        await session.close()


async def test_no_link_answers_after_the_link_was_up_are_a_lost_link(
    link: Link, peer: ScriptedPeer
) -> None:
    session = SlacEvseSession("DE*TST*E0001", link.evse_if, supervised())
    controller = RecordingController()
    try:
        peer.modem.link_status = 1
        await session.evse_set_key()
        await controller.process_cp_state(session, "B")
        await peer.run_ev(RUN_ID)
        await session.wait_matched(timeout=2)
        await asyncio.sleep(0.3)
        peer.modem.link_status = 0
        for _ in range(20):
            if len(peer.modem.keys) == 2:
                break
            await asyncio.sleep(0.05)
        assert controller.names()[-1] == "notify_link_lost"
        assert session.state is SessionState.UNMATCHED
    finally:
        await session.close()


async def test_link_is_up_tells_what_the_modem_reports(
    session: SlacEvseSession, peer: ScriptedPeer
) -> None:
    assert await session.link_is_up() is None  # no answer within SET_KEY_TIMEOUT
    peer.modem.link_status = 0
    assert await session.link_is_up() is False
    peer.modem.link_status = 1
    assert await session.link_is_up() is True
    assert session.modem_mac == MODEM_MAC


def test_no_namespace_or_link_is_left_behind() -> None:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"slacns{os.getpid() % 100000}x" not in names


class EventController(SlacSessionController):
    """The hooks that get the event (issue 14: hooks get their data from the event)."""

    def __init__(self) -> None:
        self.failures: list[MatchingFailed] = []
        self.ongoing: list[MatchingOngoing] = []
        self.results: list[MatchResult] = []

    async def on_matching_ongoing(self, evse_id: str, event: MatchingOngoing) -> None:
        self.ongoing.append(event)

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        self.results.append(result)

    async def on_matching_failed(self, evse_id: str, failure: MatchingFailed) -> None:
        self.failures.append(failure)


async def test_hooks_that_take_the_event_get_its_data(link: Link, peer: ScriptedPeer) -> None:
    """notify_matching_ongoing gets the EV and RunID, notify_matched the attenuation this
    EVSE measured, notify_matching_failed the reason (an enum) of a plug-in without SLAC."""
    session = SlacEvseSession("DE*TST*E0001", link.evse_if, fast_config(slac_init_timeout=0.5))
    controller = EventController()
    try:
        await session.evse_set_key()
        await controller.process_cp_state(session, "B")
        await peer.run_ev(RUN_ID)
        await session.wait_matched(timeout=2)
        await asyncio.sleep(0.05)
        (ongoing,) = controller.ongoing
        assert (ongoing.ev_mac, ongoing.run_id) == (peer.ev_mac, RUN_ID)
        (result,) = controller.results
        assert result.attenuation is not None and result.ev_mac == peer.ev_mac
        await controller.process_cp_state(session, "A")
        await controller.process_cp_state(session, "B")  # nobody sends CM_SLAC_PARM.REQ
        task = session.matching_task
        assert task is not None
        await asyncio.wait_for(task, 3)
        (failure,) = controller.failures
        assert failure.reason is FailureReason.NO_PARM_REQ
        with pytest.raises(MatchingFailedError) as raised:
            await session.wait_matched(timeout=1)
        assert raised.value.reason is FailureReason.NO_PARM_REQ
    finally:
        await session.close()
