"""Faults, hostile input and security properties: the match still completes, or fails cleanly
and the next attempt works; nothing escapes; nothing is left behind; the key is never leaked.
Real sockets (veth pairs, the virtual powerline) unless a test says otherwise. Needs root."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from slac import Config, MatchResult, SessionState, SlacEvseSession, SlacSessionController
from slac.enums import MMType
from slac.messages import (
    AttenCharRsp,
    AttenProfileInd,
    MnbcSoundInd,
    SlacMatchReq,
    SlacParmReq,
    StartAttenCharInd,
)
from slac.sockets.async_linux_socket import RawSocket
from slac.testing import fast_config
from slac.testing.netns import Netns, VethPair
from slac.testing.peer import BROADCAST, MODEM_MAC, ScriptedPeer
from slac.utils import MacAddress

from ..conftest import ROOT, needs_root
from ..site import make_site
from .conftest import Link, make_link, remove_link

pytestmark = needs_root


def quick(**overrides: object) -> Config:
    """fast_config() without link supervision: the scripted peer leaves its polls unanswered."""
    return fast_config(**{"link_check_period": 0.0, **overrides})


class Hooks(SlacSessionController):
    def __init__(self) -> None:
        self.failed = 0
        self.matched: list[MatchResult] = []
        self.hlc = asyncio.Event()

    async def enable_hlc_charging(self, evse_id: str) -> None:
        self.hlc.set()

    async def notify_matching_failed(self, evse_id: str) -> None:
        self.failed += 1

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        self.matched.append(result)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def other_tasks() -> set[asyncio.Task[object]]:
    current = asyncio.current_task()
    return {t for t in asyncio.all_tasks() if t is not current and not t.done()}


# --- faults on the medium ------------------------------------------------------------------------


async def test_thirty_percent_of_sounds_lost_still_match_on_the_rest() -> None:
    async for site in make_site(1, 1):
        site.medium.faults.loss["CM_MNBC_SOUND.IND"] = 0.3
        site.medium.rng.seed(3)
        await site.start_evses()
        ev = site.our_ev(0)
        try:
            result = await asyncio.wait_for(ev.match(), 10)
        finally:
            await ev.close()
        lost = site.medium.counters.get("lost CM_MNBC_SOUND.IND", 0)
        assert 0 < lost < 10
        (candidate,) = result.candidates
        assert candidate.atten_char is not None
        assert candidate.atten_char.num_sounds == 10 - lost
        await site.evses[0].wait_matched(timeout=2)


async def test_duplicated_and_reordered_frames_still_match() -> None:
    async for site in make_site(1, 1):
        site.medium.faults.duplicate = 0.3
        site.medium.faults.delay_jitter = 0.008  # reorders frames sent less than 8 ms apart
        await site.start_evses()
        ev = site.our_ev(0)
        try:
            await asyncio.wait_for(ev.match(), 10)
        finally:
            await ev.close()
        await site.evses[0].wait_matched(timeout=2)
        assert await site.topo.ping_evse(0, 0)


async def test_every_atten_char_rsp_lost_still_matches() -> None:
    async for site in make_site(1, 1):
        site.medium.faults.loss["CM_ATTEN_CHAR.RSP"] = 1.0
        await site.start_evses()
        ev = site.our_ev(0)
        try:
            await asyncio.wait_for(ev.match(), 10)
        finally:
            await ev.close()
        await site.evses[0].wait_matched(timeout=2)
        assert site.medium.counters["lost CM_ATTEN_CHAR.RSP"] >= 1


async def test_repeated_match_request_gets_the_same_confirmation(
    link: Link, peer: ScriptedPeer
) -> None:
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, quick())
    try:
        await evse.evse_set_key()
        await Hooks().process_cp_state(evse, "B")
        outcome = await peer.run_ev(b"\x42" * 8)
        assert evse.evse_mac is not None
        peer.send(
            SlacMatchReq(pev_mac=peer.ev_mac, evse_mac=evse.evse_mac, run_id=b"\x42" * 8),
            evse.evse_mac,
        )
        from slac.messages import SlacMatchCnf

        frame, _ = await peer.expect(SlacMatchCnf, 1.0)
        assert frame.message == outcome.match_cnf
    finally:
        await evse.close()


async def test_ev_starting_over_with_a_new_run_id_mid_sounding_completes_the_new_run(
    link: Link, peer: ScriptedPeer
) -> None:
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, quick())
    try:
        await evse.evse_set_key()
        await Hooks().process_cp_state(evse, "B")
        await asyncio.sleep(0.05)
        ev, old = peer.ev_mac, b"\x01" * 8
        peer.send(SlacParmReq(run_id=old), BROADCAST)
        await asyncio.sleep(0.02)
        peer.send(StartAttenCharInd(forwarding_sta=ev, run_id=old), BROADCAST)
        for i in range(4):
            peer.send(MnbcSoundInd(remaining_sounds=9 - i, run_id=old), BROADCAST)
            assert evse.evse_mac is not None
            peer.send(AttenProfileInd(pev_mac=ev, aag=(30,) * 58), evse.evse_mac, MODEM_MAC)
        outcome = await peer.run_ev(b"\x02" * 8)
        assert outcome.atten_char is not None
        assert outcome.atten_char.num_sounds == 10
        result = await evse.wait_matched(timeout=2)
        assert result.run_id == b"\x02" * 8
    finally:
        await evse.close()


# --- the control pilot in every phase ------------------------------------------------------------


@pytest.mark.parametrize("phase", ["waiting", "sounding", "waiting for the match", "matched"])
async def test_cp_a_in_any_phase_ends_the_task_and_leaves_nothing_behind(
    link: Link, peer: ScriptedPeer, phase: str
) -> None:
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, quick())
    hooks = Hooks()
    try:
        await evse.evse_set_key()
        fds, tasks = open_fds(), other_tasks()
        await hooks.process_cp_state(evse, "B")
        await hooks.hlc.wait()
        assert evse.evse_mac is not None
        run = b"\x07" * 8
        if phase != "waiting":
            peer.send(SlacParmReq(run_id=run), BROADCAST)
            peer.send(StartAttenCharInd(forwarding_sta=peer.ev_mac, run_id=run), BROADCAST)
            peer.send(MnbcSoundInd(remaining_sounds=9, run_id=run), BROADCAST)
            peer.send(
                AttenProfileInd(pev_mac=peer.ev_mac, aag=(20,) * 58), evse.evse_mac, MODEM_MAC
            )
        if phase in ("waiting for the match", "matched"):
            await asyncio.sleep(0.7)  # the sounding window ends, CM_ATTEN_CHAR.IND goes out
            peer.send(AttenCharRsp(source_address=peer.ev_mac, run_id=run), evse.evse_mac)
        if phase == "matched":
            peer.send(
                SlacMatchReq(pev_mac=peer.ev_mac, evse_mac=evse.evse_mac, run_id=run), evse.evse_mac
            )
            await evse.wait_matched(timeout=2)
        await asyncio.sleep(0.05)
        task = evse.matching_task
        await hooks.process_cp_state(evse, "A")
        await asyncio.sleep(0.05)
        assert task is not None
        assert task.done()
        assert evse.state is SessionState.UNMATCHED
        assert evse.matcher is not None
        assert evse.matcher.runs == {}
        assert evse.matcher.deadline is None
        await evse.close()  # waits for the key change after a match
        assert other_tasks() <= tasks
        assert open_fds() <= fds - 1  # the session's socket is closed too
    finally:
        await evse.close()


# --- the interface and the modem -----------------------------------------------------------------


async def test_interface_down_during_matching_then_up_recovers_on_the_next_cycle(
    link: Link, peer: ScriptedPeer
) -> None:
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, quick(slac_init_timeout=20.0))
    hooks = Hooks()
    try:
        await evse.evse_set_key()
        await hooks.process_cp_state(evse, "B")
        await hooks.hlc.wait()
        link.pair.set_up("a", False)
        with contextlib.suppress(OSError):  # the kernel may refuse it (ENOBUFS): no carrier
            peer.send(SlacParmReq(run_id=b"\x01" * 8), BROADCAST)  # lost: the link is down
        await asyncio.sleep(0.2)
        link.pair.set_up("a", True)
        await hooks.process_cp_state(evse, "A")
        await hooks.process_cp_state(evse, "B")
        await peer.run_ev(b"\x02" * 8, parm_tries=20)
        await evse.wait_matched(timeout=2)
    finally:
        await evse.close()


async def test_interface_deleted_and_created_again_recovers_without_restart() -> None:
    first = make_link(MacAddress("02:00:00:00:10:01"))
    evse = SlacEvseSession("DE*TST*E0001", first.evse_if, quick())
    hooks = Hooks()
    second: Optional[Link] = None
    first_peer = await ScriptedPeer(first.netns, first.peer_if, first.ev_mac).start()
    try:
        await evse.evse_set_key()
        await hooks.process_cp_state(evse, "B")
        await hooks.hlc.wait()
        first_peer.close()
        remove_link(first)  # gone while matching
        await asyncio.sleep(0.2)
        assert evse.socket.closed_reason is not None or not evse.socket.is_open
        # the same interface name comes back (a USB modem plugged in again)
        netns = Netns().create()
        pair = VethPair(first.evse_if, None, netns_b=netns, mac_b="02:00:00:00:10:01").create()
        second = Link(pair.name_a, pair.name_b, netns, pair, MacAddress("02:00:00:00:10:01"))
        peer = await ScriptedPeer(netns, pair.name_b, second.ev_mac).start()
        try:
            await hooks.process_cp_state(evse, "A")
            await hooks.process_cp_state(evse, "B")
            await peer.run_ev(b"\x03" * 8, parm_tries=20)
            await evse.wait_matched(timeout=2)
            assert peer.modem.keys  # the new modem got a key
        finally:
            peer.close()
    finally:
        await evse.close()
        first_peer.close()
        remove_link(first)  # a no-op when the test removed it already
        if second is not None:
            remove_link(second)


async def test_silent_modem_fails_clearly_then_matching_works_once_it_answers(
    link: Link, peer: ScriptedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    peer.modem.answer_set_key = False
    evse = SlacEvseSession(
        "DE*TST*E0001", link.evse_if, quick(set_key_timeout=0.1, set_key_retries=1)
    )
    hooks = Hooks()
    try:
        with caplog.at_level(logging.ERROR, logger="slac"):
            await hooks.process_cp_state(evse, "B")
            task = evse.matching_task
            assert task is not None
            await asyncio.wait_for(task, 3)
        assert hooks.failed == 1
        assert evse.state is SessionState.FAILED
        assert "did not answer CM_SET_KEY.REQ" in caplog.text
        assert "Traceback" not in caplog.text
        peer.modem.answer_set_key = True
        peer.modem.delay = 0.15  # late, but within the doubled second wait
        await hooks.process_cp_state(evse, "A")
        await hooks.process_cp_state(evse, "B")
        await peer.run_ev(b"\x04" * 8, parm_tries=20)
        await evse.wait_matched(timeout=2)
    finally:
        await evse.close()


# --- transient send errors (issue 12, item 12) ---------------------------------------------------


@contextlib.contextmanager
def kernel_refuses_sends(interface: str) -> Iterator[None]:
    """A real ENOBUFS from the kernel for every frame sent on ``interface``: a pfifo qdisc
    with room for no packet drops each one at enqueue (NET_XMIT_DROP), and an AF_PACKET
    send() reports that as ENOBUFS, as it does when a real transmit queue is full."""
    if shutil.which("tc") is None:
        pytest.skip("tc (iproute2) is needed to make the kernel refuse frames")
    subprocess.run(
        ["tc", "qdisc", "add", "dev", interface, "root", "pfifo", "limit", "0"], check=True
    )
    try:
        yield
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", interface, "root"], check=False)


async def test_raw_socket_drops_a_frame_the_kernel_has_no_room_for_with_one_warning(
    link: Link, peer: ScriptedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    sock = RawSocket(link.evse_if).open()
    frame = SlacParmReq(run_id=b"\x09" * 8).to_frame(BROADCAST, sock.mac)
    try:
        with caplog.at_level(logging.DEBUG, logger="slac"), kernel_refuses_sends(link.evse_if):
            sock.send(frame)  # ENOBUFS: dropped, not raised
            sock.send(frame)
        assert sock.send_dropped == 2
        assert sock.sent == 0
        assert sock.is_open
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert warnings == [
            f"sending on {link.evse_if} failed for now (No buffer space available): frame "
            "dropped, 1 so far; the protocol's retries make up for it"
        ]  # the second within a second: DEBUG
        sock.send(frame)  # room again
        received, _ = await peer.expect(SlacParmReq, 1.0)
        assert received.src == sock.mac
        assert sock.sent == 1
    finally:
        sock.close()


async def test_enobufs_while_answering_does_not_end_the_plug_in_the_ev_s_retry_matches(
    link: Link, peer: ScriptedPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12, item 12: the EVSE's CM_SLAC_PARM.CNF is refused by the kernel (ENOBUFS);
    the frame is dropped with a warning, and the EV's next request is answered and
    matches. It used to fail the whole plug-in."""
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, quick())
    hooks = Hooks()
    run = b"\x0b" * 8
    try:
        await evse.evse_set_key()
        await hooks.process_cp_state(evse, "B")
        await hooks.hlc.wait()
        with caplog.at_level(logging.WARNING, logger="slac"):
            with kernel_refuses_sends(link.evse_if):
                peer.send(SlacParmReq(run_id=run), BROADCAST)
                await asyncio.sleep(0.2)  # the EVSE answers within milliseconds: refused
            outcome = await peer.run_ev(run)  # the EV asks again, same RunID
        result = await evse.wait_matched(timeout=2)
        assert result.run_id == run
        assert outcome.match_cnf is not None
        assert evse.socket.send_dropped == 1
        assert hooks.failed == 0
        task = evse.matching_task
        assert task is not None
        assert not task.done()
        assert "No buffer space available" in caplog.text
        assert "matching failed" not in caplog.text
    finally:
        await evse.close()


