"""ISO 15118-5 SECC conformance: the catalogue's SLAC cases against the real EVSE side.

One test per case that applies without CP measurement hardware (see ``catalogue.py`` and
docs/conformance.md), named by its TC id. The tester plays the EV and the EVSE's modem over a
veth pair in its own namespace; the SUT is ``SlacEvseSession`` with a
``SlacSessionController`` in this process. Each test reads as the catalogue's test case:
the precondition (``pr_*``), then the test behaviour (``tb_*``) with the same numbers.
"""

from __future__ import annotations

import pytest

from slac.messages import StartAttenCharInd

from .catalogue import CASES
from .testsystem import templates as tpl
from .testsystem.secc import (
    EV_MAC,
    VALIDATE_FAILURE,
    VALIDATE_NOT_READY,
    VALIDATE_NOT_REQUIRED,
    VALIDATE_SUCCESS,
    SeccTester,
)
from .testsystem.timers import T
from .testsystem.verdict import FAIL

pytestmark = pytest.mark.root


def _selected(tc: str) -> pytest.MarkDecorator:
    """Cases the SUT's declared PIXIT deselects (the other of a pair) skip with the reason."""
    case = CASES[tc]
    return pytest.mark.skipif(not case.applies, reason=f"{tc}: {case.not_applicable}")


# --- CM_SLAC_PARM -----------------------------------------------------------------------------


async def test_TC_SECC_CMN_VTB_CmSlacParm_001(secc: SeccTester) -> None:
    """CP B: CM_SLAC_PARM.REQ gets a CNF with the ISO values within TT_matching_repetition."""
    await secc.pr_state_b()
    await secc.tb_cmslacparm_001(FAIL)


async def test_TC_SECC_CMN_VTB_CmSlacParm_002(secc: SeccTester) -> None:
    """Plugged in with CP C: CM_SLAC_PARM.REQ gets a CNF with the ISO values."""
    await secc.pr_state_b("C")
    await secc.tb_cmslacparm_001(FAIL)


async def test_TC_SECC_CMN_VTB_CmSlacParm_003(secc: SeccTester) -> None:
    """Plugged in with CP D: CM_SLAC_PARM.REQ gets a CNF with the ISO values."""
    await secc.pr_state_b("D")
    await secc.tb_cmslacparm_001(FAIL)


async def test_TC_SECC_CMN_VTB_CmSlacParm_004(secc: SeccTester) -> None:
    """No CM_SLAC_PARM.REQ: the EVSE sends nothing for TT_EVSE_SLAC_init_min, and a valid
    REQ TT_EVSE_SLAC_init_max after plug-in gets no CNF (matching ended with the timer)."""
    await secc.pr_state_b()
    await secc.tb_cmslacparm_002(None, send_invalid=False)


async def test_TC_SECC_CMN_VTB_CmSlacParm_005(secc: SeccTester) -> None:
    """A CM_SLAC_PARM.REQ with APPLICATION_TYPE 0xFF is ignored; after TT_EVSE_SLAC_init_max
    a valid REQ gets no CNF."""
    await secc.pr_state_b()
    await secc.tb_cmslacparm_002((tpl.INVALID, 0), send_invalid=True)


async def test_TC_SECC_CMN_VTB_CmSlacParm_006(secc: SeccTester) -> None:
    """A CM_SLAC_PARM.REQ with SECURITY_TYPE 0xFF is ignored; after TT_EVSE_SLAC_init_max a
    valid REQ gets no CNF."""
    await secc.pr_state_b()
    await secc.tb_cmslacparm_002((0, tpl.INVALID), send_invalid=True)


async def test_TC_SECC_CMN_VTB_CmSlacParm_007(secc: SeccTester) -> None:
    """Unplugged (CP A) 1 s after plug-in: a valid CM_SLAC_PARM.REQ gets no CNF."""
    await secc.pr_state_b()
    await secc.tb_cmslacparm_003()


async def test_TC_SECC_CMN_VTB_CmSlacParm_008(secc: SeccTester) -> None:
    """After par_SECC_waitForPlugin (600 s) unplugged, a plug-in's CM_SLAC_PARM.REQ is
    answered within T_conn_max_comm."""
    await secc.pr_state_b(sleep_after_plug_out=True)
    await secc.tb_cmslacparm_004()


