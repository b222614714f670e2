"""Whole matches through the virtual powerline: our EV, our EVSE, and Qualcomm's reference
emulators ``pev`` and ``evse`` (Debian package plc-utils-extra), with IPv6 over the logical
network afterwards, crosstalk between charge points, and link supervision. Needs root."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from slac import SessionState
from slac.ev import EvMatchResult, SlacEvSession
from slac.fsm.ev import EvConfig
from slac.testing import fast_config

from ..conftest import needs_root
from ..site import Site, make_site

pytestmark = needs_root

needs_opu = pytest.mark.skipif(
    shutil.which("pev") is None or shutil.which("evse") is None,
    reason="Qualcomm's pev/evse are not installed (Debian package plc-utils-extra; "
    ".ci/run installs it)",
)

PEV_INI = """[default]
vehicle identifier = 0000000000000000000000000000000000
network membership key = 50D3E4933F855B7040784DF815AA8DB7
network identifier = B0F2E695666B03
attenuation threshold = 40
msound pause = 20
charge time = 2
settle time = 1
"""

EVSE_INI = """[default]
station identifier = {station_id}
network membership key = B59319D7E8157BA001B018669CCEE30D
network identifier = 026BCBA5354E08
number of sounds = 10
time to sound = 6
response type = 1
settle time = 1
charge time = 8
"""


@pytest.fixture
async def pair_site() -> AsyncIterator[Site]:
    async for site in make_site(1, 1):
        yield site


async def run_pev(site: Site, i: int, ini: Path, timeout: float = 40.0) -> str:
    process = await asyncio.create_subprocess_exec(
        *site.topo.ev_netns[i].command(["pev", "-i", site.topo.ev_interface, "-p", str(ini), "-v"]),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        output, _ = await process.communicate()
    return output.decode(errors="replace")


async def test_our_ev_matches_our_evse_and_ipv6_works_only_after(pair_site: Site) -> None:
    site = pair_site
    await site.start_evses()
    assert not await site.topo.ping_evse(0, 0, count=1)
    ev = site.our_ev(0)
    try:
        result: EvMatchResult = await asyncio.wait_for(ev.match(), 10)
    finally:
        await ev.close()
    evse = site.evses[0]
    matched = await evse.wait_matched(timeout=2)
    assert result.evse_mac == evse.evse_mac
    assert matched.ev_mac == ev.mac
    assert result.nmk == evse.nmk
    assert "lowest average attenuation" in result.reason
    assert await site.topo.ping_evse(0, 0)


@needs_opu
async def test_qualcomm_pev_matches_our_evse(pair_site: Site, tmp_path: Path) -> None:
    site = pair_site
    ini = tmp_path / "pev.ini"
    ini.write_text(PEV_INI)
    await site.start_evses()
    pev = asyncio.ensure_future(run_pev(site, 0, ini))
    matched = await site.evses[0].wait_matched(timeout=15)
    assert matched.ev_mac == site.topo.ev_ports[0].host_mac
    assert await site.topo.ping_evse(0, 0)
    output = await pev
    assert "CM_SLAC_MATCH.CNF" in output
    assert "less than limit (40)" in output


@needs_opu
@pytest.mark.parametrize(
    ("station_id", "ev_config"),
    [
        # ISO 15118-3 fixes EVSE_ID at zero: our EV as it is by default
        ("00" * 17, EvConfig()),
        # Qualcomm's evse puts its station identifier in CM_SLAC_MATCH.CNF's EVSE_ID, which
        # a conformant EV ignores (ISO 15118-5 CmSlacMatch_009): only the opt-in takes it
        ("BB" * 17, EvConfig(accept_nonstandard_match_cnf=True)),
    ],
    ids=["ISO EVSE_ID", "station identifier, lenient EV"],
)
async def test_our_ev_matches_qualcomm_evse(
    pair_site: Site, tmp_path: Path, station_id: str, ev_config: EvConfig
) -> None:
    site = pair_site
    ini = tmp_path / "evse.ini"
    ini.write_text(EVSE_INI.format(station_id=station_id))
    process = await asyncio.create_subprocess_exec(
        "evse",
        "-i",
        site.topo.evse_interfaces[0],
        "-p",
        str(ini),
        "-v",
        "-l",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await asyncio.sleep(1.5)  # its CM_SET_KEY and settle time
        ev = SlacEvSession(
            site.topo.ev_interface, fast_config(), ev_config, netns=site.topo.ev_netns[0].name
        )
        try:
            result = await asyncio.wait_for(ev.match(), 15)
        finally:
            await ev.close()
        assert result.evse_mac == site.topo.evse_ports[0].host_mac
        assert result.nid == bytes.fromhex("026BCBA5354E08")
        assert await site.topo.ping_evse(0, 0)
    finally:
        if process.returncode is None:
            process.kill()
        output, _ = await process.communicate()
    assert "CM_SLAC_MATCH.CNF" in output.decode(errors="replace")


async def test_crosstalk_three_of_our_evs_each_match_their_own_evse() -> None:
    async for site in make_site(3, 3, crosstalk=50.0):
        await site.start_evses()
        evs = [site.our_ev(i) for i in range(3)]
        started = asyncio.get_running_loop().time()
        try:
            results = await asyncio.wait_for(asyncio.gather(*(ev.match() for ev in evs)), 20)
        finally:
            for ev in evs:
                await ev.close()
        elapsed = asyncio.get_running_loop().time() - started
        for i, result in enumerate(results):
            assert result.evse_mac == site.topo.evse_ports[i].host_mac, result.reason
            assert len(result.candidates) == 3  # every EVSE was heard
        for j, evse in enumerate(site.evses):
            matched = await evse.wait_matched(timeout=2)
            assert matched.ev_mac == site.topo.ev_ports[j].host_mac
        for i in range(3):
            assert await site.topo.ping_evse(i, i, count=1)
            assert not await site.topo.ping_evse(i, (i + 1) % 3, count=1)
        print(
            f"crosstalk, our EV: attempts {[r.attempts for r in results]}, "
            f"all matched after {elapsed:.2f} s"
        )


@needs_opu
async def test_crosstalk_three_qualcomm_pevs_each_match_their_own_evse(tmp_path: Path) -> None:
    ini = tmp_path / "pev.ini"
    ini.write_text(PEV_INI)
    async for site in make_site(3, 3, crosstalk=50.0, delay_jitter=0.004):
        await site.start_evses()
        started = asyncio.get_running_loop().time()
        pevs = [asyncio.ensure_future(run_pev(site, i, ini, timeout=60)) for i in range(3)]
        matches = await asyncio.wait_for(
            asyncio.gather(*(evse.wait_matched() for evse in site.evses)), 60
        )
        elapsed = asyncio.get_running_loop().time() - started
        for j, matched in enumerate(matches):
            assert matched.ev_mac == site.topo.ev_ports[j].host_mac
        outputs = await asyncio.gather(*pevs)
        attempts = [out.count("--> CM_SLAC_PARAM.REQ") for out in outputs]
        print(
            f"crosstalk, Qualcomm pev: CM_SLAC_PARAM.REQ sent per pev {attempts}, "
            f"all matched after {elapsed:.2f} s"
        )


async def test_lost_link_is_reported_and_the_evse_leaves_and_matches_again(
    pair_site: Site,
) -> None:
    site = pair_site
    await site.start_evses()
    evse = site.evses[0]
    ev = site.our_ev(0)
    try:
        await asyncio.wait_for(ev.match(), 10)
        await evse.wait_matched(timeout=2)
        first_key = evse.nmk
        await asyncio.sleep(0.5)  # the link is seen up
        site.medium.modems[site.topo.ports.index(site.topo.ev_ports[0])].cut = True
        for _ in range(50):
            if site.controller.link_lost:
                break
            await asyncio.sleep(0.1)
        assert site.controller.link_lost == [evse.evse_id]
        for _ in range(20):
            if evse.nmk != first_key:
                break
            await asyncio.sleep(0.1)
        assert evse.nmk != first_key  # it left the logical network
        assert evse.state is SessionState.UNMATCHED
        site.medium.modems[site.topo.ports.index(site.topo.ev_ports[0])].cut = False
        await asyncio.wait_for(ev.match(), 10)  # and matches again, same plug-in
        await evse.wait_matched(timeout=2)
        assert await site.topo.ping_evse(0, 0)
    finally:
        await ev.close()
