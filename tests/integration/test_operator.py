"""`slac evse` and `slac capture` as an operator runs them: the station's EVSEs as a
subprocess on the virtual powerline, control pilot typed on stdin, JSON logs, every SLAC
frame to a pcap file (the EVSE's PCAP_FILE setting and `slac capture`), both read back by
tshark. Needs root."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slac.ev import SlacEvSession
from slac.testing import fast_config
from slac.testing.powerline import Powerline, Topology

from ..conftest import ROOT, needs_root
from ..site import make_site
from .operator import SLAC, EvseCommand, station_file

pytestmark = needs_root

TSHARK = shutil.which("tshark")

#: the SLAC messages of one whole match as the EVSE's interface sees them, in order
FULL_MATCH = [
    "CM_SET_KEY.REQ",
    "CM_SET_KEY.CNF",
    "CM_SLAC_PARM.REQ",
    "CM_SLAC_PARM.CNF",
    "CM_START_ATTEN_CHAR.IND",
    "CM_MNBC_SOUND.IND",
    "CM_ATTEN_PROFILE.IND",
    "CM_ATTEN_CHAR.IND",
    "CM_ATTEN_CHAR.RSP",
    "CM_SLAC_MATCH.REQ",
    "CM_SLAC_MATCH.CNF",
]


def tshark_names(path: Path) -> list[str]:
    """The HomePlug message name of every frame, as Wireshark's dissector gives it."""
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-T", "fields", "-e", "_ws.col.Info"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = []
    for line in out.splitlines():
        found = [word.strip(",") for word in line.split() if word.startswith(("CM_", "VS_"))]
        names.append(found[0] if found else line)
    return names


def in_order(names: list[str], wanted: list[str]) -> bool:
    """Whether ``wanted`` occurs in ``names`` as a subsequence."""
    position = 0
    for name in names:
        if position < len(wanted) and name == wanted[position]:
            position += 1
    return position == len(wanted)


async def test_slac_evse_stdin_json_logs_and_pcap_read_by_tshark(tmp_path: Path) -> None:
    if TSHARK is None:
        pytest.skip("tshark is not installed (Debian package tshark; .ci/run installs it)")
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=0.0, seed=3)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns):
            iface = topo.evse_interfaces[0]
            (evse_id,) = station_file(tmp_path / "station.json", [iface])
            env_file = tmp_path / "evse.env"
            evse_pcap = tmp_path / "evse.pcap"
            env_file.write_text(
                "SET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\nLOG_FORMAT=json\nLOG_LEVEL=INFO\n"
                f"PCAP_FILE={evse_pcap}\n"
            )
            captured = tmp_path / "capture.pcap"
            capture = await asyncio.create_subprocess_exec(
                SLAC,
                "capture",
                "--iface",
                iface,
                "-w",
                str(captured),
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            assert capture.stdout is not None
            assert b"capturing" in await asyncio.wait_for(capture.stdout.readline(), 10)
            env = {k: v for k, v in os.environ.items() if k != "PCAP_FILE"}
            cmd = await EvseCommand.start(
                "--config", str(tmp_path / "station.json"), "--env", str(env_file), env=env
            )
            try:
                await cmd.wait_state(evse_id, "unmatched")
                cmd.send("# comments and bad lines are reported, not fatal")
                cmd.send("nobody B")
                cmd.send(f"{evse_id} B")
                await asyncio.sleep(0.3)
                ev = SlacEvSession(topo.ev_interface, fast_config(), netns=topo.ev_netns[0].name)
                try:
                    result = await asyncio.wait_for(ev.match(), 15)
                finally:
                    await ev.close()
                matching = await cmd.wait_state(evse_id, "matching")
                matched = await cmd.wait_state(evse_id, "matched")
                cmd.send("A")
                await cmd.wait_state(evse_id, "unmatched", timeout=5, since=len(cmd.states))
                code = await cmd.finish()
            finally:
                await cmd.kill()
                capture.send_signal(2)
                capture_out, _ = await asyncio.wait_for(capture.communicate(), 10)
    log = cmd.log_text()
    assert code == 0, log
    assert capture.returncode == 0, capture_out
    assert b"frame(s) written to" in capture_out

    # state lines: the EV, its RunID, a time
    ev_mac = str(topo.ev_ports[0].host_mac)
    assert matching["ev_mac"] == ev_mac == matched["ev_mac"]
    assert matched["run_id"] == result.run_id.hex()
    assert [s["state"] for s in cmd.states] == ["unmatched", "matching", "matched", "unmatched"]
    assert all(isinstance(s["timestamp"], float) for s in cmd.states)

    # logs: one JSON object per line; EVSE lines carry the id, run lines the RunID
    records = [json.loads(line) for line in cmd.stderr if line.startswith("{")]
    assert records, log
    plain = [line for line in cmd.stderr if not line.startswith("{")]
    assert all("control pilot" in line or line.startswith("error:") for line in plain), plain
    assert "error: no EVSE 'nobody'" in "\n".join(plain)
    about_run = [r for r in records if r.get("run_id") == result.run_id.hex()]
    assert {r["evse_id"] for r in about_run} == {evse_id}
    messages = [r["message"] for r in about_run]
    assert any("sounding 10/10" in m for m in messages), messages
    summary = [m for m in messages if "matched in" in m]
    assert len(summary) == 1, messages
    assert "sounding" in summary[0] and "CM_SLAC_MATCH" in summary[0]
    assert not any(result.nmk.hex() in json.dumps(r) for r in records), "NMK logged at INFO"

    # both captures hold every message of the match, in order, as Wireshark reads them
    for path in (evse_pcap, captured):
        names = tshark_names(path)
        assert in_order(names, FULL_MATCH), (path.name, names)

    # and our analyser finds the session, matched, in what `slac capture` wrote
    analysis = subprocess.run(
        [SLAC, "analyze", "--json", str(captured)], capture_output=True, text=True, check=True
    )
    sessions = json.loads(analysis.stdout)["sessions"]
    assert [s["outcome"] for s in sessions] == ["matched"], analysis.stdout


async def test_slac_ev_matches_a_running_evse_and_reports_it(tmp_path: Path) -> None:
    async for site in make_site(1, 1):
        await site.start_evses()
        env = tmp_path / "ev.env"
        env.write_text("SET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\nLOG_LEVEL=WARNING\n")
        code, output = await site.topo.run_in_ev(
            0, [SLAC, "ev", "--iface", site.topo.ev_interface, "--env", str(env), "--timeout", "30"]
        )
        assert code == 0, output
        assert f"matched EVSE {site.topo.evse_ports[0].host_mac}" in output
        matched = await site.evses[0].wait_matched(timeout=5)
        assert matched.ev_mac == site.topo.ev_ports[0].host_mac
        # and without any EVSE answering: exit 1 with the reason
        await site.close()
        code, output = await site.topo.run_in_ev(
            0, [SLAC, "ev", "--iface", site.topo.ev_interface, "--env", str(env), "--timeout", "5"]
        )
        assert code == 1, output
        assert "no match" in output


async def test_slac_evse_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"number_of_evses": 2, "parameters": [{"evse_id": "A", "network_interface": "x"}]}'
    )
    cases = [
        (["--config", str(tmp_path / "missing.json")], "cannot read the file"),
        (["--config", str(bad)], "number_of_evses"),
        (["--config", str(ROOT / "cs_configuration.json"), "--cp", "mqtt://"], "no broker host"),
    ]
    station_file(tmp_path / "noif.json", ["nosuchif0"])
    # a missing interface is waited for, unless INTERFACE_STRICT asks for the error
    cases.append((["--config", str(tmp_path / "noif.json")], "does not exist"))
    for args, expected in cases:
        run = subprocess.run(
            [sys.executable, "-m", "slac", "evse", *args],
            env={**os.environ, "INTERFACE_STRICT": "true"},
            capture_output=True,
            text=True,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            timeout=30,
        )
        assert run.returncode == 2, (args, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), run.stderr
        assert expected in lines[0], run.stderr