# --- hostile input -------------------------------------------------------------------------------

FLOOD_SCRIPT = r"""
import os, random, socket, struct, sys, time
iface, count, rate, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rng = random.Random(seed)
types = [int(t) for t in sys.argv[5].split(",")]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88E1))
s.bind((iface, 0x88E1))
def frame():
    kind = rng.random()
    dst = bytes.fromhex(sys.argv[6]) if rng.random() < 0.5 else b"\xff" * 6
    src = bytes([2]) + rng.randbytes(5)
    if kind < 0.15:
        return rng.randbytes(rng.randint(0, 59))                      # truncated
    if kind < 0.25:
        return dst + src + b"\x88\xe1" + rng.randbytes(1500)          # oversized
    if kind < 0.35:
        return dst + src + b"\x88\xe1" + bytes([rng.randint(2, 255)]) + rng.randbytes(60)
    mmtype = rng.choice(types)                                         # SLAC types, garbage
    return (dst + src + b"\x88\xe1" + b"\x01" + struct.pack("<H", mmtype) + b"\0\0"
            + rng.randbytes(rng.randint(0, 120)))
sent, start = 0, time.monotonic()
while sent < count:
    try:
        s.send(frame())
    except OSError:
        pass
    sent += 1
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0.002:
        time.sleep(ahead)
print(sent)
"""


