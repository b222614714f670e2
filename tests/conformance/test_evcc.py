"""ISO 15118-5 EVCC conformance: the catalogue's SLAC cases against ``slac ev``.

One test per case that applies without CP measurement hardware (see ``catalogue.py`` and
docs/conformance.md), named by its TC id. The tester plays the EVSE (one or two) and the EV's
modem over a veth pair; the SUT is the ``slac ev`` command in its own namespace. Each test
reads as the catalogue's test case: the precondition (``pr_*``), then the test behaviour
(``tb_*``) with the same numbers.
"""

from __future__ import annotations

import asyncio
from typing import Callable

import pytest

from slac.messages import Message, SlacMatchCnf

from .testsystem import templates as tpl
from .testsystem.evcc import EVSE_MAC, EvccTester
from .testsystem.verdict import FAIL

pytestmark = pytest.mark.root


# --- CM_SLAC_PARM -----------------------------------------------------------------------------


async def test_TC_EVCC_CMN_VTB_CmSlacParm_001(evcc: EvccTester) -> None:
    """After plug-in (5 %) the EV sends CM_SLAC_PARM.REQ (APPLICATION_TYPE 0, SECURITY_TYPE 0)
    within TT_EVSE_SLAC_init."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_001(FAIL)


async def test_TC_EVCC_CMN_VTB_CmSlacParm_002(evcc: EvccTester) -> None:
    """No CNF: CM_SLAC_PARM.REQ is repeated C_EV_match_retry (2) times, each within
    TT_match_sequence, then the EV is silent for TT_match_response + 0.5 s (issue 13,
    item 2)."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_002()


def _invalid_cnf(evcc: EvccTester, **changes: object) -> Callable[[], Message]:
    """md_CMN_CMN_CmSlacParmCnf_002: the valid CNF for the current REQ, one field changed."""

    def build() -> Message:
        values: dict[str, object] = {"forwarding_sta": evcc.sut_mac, "run_id": evcc.run_id}
        values.update(changes)
        return tpl.parm_cnf(**values)  # type: ignore[arg-type]

    return build


async def test_TC_EVCC_CMN_VTB_CmSlacParm_003(evcc: EvccTester) -> None:
    """CM_SLAC_PARM.CNF with M-SOUND_TARGET 00:00:00:00:00:00 is ignored: no sounding, the
    REQ repeated, then silence (issue 13, item 1)."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_003(_invalid_cnf(evcc, msound_target=tpl.ZERO_MAC))


async def test_TC_EVCC_CMN_VTB_CmSlacParm_004(evcc: EvccTester) -> None:
    """CM_SLAC_PARM.CNF with Time_Out 0 is ignored (issue 13, item 1)."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_003(_invalid_cnf(evcc, time_out=0))


async def test_TC_EVCC_CMN_VTB_CmSlacParm_005(evcc: EvccTester) -> None:
    """CM_SLAC_PARM.CNF with RESP_TYPE 0 is ignored (issue 13, item 1)."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_003(_invalid_cnf(evcc, resp_type=0))


async def test_TC_EVCC_CMN_VTB_CmSlacParm_006(evcc: EvccTester) -> None:
    """CM_SLAC_PARM.CNF with APPLICATION_TYPE 0xFF is ignored (issue 13, item 1)."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_003(_invalid_cnf(evcc, application_type=tpl.INVALID))


async def test_TC_EVCC_CMN_VTB_CmSlacParm_007(evcc: EvccTester) -> None:
    """CM_SLAC_PARM.CNF with SECURITY_TYPE 0xFF is ignored (issue 13, item 1)."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_003(_invalid_cnf(evcc, security_type=tpl.INVALID))


async def test_TC_EVCC_CMN_VTB_CmSlacParm_008(evcc: EvccTester) -> None:
    """CM_SLAC_PARM.CNF with another RunID is ignored (issue 13, item 1)."""
    await evcc.pr_duty_cycle()

    def other() -> Message:
        return tpl.parm_cnf(evcc.sut_mac, bytes(b ^ 0xFF for b in evcc.run_id))

    await evcc.tb_cmslacparm_003(other)


async def test_TC_EVCC_CMN_VTB_CmSlacParm_009(evcc: EvccTester) -> None:
    """EV-side messages sent to the EV (PARM.REQ, START_ATTEN_CHAR, MNBC_SOUND, ATTEN_CHAR.RSP,
    VALIDATE.REQ, SLAC_MATCH.REQ) get no answer within TT_EV_atten_results."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_004()