def test_slac_evse_waits_for_a_missing_interface_and_reports_it_unavailable(
    tmp_path: Path,
) -> None:
    """Issue 15 item 1: without INTERFACE_STRICT, `slac evse` keeps running for an interface
    that does not exist (yet): an INFO line, the EVSE `unavailable` in its JSON status."""
    station_file(tmp_path / "noif.json", ["nosuchif0"])
    process = subprocess.Popen(
        [sys.executable, "-m", "slac", "evse", "--config", str(tmp_path / "noif.json")],
        env={k: v for k, v in os.environ.items() if k != "INTERFACE_STRICT"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        out, err = process.communicate("status\n", timeout=3)
    except subprocess.TimeoutExpired:
        process.terminate()
        out, err = process.communicate(timeout=10)
    statuses = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(s["state"] == "unavailable" for s in statuses), (out, err)
    unavailable = next(s for s in statuses if s["state"] == "unavailable")
    assert "does not exist" in unavailable["reason"]
    assert "waiting for the interface" in err


def test_slac_capture_reports_a_missing_interface(tmp_path: Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "slac",
            "capture",
            "--iface",
            "nosuchif0",
            "-w",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert run.returncode == 2
    assert run.stderr.startswith("error: network interface 'nosuchif0' does not exist")


async def test_stopping_the_service_while_matched_rekeys_the_modem_without_the_settle_pause() -> (
    None
):
    """SIGTERM to `slac evse` (here: EvseService.close) with an EV matched: the modem gets a
    fresh key (the EV leaves the network) and the stop does not wait SET_KEY_SETTLE_TIME,
    which would outlast e.g. Docker's 10 s stop timeout."""
    from slac.app.service import EvseService
    from slac.app.station import EvseSpec

    async for site in make_site(1, 1):
        config = fast_config(set_key_settle_time=3.0, link_check_period=0)
        service = EvseService([EvseSpec("DE*TST*E0001", site.topo.evse_interfaces[0])], config)
        await service.start()  # the first key, with its settle pause
        port = site.topo.ports.index(site.topo.evse_ports[0])
        keys_before = site.medium.modems[port].keys_set
        await service.set_cp("B")
        ev = SlacEvSession(site.topo.ev_interface, fast_config(), netns=site.topo.ev_netns[0].name)
        try:
            await asyncio.wait_for(ev.match(), 15)
        finally:
            await ev.close()
        session = service.sessions["DE*TST*E0001"]
        await session.wait_matched(timeout=5)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await service.close()
        assert loop.time() - started < 2.0  # not the 3 s settle pause
        assert site.medium.modems[port].keys_set == keys_before + 1  # a fresh key
        assert not await site.topo.ping_evse(0, 0, count=1)  # the EV is out of the network
