"""The EV trusts only what it asked for (issue 13, items 1-6).

Hand-moved clock, every frame through the real codec. The invalid field values are the ones
the ISO 15118-5 EVCC catalogue sends (nvdungx/ISO15118_3_TestEnv: TC_EVCC_CMN_VTB_CmSlacParm_*,
_AttenuationCharacterization_*, _CmSlacMatch_*), and the timing windows are the ones its test
behaviour measures (TT_match_response + 2 x 0.25 s of silence after the last request, the next
matching process within TT_matching_rate + 0.25 s after that, while TT_matching_repetition runs).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from slac import enums
from slac.errors import ConfigError
from slac.fsm.ev import (
    EvAttemptFailed,
    EvConfig,
    EvMatched,
    EvMatchingFailed,
    EvseChosen,
    EvState,
)
from slac.fsm.events import FailureReason
from slac.messages import (
    AttenCharInd,
    AttenCharRsp,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
)
from slac.utils import MacAddress, nid_from_nmk

from .ev_harness import EV, EVSES, NMK, EvHarness

ZERO_MAC = MacAddress("00:00:00:00:00:00")
OTHER_MAC = MacAddress("02:00:00:00:0e:99")
ID_01 = bytes(16) + b"\x01"
FOREIGN_RUN_ID = bytes.fromhex("a1b2c3d4e5f60718")

#: ISO 15118-5 window for the next matching process after the last CM_SLAC_PARM.REQ of a
#: failed one: at least TT_match_response + 2 x par_CMN_Transmission_Delay (0.7 s) of
#: silence, then within TT_matching_rate + par_CMN_Transmission_Delay (so by 1.35 s; the
#: test system's timer for it keeps running after the first new request, so all of them).
SILENCE_AFTER_LAST_REQ = enums.TT_MATCH_RESPONSE + 2 * 0.25
NEXT_ATTEMPT_BY = SILENCE_AFTER_LAST_REQ + enums.TT_MATCHING_RATE + 0.25


def with_header(data: bytes, *, mmv: int = 1, fmi: int = 0, fmsn: int = 0) -> bytes:
    """The same frame with other HomePlug header bytes (MMV at 14, FMI at 17, FMSN at 18)."""
    return data[:14] + bytes([mmv]) + data[15:17] + bytes([fmi, fmsn]) + data[19:]


def attempts_of(h: EvHarness) -> list[list[tuple[float, bytes]]]:
    """CM_SLAC_PARM.REQ (time, RunID) grouped by RunID, in order."""
    groups: list[list[tuple[float, bytes]]] = []
    for t, o in h.of(SlacParmReq):
        run_id = o.message.run_id  # type: ignore[attr-defined]
        if not groups or groups[-1][0][1] != run_id:
            groups.append([])
        groups[-1].append((t, run_id))
    return groups


# --- 1: CM_SLAC_PARM.CNF is validated ----------------------------------------------------------

INVALID_PARM_CNF: dict[str, dict[str, Any]] = {
    # TC_EVCC_CMN_VTB_CmSlacParm_003 .. _011, and the other values ISO 15118-3 fixes
    "M-SOUND_TARGET not broadcast (CmSlacParm_003)": {"msound_target": ZERO_MAC},
    "Time_Out 0 (CmSlacParm_004)": {"time_out": 0},
    "RESP_TYPE 0 (CmSlacParm_005)": {"resp_type": 0},
    "APPLICATION_TYPE 0xFF (CmSlacParm_006)": {"application_type": 0xFF},
    "SECURITY_TYPE 0xFF (CmSlacParm_007)": {"security_type": 0xFF},
    "foreign RunID (CmSlacParm_008)": {"run_id": FOREIGN_RUN_ID},
    "FORWARDING_STA 00:00:00:00:00:00 (CmSlacParm_011)": {"forwarding_sta": ZERO_MAC},
    "FORWARDING_STA another EV": {"forwarding_sta": OTHER_MAC},
    "NUM_SOUNDS 8 (not C_EV_match_MNBC)": {"num_sounds": 8},
    "NUM_SOUNDS 0": {"num_sounds": 0},
    "Time_Out 10 (not TT_EVSE_match_MNBC)": {"time_out": 10},
}


@pytest.mark.parametrize("fields", INVALID_PARM_CNF.values(), ids=INVALID_PARM_CNF.keys())
def test_invalid_parm_cnf_is_ignored_and_no_sounding_follows(fields: dict[str, Any]) -> None:
    """The EVSE answers every REQ with the same invalid CNF: the EV resends the REQ
    C_EV_match_retry times, never sends CM_START_ATTEN_CHAR.IND, and the attempt fails."""
    h = EvHarness(EvConfig(attempts=1))
    for _ in range(3):
        cnf = dataclasses.replace(SlacParmCnf(forwarding_sta=EV, run_id=h.m.run_id), **fields)
        h.feed(cnf, EVSES[0])
        h.advance(0.2)
    h.advance(2.0)
    assert h.of(StartAttenCharInd) == [] and h.of(MnbcSoundInd) == []
    assert h.times(SlacParmReq) == pytest.approx([0.0, 0.2, 0.4])
    assert h.m.candidates == {}
    assert h.events_of(EvMatchingFailed) == [
        EvMatchingFailed(FailureReason.NO_PARM_CNF, 1, "no CM_SLAC_PARM.CNF from any EVSE")
    ]


@pytest.mark.parametrize(
    "header", [{"fmi": 0x11}, {"fmsn": 1}, {"mmv": 0}], ids=["fragment", "FMSN 1", "MMV 0"]
)
def test_parm_cnf_with_an_invalid_homeplug_header_is_ignored(header: dict[str, int]) -> None:
    h = EvHarness(EvConfig(attempts=1))
    data = SlacParmCnf(forwarding_sta=EV, run_id=h.m.run_id).to_frame(EV, EVSES[0])
    h.feed_raw(with_header(data, **header))
    h.advance(1.0)
    assert h.of(StartAttenCharInd) == []


def test_a_valid_cnf_among_invalid_ones_starts_the_sounding_with_that_evse_only() -> None:
    h = EvHarness()
    h.feed(SlacParmCnf(forwarding_sta=EV, run_id=h.m.run_id, resp_type=0), EVSES[1])
    h.parm_cnf(EVSES[0])
    h.advance(0.2)
    assert list(h.m.candidates) == [bytes(EVSES[0])]
    starts = h.of(StartAttenCharInd)
    assert len(starts) == 1 and starts[0][0] == pytest.approx(0.2)


# --- 2: CM_SLAC_PARM.REQ retries as the standard counts them ---------------------------------


def test_parm_req_three_times_then_silence_then_the_next_attempt_with_a_new_run_id() -> None:
    """C_EV_match_retry (2) repeats TT_match_response apart; then at least 0.7 s of silence
    and the next attempt's first REQ, with a new RunID, by 1.35 s (TC_EVCC_CmSlacParm_002/_010)."""
    h = EvHarness()
    h.advance(3.0)
    first, second = attempts_of(h)[:2]
    assert [t for t, _ in first] == pytest.approx([0.0, 0.2, 0.4])
    gap = second[0][0] - first[-1][0]
    assert SILENCE_AFTER_LAST_REQ <= gap, gap
    # the test system's TP_matching_rate timer is not stopped by the first new request:
    # the whole next attempt comes before it runs out
    assert second[-1][0] - first[-1][0] <= NEXT_ATTEMPT_BY, second
    assert second[0][1] != first[0][1]
    assert [t - second[0][0] for t, _ in second] == pytest.approx([0.0, 0.2, 0.4])
    failed = h.events_of(EvAttemptFailed)
    assert failed[0] == EvAttemptFailed(
        1, FailureReason.NO_PARM_CNF, "no CM_SLAC_PARM.CNF from any EVSE"
    )