async def test_hundred_thousand_hostile_frames_while_a_real_ev_matches(
    link: Link, peer: ScriptedPeer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, quick())
    hooks = Hooks()
    script = tmp_path / "flood.py"
    script.write_text(FLOOD_SCRIPT)
    slac_types = ",".join(str(int(t)) for t in MMType if 0x6000 <= t < 0x8000)
    try:
        await evse.evse_set_key()
        assert evse.evse_mac is not None
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        await hooks.process_cp_state(evse, "B")
        await hooks.hlc.wait()
        flood = await asyncio.create_subprocess_exec(
            *link.netns.command(
                [
                    sys.executable,
                    str(script),
                    link.peer_if,
                    "100000",
                    "12000",
                    "5",
                    slac_types,
                    evse.evse_mac.hex(),
                ]
            ),
            stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(1.0)  # the flood is on
        with caplog.at_level(logging.WARNING, logger="slac"):
            await peer.run_ev(b"\x05" * 8, parm_tries=40)
            await evse.wait_matched(timeout=5)
            out, _ = await asyncio.wait_for(flood.communicate(), 60)
        assert int(out) == 100000
        assert evse.socket.received > 50000  # most of the flood reached the EVSE
        task = evse.matching_task
        assert task is not None
        assert not task.done()  # nothing escaped into the task
        assert "matching task failed" not in caplog.text
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
        assert grown_kib < 30_000, f"RSS grew by {grown_kib} KiB"
        assert evse.matcher is not None
        assert len(evse.matcher._answered) <= 256
    finally:
        await evse.close()


async def test_flood_of_parm_requests_from_ten_thousand_forged_macs(
    link: Link, peer: ScriptedPeer
) -> None:
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, quick())
    hooks = Hooks()
    try:
        await evse.evse_set_key()
        await hooks.process_cp_state(evse, "B")
        await hooks.hlc.wait()
        assert evse.matcher is not None
        most = 0

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, len(evse.matcher.runs))  # type: ignore[union-attr]
                await asyncio.sleep(0.001)

        def forge(i: int) -> None:
            mac = MacAddress(bytes([0x02, 0x66]) + i.to_bytes(4, "big"))
            peer.send(SlacParmReq(run_id=i.to_bytes(8, "big")), BROADCAST, mac)

        async def flood() -> None:
            for i in range(10_000):
                forge(i)
                if i % 100 == 99:
                    await asyncio.sleep(0.005)

        watcher = asyncio.ensure_future(watch())
        flooder = asyncio.ensure_future(flood())
        await asyncio.sleep(0.1)
        await peer.run_ev(b"\x06" * 8, parm_tries=40)
        result = await evse.wait_matched(timeout=5)
        await flooder
        watcher.cancel()
        assert result.ev_mac == peer.ev_mac
        assert 1 <= most <= 5  # C_EVSE_match_parallel
        assert len(evse.matcher._answered) <= 256
    finally:
        await evse.close()


