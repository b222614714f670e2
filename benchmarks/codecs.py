"""Pack and decode operations per second for the seven SLAC messages, ours against scapy's.

Run: ``make bench`` (or ``python benchmarks/codecs.py [--json out.json]``). Each figure is
the best of several timed rounds of whole-frame work: building the frame bytes of a message
object, and reading frame bytes into a message object with its fields.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import timeit
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slac.messages import (
    AttenCharInd,
    AttenProfileInd,
    Message,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    decode_frame,
)
from slac.utils import MacAddress

EV = MacAddress("02:00:00:00:00:01")
EVSE = MacAddress("02:00:00:00:00:02")
RUN_ID = bytes(range(8))
AAG = tuple(range(20, 78))


def _cases() -> list[tuple[str, Message, Callable[[], Any]]]:
    from scapy.contrib import homeplugav as hpav
    from scapy.contrib import homepluggp as hpgp
    from scapy.layers.l2 import Ether

    def sc(mmtype: int, layer: Any) -> Any:
        return (
            Ether(dst=str(EV), src=str(EVSE), type=0x88E1)
            / hpav.HomePlugAV(version=1, HPtype=mmtype)
            / layer
        )

    groups = [hpgp.HPGP_GROUP(group=g) for g in AAG]
    return [
        (
            "CM_SLAC_PARM.REQ",
            SlacParmReq(run_id=RUN_ID),
            lambda: sc(0x6064, hpgp.CM_SLAC_PARM_REQ(RunID=RUN_ID)),
        ),
        (
            "CM_SLAC_PARM.CNF",
            SlacParmCnf(forwarding_sta=EV, run_id=RUN_ID),
            lambda: sc(
                0x6065,
                hpgp.CM_SLAC_PARM_CNF(
                    MSoundTargetMAC="ff:ff:ff:ff:ff:ff",
                    NumberMSounds=10,
                    TimeOut=6,
                    ResponseType=1,
                    ForwardingSTA=str(EV),
                    RunID=RUN_ID,
                ),
            ),
        ),
        (
            "CM_START_ATTEN_CHAR.IND",
            StartAttenCharInd(forwarding_sta=EV, run_id=RUN_ID),
            lambda: sc(
                0x606A,
                hpgp.CM_START_ATTEN_CHAR_IND(
                    NumberOfSounds=10,
                    TimeOut=6,
                    ResponseType=1,
                    ForwardingSTA=str(EV),
                    RunID=RUN_ID,
                ),
            ),
        ),
        (
            "CM_MNBC_SOUND.IND",
            MnbcSoundInd(remaining_sounds=5, run_id=RUN_ID),
            lambda: sc(0x6076, hpgp.CM_MNBC_SOUND_IND(Countdown=5, RunID=RUN_ID)),
        ),
        (
            "CM_ATTEN_PROFILE.IND",
            AttenProfileInd(pev_mac=EV, aag=AAG),
            lambda: sc(
                0x6086, hpgp.CM_ATTENUATION_CHARACTERISTICS_MME(EVMACAddress=str(EV), Groups=groups)
            ),
        ),
        (
            "CM_ATTEN_CHAR.IND",
            AttenCharInd(source_address=EV, run_id=RUN_ID, num_sounds=10, aag=AAG),
            lambda: sc(
                0x606E,
                hpgp.CM_ATTEN_CHAR_IND(
                    SourceAdress=str(EV), RunID=RUN_ID, NumberOfSounds=10, Groups=groups
                ),
            ),
        ),
        (
            "CM_SLAC_MATCH.REQ",
            SlacMatchReq(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID),
            lambda: sc(
                0x607C,
                hpgp.CM_SLAC_MATCH_REQ(
                    VariableField=hpgp.SLAC_varfield(EVMAC=str(EV), EVSEMAC=str(EVSE), RunID=RUN_ID)
                ),
            ),
        ),
        (
            "CM_SLAC_MATCH.CNF",
            SlacMatchCnf(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID, nid=bytes(7), nmk=bytes(16)),
            lambda: sc(
                0x607D,
                hpgp.CM_SLAC_MATCH_CNF(
                    VariableField=hpgp.SLAC_varfield_cnf(
                        EVMAC=str(EV),
                        EVSEMAC=str(EVSE),
                        RunID=RUN_ID,
                        NetworkID=bytes(7),
                        NMK=bytes(16),
                    )
                ),
            ),
        ),
    ]


REPEAT = 7


def _rate(func: Callable[[], Any], budget: float = 0.2) -> float:
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    rounds = max(3, int(budget / max(timer.timeit(number) / number * number, 1e-9)))
    best = min(timer.repeat(repeat=min(rounds, REPEAT), number=number))
    return number / best


def run() -> list[dict[str, Any]]:
    from scapy.layers.l2 import Ether

    rows = []
    for name, ours, scapy_build in _cases():
        frame = ours.to_frame(EV, EVSE)
        scapy_packet = scapy_build()
        scapy_bytes = bytes(scapy_packet)
        assert decode_frame(scapy_bytes).message == ours, name  # same message both sides
        pack_ours = _rate(functools.partial(ours.to_frame, EV, EVSE))
        pack_scapy = _rate(lambda build=scapy_build: bytes(build()))  # type: ignore[misc]
        decode_ours = _rate(functools.partial(decode_frame, frame))
        decode_scapy = _rate(functools.partial(Ether, frame))
        rows.append(
            {
                "message": name,
                "pack_ours": pack_ours,
                "pack_scapy": pack_scapy,
                "decode_ours": decode_ours,
                "decode_scapy": decode_scapy,
                "pack_ratio": pack_ours / pack_scapy,
                "decode_ratio": decode_ours / decode_scapy,
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--repeat", type=int, default=7, help="timings per figure, best kept (default 7)"
    )
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    rows = run()
    print(
        f"Codec operations per second, Python {platform.python_version()}, "
        f"{platform.machine()} ({platform.processor() or 'cpu'})"
    )
    header = (
        f"{'message':<24}{'pack ours':>12}{'scapy':>10}{'x':>7}"
        f"{'decode ours':>14}{'scapy':>10}{'x':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['message']:<24}{r['pack_ours']:>12,.0f}{r['pack_scapy']:>10,.0f}"
            f"{r['pack_ratio']:>7.1f}{r['decode_ours']:>14,.0f}{r['decode_scapy']:>10,.0f}"
            f"{r['decode_ratio']:>7.1f}"
        )
    worst_pack = min(r["pack_ratio"] for r in rows)
    worst_decode = min(r["decode_ratio"] for r in rows)
    print(f"lowest ratio: pack {worst_pack:.1f}x, decode {worst_decode:.1f}x (target: 20x)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