def test_attempts_repeat_while_tt_matching_repetition_runs_then_silence() -> None:
    """V2G3-A09-124/-125: a failed matching process is repeated after TT_matching_rate while
    TT_matching_repetition (10 s from the start) runs; after that the EV stays silent."""
    h = EvHarness()
    h.advance(30.0)
    attempts = attempts_of(h)
    for before, after in zip(attempts, attempts[1:]):
        assert SILENCE_AFTER_LAST_REQ <= after[0][0] - before[-1][0]
        assert after[-1][0] - before[-1][0] <= NEXT_ATTEMPT_BY
    starts = [a[0][0] for a in attempts]
    assert starts[-1] < enums.TT_MATCHING_REPETITION
    # no attempt was left out: one more would have started before the timer ran out
    assert starts[-1] + (starts[1] - starts[0]) >= enums.TT_MATCHING_REPETITION - 1e-9
    assert len({a[0][1] for a in attempts}) == len(attempts)  # a new RunID every time
    (failed,) = h.events_of(EvMatchingFailed)
    assert failed == EvMatchingFailed(
        FailureReason.NO_PARM_CNF, len(attempts), "no CM_SLAC_PARM.CNF from any EVSE"
    )
    assert h.m.state is EvState.FAILED and h.m.deadline is None


