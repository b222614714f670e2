"""CPU cost of the EVSE's frame handling, without sockets: how many received frames one
EVSE process handles per CPU second.

One cluster of crosstalk as the benchmark's car park has it: 8 EVs plug in at once near one
EVSE (its own car at 20 dB, 7 neighbours at 50 dB). Every frame the EVSE's interface
would receive is built beforehand (CM_SLAC_PARM.REQ, 3 CM_START_ATTEN_CHAR.IND, 10 sounds
each followed by the modem's CM_ATTEN_PROFILE.IND, CM_ATTEN_CHAR.RSP, CM_SLAC_MATCH.REQ from
its own car), interleaved as they arrive in a burst; then the real decoder and state machine
handle them, and every answer is packed as it would be sent.

    .venv/bin/python benchmarks/evse_cpu.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slac.environment import Config
from slac.fsm.evse import EvseMatcher
from slac.messages import (
    AttenCharRsp,
    AttenProfileInd,
    MnbcSoundInd,
    SlacMatchReq,
    SlacParmReq,
    StartAttenCharInd,
    decode_frame,
)
from slac.utils import MacAddress

EVSE = MacAddress("02:00:00:e5:00:00")
MODEM = MacAddress("00:b0:52:f0:00:00")
BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")
EVS = [MacAddress(bytes([2, 0, 0, 0xEF, 0, i])) for i in range(8)]
RUNS = [bytes([i + 1]) * 8 for i in range(8)]


def cluster_frames() -> tuple[list[bytes], list[bytes]]:
    """(what arrives during sounding, what arrives after the EVSE's indications)."""
    burst: list[bytes] = []
    for ev, run in zip(EVS, RUNS):
        burst.append(SlacParmReq(run_id=run).to_frame(BROADCAST, ev))
    for _ in range(3):
        for ev, run in zip(EVS, RUNS):
            burst.append(StartAttenCharInd(forwarding_sta=ev, run_id=run).to_frame(BROADCAST, ev))
    for remaining in range(9, -1, -1):
        for n, (ev, run) in enumerate(zip(EVS, RUNS)):
            burst.append(
                MnbcSoundInd(remaining_sounds=remaining, run_id=run).to_frame(BROADCAST, ev)
            )
            aag = (20 if n == 0 else 50,) * 58
            burst.append(AttenProfileInd(pev_mac=ev, aag=aag).to_frame(EVSE, MODEM))
    after: list[bytes] = []
    for ev, run in zip(EVS, RUNS):
        after.append(AttenCharRsp(source_address=ev, run_id=run).to_frame(EVSE, ev))
    after.append(SlacMatchReq(pev_mac=EVS[0], evse_mac=EVSE, run_id=RUNS[0]).to_frame(EVSE, EVS[0]))
    return burst, after


def one_round(burst: list[bytes], after: list[bytes], config: Config) -> tuple[int, int]:
    """Frames handled and frames sent for one plug-in of the cluster."""
    matcher = EvseMatcher(EVSE, nmk=bytes(16), nid=bytes(7), config=config)
    now = 1000.0
    matcher.cp_state_changed("B", now)
    matcher.start(now)
    sent = 0
    for data in burst + after:
        now += 0.0001
        matcher.receive_frame(decode_frame(data), now)
        for item in matcher.frames_to_send():
            item.message.to_frame(item.dst, EVSE)
            sent += 1
        matcher.events()
        _ = matcher.deadline
    return len(burst) + len(after), sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the result to this file")
    args = parser.parse_args()
    burst, after = cluster_frames()
    config = Config(max_parallel_runs=8)  # every EV of the cluster gets a run: the full work
    one_round(burst, after, config)  # warm up
    started = time.process_time()
    frames = sent = 0
    for _ in range(args.rounds):
        handled, answers = one_round(burst, after, config)
        frames += handled
        sent += answers
    cpu = time.process_time() - started
    print(
        f"EVSE frame handling (decode, state machine, answers packed): {frames / cpu:,.0f} "
        f"frames per CPU second ({cpu / frames * 1e6:.1f} us per frame; {frames} frames in, "
        f"{sent} out, {args.rounds} plug-ins of an 8-car crosstalk cluster)"
    )
    if args.json:
        result = {
            "frames_per_cpu_second": round(frames / cpu),
            "us_per_frame": round(cpu / frames * 1e6, 2),
            "frames": frames,
            "sent": sent,
            "rounds": args.rounds,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
