"""Both examples run as a user runs them (the Makefile targets the README shows, with and
without sudo), against scripted peers, and reach the match."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from slac.testing.peer import ScriptedPeer
from slac.utils import MacAddress

from ..conftest import ROOT, needs_root
from .conftest import make_link, remove_link


def write_settings(tmp_path: Path, interfaces: Sequence[str]) -> tuple[Path, Path]:
    config = tmp_path / "cs_configuration.json"
    config.write_text(
        json.dumps(
            {
                "number_of_evses": len(interfaces),
                "parameters": [
                    {"evse_id": f"DE*TST*E{i:04d}", "network_interface": iface}
                    for i, iface in enumerate(interfaces, start=1)
                ],
            }
        )
    )
    env = tmp_path / "test.env"
    env.write_text("LOG_LEVEL=INFO\nSET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\n")
    return config, env


SUDO = shutil.which("sudo")


def make_command(target: str, config: Path, env: Path) -> list[str]:
    """``make <target>`` with this test's station and settings (what the README shows)."""
    if "sudo" in target and SUDO is None:
        pytest.skip("sudo is not installed (Debian package sudo; .ci/run installs it)")
    return [
        "make",
        "--no-print-directory",
        target,
        f"CS_CONFIG={config}",
        f"ENV_LOCAL={env}",
        "EXAMPLE_ARGS=--cp-delay 0.2 --hold 0.3",
    ]


async def run_example(target: str, config: Path, env: Path, n_evs: int) -> None:
    links = [make_link(MacAddress(f"02:00:00:00:30:0{i}")) for i in range(1, n_evs + 1)]
    peers: list[ScriptedPeer] = []
    try:
        for link in links:
            peers.append(await ScriptedPeer(link.netns, link.peer_if, link.ev_mac).start())
        config.write_text(
            config.read_text()
            .replace("IFACE0", links[0].evse_if)
            .replace("IFACE1", links[-1].evse_if)
        )
        process = await asyncio.create_subprocess_exec(
            *make_command(target, config, env),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        outcomes = await asyncio.gather(
            *(p.run_ev(bytes([i]) * 8, parm_tries=40) for i, p in enumerate(peers, start=1))
        )
        output, _ = await asyncio.wait_for(process.communicate(), 20)
        text = output.decode()
        assert process.returncode == 0, text
        for i, (link, outcome) in enumerate(zip(links, outcomes), start=1):
            assert f"EVSE DE*TST*E{i:04d}: matched with EV {link.ev_mac}" in text, text
            assert outcome.match_cnf is not None
            assert outcome.match_cnf.nmk in peers[i - 1].modem.keys
        assert "Traceback" not in text
    finally:
        for p in peers:
            p.close()
        for link in links:
            remove_link(link)


@needs_root
@pytest.mark.parametrize("target", ["run-local-single", "run-local-sudo-single"])
async def test_single_session_example_matches(tmp_path: Path, target: str) -> None:
    config, env = write_settings(tmp_path, ["IFACE0", "unused1"])
    await run_example(target, config, env, 1)


@needs_root
@pytest.mark.parametrize("target", ["run-local-multiple", "run-local-sudo-multiple"])
async def test_multiple_sessions_example_matches_every_evse(tmp_path: Path, target: str) -> None:
    config, env = write_settings(tmp_path, ["IFACE0", "IFACE1"])
    await run_example(target, config, env, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"number_of_evses": 1, "parameters": [{"evse_id": "x"}]}', "needs a network_interface"),
        (
            '{"number_of_evses": 3, "parameters": [{"evse_id": "x", "network_interface": "y"}]}',
            "must equal the 1 entries",
        ),
        ('{"number_of_evses": 3, "parameters": []}', "non-empty list of EVSEs"),
    ],
)
async def test_bad_configuration_file_gives_one_clear_line(
    tmp_path: Path, content: str, message: str
) -> None:
    config = tmp_path / "cs.json"
    config.write_text(content)
    env = tmp_path / "e.env"
    env.write_text("")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "examples" / "multiple_slac_sessions.py"),
        "--config",
        str(config),
        "--env",
        str(env),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert message in output.decode()
    assert "Traceback" not in output.decode()