def test_attempts_setting_caps_the_repetitions() -> None:
    h = EvHarness(EvConfig(attempts=2))
    h.advance(30.0)
    assert len(attempts_of(h)) == 2


def test_a_cnf_to_the_last_request_is_still_taken_within_tt_match_response() -> None:
    h = EvHarness()
    h.advance(0.4 + 0.19)
    h.parm_cnf(EVSES[0])
    h.advance(0.02)
    assert h.times(StartAttenCharInd)[0] == pytest.approx(0.6)


# --- 3: an invalid CM_ATTEN_CHAR.IND gets no RSP and is not counted -----------------------------

INVALID_ATTEN_CHAR: dict[str, dict[str, Any]] = {
    "APPLICATION_TYPE 0xFF (AttenuationCharacterization_004)": {"application_type": 0xFF},
    "SECURITY_TYPE 0xFF (AttenuationCharacterization_005)": {"security_type": 0xFF},
    "SOURCE_ADDRESS 00:00:00:00:00:00 (AttenuationCharacterization_006)": {
        "source_address": ZERO_MAC
    },
    "foreign RunID (AttenuationCharacterization_007)": {"run_id": FOREIGN_RUN_ID},
    "SOURCE_ID 0...01 (AttenuationCharacterization_008)": {"source_id": ID_01},
    "RESP_ID 0...01 (AttenuationCharacterization_009)": {"resp_id": ID_01},
    "NUM_SOUNDS 0 (AttenuationCharacterization_011)": {"num_sounds": 0},
    "NUM_SOUNDS 11, more than were sent": {"num_sounds": 11},
    "NumGroups 57": {"aag": (20,) * 57},
}


def valid_ind(h: EvHarness, atten: int = 20) -> AttenCharInd:
    return AttenCharInd(source_address=EV, run_id=h.m.run_id, num_sounds=10, aag=(atten,) * 58)


@pytest.mark.parametrize("fields", INVALID_ATTEN_CHAR.values(), ids=INVALID_ATTEN_CHAR.keys())
def test_invalid_atten_char_gets_no_rsp_and_is_not_counted(fields: dict[str, Any]) -> None:
    h = EvHarness(EvConfig(attempts=1))
    h.to_results(EVSES[0])
    h.feed(dataclasses.replace(valid_ind(h), **fields), EVSES[0])
    assert h.of(AttenCharRsp) == []
    assert h.m.candidates[bytes(EVSES[0])].average is None
    h.advance(2.0)
    assert h.of(SlacMatchReq) == []
    assert h.events_of(EvMatchingFailed) == [
        EvMatchingFailed(
            FailureReason.NO_ATTEN_CHAR_IND, 1, "no CM_ATTEN_CHAR.IND within TT_EV_atten_results"
        )
    ]


def test_atten_char_with_num_groups_0_before_58_values_is_ignored() -> None:
    """AttenuationCharacterization_010: NumGroups 0x00, the 58 values still on the wire."""
    h = EvHarness(EvConfig(attempts=1))
    h.to_results(EVSES[0])
    data = bytearray(valid_ind(h).to_frame(EV, EVSES[0]))
    assert data[19 + 51] == 58
    data[19 + 51] = 0
    h.feed_raw(bytes(data))
    assert h.of(AttenCharRsp) == []
    assert h.m.candidates[bytes(EVSES[0])].average is None


