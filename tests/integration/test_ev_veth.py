"""`slac ev` on a real veth link, timed by the kernel: how often it sends CM_SLAC_PARM.REQ.

The far end of the link plays the EV's modem (it answers CM_SET_KEY.REQ) and an EVSE that
never answers. A capture socket there (slac.tools.capture, SO_TIMESTAMPNS) records when each
request arrived, as an ISO 15118-5 test system would see it (TC_EVCC_CMN_VTB_CmSlacParm_002
and _010): C_EV_match_retry (2) repeats TT_match_response apart, then at least
TT_match_response + 2 x 0.25 s of silence and the next matching process (a new RunID, all
its requests) by TT_matching_rate + 0.25 s after that, while TT_matching_repetition (10 s)
runs; then none.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from slac import enums
from slac.ev import SlacEvSession
from slac.messages import (
    AttenCharInd,
    AttenCharRsp,
    Frame,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    decode_frame,
)
from slac.testing import fast_config
from slac.testing.inbox import Inbox
from slac.testing.netns import Netns, VethPair
from slac.tools.capture import Captured, CaptureSocket
from slac.utils import MacAddress, nid_from_nmk

from ..conftest import needs_root
from ..replay import Wire

pytestmark = needs_root

EVSE = MacAddress("02:00:00:00:05:01")

SLAC = str(Path(sys.executable).parent / "slac")
TRANSMISSION_DELAY = 0.25  # the test system's par_CMN_Transmission_Delay


async def test_slac_ev_repeats_parm_req_as_iso_15118_5_measures_it(tmp_path: Path) -> None:
    env = tmp_path / "ev.env"
    env.write_text("SET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=300\nLOG_LEVEL=WARNING\n")
    with Netns() as ev_ns, Netns() as far, VethPair(netns_a=ev_ns, netns_b=far) as pair:
        modem = await Wire(far, pair.name_b).start()  # answers CM_SET_KEY.REQ
        capture = far.call(lambda: CaptureSocket(pair.name_b))
        seen: list[Captured] = []
        loop = asyncio.get_running_loop()
        loop.add_reader(capture.fileno(), lambda: seen.extend(capture.drain()))
        try:
            process = await asyncio.create_subprocess_exec(
                *ev_ns.command(
                    [SLAC, "ev", "--iface", pair.name_a, "--env", str(env), "--timeout", "30"]
                ),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(process.communicate(), 25)
            await asyncio.sleep(0.5)
        finally:
            loop.remove_reader(capture.fileno())
            capture.close()
            modem.close()
    text = output.decode(errors="replace")
    assert process.returncode == 1, text
    assert "no match after" in text and "no CM_SLAC_PARM.CNF from any EVSE" in text

    requests = []
    for item in seen:
        frame = decode_frame(item.data)
        if not item.outgoing and isinstance(frame.message, SlacParmReq):
            requests.append((item.timestamp, frame.message.run_id))
    attempts: list[list[float]] = []
    run_ids: list[bytes] = []
    for stamp, run_id in requests:
        if not run_ids or run_ids[-1] != run_id:
            run_ids.append(run_id)
            attempts.append([])
        attempts[-1].append(stamp)
    repeats = [b - a for attempt in attempts for a, b in zip(attempt, attempt[1:])]
    pauses = [b[0] - a[-1] for a, b in zip(attempts, attempts[1:])]
    spans = [b[-1] - a[-1] for a, b in zip(attempts, attempts[1:])]
    print(
        f"\n{len(attempts)} attempts, {len(requests)} CM_SLAC_PARM.REQ over "
        f"{requests[-1][0] - requests[0][0]:.3f} s; "
        f"REQ to REQ within an attempt: {min(repeats) * 1000:.1f} to "
        f"{max(repeats) * 1000:.1f} ms; last REQ to the next attempt's first: "
        f"{min(pauses) * 1000:.1f} to {max(pauses) * 1000:.1f} ms (its last "
        f"{min(spans) * 1000:.1f} to {max(spans) * 1000:.1f} ms); "
        f"last attempt began {attempts[-1][0] - attempts[0][0]:.3f} s after the first"
    )
    assert len(set(run_ids)) == len(run_ids)  # a new RunID for every attempt
    assert all(len(a) == 1 + enums.C_EV_MATCH_RETRY for a in attempts)
    # the repeats: TT_match_response apart, well inside the tester's TT_match_sequence
    assert all(enums.TT_MATCH_RESPONSE - 0.005 <= r < enums.TT_MATCH_SEQUENCE for r in repeats)
    # the silence and the next attempt
    silence = enums.TT_MATCH_RESPONSE + 2 * TRANSMISSION_DELAY
    by = silence + enums.TT_MATCHING_RATE + TRANSMISSION_DELAY
    assert all(silence <= p for p in pauses), pauses
    # all requests of the next attempt before the test system's TP_matching_rate runs out
    assert all(s <= by for s in spans), spans
    # repeated while TT_matching_repetition runs, then silence until the command gave up
    assert attempts[-1][0] - attempts[0][0] < enums.TT_MATCHING_REPETITION
    assert attempts[-1][0] - attempts[0][0] + pauses[0] + 0.4 >= enums.TT_MATCHING_REPETITION
    assert len(attempts) >= 7


class RecordingInbox(Inbox):
    """An inbox that also keeps every frame, for checks after the run."""

    def __init__(self) -> None:
        super().__init__()
        self.every: list[Frame] = []

    def put(self, frame: Frame, at: float) -> None:
        self.every.append(frame)
        super().put(frame, at)


async def test_forged_cnf_and_ind_floods_over_veth_cannot_take_the_match(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """While a real EVSE matches our EV, 300 forged CM_SLAC_PARM.CNF (valid, this RunID) from
    as many MACs fill the EV's candidate list, and 600 CM_ATTEN_CHAR.IND at 0 dB come from
    stations that did not confirm (or did not fit): none is answered, the EV's state stays
    bounded, and it matches the EVSE that sounded with it (20 dB)."""
    cnf_flood = [MacAddress(bytes([2, 0xF1, 0, 0, i >> 8, i & 0xFF])) for i in range(300)]
    ind_flood = [MacAddress(bytes([2, 0xF2, 0, 0, i >> 8, i & 0xFF])) for i in range(300)]
    nmk = bytes(range(16))
    with Netns() as far, VethPair(netns_b=far) as pair:
        subprocess.run(far.command(["ip", "link", "set", pair.name_b, "promisc", "on"]), check=True)
        wire = await Wire(far, pair.name_b).start()
        inbox = wire.inbox = RecordingInbox()
        ev = SlacEvSession(pair.name_a, fast_config())
        caplog.set_level(logging.DEBUG, logger="slac.ev")
        try:
            await ev.open()
            assert ev.mac is not None and ev.matcher is not None
            ev_mac = ev.mac
            matching = asyncio.ensure_future(ev.match())
            request, _ = await inbox.expect(SlacParmReq, 5)
            run_id = request.message.run_id  # type: ignore[union-attr]
            cnf = SlacParmCnf(forwarding_sta=ev_mac, run_id=run_id)
            wire.send(cnf, ev_mac, EVSE)
            for mac in cnf_flood:
                wire.send(cnf, ev_mac, mac)
            while True:  # the EV's last sound
                sound, _ = await inbox.expect(MnbcSoundInd, 3)
                if sound.message.remaining_sounds == 0:  # type: ignore[union-attr]
                    break
            kept = {MacAddress(k) for k in ev.matcher.candidates}
            assert EVSE in kept and len(kept) <= ev.matcher.config.max_candidates
            forged = AttenCharInd(
                source_address=ev_mac, run_id=run_id, num_sounds=10, aag=(0,) * 58
            )
            real = AttenCharInd(source_address=ev_mac, run_id=run_id, num_sounds=10, aag=(20,) * 58)
            senders = ind_flood + [m for m in cnf_flood if m not in kept]
            for i, mac in enumerate(senders):
                wire.send(forged, ev_mac, mac)
                if i == len(senders) // 2:
                    wire.send(real, ev_mac, EVSE)
                if i % 50 == 49:
                    await asyncio.sleep(0.005)  # paced: the EV's socket buffer keeps them all
            match_req, _ = await inbox.expect(SlacMatchReq, 3)
            assert match_req.dst == EVSE
            wire.send(
                SlacMatchCnf(
                    pev_mac=ev_mac, evse_mac=EVSE, run_id=run_id, nid=nid_from_nmk(nmk), nmk=nmk
                ),
                ev_mac,
                EVSE,
            )
            result = await asyncio.wait_for(matching, 5)
            await asyncio.sleep(0.1)
        finally:
            await ev.close()
            wire.close()
    assert result.evse_mac == EVSE and result.nmk == nmk
    assert result.average_attenuation == 20.0
    assert len(result.candidates) <= 16
    answered = {f.dst for f in inbox.every if isinstance(f.message, AttenCharRsp)}
    assert answered == {EVSE}
    assert wire.set_keys[-1] == nmk
    ignored = [r for r in caplog.records if "did not confirm this run" in r.getMessage()]
    assert len(ignored) >= 500, len(ignored)  # the floods did reach the EV
