"""Every SLAC test case of the public ISO 15118-5 catalogue, and whether it applies here.

The catalogue is nvdungx/ISO15118_3_TestEnv (commit a4fce5b): test cases in
``src/testcase/tc_{secc,evcc}_*.cpp``, their behaviour in ``src/behaviorfunction``,
templates in ``src/template/template.cpp``, timers and PIXIT in ``src/management``. A case
applies when it can be played without control-pilot measurement hardware: the tester may
*set* CP states (fed to the EVSE through ``SlacSessionController.process_cp_state``), but a
case whose verdict needs the tester to *measure* duty cycle or voltages, or the SUT to count
B-C-B toggles on a real CP, does not apply; nor does one the SUT's declared PICS/PIXIT
deselect. Each applicable case is one test named ``test_<TC id>`` in ``test_secc.py`` /
``test_evcc.py``; ``test_catalogue.py`` checks that, and that docs/conformance.md's tables list
every case.

``seconds`` is about how long a case takes (the longest go first in a parallel run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .testsystem.timers import SECC_PIXIT


@dataclass(frozen=True)
class Case:
    tc: str
    checks: str
    #: why the case does not apply here (None: it applies and has a test)
    not_applicable: Optional[str] = None
    seconds: float = 3.0
    #: not applicable only by the SUT's declared PIXIT: its test exists and is deselected
    by_pixit: bool = False

    @property
    def role(self) -> str:
        return "SECC" if self.tc.startswith("TC_SECC") else "EVCC"

    @property
    def applies(self) -> bool:
        return self.not_applicable is None


# --- reasons shared by several cases -----------------------------------------------------

_DUTY = "needs the tester to measure the EVSE's duty cycle / CP voltage"
_EVSE_VALIDATES = (
    "needs an EVSE that validates (PIXIT_SECC_CMN_CmValidate = cmValidate): the tester "
    "toggles CP B-C-B and the EVSE must count the toggles on a real control pilot; this EVSE "
    "declares none (it answers CM_VALIDATE.REQ without validating), so the precondition "
    "f_SECC_CMN_PR_CmValidate_001 ends inconclusive"
)
_EV_VALIDATES = (
    "needs an EV that validates (PIXIT_EVCC_CMN_CmValidate = cmValidate): the EV sends "
    "CM_VALIDATE.REQ and toggles CP B-C-B, which the tester measures; `slac ev` never "
    "validates and has no CP output"
)
_EV_NO_CP = (
    "differs from the case before only in the CP signal the EV measures; `slac ev` has no "
    "control-pilot input (starting it is the 5 % trigger), so the EV cannot tell the variants apart"
)
_EV_AFTER_JOIN = (
    "`slac ev` ends once its modem has the EVSE's key: it has no link supervision, "
    "connection-loss handling or CP input after the match"
)
_EV_ISO2 = (
    "needs an ISO 15118-2 session (SessionStop, pause, sleep and wake-up on CP) and SDP: "
    "outside SLAC and `slac ev`"
)


def _secc() -> list[Case]:
    c: list[Case] = []
    add = c.append
    parm = "CM_SLAC_PARM.REQ (broadcast, every TT_match_response) gets a CM_SLAC_PARM.CNF "
    parm += "with the ISO values (M-SOUND_TARGET broadcast, NUM_SOUNDS 10, Time_Out 6, "
    parm += "RESP_TYPE 1, FORWARDING_STA = EV, RunID echoed) within TT_matching_repetition"
    add(Case("TC_SECC_CMN_VTB_CmSlacParm_001", f"CP B: {parm}"))
    add(Case("TC_SECC_CMN_VTB_CmSlacParm_002", f"CP C at plug-in: {parm}"))
    add(Case("TC_SECC_CMN_VTB_CmSlacParm_003", f"CP D at plug-in: {parm}"))
    init = (
        "nothing is sent for TT_EVSE_SLAC_init_min (20 s); a valid CM_SLAC_PARM.REQ "
        "TT_EVSE_SLAC_init_max (50 s) after plug-in gets no CNF (matching ended with the timer)"
    )
    add(Case("TC_SECC_CMN_VTB_CmSlacParm_004", f"No CM_SLAC_PARM.REQ: {init}", seconds=52))
    add(
        Case(
            "TC_SECC_CMN_VTB_CmSlacParm_005",
            f"A CM_SLAC_PARM.REQ with APPLICATION_TYPE 0xFF is ignored: {init}",
            seconds=52,
        )
    )
    add(
        Case(
            "TC_SECC_CMN_VTB_CmSlacParm_006",
            f"A CM_SLAC_PARM.REQ with SECURITY_TYPE 0xFF is ignored: {init}",
            seconds=52,
        )
    )
    add(
        Case(
            "TC_SECC_CMN_VTB_CmSlacParm_007",
            "CP A 1 s after plug-in: a valid CM_SLAC_PARM.REQ then gets no CNF within "
            "TT_match_response",
        )
    )
    add(
        Case(
            "TC_SECC_CMN_VTB_CmSlacParm_008",
            "Plug-in after 600 s unplugged (par_SECC_waitForPlugin): CM_SLAC_PARM.REQ answered "
            "within T_conn_max_comm (8 s)",
            seconds=612,
        )
    )
    add(
        Case(
            "TC_SECC_CMN_VTB_CmSlacParm_009",
            "Plug-in after 600 s unplugged: 5 % duty cycle within T_conn_max_comm, then "
            "CM_SLAC_PARM.CNF",
            f"{_DUTY} (the 5 % within T_conn_max_comm before the REQ is sent)",
        )
    )
    add(
        Case(
            "TC_SECC_AC_VTB_CmSlacParm_001",
            "AC: the EVSE applies E/F for T_step_EF and then a nominal duty cycle (10-96 %); "
            "SLAC still completes",
            f"{_DUTY} (E/F applied by the EVSE, T_step_EF, nominal duty cycle)",
        )
    )
    add(
        Case(
            "TC_SECC_AC_VTB_CmSlacParm_002",
            "AC: without CM_SLAC_PARM.REQ, after TT_EVSE_SLAC_init the EVSE goes E/F for "
            "T_step_EF and back to 5 %, C_sequ_retry times, then 100 % (oscillator off)",
            f"{_DUTY} (the fallback sequence is the EVSE's CP output)",
        )
    )
    add(
        Case(
            "TC_SECC_AC_VTB_CmSlacParm_003",
            "AC, starting with 5 %: the EVSE applies E/F and a nominal duty cycle; SLAC "
            "still completes",
            f"{_DUTY} (E/F and the nominal duty cycle)",
        )
    )
    add(
        Case(
            "TC_SECC_AC_VTB_CmSlacParm_004",
            "AC: after the proximity pilot and state B, the EVSE signals a nominal duty "
            "cycle; SLAC completes",
            f"{_DUTY} (the nominal duty cycle within T_conn_max_comm)",
        )
    )

    att = "TC_SECC_CMN_VTB_AttenuationCharacterization_"
    add(
        Case(
            f"{att}001",
            "3 CM_START_ATTEN_CHAR.IND and 10 sounds (each followed by the EVSE modem's "
            "CM_ATTEN_PROFILE.IND): CM_ATTEN_CHAR.IND to the EV within TT_EV_atten_results "
            "(SOURCE_ADDRESS = EV, RunID, SOURCE_ID/RESP_ID zero, 58 groups)",
        )
    )
    add(
        Case(
            f"{att}002",
            "After CM_ATTEN_CHAR.IND the EV starts over (CM_SLAC_PARM.REQ with a new RunID "
            "instead of the RSP): the new run is confirmed within TT_match_response",
        )
    )
    add(Case(f"{att}003", "9 of 10 sounds: CM_ATTEN_CHAR.IND all the same"))
    add(
        Case(
            f"{att}004",
            "No CM_ATTEN_CHAR.RSP: the IND is resent C_EV_match_retry (2) times, each within "
            "TT_match_response (+0.25 s), then no more; a later RSP and CM_SLAC_MATCH.REQ get "
            "no CNF",
        )
    )
    rsp = (
        "is ignored: the IND is resent twice, then no more; a valid RSP and "
        "CM_SLAC_MATCH.REQ after that get no CNF"
    )
    add(Case(f"{att}005", f"CM_ATTEN_CHAR.RSP with APPLICATION_TYPE 0xFF {rsp}"))
    add(Case(f"{att}006", f"CM_ATTEN_CHAR.RSP with SECURITY_TYPE 0xFF {rsp}"))
    add(Case(f"{att}007", f"CM_ATTEN_CHAR.RSP with SOURCE_ADDRESS 00:00:00:00:00:00 {rsp}"))
    add(Case(f"{att}008", f"CM_ATTEN_CHAR.RSP with another RunID {rsp}"))
    add(Case(f"{att}009", f"CM_ATTEN_CHAR.RSP with SOURCE_ID 00..01 {rsp}"))
    add(Case(f"{att}010", f"CM_ATTEN_CHAR.RSP with RESP_ID 00..01 {rsp}"))
    add(Case(f"{att}011", f"CM_ATTEN_CHAR.RSP with Result 0xFF {rsp}"))
    add(
        Case(
            f"{att}012",
            "CM_START_ATTEN_CHAR.IND only after TT_match_sequence expired: no "
            "CM_ATTEN_CHAR.IND within TT_EV_atten_results",
        )
    )
    start = "then valid sounds: no CM_ATTEN_CHAR.IND within TT_EV_atten_results"
    add(Case(f"{att}013", f"CM_START_ATTEN_CHAR.IND with APPLICATION_TYPE 0xFF, {start}"))
    add(Case(f"{att}014", f"CM_START_ATTEN_CHAR.IND with SECURITY_TYPE 0xFF, {start}"))
    add(Case(f"{att}015", f"CM_START_ATTEN_CHAR.IND with NUM_SOUNDS 0, {start}"))
    add(Case(f"{att}016", f"CM_START_ATTEN_CHAR.IND with Time_Out 0, {start}"))
    add(Case(f"{att}017", f"CM_START_ATTEN_CHAR.IND with RESP_TYPE 0, {start}"))
    add(Case(f"{att}018", f"CM_START_ATTEN_CHAR.IND with another RunID, {start}"))
    add(Case(f"{att}019", "CP A before sounding: no CM_ATTEN_CHAR.IND"))
    add(
        Case(
            f"{att}020",
            "Two plug-ins, the EV's TX power 10 dB lower the second time (the emulated "
            "modem reports 10 dB more): the second CM_ATTEN_CHAR.IND's mean attenuation is "
            "par_SECC_attenuationDeviation higher",
            seconds=6,
        )
    )

    match = "TC_SECC_CMN_VTB_CmSlacMatch_"
    session = (
        "is ignored (no CNF); a valid REQ after TT_EVSE_match_session (+0.25 s) gets no CNF either"
    )
    odd = {
        1: (
            "CM_SLAC_MATCH.REQ (resent every TT_match_response, up to C_EV_match_retry) gets "
            "CM_SLAC_MATCH.CNF (MVFLength 0x56, PEV/EVSE IDs zero, MACs, RunID, NID, NMK)",
            3.0,
        ),
        3: (
            "The EV repeats CM_SLAC_MATCH.REQ after TT_match_response: the CNF is retransmitted",
            3,
        ),
        5: ("CM_SLAC_MATCH.REQ only after TT_EVSE_match_session (+0.25 s): no CNF", 14),
        7: (f"CM_SLAC_MATCH.REQ with APPLICATION_TYPE 0xFF {session}", 14),
        9: (f"CM_SLAC_MATCH.REQ with SECURITY_TYPE 0xFF {session}", 14),
        11: (f"CM_SLAC_MATCH.REQ with MVFLength 0 {session}", 14),
        13: (f"CM_SLAC_MATCH.REQ with PEV_ID 00..01 {session}", 14),
        15: (f"CM_SLAC_MATCH.REQ with PEV_MAC 00:00:00:00:00:00 {session}", 14),
        17: (f"CM_SLAC_MATCH.REQ with EVSE_ID 00..01 {session}", 14),
        19: (f"CM_SLAC_MATCH.REQ with EVSE_MAC 00:00:00:00:00:00 {session}", 14),
        21: (f"CM_SLAC_MATCH.REQ with another RunID {session}", 14),
        23: ("CP A, then a valid CM_SLAC_MATCH.REQ: no CNF", 3),
    }
    for n in range(1, 25):
        if n % 2:
            text, seconds = odd[n]
            add(Case(f"{match}{n:03d}", text, seconds=seconds))
        else:
            text = odd[n - 1][0]
            add(Case(f"{match}{n:03d}", f"As _{n - 1:03d}, after CM_VALIDATE", _EVSE_VALIDATES))

    val = "TC_SECC_CMN_VTB_CmValidate_"
    add(Case(f"{val}001", "Validation: B-C-B toggles counted, CNF success", _EVSE_VALIDATES))
    add(Case(f"{val}002", "Step 1 repeated: the step 1 CNF is repeated", _EVSE_VALIDATES))
    add(
        Case(
            f"{val}003",
            "Step 1 CNF repeated at most C_EV_match_retry times, then the toggles get no CNF",
            _EVSE_VALIDATES,
        )
    )
    add(
        Case(
            f"{val}004",
            "Step 2 with SignalType 0xFF is not accepted; the toggles after it get no CNF",
            _EVSE_VALIDATES,
        )
    )
    step2 = "Step 1 answered; a step 2 CM_VALIDATE.REQ with Result"
    add(Case(f"{val}005", f"{step2} 'not ready' (invalid in a REQ) gets no CNF"))
    add(Case(f"{val}006", f"{step2} 'success' (invalid in a REQ) gets no CNF"))
    add(Case(f"{val}007", f"{step2} 'failure' (invalid in a REQ) gets no CNF"))
    add(Case(f"{val}008", f"{step2} 'not required' (invalid in a REQ) gets no CNF"))
    add(
        Case(
            f"{val}009",
            "Four EVs: one validates, another's CM_VALIDATE.REQ gets 'not ready' (busy)",
            _EVSE_VALIDATES,
        )
    )
    not_required = SECC_PIXIT.ArchitectureValidationNotRequired
    add(
        Case(
            f"{val}010",
            "An EVSE that cannot validate answers step 1 with Result 'failure' "
            "(PIXIT_SECC_CMN_ArchitectureValidationNotRequired = false)",
            "the EVSE declares PIXIT_SECC_CMN_ArchitectureValidationNotRequired = true "
            "(it answers 'not required': _012 applies)"
            if not_required
            else None,
            by_pixit=True,
        )
    )
    add(
        Case(
            f"{val}011",
            "Step 1 'not required', then step 2 with B-C-B toggles: CNF success with the toggle "
            "count",
            "needs the EVSE to count B-C-B toggles on a real control pilot after answering "
            "'not required'",
        )
    )
    add(
        Case(
            f"{val}012",
            "Step 1 answered 'not required' (PIXIT_SECC_CMN_ArchitectureValidationNotRequired = "
            "true), then CM_SLAC_MATCH.REQ gets its CNF",
            None
            if not_required
            else "the EVSE declares PIXIT_SECC_CMN_ArchitectureValidationNotRequired = false "
            "(it answers 'failure': _010 applies)",
            by_pixit=True,
        )
    )
    add(Case(f"{val}013", "CP A, then CM_VALIDATE.REQ: no CNF"))

    amp = "TC_SECC_CMN_VTB_CmAmpMap_"
    add(
        Case(
            f"{amp}001",
            "After the link is up, CM_AMP_MAP.REQ (AMLEN 917) gets CM_AMP_MAP.CNF ResType 0 "
            "(the catalogue then measures the EVSE modem's TX power limitation: not done, it "
            "needs a spectrum measurement)",
            seconds=4,
        )
    )
    initiates = (
        "the SUT must send CM_AMP_MAP.REQ itself (PICS: the SUT initiates the amplitude map "
        "exchange); this EVSE never does"
    )
    add(Case(f"{amp}002", "The EVSE sends CM_AMP_MAP.REQ within TT_amp_map_exchange", initiates))
    add(Case(f"{amp}003", "The EVSE repeats an unanswered CM_AMP_MAP.REQ", initiates))
    add(Case(f"{amp}004", "The EVSE repeats its CM_AMP_MAP.REQ after CNF 0xFF", initiates))
    add(Case(f"{amp}005", "CM_AMP_MAP.REQ with AMLEN 0 (data following) gets no CNF", seconds=4))
    add(Case(f"{amp}006", "A repeated CM_AMP_MAP.REQ gets a CNF again", seconds=4))
    add(Case(f"{amp}007", "Three CM_AMP_MAP.REQ at once get three CNFs", seconds=4))
    add(
        Case(
            f"{amp}008",
            "After the amplitude map, ISO 15118-2 SECC discovery (SDP) works",
            "needs the SUT's ISO 15118-2 SDP server: outside SLAC",
        )
    )
    return c


def _evcc() -> list[Case]:
    c: list[Case] = []
    add = c.append
    parm = "TC_EVCC_CMN_VTB_CmSlacParm_"
    add(
        Case(
            f"{parm}001",
            "After plug-in (5 %), the EV sends CM_SLAC_PARM.REQ within TT_EVSE_SLAC_init",
        )
    )
    add(
        Case(
            f"{parm}002",
            "No CNF: CM_SLAC_PARM.REQ repeated C_EV_match_retry (2) times, each within "
            "TT_match_sequence, then silence for TT_match_response + 0.5 s",
        )
    )
    cnf = (
        "is ignored: no CM_START_ATTEN_CHAR.IND; CM_SLAC_PARM.REQ repeated twice, then "
        "silence for TT_match_response + 0.5 s"
    )
    add(Case(f"{parm}003", f"CM_SLAC_PARM.CNF with M-SOUND_TARGET 00:00:00:00:00:00 {cnf}"))
    add(Case(f"{parm}004", f"CM_SLAC_PARM.CNF with Time_Out 0 {cnf}"))
    add(Case(f"{parm}005", f"CM_SLAC_PARM.CNF with RESP_TYPE 0 {cnf}"))
    add(Case(f"{parm}006", f"CM_SLAC_PARM.CNF with APPLICATION_TYPE 0xFF {cnf}"))
    add(Case(f"{parm}007", f"CM_SLAC_PARM.CNF with SECURITY_TYPE 0xFF {cnf}"))
    add(Case(f"{parm}008", f"CM_SLAC_PARM.CNF with another RunID {cnf}"))
    add(
        Case(
            f"{parm}009",
            "EV-side messages sent to the EV (CM_SLAC_PARM.REQ, START_ATTEN_CHAR, MNBC_SOUND, "
            "ATTEN_CHAR.RSP, VALIDATE.REQ, SLAC_MATCH.REQ) get no answer within "
            "TT_EV_atten_results",
        )
    )
    add(
        Case(
            f"{parm}010",
            "No CNF at all: after each failed attempt a new one within TT_matching_rate "
            "(+0.25 s) while TT_matching_repetition (10 s) runs, none after it",
            seconds=14,
        )
    )
    add(Case(f"{parm}011", f"CM_SLAC_PARM.CNF with FORWARDING_STA 00:00:00:00:00:00 {cnf}"))
    add(Case(f"{parm}012", "As _001, the CP at -12 V (state F) before plug-in", _EV_NO_CP))
    add(Case(f"{parm}013", "As _001 with 100 % duty cycle (no 5 %)", _EV_NO_CP))
    add(Case(f"{parm}014", "As _001, -12 V before plug-in and 100 % duty cycle", _EV_NO_CP))
    add(
        Case(
            "TC_EVCC_AC_VTB_CmSlacParm_001",
            "AC: as _001 with the 32 A nominal duty cycle",
            _EV_NO_CP,
        )
    )
    add(
        Case(
            "TC_EVCC_AC_VTB_CmSlacParm_002",
            "AC: nominal duty cycle, -12 V before plug-in",
            _EV_NO_CP,
        )
    )

    att = "TC_EVCC_CMN_VTB_AttenuationCharacterization_"
    add(
        Case(
            f"{att}001",
            "After CM_SLAC_PARM.CNF: 3 CM_START_ATTEN_CHAR.IND within TT_match_sequence, sounds "
            "counting down within TT_EVSE_match_MNBC; CM_ATTEN_CHAR.IND answered with RSP "
            "within TT_match_response",
        )
    )
    add(
        Case(
            f"{att}002",
            "Two EVSEs confirm and send CM_ATTEN_CHAR.IND: the EV answers both with "
            "CM_ATTEN_CHAR.RSP",
        )
    )
    add(Case(f"{att}003", "CM_ATTEN_CHAR.IND after TT_EV_atten_results: no RSP"))
    ind = "gets no RSP; a valid one after TT_EV_atten_results gets none either"
    add(Case(f"{att}004", f"CM_ATTEN_CHAR.IND with APPLICATION_TYPE 0xFF {ind}"))
    add(Case(f"{att}005", f"CM_ATTEN_CHAR.IND with SECURITY_TYPE 0xFF {ind}"))
    add(Case(f"{att}006", f"CM_ATTEN_CHAR.IND with SOURCE_ADDRESS 00:00:00:00:00:00 {ind}"))
    add(Case(f"{att}007", f"CM_ATTEN_CHAR.IND with another RunID {ind}"))
    add(Case(f"{att}008", f"CM_ATTEN_CHAR.IND with SOURCE_ID 00..01 {ind}"))
    add(Case(f"{att}009", f"CM_ATTEN_CHAR.IND with RESP_ID 00..01 {ind}"))
    add(Case(f"{att}010", f"CM_ATTEN_CHAR.IND with NumGroups 0 (58 values following) {ind}"))
    add(Case(f"{att}011", f"CM_ATTEN_CHAR.IND with NUM_SOUNDS 0 {ind}"))
    add(
        Case(
            f"{att}012",
            "CP E (oscillator off) before the CNF: no CM_START_ATTEN_CHAR.IND",
            "the EV must react to CP state E; `slac ev` has no control-pilot input",
        )
    )
    add(
        Case(
            f"{att}013",
            "CP F (-12 V) before the CNF: no CM_START_ATTEN_CHAR.IND",
            "the EV must react to CP state F; `slac ev` has no control-pilot input",
        )
    )
    add(
        Case(
            "TC_EVCC_AC_VTB_AttenuationCharacterization_001",
            "AC: duty cycle 10 % during sounding does not disturb the match",
            _EV_NO_CP,
        )
    )
    add(
        Case(
            "TC_EVCC_AC_VTB_AttenuationCharacterization_002",
            "AC: duty cycle 96 % during sounding does not disturb the match",
            _EV_NO_CP,
        )
    )

    match = "TC_EVCC_CMN_VTB_CmSlacMatch_"
    add(
        Case(
            f"{match}001",
            "After CM_VALIDATE: CM_SLAC_MATCH.REQ within TT_EVSE_match_session",
            "its precondition is the EV's validation (f_EVCC_CMN_PR_CmValidate_001); with "
            "PIXIT_EVCC_CMN_CmValidate = none it is _002",
        )
    )
    add(
        Case(
            f"{match}002",
            "After CM_ATTEN_CHAR.RSP: CM_SLAC_MATCH.REQ (MVFLength 0x3E, IDs zero, MACs, RunID) "
            "within TT_EVSE_match_session",
        )
    )
    add(
        Case(
            f"{match}003",
            "No CNF: CM_SLAC_MATCH.REQ repeated C_EV_match_retry times, each within "
            "TT_match_response (+0.25 s), then no more",
        )
    )
    mcnf = (
        "is ignored: the REQ is repeated twice, then no more (and the EV's modem never gets "
        "its NMK)"
    )
    add(Case(f"{match}004", f"CM_SLAC_MATCH.CNF with APPLICATION_TYPE 0xFF {mcnf}"))
    add(Case(f"{match}005", f"CM_SLAC_MATCH.CNF with SECURITY_TYPE 0xFF {mcnf}"))
    add(Case(f"{match}006", f"CM_SLAC_MATCH.CNF with MVFLength 0 {mcnf}"))
    add(Case(f"{match}007", f"CM_SLAC_MATCH.CNF with PEV_ID 00..01 {mcnf}"))
    add(Case(f"{match}008", f"CM_SLAC_MATCH.CNF with PEV_MAC 00:00:00:00:00:00 {mcnf}"))
    add(Case(f"{match}009", f"CM_SLAC_MATCH.CNF with EVSE_ID 00..01 {mcnf}"))
    add(Case(f"{match}010", f"CM_SLAC_MATCH.CNF with EVSE_MAC 00:00:00:00:00:00 {mcnf}"))
    add(Case(f"{match}011", f"CM_SLAC_MATCH.CNF with another RunID {mcnf}"))
    add(
        Case(
            f"{match}012",
            "A second EVSE confirms the parameters but sends no CM_ATTEN_CHAR.IND: the EV "
            "still sends CM_SLAC_MATCH.REQ to the EVSE that did",
            seconds=4,
        )
    )
    add(
        Case(
            "TC_EVCC_CMN_VTB_CmValidateOrCmSlacMatch_001",
            "After CM_ATTEN_CHAR.RSP the EV goes on with CM_VALIDATE.REQ or CM_SLAC_MATCH.REQ "
            "within TT_EVSE_match_session",
        )
    )

    val = "TC_EVCC_CMN_VTB_CmValidate_"
    validate = {
        1: "Validation: step 1 'ready', step 2 with the toggle window, B-C-B toggles, CNF "
        "success with the toggle count",
        2: "As _001, the duty cycle changed to 10 % after step 1",
        3: "As _001, the duty cycle changed to 96 % after step 1",
        4: "Step 1 CM_VALIDATE.REQ unanswered: repeated C_EV_match_retry times, then no more",
        5: "A step 1 CNF with SignalType 0xFF is ignored: the REQ is repeated, then no more",
        6: "A step 1 CNF with ToggleNum 0xFF is ignored: the REQ is repeated, then no more",
        7: "Two EVSEs, one does not answer CM_VALIDATE.REQ: the EV validates with the other",
        8: "Two EVSEs, one answers step 1 with 'success': the EV goes on with the other",
        9: "Two EVSEs, one detects no toggles: the EV goes on with the other",
        10: "Two EVSEs, one answers step 2 with 'failure': the EV goes on with the other",
        11: "Two EVSEs, one answers step 2 with 'not ready': the EV goes on with the other",
        12: "Two EVSEs, one answers step 2 with 'not required': the EV goes on with the other",
        13: "Two EVSEs, one answers step 1 with 'failure': the EV goes on with the other",
        14: "Step 1 answered 'failure': no step 2 with this EVSE",
        15: "Step 1 answered 'failure', then CM_SLAC_MATCH.REQ (fallback: continue)",
        16: "Step 1 answered 'not required': the EV still sends step 2",
        17: "Step 1 answered 'not required', then CM_SLAC_MATCH.REQ",
        18: "Step 1 answered 'not ready': step 1 again after PIXIT_EVCC_CMN_ValidationRetry",
        19: "Two EVSEs, one answers step 1 with 'not ready': the EV goes on with the other",
        20: "CP E (oscillator off) after step 1: no step 2",
        21: "CP F (-12 V) after step 1: no step 2",
    }
    for n, text in validate.items():
        add(Case(f"{val}{n:03d}", text, _EV_VALIDATES))

    link = "TC_EVCC_CMN_VTB_PLCLinkStatus_"
    add(
        Case(
            f"{link}001",
            "After a valid CM_SLAC_MATCH.CNF the EV's modem joins with its NMK and NID "
            "within TT_match_join (the emulated EV modem gets that CM_SET_KEY.REQ)",
        )
    )
    add(
        Case(
            f"{link}002",
            "CP E after the link is up: the EV leaves within TP_match_leave",
            _EV_AFTER_JOIN,
        )
    )
    add(Case(f"{link}003", "CP E (oscillator off) before CM_SLAC_MATCH.CNF: no link", _EV_NO_CP))
    add(Case(f"{link}004", "CP F (-12 V) before CM_SLAC_MATCH.CNF: no link", _EV_NO_CP))
    add(Case(f"{link}005", "5 % only 7.5 s after state B: the match still works", _EV_NO_CP))
    add(Case(f"{link}006", "Connection loss, E, then 5 %: a new SLAC (state E)", _EV_AFTER_JOIN))
    add(Case(f"{link}007", "Connection loss, F, then 5 %: a new SLAC (state F)", _EV_AFTER_JOIN))
    add(Case(f"{link}008", "Connection loss: the EV leaves the logical network", _EV_AFTER_JOIN))
    ac = "TC_EVCC_AC_VTB_PLCLinkStatus_"
    ac_cases = {
        1: "Wake-up after a pause (sleeping phase): link and SDP again",
        2: "Wake-up by B-C toggle after a pause: link and SDP again",
        3: "Connection loss, E, nominal duty: a new SLAC",
        4: "Connection loss: the EV restarts matching after T_conn_resetup",
        5: "Connection loss, E within T_conn_resetup: a new SLAC",
        6: "After SessionStop (terminate): the EV leaves within TP_match_leave",
        7: "Connection loss, F, nominal duty: a new SLAC",
        8: "Connection loss, F within T_conn_resetup: a new SLAC",
        9: "Pause with Pmax 0 W schedule: wake-up, link and SDP again",
        10: "Pause with Pmax 0 W schedule (second variant): wake-up, link and SDP again",
    }
    for n, text in ac_cases.items():
        reason = _EV_AFTER_JOIN if n in (3, 4, 5, 7, 8) else _EV_ISO2
        add(Case(f"{ac}{n:03d}", f"AC: {text}", reason))
    dc = "TC_EVCC_DC_VTB_PLCLinkStatus_"
    dc_cases = {
        1: "Wake-up after WeldingDetection/SessionStop (pause): link and SDP again",
        2: "Wake-up by B-C toggle after a pause: link and SDP again",
        3: "After SessionStop (terminate): the EV leaves within TP_match_leave",
        4: "Pause with Pmax 0 W schedule: wake-up, link and SDP again",
        5: "Pause with Pmax 0 W schedule (second variant): wake-up, link and SDP again",
    }
    for n, text in dc_cases.items():
        add(Case(f"{dc}{n:03d}", f"DC: {text}", _EV_ISO2))

    amp = "TC_EVCC_CMN_VTB_CmAmpMap_"
    amp_cases = {
        1: "CM_AMP_MAP.REQ gets CNF ResType 0 (TX power limited)",
        2: "The EV sends CM_AMP_MAP.REQ within TT_amp_map_exchange",
        3: "The EV repeats an unanswered CM_AMP_MAP.REQ",
        4: "The EV repeats its CM_AMP_MAP.REQ after CNF 0xFF",
        5: "CM_AMP_MAP.REQ with AMLEN 0 gets no CNF",
        6: "A repeated CM_AMP_MAP.REQ gets a CNF again",
        7: "Three CM_AMP_MAP.REQ at once get three CNFs",
        8: "After the amplitude map, SDP works",
    }
    for n, text in amp_cases.items():
        add(
            Case(
                f"{amp}{n:03d}",
                text,
                "`slac ev` does not take part in the amplitude map exchange "
                "(PIXIT_CMN_CMN_CmAmpMap = false): it ends once its modem has the EVSE's key",
            )
        )
    return c


SECC_CASES = _secc()
EVCC_CASES = _evcc()
CASES: dict[str, Case] = {case.tc: case for case in SECC_CASES + EVCC_CASES}