def test_atten_char_from_a_station_that_did_not_confirm_this_run_is_ignored() -> None:
    """Only an EVSE that answered this run's CM_SLAC_PARM.REQ took part in the sounding."""
    h = EvHarness(EvConfig(attempts=1))
    h.to_results(EVSES[0])
    h.atten_char(EVSES[1], 5)
    assert h.of(AttenCharRsp) == []
    assert bytes(EVSES[1]) not in h.m.candidates
    h.atten_char(EVSES[0], 30)
    assert [o.dst for _, o in h.of(AttenCharRsp)] == [EVSES[0]]
    assert h.of(SlacMatchReq)[0][1].dst == EVSES[0]


def test_atten_char_with_an_invalid_homeplug_header_is_ignored() -> None:
    h = EvHarness(EvConfig(attempts=1))
    h.to_results(EVSES[0])
    h.feed_raw(with_header(valid_ind(h).to_frame(EV, EVSES[0]), fmi=0x11))
    assert h.of(AttenCharRsp) == []


def test_atten_char_after_tt_ev_atten_results_gets_no_rsp() -> None:
    """AttenuationCharacterization_003: a valid IND TT_EV_atten_results after the first
    CM_START_ATTEN_CHAR.IND is too late."""
    h = EvHarness()
    h.parm_cnf(EVSES[0])
    h.advance(0.2)
    first_start = h.times(StartAttenCharInd)[0]
    h.advance_to(first_start + enums.TT_EV_ATTEN_RESULTS + 0.001)
    h.atten_char(EVSES[0], 20)
    assert h.of(AttenCharRsp) == []
    assert h.of(SlacMatchReq) == []


def test_a_resent_atten_char_is_acknowledged_again_but_counted_once() -> None:
    h = EvHarness()
    h.to_results(EVSES[0], EVSES[1])
    h.atten_char(EVSES[0], 20)
    h.atten_char(EVSES[0], 20)
    assert [o.dst for _, o in h.of(AttenCharRsp)] == [EVSES[0], EVSES[0]]
    assert h.of(SlacMatchReq) == []  # EVSES[1] has not reported yet
    assert len(h.m._reported) == 1


# --- 4: an invalid CM_SLAC_MATCH.CNF is ignored -------------------------------------------------

OTHER_NMK = bytes(range(100, 116))
NID_0 = nid_from_nmk(NMK)
INVALID_MATCH_CNF: dict[str, dict[str, Any]] = {
    "APPLICATION_TYPE 0xFF (CmSlacMatch_004)": {"application_type": 0xFF},
    "SECURITY_TYPE 0xFF (CmSlacMatch_005)": {"security_type": 0xFF},
    "MVFLength 0 (CmSlacMatch_006)": {"mvf_length": 0},
    "PEV_ID 0...01 (CmSlacMatch_007)": {"pev_id": ID_01},
    "PEV_MAC 00:00:00:00:00:00 (CmSlacMatch_008)": {"pev_mac": ZERO_MAC},
    "EVSE_ID 0...01 (CmSlacMatch_009)": {"evse_id": ID_01},
    "EVSE_MAC 00:00:00:00:00:00 (CmSlacMatch_010)": {"evse_mac": ZERO_MAC},
    "foreign RunID (CmSlacMatch_011)": {"run_id": FOREIGN_RUN_ID},
    "NID of another NMK": {"nid": nid_from_nmk(OTHER_NMK)},
    "NID with security level 2": {"nid": NID_0[:6] + bytes([NID_0[6] | 0x20])},
    "NID with bit 7 set": {"nid": NID_0[:6] + bytes([NID_0[6] | 0x80])},
}


def to_match(h: EvHarness) -> None:
    h.to_results(EVSES[0])
    h.atten_char(EVSES[0], 20)
    assert h.m.state is EvState.MATCH


def valid_match_cnf(h: EvHarness) -> SlacMatchCnf:
    return SlacMatchCnf(
        pev_mac=EV, evse_mac=EVSES[0], run_id=h.m.run_id, nid=nid_from_nmk(NMK), nmk=NMK
    )