# --- security ------------------------------------------------------------------------------------


async def test_every_key_is_fresh(link: Link, peer: ScriptedPeer) -> None:
    sessions = [SlacEvseSession(f"DE*TST*E{i}", link.evse_if, quick()) for i in range(2)]
    try:
        for _ in range(10):
            for session in sessions:
                await session.evse_set_key()
        assert len(peer.modem.keys) == 20
        assert len(set(peer.modem.keys)) == 20
    finally:
        for session in sessions:
            await session.close()


async def test_the_key_is_sent_only_to_the_ev_that_sounded_and_never_logged_above_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async for site in make_site(3, 3, crosstalk=50.0):
        frames: list[tuple[bytes, bool]] = []
        with caplog.at_level(logging.DEBUG):
            await site.start_evses()

            def observe(data: bytes, _at: float, sent: bool) -> None:
                frames.append((data, sent))  # noqa: B023 - the loop runs once

            for evse in site.evses:
                evse.host.observers.append(observe)
            evs = [site.our_ev(i) for i in range(3)]
            try:
                await asyncio.wait_for(asyncio.gather(*(ev.match() for ev in evs)), 20)
            finally:
                for ev in evs:
                    await ev.close()
            for evse in site.evses:
                await evse.wait_matched(timeout=2)
        from slac.messages import SlacMatchCnf, decode_frame

        confirmations = [
            decode_frame(d)
            for d, sent in frames
            if sent and d[15:17] == int(MMType.CM_SLAC_MATCH_CNF).to_bytes(2, "little")
        ]
        assert len(confirmations) == 3
        for frame in confirmations:
            assert isinstance(frame.message, SlacMatchCnf)
            evse = next(e for e in site.evses if e.evse_mac == frame.src)
            assert evse.last_result is not None
            assert frame.dst == evse.last_result.ev_mac == frame.message.pev_mac
            assert frame.message.run_id == evse.last_result.run_id
        keys = [e.nmk for e in site.evses]
        for record in caplog.records:
            if record.levelno >= logging.INFO:
                text = record.getMessage()
                for key in keys:
                    assert key is not None
                    assert key.hex() not in text.lower()
                    assert repr(key) not in text


