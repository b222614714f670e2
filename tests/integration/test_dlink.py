"""D-LINK requests typed on `slac evse`'s stdin, and the status command's counters and
failure reasons (issue 16 items 1 and 2): `slac evse` as a subprocess on the virtual
powerline, our EV in its own namespace. Needs root."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from slac.ev import SlacEvSession
from slac.testing import fast_config
from slac.testing.powerline import Powerline, Topology

from ..conftest import needs_root
from .operator import EvseCommand, station_file

pytestmark = needs_root


async def match_our_ev(topo: Topology) -> None:
    ev = SlacEvSession(topo.ev_interface, fast_config(), netns=topo.ev_netns[0].name)
    try:
        await asyncio.wait_for(ev.match(), 15)
    finally:
        await ev.close()


async def status(cmd: EvseCommand, evse_id: str) -> dict[str, Any]:
    """What the stdin `status` command prints for ``evse_id`` (the line with "stats")."""
    seen = len(cmd.states)
    cmd.send("status")
    for _ in range(100):
        for line in cmd.states[seen:]:
            if line.get("evse_id") == evse_id and "stats" in line:
                return line
        await asyncio.sleep(0.05)
    raise AssertionError(f"no status line for {evse_id}: {cmd.states[seen:]}\n{cmd.log_text()}")


async def test_stdin_dlink_commands_and_the_status_counters(tmp_path: Path) -> None:
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=0.0, seed=11)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns):
            (evse_id,) = station_file(tmp_path / "station.json", topo.evse_interfaces)
            env_file = tmp_path / "evse.env"
            env_file.write_text(
                "SET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\nLINK_CHECK_PERIOD=0.2\n"
                "SLAC_INIT_TIMEOUT=1\nLOG_LEVEL=INFO\n"
            )
            cmd = await EvseCommand.start(
                "--config", str(tmp_path / "station.json"), "--env", str(env_file)
            )
            try:
                await cmd.wait_state(evse_id, "unmatched")
                cmd.send(f"{evse_id} B")
                await asyncio.sleep(0.3)
                await match_our_ev(topo)
                matched = await cmd.wait_state(evse_id, "matched")

                # pause: still matched, the status says paused, the key stays
                cmd.send(f"{evse_id} dlink pause")
                paused = await status(cmd, evse_id)
                assert paused["state"] == "matched" and paused["paused"] is True
                cmd.send(f"{evse_id} dlink resume")
                assert (await status(cmd, evse_id))["paused"] is False

                # terminate: unmatched (the EV left the EVSE's network: a fresh key)
                since = len(cmd.states)
                cmd.send(f"{evse_id} dlink terminate")
                await cmd.wait_state(evse_id, "unmatched", since=since)
                # error: match again without a CP cycle
                since = len(cmd.states)
                cmd.send(f"{evse_id} dlink error")
                await asyncio.sleep(0.3)
                await match_our_ev(topo)
                await cmd.wait_state(evse_id, "matched", since=since)
                cmd.send(f"{evse_id} dlink sleep")  # an unknown command: one error line

                # a failure with its reason: CP cycle, no EV within TT_EVSE_SLAC_init
                cmd.send("A")
                await asyncio.sleep(0.3)
                since = len(cmd.states)
                cmd.send(f"{evse_id} B")
                failed = await cmd.wait_state(evse_id, "failed", since=since, timeout=10)
                final = await status(cmd, evse_id)
                code = await cmd.finish()
            finally:
                await cmd.kill()
    log = cmd.log_text()
    assert code == 0, log
    assert matched["attenuation"] is not None and 15.0 <= matched["attenuation"] <= 25.0, matched
    assert failed["reason"] == "no_parm_req" and "CM_SLAC_PARM.REQ" in failed["detail"]
    stats = final["stats"]
    assert stats["matches"] == 2, final
    assert stats["failures"] == {"no_parm_req": 1}, final
    assert stats["dlink"] == {"error": 1, "pause": 1, "resume": 1, "terminate": 1}, final
    assert final["state"] == "failed" and final["reason"] == "no_parm_req"
    assert "error: no D-LINK command 'sleep'" in log, log
    assert "D-LINK_TERMINATE" in log and "new network key set" in log, log
