"""The analyser's checks on sessions built here (the field captures are in test_captures.py):
one function per check, in the report's order; a missing CM_SLAC_PARM.CNF or
CM_ATTEN_CHAR.IND ends a session's checks, as nothing after it can be checked."""

from __future__ import annotations

from slac.messages import (
    Message,
    MnbcSoundInd,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
)
from slac.tools.analyze import CHECKS, analyze_packets
from slac.tools.pcap import Packet
from slac.utils import MacAddress

EV = MacAddress("02:00:00:00:00:0e")
EVSE = MacAddress("02:00:00:00:00:05")
BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")
RUN_ID = bytes.fromhex("0102030405060708")


def session(*frames: tuple[float, Message, MacAddress, MacAddress]) -> list[tuple[str, bool]]:
    packets = [Packet(t, m.to_frame(dst, src)) for t, m, dst, src in frames]
    (only,) = analyze_packets(packets).sessions
    return [(f.check, f.ok) for f in only.findings]


def test_an_unanswered_request_is_checked_up_to_the_missing_confirmation() -> None:
    assert session((0.0, SlacParmReq(run_id=RUN_ID), BROADCAST, EV)) == [
        ("RunID echoed", True),
        ("CM_SLAC_PARM.CNF", False),
    ]


def test_sounding_without_results_is_checked_up_to_the_missing_indication() -> None:
    frames: list[tuple[float, Message, MacAddress, MacAddress]] = [
        (0.0, SlacParmReq(run_id=RUN_ID), BROADCAST, EV),
        (0.05, SlacParmCnf(forwarding_sta=EV, run_id=RUN_ID), EV, EVSE),
    ]
    frames += [
        (
            0.1 + 0.01 * i,
            StartAttenCharInd(forwarding_sta=EV, run_id=RUN_ID, num_sounds=10),
            BROADCAST,
            EV,
        )
        for i in range(3)
    ]
    frames += [
        (0.2 + 0.03 * i, MnbcSoundInd(remaining_sounds=9 - i, run_id=RUN_ID), BROADCAST, EV)
        for i in range(10)
    ]
    frames.append((2.0, SlacMatchReq(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID), EVSE, EV))
    assert session(*frames) == [
        ("RunID echoed", True),
        ("CM_SLAC_PARM.CNF field values", True),
        ("CM_SLAC_PARM.CNF unicast", True),
        ("CM_SLAC_PARM.CNF within TT_match_response", True),
        ("CM_START_ATTEN_CHAR.IND count", True),
        ("CM_MNBC_SOUND.IND count", True),
        ("sound interval (TP_EV_batch_msg_interval)", True),
        ("CM_ATTEN_CHAR.IND", False),  # nothing after it: no outcome, although a MATCH.REQ came
    ]


def test_checks_are_registered_once_each_with_two_gates() -> None:
    names = [c.run.__name__ for c in CHECKS]
    assert len(names) == len(set(names)) == 16
    assert [c.run.__name__ for c in CHECKS if c.gate] == ["parm_cnf_sent", "atten_char_ind_sent"]
    assert names[0] == "run_id_echoed" and names[-1] == "match_outcome"