@pytest.mark.parametrize("fields", INVALID_MATCH_CNF.values(), ids=INVALID_MATCH_CNF.keys())
def test_invalid_match_cnf_is_ignored_the_req_resent_and_no_key_used(
    fields: dict[str, Any],
) -> None:
    """CmSlacMatch_003: each CM_SLAC_MATCH.REQ gets the invalid CNF; the REQ is resent after
    TT_match_response C_EV_match_retry times, then nothing more, and the key is never used."""
    h = EvHarness(EvConfig(attempts=1))
    to_match(h)
    for _ in range(3):
        h.feed(dataclasses.replace(valid_match_cnf(h), **fields), EVSES[0])
        h.advance(0.2)
    h.advance(2.0)
    requests = h.times(SlacMatchReq)
    assert [t - requests[0] for t in requests] == pytest.approx([0.0, 0.2, 0.4])
    assert h.events_of(EvMatched) == [] and h.m.result is None
    assert h.events_of(EvMatchingFailed) == [
        EvMatchingFailed(
            FailureReason.NO_MATCH_CNF, 1, "no valid CM_SLAC_MATCH.CNF from the chosen EVSE"
        )
    ]


def test_match_cnf_from_another_station_is_ignored() -> None:
    h = EvHarness(EvConfig(attempts=1))
    to_match(h)
    h.feed(valid_match_cnf(h), EVSES[1])
    assert h.m.result is None


def test_valid_match_cnf_after_an_invalid_one_gives_the_key() -> None:
    h = EvHarness()
    to_match(h)
    h.feed(dataclasses.replace(valid_match_cnf(h), mvf_length=0), EVSES[0])
    h.advance(0.2)
    h.feed(valid_match_cnf(h), EVSES[0])
    assert h.m.state is EvState.MATCHED
    assert h.events_of(EvMatched) == [EvMatched(EVSES[0], h.m.run_id, nid_from_nmk(NMK), NMK)]
    assert len(h.times(SlacMatchReq)) == 2


def test_match_cnf_with_a_security_level_1_nid_is_accepted() -> None:
    """HomePlug AV derives the NID with security level 0 (simple connect, what every SLAC
    stack sends) or 1 (secure): both are a NID of this NMK."""
    h = EvHarness()
    to_match(h)
    h.feed(dataclasses.replace(valid_match_cnf(h), nid=nid_from_nmk(NMK, 1)), EVSES[0])
    assert h.m.state is EvState.MATCHED


def test_nonstandard_match_cnf_is_accepted_only_when_asked_for() -> None:
    """pyPLC's EVSE sends the fixed NID 01020304050607; Qualcomm's evse puts its station
    identifier in EVSE_ID. Real cars take both; our EV only with the opt-in setting."""
    sloppy: dict[str, Any] = {"nid": bytes.fromhex("01020304050607"), "evse_id": b"\xbb" * 17}
    strict = EvHarness(EvConfig(attempts=1))
    to_match(strict)
    strict.feed(dataclasses.replace(valid_match_cnf(strict), **sloppy), EVSES[0])
    assert strict.m.result is None
    lenient = EvHarness(EvConfig(accept_nonstandard_match_cnf=True))
    to_match(lenient)
    lenient.feed(dataclasses.replace(valid_match_cnf(lenient), **sloppy), EVSES[0])
    assert lenient.m.state is EvState.MATCHED
    assert lenient.m.result is not None and lenient.m.result.nid == sloppy["nid"]
    # the lenient EV still checks everything else
    other = EvHarness(EvConfig(accept_nonstandard_match_cnf=True, attempts=1))
    to_match(other)
    other.feed(dataclasses.replace(valid_match_cnf(other), mvf_length=0), EVSES[0])
    assert other.m.result is None


# --- 5: bounded state under floods --------------------------------------------------------------


def flood_macs(n: int, tag: int) -> list[MacAddress]:
    return [MacAddress(bytes([0x02, tag, 0, 0, i >> 8, i & 0xFF])) for i in range(n)]


def test_parm_cnf_flood_from_many_macs_keeps_the_candidate_list_bounded() -> None:
    h = EvHarness()
    h.parm_cnf(EVSES[0])
    for mac in flood_macs(200, 0xF1):
        h.parm_cnf(mac)
    assert len(h.m.candidates) <= h.m.config.max_candidates
    assert bytes(EVSES[0]) in h.m.candidates
    h.advance(0.5)
    h.atten_char(EVSES[0], 20)
    h.advance(1.2)
    assert h.of(SlacMatchReq)[0][1].dst == EVSES[0]