async def test_TC_EVCC_CMN_VTB_CmSlacParm_010(evcc: EvccTester) -> None:
    """No CNF at all: a new matching process follows each failed one within TT_matching_rate
    (+0.25 s) while TT_matching_repetition runs, and none after it (issue 13, item 2)."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_005()


async def test_TC_EVCC_CMN_VTB_CmSlacParm_011(evcc: EvccTester) -> None:
    """CM_SLAC_PARM.CNF with FORWARDING_STA 00:00:00:00:00:00 is ignored (issue 13, item 1)."""
    await evcc.pr_duty_cycle()
    await evcc.tb_cmslacparm_003(_invalid_cnf(evcc, forwarding_sta=tpl.ZERO_MAC))


# --- attenuation characterization -------------------------------------------------------------


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_001(evcc: EvccTester) -> None:
    """After the CNF: 3 CM_START_ATTEN_CHAR.IND within TT_match_sequence, the sounds counting
    down within TT_EVSE_match_MNBC, CM_ATTEN_CHAR.IND answered with a valid RSP."""
    await evcc.pr_cmslacparm()
    await evcc.tb_attenuation_characterization_001(evcc.evse, FAIL)


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_002(evcc: EvccTester) -> None:
    """Two EVSEs confirm and send CM_ATTEN_CHAR.IND: the EV answers both."""
    await evcc.pr_duty_cycle()

    async def main() -> None:
        await evcc.tb_cmslacparm_001(FAIL)
        await evcc.tb_attenuation_characterization_001(evcc.evse, FAIL)

    await _together(main(), evcc.tb_attenuation_characterization_second_evse(with_ind=True))


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_003(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND only after TT_EV_atten_results: no RSP."""
    await evcc.pr_cmslacparm()
    await evcc.tb_attenuation_characterization_004()


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_004(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND with APPLICATION_TYPE 0xFF gets no RSP (issue 13, item 3)."""
    await evcc.pr_cmslacparm()
    invalid = evcc.invalid_atten_char_ind(application_type=tpl.INVALID)
    await evcc.tb_attenuation_characterization_005(invalid)


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_005(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND with SECURITY_TYPE 0xFF gets no RSP (issue 13, item 3)."""
    await evcc.pr_cmslacparm()
    invalid = evcc.invalid_atten_char_ind(security_type=tpl.INVALID)
    await evcc.tb_attenuation_characterization_005(invalid)


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_006(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND with SOURCE_ADDRESS 00:00:00:00:00:00 gets no RSP (issue 13,
    item 3)."""
    await evcc.pr_cmslacparm()
    invalid = evcc.invalid_atten_char_ind(source_address=tpl.ZERO_MAC)
    await evcc.tb_attenuation_characterization_005(invalid)


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_007(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND with another RunID gets no RSP (issue 13, item 3)."""
    await evcc.pr_cmslacparm()
    invalid = evcc.invalid_atten_char_ind(run_id=bytes(b ^ 0xFF for b in evcc.run_id))
    await evcc.tb_attenuation_characterization_005(invalid)


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_008(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND with SOURCE_ID 00..01 gets no RSP (issue 13, item 3)."""
    await evcc.pr_cmslacparm()
    invalid = evcc.invalid_atten_char_ind(source_id=tpl.ONE_ID)
    await evcc.tb_attenuation_characterization_005(invalid)


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_009(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND with RESP_ID 00..01 gets no RSP (issue 13, item 3)."""
    await evcc.pr_cmslacparm()
    invalid = evcc.invalid_atten_char_ind(resp_id=tpl.ONE_ID)
    await evcc.tb_attenuation_characterization_005(invalid)


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_010(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND with NumGroups 0 (58 values following) gets no RSP (issue 13,
    item 3)."""
    await evcc.pr_cmslacparm()
    invalid = evcc.invalid_atten_char_ind(num_groups=0)
    await evcc.tb_attenuation_characterization_005(invalid)


async def test_TC_EVCC_CMN_VTB_AttenuationCharacterization_011(evcc: EvccTester) -> None:
    """CM_ATTEN_CHAR.IND with NUM_SOUNDS 0 gets no RSP (issue 13, item 3)."""
    await evcc.pr_cmslacparm()
    invalid = evcc.invalid_atten_char_ind(num_sounds=0)
    await evcc.tb_attenuation_characterization_005(invalid)


# --- CM_SLAC_MATCH ----------------------------------------------------------------------------


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_002(evcc: EvccTester) -> None:
    """After CM_ATTEN_CHAR.RSP the EV sends CM_SLAC_MATCH.REQ (the template) within
    TT_EVSE_match_session."""
    await evcc.pr_attenuation_characterization()
    await evcc.tb_cmslacmatch_001()


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_003(evcc: EvccTester) -> None:
    """No CNF: CM_SLAC_MATCH.REQ is repeated C_EV_match_retry times within TT_match_response,
    then no more."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_cmslacmatch_002()


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_004(evcc: EvccTester) -> None:
    """CM_SLAC_MATCH.CNF with APPLICATION_TYPE 0xFF is ignored: the REQ is repeated and the
    modem never gets its key (issue 13, item 4)."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_cmslacmatch_003(_invalid_match(evcc, application_type=tpl.INVALID))


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_005(evcc: EvccTester) -> None:
    """CM_SLAC_MATCH.CNF with SECURITY_TYPE 0xFF is ignored (issue 13, item 4)."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_cmslacmatch_003(_invalid_match(evcc, security_type=tpl.INVALID))


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_006(evcc: EvccTester) -> None:
    """CM_SLAC_MATCH.CNF with MVFLength 0 is ignored (issue 13, item 4)."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_cmslacmatch_003(_invalid_match(evcc, mvf_length=0))


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_007(evcc: EvccTester) -> None:
    """CM_SLAC_MATCH.CNF with PEV_ID 00..01 is ignored (issue 13, item 4)."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_cmslacmatch_003(_invalid_match(evcc, pev_id=tpl.ONE_ID))


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_008(evcc: EvccTester) -> None:
    """CM_SLAC_MATCH.CNF with PEV_MAC 00:00:00:00:00:00 is ignored (issue 13, item 4)."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_cmslacmatch_003(_invalid_match(evcc, pev_mac=tpl.ZERO_MAC))


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_009(evcc: EvccTester) -> None:
    """CM_SLAC_MATCH.CNF with EVSE_ID 00..01 is ignored (issue 13, item 4)."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_cmslacmatch_003(_invalid_match(evcc, evse_id=tpl.ONE_ID))


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_010(evcc: EvccTester) -> None:
    """CM_SLAC_MATCH.CNF with EVSE_MAC 00:00:00:00:00:00 is ignored (issue 13, item 4)."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_cmslacmatch_003(_invalid_match(evcc, evse_mac=tpl.ZERO_MAC))


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_011(evcc: EvccTester) -> None:
    """CM_SLAC_MATCH.CNF with another RunID is ignored (issue 13, item 4)."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    other = bytes(b ^ 0xFF for b in evcc.run_id)
    await evcc.tb_cmslacmatch_003(_invalid_match(evcc, run_id=other))


async def test_TC_EVCC_CMN_VTB_CmSlacMatch_012(evcc: EvccTester) -> None:
    """A second EVSE confirms but sends no CM_ATTEN_CHAR.IND: the EV still sends its
    CM_SLAC_MATCH.REQ to the EVSE that did."""
    await evcc.pr_duty_cycle()

    async def main() -> None:
        await evcc.tb_cmslacparm_001(FAIL)
        await evcc.tb_attenuation_characterization_001(evcc.evse, FAIL)
        await evcc.tb_cmvalidate_or_cmslacmatch_001(FAIL)

    await _together(main(), evcc.tb_attenuation_characterization_second_evse(with_ind=False))


async def test_TC_EVCC_CMN_VTB_CmValidateOrCmSlacMatch_001(evcc: EvccTester) -> None:
    """After CM_ATTEN_CHAR.RSP the EV goes on with CM_VALIDATE.REQ or CM_SLAC_MATCH.REQ
    within TT_EVSE_match_session."""
    await evcc.pr_attenuation_characterization()
    await evcc.tb_cmvalidate_or_cmslacmatch_001(FAIL)


# --- the link ---------------------------------------------------------------------------------


async def test_TC_EVCC_CMN_VTB_PLCLinkStatus_001(evcc: EvccTester) -> None:
    """A valid CM_SLAC_MATCH.CNF: the EV's modem joins with its NMK and NID within
    TT_match_join."""
    await evcc.pr_cmvalidate_or_cmslacmatch()
    await evcc.tb_plclinkstatus_001()


def _invalid_match(evcc: EvccTester, **changes: object) -> SlacMatchCnf:
    """md_CMN_CMN_CmSlacMatchCnf_002: the valid CNF (with the tester's NID and NMK) with one
    field changed."""
    values: dict[str, object] = {
        "pev_mac": evcc.sut_mac,
        "evse_mac": EVSE_MAC,
        "run_id": evcc.run_id,
        "nid": evcc.nid,
        "nmk": evcc.nmk,
    }
    values.update(changes)
    return tpl.match_cnf(**values)  # type: ignore[arg-type]


async def _together(*behaviours: object) -> None:
    """Run the test components side by side (the catalogue's parallel SLAC_Tester2); the
    first that fails ends the case."""
    tasks = [asyncio.ensure_future(b) for b in behaviours]  # type: ignore[call-overload]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
        if pending:
            await asyncio.gather(*pending)
    finally:
        for task in tasks:
            task.cancel()
