"""The scapy EV simulator, the virtual powerline command and `make demo`, run as a user would.
Needs root."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from slac import SlacEvseSession, SlacSessionController
from slac.testing import fast_config
from slac.testing.netns import NETNS_TAG_VARIABLE, Netns, VethPair
from slac.testing.powerline import Powerline, Topology

from ..conftest import ROOT, needs_root

pytestmark = needs_root

SIM = str(ROOT / "examples" / "ev_slac_scapy.py")


#: the tag of the test hosts that the programs these tests start create (other tests, e.g.
#: the conformance suites, create namespaces of their own at the same time)
TAG = f"q{os.getpid() % 10000}"
TAGGED = {**os.environ, NETNS_TAG_VARIABLE: TAG}


def namespaces() -> set[str]:
    """The network namespaces that programs started by these tests created."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = {line.split()[0] for line in out.splitlines() if line.strip()}
    return {name for name in names if f"{TAG}x" in name}


async def test_scapy_ev_shares_the_evses_own_interface_with_another_mac() -> None:
    """--mode direct --ev-mac: the simulator on the EVSE's interface itself (the far end of
    the veth pair stays silent). The EVSE sees the simulator's frames although they leave
    by the same interface, and never its own."""
    with Netns() as ns, VethPair(netns_b=ns) as pair:
        evse = SlacEvseSession("DE*TST*E0009", pair.name_a, fast_config(set_key_timeout=1.0))
        try:
            sim = await asyncio.create_subprocess_exec(
                sys.executable,
                SIM,
                "--iface",
                pair.name_a,
                "--ev-mac",
                "02:00:00:00:77:09",
                "--wait",
                "15",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            await asyncio.sleep(1.5)  # scapy takes a moment to import
            await evse.evse_set_key()  # the simulator plays the modem: CM_SET_KEY.CNF
            await SlacSessionController().process_cp_state(evse, "B")
            out, _ = await asyncio.wait_for(sim.communicate(), 30)
            text = out.decode()
            assert sim.returncode == 0, text
            assert "PASS: matched EVSE" in text
            matched = await evse.wait_matched(timeout=5)
            assert str(matched.ev_mac) == "02:00:00:00:77:09"
            assert evse.socket.received < 100  # its own frames never came back
        finally:
            await evse.close()


async def test_scapy_ev_passes_directly_against_the_evse_example(tmp_path: Path) -> None:
    with Netns() as ns, VethPair(netns_b=ns, mac_b="02:00:00:00:77:01") as pair:
        config = tmp_path / "cs.json"
        config.write_text(
            json.dumps(
                {
                    "number_of_evses": 1,
                    "parameters": [{"evse_id": "DE*TST*E0001", "network_interface": pair.name_a}],
                }
            )
        )
        env = tmp_path / "t.env"
        env.write_text("SET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\n")
        # as the README shows it: sudo make run-ev-slac EV_IFACE=... (here inside the EV's
        # namespace; plain make where sudo is not installed)
        sudo = ["sudo"] if shutil.which("sudo") else []
        make = [*sudo, "make", "--no-print-directory", "-C", str(ROOT), "run-ev-slac"]
        sim = await asyncio.create_subprocess_exec(
            *ns.command([*make, f"EV_IFACE={pair.name_b}", "EV_ARGS=--wait 15"]),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        await asyncio.sleep(1.0)  # scapy takes a moment to import
        evse = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "examples" / "single_slac_session.py"),
            "--config",
            str(config),
            "--env",
            str(env),
            "--cp-delay",
            "0.2",
            "--hold",
            "0.5",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        sim_out, _ = await asyncio.wait_for(sim.communicate(), 30)
        evse_out, _ = await asyncio.wait_for(evse.communicate(), 30)
    text = sim_out.decode()
    assert sim.returncode == 0, text
    assert "PASS: matched EVSE" in text
    assert "CM_SLAC_PARM.CNF from EVSE" in text
    assert evse.returncode == 0, evse_out.decode()


async def test_scapy_ev_passes_through_the_virtual_powerline() -> None:
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=24.0, jitter=0.0)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns):
            evse = SlacEvseSession(
                "DE*TST*E0001",
                topo.evse_interfaces[0],
                fast_config(),
            )
            try:
                await evse.evse_set_key()
                await SlacSessionController().process_cp_state(evse, "B")
                sim = await asyncio.create_subprocess_exec(
                    *topo.ev_netns[0].command(
                        [
                            sys.executable,
                            SIM,
                            "--iface",
                            topo.ev_interface,
                            "--mode",
                            "powerline",
                            "--wait",
                            "15",
                        ]
                    ),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                out, _ = await asyncio.wait_for(sim.communicate(), 40)
                text = out.decode()
                assert sim.returncode == 0, text
                assert "average 24.0 dB" in text
                assert "joined the EVSE's logical network" in text
                await evse.wait_matched(timeout=2)
                assert await topo.ping_evse(0, 0)
            finally:
                await evse.close()


async def test_scapy_ev_fails_with_the_reason_when_no_evse_answers() -> None:
    with Netns() as ns, VethPair(netns_b=ns) as pair:
        sim = await asyncio.create_subprocess_exec(
            *ns.command([sys.executable, SIM, "--iface", pair.name_b, "--wait", "1"]),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(sim.communicate(), 30)
    assert sim.returncode == 1
    assert "FAIL: no CM_SLAC_PARM.CNF within 1 s" in out.decode()


async def test_make_demo_matches_and_shows_ipv6_then_cleans_up() -> None:
    before = namespaces()
    process = await asyncio.create_subprocess_exec(
        "make",
        "demo",
        cwd=ROOT,
        env=TAGGED,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    text = out.decode()
    assert process.returncode == 0, text
    assert "before the match, IPv6 from EV to EVSE: unreachable" in text
    assert "matched EVSE" in text
    assert "plug-in to match:" in text
    assert "IPv6 works over the logical network the match created" in text
    assert namespaces() == before


async def test_interrupted_demo_removes_everything_it_created() -> None:
    before = namespaces()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "scripts" / "demo.py"),
        cwd=ROOT,
        env=TAGGED,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    async for line in process.stdout:
        if b"plugged in" in line:
            break
    process.send_signal(signal.SIGINT)
    out, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 130, out.decode()
    assert namespaces() == before


POWERLINE_COMMANDS = {
    # the README's three ways: make, python -m, the slac command
    "make powerline": (["make", "--no-print-directory", "powerline"], 1),
    "python -m slac.testing.powerline": (
        [
            sys.executable,
            "-m",
            "slac.testing.powerline",
            "--evs",
            "3",
            "--evses",
            "3",
            "--crosstalk",
            "50",
            "--loss",
            "CM_MNBC_SOUND.IND=0.3",
            "--delay",
            "2",
        ],
        3,
    ),
    "slac powerline": (
        [
            str(Path(sys.executable).parent / "slac"),
            "powerline",
            "--",
            "--evs",
            "1",
            "--evses",
            "1",
            "--crosstalk",
            "50",
        ],
        1,
    ),
}


@pytest.mark.parametrize("name", list(POWERLINE_COMMANDS))
async def test_powerline_command_runs_until_interrupted_and_cleans_up(name: str) -> None:
    command, evs = POWERLINE_COMMANDS[name]
    before = namespaces()
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=TAGGED,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # SIGINT to the group, as Ctrl-C does (make passes it on)
    )
    assert process.stdout is not None
    seen = []
    try:
        async for line in process.stdout:
            seen.append(line.decode())
            if b"virtual powerline running" in line:
                break
        assert len(namespaces() - before) == evs + 2, seen  # EVs, the EVSE host, the modems
        assert any(f"EV host {evs - 1}: ip netns exec" in line for line in seen)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        await asyncio.wait_for(process.communicate(), 20)
    # make dies of the SIGINT itself (-2) once its child has exited; the child exits 0
    assert process.returncode in (0, -signal.SIGINT), seen
    assert namespaces() == before