# --- attenuation characterization -----------------------------------------------------------


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_001(secc: SeccTester) -> None:
    """Sounding (3 START_ATTEN_CHAR, 10 sounds with their profiles): CM_ATTEN_CHAR.IND to the
    EV within TT_EV_atten_results, as the template."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_001(FAIL)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_002(secc: SeccTester) -> None:
    """After CM_ATTEN_CHAR.IND the EV starts over with a new RunID: its CM_SLAC_PARM.REQ is
    confirmed."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_002()


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_003(secc: SeccTester) -> None:
    """One sound fewer than announced: CM_ATTEN_CHAR.IND all the same."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_003(1)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_004(secc: SeccTester) -> None:
    """No CM_ATTEN_CHAR.RSP: the IND is resent C_EV_match_retry times within
    TT_match_response, then no more; a late RSP and CM_SLAC_MATCH.REQ get no CNF."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_resends(None)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_005(secc: SeccTester) -> None:
    """CM_ATTEN_CHAR.RSP with APPLICATION_TYPE 0xFF is ignored (issue 12, item 1)."""
    await secc.pr_cmslacparm()
    rsp = tpl.atten_char_rsp(EV_MAC, secc.run_id, application_type=tpl.INVALID)
    await secc.tb_attenuation_characterization_resends(rsp)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_006(secc: SeccTester) -> None:
    """CM_ATTEN_CHAR.RSP with SECURITY_TYPE 0xFF is ignored (issue 12, item 1)."""
    await secc.pr_cmslacparm()
    rsp = tpl.atten_char_rsp(EV_MAC, secc.run_id, security_type=tpl.INVALID)
    await secc.tb_attenuation_characterization_resends(rsp)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_007(secc: SeccTester) -> None:
    """CM_ATTEN_CHAR.RSP with SOURCE_ADDRESS 00:00:00:00:00:00 is ignored (issue 12, item 1)."""
    await secc.pr_cmslacparm()
    rsp = tpl.atten_char_rsp(tpl.ZERO_MAC, secc.run_id)
    await secc.tb_attenuation_characterization_resends(rsp)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_008(secc: SeccTester) -> None:
    """CM_ATTEN_CHAR.RSP with another RunID is ignored (issue 12, item 1)."""
    await secc.pr_cmslacparm()
    other = _other_run_id(secc.run_id)
    await secc.tb_attenuation_characterization_resends(tpl.atten_char_rsp(EV_MAC, other))


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_009(secc: SeccTester) -> None:
    """CM_ATTEN_CHAR.RSP with SOURCE_ID 00..01 is ignored (issue 12, item 1)."""
    await secc.pr_cmslacparm()
    rsp = tpl.atten_char_rsp(EV_MAC, secc.run_id, source_id=tpl.ONE_ID)
    await secc.tb_attenuation_characterization_resends(rsp)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_010(secc: SeccTester) -> None:
    """CM_ATTEN_CHAR.RSP with RESP_ID 00..01 is ignored (issue 12, item 1)."""
    await secc.pr_cmslacparm()
    rsp = tpl.atten_char_rsp(EV_MAC, secc.run_id, resp_id=tpl.ONE_ID)
    await secc.tb_attenuation_characterization_resends(rsp)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_011(secc: SeccTester) -> None:
    """CM_ATTEN_CHAR.RSP with Result 0xFF is ignored (issue 12, item 1)."""
    await secc.pr_cmslacparm()
    rsp = tpl.atten_char_rsp(EV_MAC, secc.run_id, result=tpl.INVALID)
    await secc.tb_attenuation_characterization_resends(rsp)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_012(secc: SeccTester) -> None:
    """CM_START_ATTEN_CHAR.IND only after TT_match_sequence: no CM_ATTEN_CHAR.IND."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_006()


def _start(secc: SeccTester, **changes: int) -> StartAttenCharInd:
    values: dict[str, int] = {"num_sounds": secc.num_sounds, "time_out": secc.time_out}
    values.update(changes)
    return tpl.start_atten_char(EV_MAC, secc.run_id, **values)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_013(secc: SeccTester) -> None:
    """CM_START_ATTEN_CHAR.IND with APPLICATION_TYPE 0xFF starts nothing (issue 12, item 2)."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_007(_start(secc, application_type=tpl.INVALID))


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_014(secc: SeccTester) -> None:
    """CM_START_ATTEN_CHAR.IND with SECURITY_TYPE 0xFF starts nothing (issue 12, item 2)."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_007(_start(secc, security_type=tpl.INVALID))


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_015(secc: SeccTester) -> None:
    """CM_START_ATTEN_CHAR.IND with NUM_SOUNDS 0 starts nothing (issue 12, item 2)."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_007(_start(secc, num_sounds=0))


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_016(secc: SeccTester) -> None:
    """CM_START_ATTEN_CHAR.IND with Time_Out 0 starts nothing (issue 12, item 2)."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_007(_start(secc, time_out=0))


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_017(secc: SeccTester) -> None:
    """CM_START_ATTEN_CHAR.IND with RESP_TYPE 0 starts nothing (issue 12, item 2)."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_007(_start(secc, resp_type=0))


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_018(secc: SeccTester) -> None:
    """CM_START_ATTEN_CHAR.IND with another RunID starts nothing (issue 12, item 2)."""
    await secc.pr_cmslacparm()
    start = tpl.start_atten_char(
        EV_MAC,
        _other_run_id(secc.run_id),
        num_sounds=secc.num_sounds,
        time_out=secc.time_out,
    )
    await secc.tb_attenuation_characterization_007(start)


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_019(secc: SeccTester) -> None:
    """Unplugged (CP A) before sounding: no CM_ATTEN_CHAR.IND."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_008()


async def test_TC_SECC_CMN_VTB_AttenuationCharacterization_020(secc: SeccTester) -> None:
    """Two plug-ins, the second with the EV's TX power 10 dB lower: the attenuation the
    EVSE reports rises by at least par_SECC_attenuationDeviation (it reports what its modem
    measured in this run)."""
    await secc.pr_cmslacparm()
    await secc.tb_attenuation_characterization_001(FAIL)
    first = secc.attenuation_list
    await secc.reset()
    await secc.tb_cmslacparm_001(FAIL)
    await secc.tb_attenuation_characterization_001(FAIL)
    second = secc.attenuation_list
    mean1, mean2 = sum(first) // len(first), sum(second) // len(second)
    if mean2 - mean1 < T.SECC_attenuationDeviation:
        secc.verdict.fail(
            "Invalid attenuation values were detected. The deviation was smaller than "
            f"'par_SECC_attenuationDeviation' ({mean1} dB, then {mean2} dB after the EV's TX "
            f"power went {T.SECC_txPowerStep} dB down; at least "
            f"{T.SECC_attenuationDeviation:g} dB more expected)."
        )


# --- CM_SLAC_MATCH ----------------------------------------------------------------------------


async def test_TC_SECC_CMN_VTB_CmSlacMatch_001(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ gets CM_SLAC_MATCH.CNF as the template (NID and NMK)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_001(FAIL)


async def test_TC_SECC_CMN_VTB_CmSlacMatch_003(secc: SeccTester) -> None:
    """A repeated CM_SLAC_MATCH.REQ gets the CNF again."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_002()


