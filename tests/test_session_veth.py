"""The real controller and SlacEvseSession on a veth interface, the scripted peer on the far
end (in its own network namespace) playing the EVSE's modem and an EV. Needs root."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from slac import (
    Config,
    MatchResult,
    ModemError,
    ModemTimeoutError,
    SessionState,
    SlacEvseSession,
    SlacSessionController,
    TransportError,
)
from slac.messages import SlacParmReq
from slac.utils import MacAddress

from .conftest import ROOT, Link, make_link, needs_root, remove_link
from .peer import ScriptedPeer

pytestmark = needs_root

RUN_ID = bytes.fromhex("0a0b0c0d0e0f1011")


def fast_config(**overrides: object) -> Config:
    values: dict[str, object] = {
        "set_key_settle_time": 0.0,
        "set_key_timeout": 0.3,
        "slac_init_timeout": 20.0,
    }
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


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


def test_missing_permission_gives_a_clear_error(link: Link) -> None:
    code = (
        "import asyncio\n"
        "from slac import SlacEvseSession, TransportError\n"
        f"s = SlacEvseSession('x', '{link.evse_if}')\n"
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
        f"opening a raw socket on {link.evse_if} needs root or CAP_NET_RAW; "
        "try `make run-local-sudo-single`"
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
        session.config.set_key_result_ok = (0,)
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


def test_no_namespace_or_link_is_left_behind() -> None:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"slacns{os.getpid() % 100000}x" not in names
