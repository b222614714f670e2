"""Field captures (../shared/captures) replayed over veth: a real car into our EVSE, a real
charger into our EV (needs root)."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from slac import SlacEvseSession, SlacSessionController
from slac.ev import SlacEvSession
from slac.messages import AttenCharInd, SlacMatchCnf, SlacParmCnf
from slac.testing import fast_config
from slac.testing.netns import Netns, VethPair
from slac.utils import MacAddress

from ..conftest import CAPTURES, needs_root
from ..replay import (
    CAR_CAPTURES,
    CHARGER_CAPTURES,
    Wire,
    matched_sessions,
    replay_car,
    replay_charger,
)

pytestmark = pytest.mark.skipif(
    not CAPTURES.is_dir(),
    reason=f"the field captures are not here ({CAPTURES}); they live beside the project, not in it",
)


class Quiet(SlacSessionController):
    async def enable_hlc_charging(self, evse_id: str) -> None:
        pass


@needs_root
@pytest.mark.parametrize("name", CAR_CAPTURES)
async def test_real_car_replayed_into_our_evse_is_answered_correctly(name: str) -> None:
    sessions = matched_sessions(name)
    assert sessions
    car = MacAddress(sessions[0].ev_mac)
    with Netns() as ns, VethPair(netns_b=ns, mac_b=str(car)) as pair:
        wire = await Wire(ns, pair.name_b).start()
        evse = SlacEvseSession(
            "DE*TST*E0001",
            pair.name_a,
            fast_config(link_check_period=0),
        )
        controller = Quiet()
        try:
            await evse.evse_set_key()
            for session in sessions:
                await controller.process_cp_state(evse, "A")
                await controller.process_cp_state(evse, "B")
                await asyncio.sleep(0.05)
                assert evse.evse_mac is not None
                result = await replay_car(wire, session, evse.evse_mac)
                run_id = bytes.fromhex(session.run_id)
                assert result.parm_cnf == SlacParmCnf(forwarding_sta=car, run_id=run_id)
                assert result.atten_char.run_id == run_id
                assert result.atten_char.source_address == car
                assert result.atten_char.num_sounds == result.profiles_sent == 10
                assert result.atten_char.aag == result.expected_aag
                assert result.match_cnf.run_id == run_id
                assert result.match_cnf.pev_mac == car
                assert result.match_cnf.evse_mac == evse.evse_mac
                assert result.match_cnf.nmk == evse.nmk
                matched = await evse.wait_matched(timeout=2)
                assert (matched.ev_mac, matched.run_id) == (car, run_id)
        finally:
            await evse.close()
            wire.close()


@needs_root
@pytest.mark.parametrize("name", CHARGER_CAPTURES)
async def test_real_charger_replayed_into_our_ev_completes_the_match(name: str) -> None:
    for session in matched_sessions(name):
        match = next(f.message for _, f in session.frames if isinstance(f.message, SlacMatchCnf))
        assert isinstance(match, SlacMatchCnf)
        with Netns() as ns, VethPair(netns_b=ns) as pair:
            subprocess.run(
                ns.command(["ip", "link", "set", pair.name_b, "promisc", "on"]), check=True
            )
            wire = await Wire(ns, pair.name_b).start()
            ev = SlacEvSession(pair.name_a, fast_config())
            try:
                await ev.open()
                assert ev.mac is not None
                charger = asyncio.ensure_future(replay_charger(wire, session, ev.mac))
                result = await asyncio.wait_for(ev.match(), 15)
                await charger
            finally:
                await ev.close()
                wire.close()
        assert result.evse_mac == MacAddress(session.evse_macs[0])
        assert (result.nid, result.nmk) == (match.nid, match.nmk)
        assert wire.set_keys[-1] == match.nmk  # our EV joined the charger's network
        indication = next(
            f.message for _, f in session.frames if isinstance(f.message, AttenCharInd)
        )
        assert isinstance(indication, AttenCharInd)
        assert result.average_attenuation == pytest.approx(
            sum(indication.aag) / len(indication.aag)
        )
