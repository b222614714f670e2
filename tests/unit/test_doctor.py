"""``slac doctor``'s verdicts and reports, without sockets (the checks over real sockets are in
tests/integration/test_doctor.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slac.messages import VsPlLinkStatusCnf, VsRdModCnf, VsSwVerCnf
from slac.tools.doctor import (
    CHECKS,
    FAIL,
    PASS,
    SKIP,
    CheckResult,
    DoctorReport,
    InterfaceReport,
    Sounding,
    judge_link_status,
    judge_modem,
    judge_role,
    judge_set_key,
    judge_sounding,
    other_packet_sockets,
)
from slac.utils import MacAddress

MODEM = MacAddress("00:b0:52:12:34:56")
EV = MacAddress("02:00:00:00:0e:01")


@pytest.mark.parametrize(
    ("result", "accepted", "qualcomm", "verdict", "advice"),
    [
        (1, (1,), True, PASS, ""),
        (0, (0,), False, PASS, ""),
        (0, (0, 1), True, PASS, ""),
        (0, (1,), True, FAIL, "this Qualcomm modem refused the key"),
        (0, (1,), False, FAIL, "set SET_KEY_RESULT_OK=0 (or 0,1"),
        (1, (0,), True, FAIL, "set SET_KEY_RESULT_OK=1 (the default) or 0,1"),
        (7, (1,), True, FAIL, "SET_KEY_RESULT_OK=7"),
    ],
)
def test_set_key_result_is_judged_against_set_key_result_ok(
    result: int, accepted: tuple[int, ...], qualcomm: bool, verdict: str, advice: str
) -> None:
    judged = judge_set_key(result, accepted, 1.5, qualcomm=qualcomm)
    assert judged.verdict == verdict
    assert advice in judged.advice
    setting = "SET_KEY_RESULT_OK=" + ",".join(map(str, accepted))
    assert setting in judged.detail
    assert ("accepts it" in judged.detail) == (verdict == PASS)


def test_no_set_key_answer_is_a_finding() -> None:
    judged = judge_set_key(None, (1,), 1.5, qualcomm=False)
    assert judged.verdict == FAIL and judged.detail == "no CM_SET_KEY.CNF within 1.5 s"


def test_modem_check_reports_device_firmware_and_address() -> None:
    judged = judge_modem(VsSwVerCnf(version="MAC-QCA7000-1.1.0.730"), MODEM, 1.5)
    assert judged.verdict == PASS
    assert judged.detail == f"QCA7000/QCA7005 at {MODEM}, firmware MAC-QCA7000-1.1.0.730"
    unknown = judge_modem(VsSwVerCnf(version="x", device_class=0x77), MODEM, 1.5)
    assert "unknown device class 0x77" in unknown.detail
    assert judge_modem(VsSwVerCnf(version="x", status=1), MODEM, 1.5).verdict == FAIL
    assert judge_modem(None, None, 1.5).verdict == FAIL


def test_link_status_answer_passes_either_way_and_silence_fails() -> None:
    assert "no link" in judge_link_status(VsPlLinkStatusCnf(link_status=0), 1).detail
    assert "linked" in judge_link_status(VsPlLinkStatusCnf(link_status=1), 1).detail
    assert judge_link_status(None, 1).verdict == FAIL


@pytest.mark.parametrize(
    ("mode", "verdict", "words"),
    [(2, PASS, "EVSE"), (1, FAIL, "PEV"), (0, FAIL, "SLAC off"), (9, FAIL, "not a known role")],
)
def test_role_is_the_pib_slac_enable_mode(mode: int, verdict: str, words: str) -> None:
    judged = judge_role(VsRdModCnf(offset=0x1653, data=bytes([mode])), 1.5)
    assert judged.verdict == verdict and words in judged.detail


def test_role_unknown_is_skipped_not_a_finding() -> None:
    assert judge_role(None, 1.5).verdict == SKIP
    refused = VsRdModCnf(status=0x14, offset=0x1653, data=b"")
    assert "refused (MSTATUS 0x14)" in judge_role(refused, 1.5).detail


def test_sounding_verdicts() -> None:
    good = Sounding(EV, sounds=10, expected=10, profiles=[(20,) * 58] * 10)
    assert judge_sounding(good, 30).verdict == PASS
    assert judge_sounding(None, 30).verdict == SKIP
    assert "no CM_SLAC_PARM.REQ within 30 s" in judge_sounding(Sounding(), 30).detail
    unmeasured = judge_sounding(Sounding(EV, sounds=10), 30)
    assert unmeasured.verdict == FAIL and "no CM_ATTEN_PROFILE.IND" in unmeasured.detail
    no_data = judge_sounding(Sounding(EV, sounds=10, profiles=[()] * 10), 30)
    assert no_data.verdict == FAIL and "NumGroups 0" in no_data.detail
    zeros = judge_sounding(Sounding(EV, sounds=10, profiles=[(0,) * 58] * 10), 30)
    assert zeros.verdict == FAIL and "every group 0 dB" in zeros.detail
    short = judge_sounding(Sounding(EV, sounds=10, profiles=[(20,) * 30] * 10), 30)
    assert short.verdict == FAIL and "30 groups, not 58" in short.detail


def _report(*verdicts: str) -> DoctorReport:
    checks = [
        CheckResult(name, v, f"{name} seen", f"fix {name}") for name, v in zip(CHECKS, verdicts)
    ]
    return DoctorReport([InterfaceReport("eth1", "DE*TST*E1", checks, key_changed=True)])


def test_exit_code_is_1_with_a_finding_only() -> None:
    assert _report(PASS, PASS, SKIP).exit_code == 0
    assert _report(PASS, FAIL, SKIP).exit_code == 1


def test_text_shows_verdicts_advice_for_findings_and_the_key_note() -> None:
    text = _report(PASS, FAIL, SKIP).to_text()
    assert text.splitlines()[0] == "slac doctor: 1 interface, 1 finding"
    assert "eth1 (EVSE DE*TST*E1)" in text
    assert "  PASS  raw socket   raw_socket seen" in text
    assert "  FAIL  interface    interface seen" in text
    assert "-> fix interface" in text and "-> fix raw_socket" not in text  # no advice on a pass
    assert "fresh random network key" in text


def test_json_carries_every_field() -> None:
    document = json.loads(_report(PASS, FAIL).to_json())
    assert document["version"] == 1 and document["exit_code"] == 1 and document["findings"] == 1
    (only,) = document["interfaces"]
    assert only["interface"] == "eth1" and only["evse_id"] == "DE*TST*E1"
    assert only["checks"][1] == {
        "check": "interface",
        "verdict": FAIL,
        "detail": "interface seen",
        "advice": "fix interface",
        "data": {},
    }


def test_packet_sockets_of_other_programs_are_counted_per_interface(tmp_path: Path) -> None:
    table = tmp_path / "packet"
    table.write_text(
        "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n"
        "0000000000000000 3      3    88e1   7     1 0      0      1001\n"
        "0000000000000000 3      3    0003   7     1 0      0      1002\n"
        "0000000000000000 3      3    0003   0     1 0      0      1003\n"
        "0000000000000000 3      3    88e1   9     1 0      0      1004\n"
    )
    assert other_packet_sockets(7, str(table)) == 2
    assert other_packet_sockets(9, str(table)) == 1
    assert other_packet_sockets(3, str(table)) == 0
    assert other_packet_sockets(7, str(tmp_path / "missing")) == 0