async def test_TC_SECC_CMN_VTB_CmSlacMatch_005(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ after TT_EVSE_match_session: no CNF."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_003()


async def test_TC_SECC_CMN_VTB_CmSlacMatch_007(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ with APPLICATION_TYPE 0xFF is ignored (issue 12, item 3)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_004(secc.invalid_match_req(application_type=tpl.INVALID))


async def test_TC_SECC_CMN_VTB_CmSlacMatch_009(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ with SECURITY_TYPE 0xFF is ignored (issue 12, item 3)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_004(secc.invalid_match_req(security_type=tpl.INVALID))


async def test_TC_SECC_CMN_VTB_CmSlacMatch_011(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ with MVFLength 0 is ignored (issue 12, item 3)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_004(secc.invalid_match_req(mvf_length=0))


async def test_TC_SECC_CMN_VTB_CmSlacMatch_013(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ with PEV_ID 00..01 is ignored (issue 12, item 3)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_004(secc.invalid_match_req(pev_id=tpl.ONE_ID))


async def test_TC_SECC_CMN_VTB_CmSlacMatch_015(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ with PEV_MAC 00:00:00:00:00:00 is ignored (issue 12, item 3)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_004(secc.invalid_match_req(pev_mac=tpl.ZERO_MAC))


async def test_TC_SECC_CMN_VTB_CmSlacMatch_017(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ with EVSE_ID 00..01 is ignored (issue 12, item 3)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_004(secc.invalid_match_req(evse_id=tpl.ONE_ID))


async def test_TC_SECC_CMN_VTB_CmSlacMatch_019(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ with EVSE_MAC 00:00:00:00:00:00 is ignored (issue 12, item 3)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_004(secc.invalid_match_req(evse_mac=tpl.ZERO_MAC))


async def test_TC_SECC_CMN_VTB_CmSlacMatch_021(secc: SeccTester) -> None:
    """CM_SLAC_MATCH.REQ with another RunID is ignored (issue 12, item 3)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_004(secc.invalid_match_req(run_id=_other_run_id(secc.run_id)))


async def test_TC_SECC_CMN_VTB_CmSlacMatch_023(secc: SeccTester) -> None:
    """Unplugged (CP A), then a valid CM_SLAC_MATCH.REQ: no CNF."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmslacmatch_005()


# --- CM_VALIDATE ------------------------------------------------------------------------------

#: TP_EV_vald_toggle in the REQ's Timer field, as the catalogue writes it (x10 - 1)
_TOGGLE_TIMER = int(T.TP_EV_vald_toggle * 10.0 - 1.0)


async def test_TC_SECC_CMN_VTB_CmValidate_005(secc: SeccTester) -> None:
    """After step 1, a step 2 CM_VALIDATE.REQ with Result 'not ready' (a REQ must say
    'ready') gets no CNF (issue 12, item 9)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmvalidate_005(tpl.validate_req(_TOGGLE_TIMER, VALIDATE_NOT_READY))


async def test_TC_SECC_CMN_VTB_CmValidate_006(secc: SeccTester) -> None:
    """After step 1, a step 2 CM_VALIDATE.REQ with Result 'success' gets no CNF."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmvalidate_005(tpl.validate_req(_TOGGLE_TIMER, VALIDATE_SUCCESS))


async def test_TC_SECC_CMN_VTB_CmValidate_007(secc: SeccTester) -> None:
    """After step 1, a step 2 CM_VALIDATE.REQ with Result 'failure' gets no CNF."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmvalidate_005(tpl.validate_req(_TOGGLE_TIMER, VALIDATE_FAILURE))


async def test_TC_SECC_CMN_VTB_CmValidate_008(secc: SeccTester) -> None:
    """After step 1, a step 2 CM_VALIDATE.REQ with Result 'not required' gets no CNF."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmvalidate_005(tpl.validate_req(_TOGGLE_TIMER, VALIDATE_NOT_REQUIRED))


@_selected("TC_SECC_CMN_VTB_CmValidate_010")
async def test_TC_SECC_CMN_VTB_CmValidate_010(secc: SeccTester) -> None:
    """An EVSE that cannot validate answers step 1 with Result 'failure' (issue 12, item 5;
    selected by PIXIT_SECC_CMN_ArchitectureValidationNotRequired = false)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmvalidate_008(VALIDATE_FAILURE)
    secc.verdict.passed(
        "CM_VALIDATE.CNF message with 'failure' is correct. SUT is not able to perform any "
        "BCB-Toggle."
    )


@_selected("TC_SECC_CMN_VTB_CmValidate_012")
async def test_TC_SECC_CMN_VTB_CmValidate_012(secc: SeccTester) -> None:
    """Step 1 answered 'not required', then CM_SLAC_MATCH.REQ gets its CNF (issue 12, item 5;
    selected by PIXIT_SECC_CMN_ArchitectureValidationNotRequired = true)."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmvalidate_008(VALIDATE_NOT_REQUIRED)
    await secc.tb_cmslacmatch_001(FAIL)


async def test_TC_SECC_CMN_VTB_CmValidate_013(secc: SeccTester) -> None:
    """Unplugged (CP A), then CM_VALIDATE.REQ: no CNF."""
    await secc.pr_attenuation_characterization()
    await secc.tb_cmvalidate_010()


# --- CM_AMP_MAP -------------------------------------------------------------------------------


async def test_TC_SECC_CMN_VTB_CmAmpMap_001(secc: SeccTester) -> None:
    """Matched and linked: CM_AMP_MAP.REQ (AMLEN 917) gets CNF ResType 0. (The catalogue's
    TX power check after it needs a spectrum measurement of the EVSE's modem: not made.)"""
    await secc.pr_plclinkstatus()
    await secc.tb_cmampmap_001(FAIL)


async def test_TC_SECC_CMN_VTB_CmAmpMap_005(secc: SeccTester) -> None:
    """CM_AMP_MAP.REQ with AMLEN 0 (the data still following) gets no CNF, three times."""
    await secc.pr_plclinkstatus()
    await secc.tb_cmampmap_005()


async def test_TC_SECC_CMN_VTB_CmAmpMap_006(secc: SeccTester) -> None:
    """A repeated CM_AMP_MAP.REQ gets a CNF again."""
    await secc.pr_plclinkstatus()
    await secc.tb_cmampmap_006()


async def test_TC_SECC_CMN_VTB_CmAmpMap_007(secc: SeccTester) -> None:
    """Three CM_AMP_MAP.REQ at once get three CNFs."""
    await secc.pr_plclinkstatus()
    await secc.tb_cmampmap_007()


def _other_run_id(run_id: bytes) -> bytes:
    """A RunID that is not ``run_id`` (the catalogue draws a random one and checks)."""
    return bytes(b ^ 0xFF for b in run_id)