def test_atten_char_flood_from_many_macs_cannot_be_chosen() -> None:
    """INDs at 0 dB from 200 stations that never confirmed this run, and from the flooders
    whose confirmations did not fit in the list: no RSP, not counted, the real EVSE wins."""
    h = EvHarness()
    h.parm_cnf(EVSES[0])
    cnf_flood = flood_macs(200, 0xF1)
    for mac in cnf_flood:
        h.parm_cnf(mac)
    kept = {MacAddress(k) for k in h.m.candidates} - {EVSES[0]}
    dropped = [m for m in cnf_flood if m not in kept]
    h.advance(0.5)
    for mac in flood_macs(200, 0xF2) + dropped:
        h.atten_char(mac, 0)
    assert {o.dst for _, o in h.of(AttenCharRsp)} == set()
    h.atten_char(EVSES[0], 20)
    h.advance(1.5)
    (chosen,) = h.events_of(EvseChosen)
    assert chosen.evse_mac == EVSES[0]
    assert len(h.m._reported) == 1


def test_a_full_candidate_list_is_logged_once_and_emptied_for_the_next_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = EvHarness(EvConfig(max_candidates=4))
    with caplog.at_level("WARNING", logger="slac.fsm.ev"):
        for mac in flood_macs(50, 0xF1):
            h.parm_cnf(mac)
    assert len(h.m.candidates) == 4
    assert len([r for r in caplog.records if "candidate" in r.getMessage()]) == 1
    h.advance(3.0)
    assert h.m.candidates == {}  # the attempt failed (no IND), the next starts empty


# --- 6: the choice rule ------------------------------------------------------------------------


def test_on_a_tie_the_evse_that_confirmed_first_is_chosen() -> None:
    h = EvHarness()
    h.to_results(EVSES[2], EVSES[1])
    h.atten_char(EVSES[1], 25)
    h.atten_char(EVSES[2], 25)
    (chosen,) = h.events_of(EvseChosen)
    assert chosen.evse_mac == EVSES[2]


def test_with_no_evse_under_the_limit_the_attempt_fails_and_says_why() -> None:
    h = EvHarness(EvConfig(atten_limit=40))
    h.to_results(EVSES[0], EVSES[1])
    h.atten_char(EVSES[0], 41)
    h.atten_char(EVSES[1], 55)
    (failed,) = h.events_of(EvAttemptFailed)
    assert failed.reason is FailureReason.ABOVE_ATTEN_LIMIT
    assert failed.detail == (
        "every EVSE is above the attenuation limit of 40 dB "
        f"({EVSES[0]} 41.0 dB, {EVSES[1]} 55.0 dB)"
    )
    assert h.of(SlacMatchReq) == []
    h.advance(1.0)
    assert len(attempts_of(h)) == 2


@pytest.mark.parametrize(
    "fields",
    [
        {"attempts": 0},
        {"max_candidates": 0},
        {"match_retries": -1},
        {"num_sounds": 0},
        {"attempt_pause": enums.TT_MATCHING_RATE - 0.1},
    ],
    ids=lambda f: next(iter(f)),
)
def test_config_out_of_range_is_a_clear_error(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=f"EvConfig.{next(iter(fields))}"):
        EvConfig(**fields)


def test_with_choice_first_a_later_indication_gets_no_rsp_but_a_resend_of_the_chosen_does() -> None:
    h = EvHarness(EvConfig(choice="first"))
    h.to_results(EVSES[0], EVSES[1])
    h.atten_char(EVSES[0], 20)  # chosen at once
    h.atten_char(EVSES[1], 10)  # after the choice: not part of it
    h.atten_char(EVSES[0], 20)  # the chosen EVSE resends (our RSP was lost)
    assert [o.dst for _, o in h.of(AttenCharRsp)] == [EVSES[0], EVSES[0]]
    assert [o.dst for _, o in h.of(SlacMatchReq)] == [EVSES[0]]