def test_example_without_raw_socket_permission_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "cs.json"
    config.write_text(
        '{"number_of_evses": 1, "parameters": '
        '[{"evse_id": "DE*TST*E1", "network_interface": "lo"}]}'
    )
    done = subprocess.run(
        [
            "setpriv",
            "--bounding-set",
            "-net_raw",
            sys.executable,
            str(ROOT / "examples" / "single_slac_session.py"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "needs root or CAP_NET_RAW; try `make run-local-sudo-single`" in output
    assert "Traceback" not in output
    assert len(output.strip().splitlines()) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_examples_shut_down_in_order_on_signals(
    link: Link, peer: ScriptedPeer, tmp_path: Path, sig: signal.Signals
) -> None:
    config = tmp_path / "cs.json"
    config.write_text(
        '{"number_of_evses": 1, "parameters": '
        f'[{{"evse_id": "DE*TST*E1", "network_interface": "{link.evse_if}"}}]}}'
    )
    env = tmp_path / "t.env"
    env.write_text("SET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "single_slac_session.py"),
        "--config",
        str(config),
        "--env",
        str(env),
        "--cp-delay",
        "30",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    async for line in process.stdout:
        if b"ready to match" in line:
            break
    process.send_signal(sig)
    out, _ = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, out.decode()
    assert f"{sig.name} received: shutting down".encode() in out
    assert b"Traceback" not in out


# --- a short soak: the long one is benchmarks/soak.py --------------------------------------------


async def test_thirty_plug_cycles_leave_fds_and_tasks_flat(link: Link, peer: ScriptedPeer) -> None:
    evse = SlacEvseSession("DE*TST*E0001", link.evse_if, quick(reset_key_on_unplug=False))
    hooks = Hooks()
    try:
        await evse.evse_set_key()
        counts = []
        for i in range(30):
            hooks.hlc.clear()
            await hooks.process_cp_state(evse, "B")
            await hooks.hlc.wait()
            await peer.run_ev(i.to_bytes(8, "big"))
            await evse.wait_matched(timeout=2)
            await hooks.process_cp_state(evse, "A")
            counts.append((open_fds(), len(other_tasks())))
        assert len(hooks.matched) == 30
        assert counts[-1] == counts[2]
    finally:
        await evse.close()


def test_random_frames_never_crash_the_state_machine() -> None:
    """No sockets: 20,000 random decodable frames straight into a matcher."""
    from slac.fsm.evse import EvseMatcher, EvseState
    from slac.messages import decode_frame

    rng = random.Random(11)
    matcher = EvseMatcher(MacAddress("02:00:00:00:ee:01"), bytes(16), bytes(7), Config())
    matcher.cp_state_changed("B", 0.0)
    matcher.start(0.0)
    now = 0.0
    types = [int(t) for t in MMType if 0x6000 <= t < 0x8000]
    for _ in range(20_000):
        data = (
            b"\x02\x00\x00\x00\xee\x01"
            + bytes([2])
            + rng.randbytes(5)
            + b"\x88\xe1\x01"
            + rng.choice(types).to_bytes(2, "little")
            + b"\0\0"
            + rng.randbytes(120)
        )
        try:
            frame = decode_frame(data)
        except Exception:
            continue
        now += rng.random() * 0.05
        if matcher.deadline is not None and matcher.deadline <= now:
            matcher.handle_timer(now)
        matcher.receive_frame(frame, now)
        matcher.frames_to_send()
        matcher.events()
        assert len(matcher.runs) <= 5
        if matcher.state in (EvseState.WAITING, EvseState.PAUSED):
            assert matcher.deadline is not None  # a timer always runs while waiting


def test_slac_evse_without_raw_socket_permission_says_what_to_do(tmp_path: Path) -> None:
    config = tmp_path / "cs.json"
    config.write_text(
        '{"number_of_evses": 1, "parameters": '
        '[{"evse_id": "DE*TST*E1", "network_interface": "lo"}]}'
    )
    slac = str(Path(sys.executable).parent / "slac")  # the console script
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-net_raw", slac, "evse", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "needs root or CAP_NET_RAW; try `sudo slac evse ...`" in done.stderr
    assert "Traceback" not in done.stderr
