"""The SECC test system: the tester plays the EV and the EVSE's own modem.

The SUT is the real :class:`~slac.session.SlacEvseSession` with a
:class:`~slac.session.SlacSessionController` subclass, in this process, on its end of a veth
pair; the test system sits on the other end, in its own network namespace. The tester feeds
the control pilot through ``process_cp_state`` (the catalogue's ``f_SECC_setState``) and
judges only what crosses the wire.

The EVSE's modem is emulated as a GreenPHY modem behaves towards its host: CM_SET_KEY.REQ to
00:B0:52:00:00:01 is confirmed (Result 0x01, as QCA modems answer) and its key kept; each
CM_MNBC_SOUND.IND the EV sends is followed by the modem's CM_ATTEN_PROFILE.IND to the host;
VS_PL_LINK_STATUS.REQ is answered "linked" once the EV has joined with the key the modem
holds. The EV's own modem (the tester's, in a lab) needs no frames on this wire: its
CM_SET_KEY is the tester's own business, and "the link is up" means the EV joined with the
key the EVSE's modem holds.

Methods ``pr_*`` are the catalogue's preconditions (``f_SECC_CMN_PR_*``), ``tb_*`` its test
behaviours (``f_SECC_CMN_TB_VTB_*``), with the same numbers.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import replace
from typing import Optional

from slac.enums import PLC_LOCAL_MAC
from slac.environment import Config
from slac.messages import (
    AmpMapCnf,
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Message,
    SetKeyCnf,
    SetKeyReq,
    SlacMatchCnf,
    SlacParmCnf,
    ValidateReq,
    VsPlLinkStatusCnf,
    VsPlLinkStatusReq,
)
from slac.session import MatchResult, SlacEvseSession, SlacSessionController
from slac.testing.netns import Netns, VethPair
from slac.utils import MacAddress

from . import templates as tpl
from .common import LogTail, Timer, earliest, new_netns
from .port import BROADCAST, Port, Received, Station
from .timers import SECC_PIXIT, SeccPixit, T
from .verdict import FAIL, INCONC, Vct, Verdict

EV_MAC = MacAddress("02:15:11:85:00:01")
#: the EVSE's modem: its own address (the host talks to it at 00:B0:52:00:00:01)
EVSE_MODEM_MAC = MacAddress("00:b0:52:15:11:85")
#: attenuation the EVSE's modem reports for the EV's sounds (dB per group)
ATTENUATION_DB = 20

# CM_VALIDATE Result values (wire-format reference, section 3.7)
VALIDATE_NOT_READY = 0x00
VALIDATE_READY = 0x01
VALIDATE_SUCCESS = 0x02
VALIDATE_FAILURE = 0x03
VALIDATE_NOT_REQUIRED = 0x04


class RecordingController(SlacSessionController):
    """The station firmware of the SUT: its hooks only note what happened (diagnostics)."""

    def __init__(self, log: LogTail) -> None:
        self.log = log

    async def enable_hlc_charging(self, evse_id: str) -> None:
        self.log.note("hook: enable_hlc_charging (5 % PWM)")

    async def notify_matching_ongoing(self, evse_id: str) -> None:
        self.log.note("hook: notify_matching_ongoing")

    async def notify_matched(self, evse_id: str, result: MatchResult) -> None:
        self.log.note(f"hook: notify_matched ({result.ev_mac})")

    async def notify_matching_failed(self, evse_id: str) -> None:
        self.log.note("hook: notify_matching_failed")

    async def notify_link_lost(self, evse_id: str) -> None:
        self.log.note("hook: notify_link_lost")


class SeccTester:
    """One SECC test case: namespaces, veth pair, the SUT, the tester's EV and modem."""

    def __init__(self, tc: str, pixit: SeccPixit = SECC_PIXIT) -> None:
        self.tc = tc
        self.pixit = pixit
        self.netns: Optional[Netns] = None
        self.pair: Optional[VethPair] = None
        self.port: Port
        self.ev: Station
        self.modem: Station
        self.sut_log = LogTail()
        self.verdict: Verdict
        self.session: Optional[SlacEvseSession] = None
        self.controller = RecordingController(self.sut_log)
        # the catalogue's component variables
        self.run_id = bytes(8)
        self.sut_mac = MacAddress(bytes(6))  # vc_sut_mac
        self.evse_macs: list[MacAddress] = []  # vc_macAddresList
        self.num_sounds = T.C_EV_match_MNBC  # vc_Num_sounds
        self.time_out = 6  # vc_Time_out
        self.attenuation_list: tuple[int, ...] = ()  # vc_attenuation_list
        self.nid = b""  # vc_Nid
        self.nmk = b""  # vc_Nmk
        self.tt_matching_repetition: Optional[Timer] = None
        self.tp_match_sequence: Optional[Timer] = None
        self.tt_match_join: Optional[Timer] = None
        #: when the first CM_SLAC_PARM.CNF of the run arrived (the SUT's TT_match_sequence)
        self.parm_cnf_at = 0.0
        # the emulated EVSE modem
        self.profile_db = ATTENUATION_DB
        self.modem_key: Optional[tuple[bytes, bytes]] = None  # (NMK, NID) it holds
        self.ev_joined: Optional[tuple[bytes, bytes]] = None  # (NMK, NID) the EV joined with
        self._logger = logging.getLogger("slac")
        self._old_level = self._logger.level

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> SeccTester:
        self.netns = new_netns()
        self.pair = VethPair(netns_b=self.netns, mac_b=str(EV_MAC)).create()
        self.port = await Port(self.netns, self.pair.name_b).start()
        self.ev = self.port.station(EV_MAC, "EV")
        self.modem = self.port.station(EVSE_MODEM_MAC, "modem", PLC_LOCAL_MAC)
        self.port.handlers.append(self._modem_answers)
        self.verdict = Verdict(self.tc, self.port, self.sut_log)
        self._logger.addHandler(self.sut_log)
        self._logger.setLevel(logging.DEBUG)
        # the SUT's log is in the failure report; pytest need not capture it a second time
        self._logger.propagate = False
        # the emulated modem is ready at once after CM_SET_KEY (a QCA modem restarts)
        config = Config(slac_init_timeout=self.pixit.TT_EVSE_SLAC_init, set_key_settle_time=0.0)
        self.session = SlacEvseSession(self.tc[-30:], self.pair.name_a, config)
        await self.session.open()
        # the station boots: its modem gets a key long before any plug-in
        await self.session.evse_set_key()
        self.port.note("SUT booted: session open, modem keyed")
        return self

    async def close(self) -> None:
        if hasattr(self, "verdict"):
            self.verdict.write_report()
        try:
            if self.session is not None:
                try:
                    await asyncio.wait_for(self.set_cp("A"), 5)
                finally:
                    task = self.session.matching_task
                    if task is not None and not task.done():
                        task.cancel()
                    await asyncio.wait_for(self.session.close(), 10)
        finally:
            self._logger.removeHandler(self.sut_log)
            self._logger.setLevel(self._old_level)
            self._logger.propagate = True
            if hasattr(self, "port"):
                self.port.close()
            if self.pair is not None:
                self.pair.delete()
            if self.netns is not None:
                self.netns.delete()

    # --- the emulated EVSE modem --------------------------------------------------------------

    def _modem_answers(self, received: Received) -> bool:
        if bytes(received.dst) not in (PLC_LOCAL_MAC, bytes(EVSE_MODEM_MAC)):
            return False
        message = received.message
        if isinstance(message, SetKeyReq):
            self.modem_key = (message.new_key, message.nid)
            self.modem.send(SetKeyCnf(result=0x01), received.src)
            return True
        if isinstance(message, VsPlLinkStatusReq):
            linked = self.ev_joined is not None and self.ev_joined == self.modem_key
            self.modem.send(VsPlLinkStatusCnf(link_status=1 if linked else 0), received.src)
            return True
        return False

    # --- control pilot ------------------------------------------------------------------------

    async def set_cp(self, state: str) -> None:
        """``f_SECC_setState``: the EV's control-pilot state, as the station reads it."""
        assert self.session is not None
        self.port.note(f"control pilot {state}")
        self.sut_log.note(f"tester: control pilot {state}")
        await self.controller.process_cp_state(self.session, state)

    # --- helpers ------------------------------------------------------------------------------

    def _new_run_id(self) -> bytes:
        return secrets.token_bytes(8)

    def _send_ev(self, message: Message, dst: MacAddress) -> float:
        return self.ev.send(message, dst)

    async def _sounding(
        self,
        start: Optional[Message] = None,
        sounds: Optional[int] = None,
        run_id: Optional[bytes] = None,
        late: bool = False,
    ) -> None:
        """Three CM_START_ATTEN_CHAR.IND and the sounds (TP_EV_batch_msg_interval apart),
        each sound followed by the EVSE modem's CM_ATTEN_PROFILE.IND to its host.

        Unless the case is ``late`` on purpose, the test system checks its own schedule: the
        first START_ATTEN_CHAR TT_match_response + TP_match_sequence after the last REQ, the
        sounds within TT_EVSE_match_MNBC of it (else the SUT's timers ran out, not its
        fault)."""
        run = self.run_id if run_id is None else run_id
        if start is None:
            start = tpl.start_atten_char(
                EV_MAC, run, num_sounds=self.num_sounds, time_out=self.time_out
            )
        count = T.C_EV_match_MNBC if sounds is None else sounds
        random = secrets.token_bytes(16)
        t0 = time.time()
        step = 0
        for _ in range(T.C_EV_start_atten_char_inds):
            await _sleep_until(t0 + step * T.TP_EV_batch_msg_interval)
            sent = self._send_ev(start, BROADCAST)
            if step == 0 and not late and self.parm_cnf_at:
                intended = self.parm_cnf_at + T.TT_match_response + T.TP_match_sequence
                self.verdict.on_time("sent CM_START_ATTEN_CHAR.IND", intended, sent)
            step += 1
        remaining = T.C_EV_match_MNBC
        profile = tpl.atten_profile(EV_MAC, tpl.flat_profile(self.profile_db))
        for _ in range(count):
            remaining -= 1
            intended = t0 + step * T.TP_EV_batch_msg_interval
            await _sleep_until(intended)
            sent = self._send_ev(tpl.mnbc_sound(remaining, run, random), BROADCAST)
            self.modem.send(profile, self.sut_mac)
            if not late:
                self.verdict.on_time("sent CM_MNBC_SOUND.IND", intended, sent, slack=0.1)
            step += 1

    def _ignorable(self, got: Received) -> bool:
        """CM_SLAC_PARM.CNF and CM_ATTEN_PROFILE.IND "will be ignored" in the sounding alts."""
        return got.is_a((SlacParmCnf, AttenProfileInd))

    def _rsp(self) -> AttenCharRsp:
        return tpl.atten_char_rsp(EV_MAC, self.run_id)

    # --- preconditions (f_SECC_CMN_PR_*) ------------------------------------------------------

    async def pr_state_a(self) -> None:
        """f_SECC_CMN_PR_StateA_001 (+ DisconnectDataLink: the tester's own modem key)."""
        await self.set_cp("A")
        await asyncio.sleep(T.CMN_waitForNextHAL)

    async def pr_state_b(self, state: str = "B", sleep_after_plug_out: bool = False) -> None:
        """f_SECC_CMN_PR_StateB_001: unplugged, (a long wait), then plugged in (B, C or D);
        TT_matching_repetition starts."""
        await self.pr_state_a()
        if sleep_after_plug_out:
            self.port.note(f"unplugged for par_SECC_waitForPlugin ({T.SECC_waitForPlugin:g} s)")
            await asyncio.sleep(T.SECC_waitForPlugin)
        await asyncio.sleep(T.CMN_waitForNextHAL)
        await self.set_cp(state)
        self.tt_matching_repetition = Timer(T.TT_matching_repetition, "TT_matching_repetition")

    async def pr_cmslacparm(self, state: str = "B") -> None:
        """f_SECC_CMN_PR_CmSlacParm_001."""
        await self.pr_state_b(state)
        await self.tb_cmslacparm_001(INCONC)

    async def pr_attenuation_characterization(self) -> None:
        """f_SECC_CMN_PR_AttenuationCharacterization_001."""
        await self.pr_cmslacparm()
        await self.tb_attenuation_characterization_001(INCONC)

    async def pr_cmslacmatch(self) -> None:
        """f_SECC_CMN_PR_CmSlacMatch_001 (PIXIT_SECC_CMN_CmValidate = none)."""
        await self.pr_attenuation_characterization()
        await self.tb_cmslacmatch_001(INCONC)

    async def pr_plclinkstatus(self) -> None:
        """f_SECC_CMN_PR_PLCLinkStatus_001: matched, the EV joined, the link is up."""
        await self.pr_cmslacmatch()
        self.tt_match_join = Timer(T.TT_match_join, "TT_match_join")
        await self.tb_cmsetkey_001()
        await self.tb_plclinkstatus_001(INCONC)

    # --- CM_SLAC_PARM (f_SECC_CMN_TB_VTB_CmSlacParm_*) ----------------------------------------

    async def tb_cmslacparm_001(self, vct: Vct, t_conn_max_comm: Optional[Timer] = None) -> None:
        """CM_SLAC_PARM.REQ by broadcast every TT_match_response until CNFs arrive; a new
        matching process after C_EV_match_retry repetitions while TT_matching_repetition
        runs. With ``t_conn_max_comm`` (f_SECC_CMN_TB_VTB_CmSlacParm_004) the SUT must answer
        before it runs out."""
        self.evse_macs = []
        self.run_id = self._new_run_id()
        template = tpl.expect_parm_cnf(EV_MAC, self.run_id)
        count = 0
        while True:
            response = Timer(T.TT_match_response, "TT_match_response")
            count += 1
            self._send_ev(tpl.parm_req(self.run_id), BROADCAST)
            while True:
                conn = t_conn_max_comm if not self.evse_macs else None
                got = await self.ev.receive(earliest(response, conn))
                if got is None:
                    if conn is not None and not conn.running:
                        self.verdict.set(
                            vct,
                            "T_conn_max_comm has expired. The SUT was not ready for "
                            "communication within 'T_conn_max_comm' after wakeup by plug-in",
                        )
                    if response.running:
                        continue
                    break
                if template.matches(got):
                    self.verdict.passed("CM_SLAC_PARM is correct.")
                    assert isinstance(got.message, SlacParmCnf)
                    if not self.evse_macs:
                        self.parm_cnf_at = got.at
                    self.evse_macs.append(got.src)
                    self.num_sounds = got.message.num_sounds
                    self.time_out = got.message.time_out
                    continue
                self.verdict.unexpected(vct, got, template)
            if self.evse_macs:
                self.sut_mac = self.evse_macs[0]
                self.tp_match_sequence = Timer(T.TP_match_sequence, "TP_match_sequence")
                return
            if count % (T.C_EV_match_retry + 1) == 0:
                repetition = self.tt_matching_repetition
                if repetition is not None and repetition.running:
                    count = 0  # "A new Matching process is started."
                else:
                    self.verdict.set(
                        vct,
                        "TT_matching_repetition has expired. No new Matching process will be "
                        "started (no CM_SLAC_PARM.CNF to any CM_SLAC_PARM.REQ).",
                    )

    async def tb_cmslacparm_002(
        self, header: Optional[tuple[int, int]], send_invalid: bool
    ) -> None:
        """Nothing for TT_EVSE_SLAC_init_min (after an invalid REQ, when ``send_invalid``);
        then, TT_EVSE_SLAC_init_max after the start, a valid REQ gets no CNF."""
        self.run_id = self._new_run_id()
        init = Timer(T.TT_EVSE_SLAC_init_min, "TT_EVSE_SLAC_init")
        if send_invalid:
            assert header is not None
            self._send_ev(tpl.parm_req(self.run_id, *header), BROADCAST)
        template = tpl.expect_parm_cnf(EV_MAC, self.run_id)
        while True:
            got = await self.ev.receive(init.expiry)
            if got is None:
                break
            if template.matches(got):
                self.verdict.fail("Invalid CM_SLAC_PARM.REQ message was not ignored.", got)
            self.verdict.unexpected(FAIL, got, template)
        rest = Timer(T.TT_EVSE_SLAC_init_max - T.TT_EVSE_SLAC_init_min, "TT_EVSE_SLAC_init")
        got = await self.ev.receive(rest.expiry)
        if got is not None:
            self.verdict.unexpected(FAIL, got)
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(tpl.parm_req(self.run_id), BROADCAST)
        got = await self.ev.receive(response.expiry)
        if got is None:
            self.verdict.passed(
                "TT_match_response timeout. CM_SLAC_PARM.CNF was not sent from the SUT "
                "because the timer TT_EVSE_SLAC_init is expired."
            )
            return
        if got.is_a(SlacParmCnf):
            self.verdict.fail(
                "CM_SLAC_PARM.CNF was sent from the SUT although the timer TT_EVSE_SLAC_init "
                f"should have been expired ({T.TT_EVSE_SLAC_init_max:g} s after plug-in).",
                got,
            )
        self.verdict.unexpected(FAIL, got)

    async def tb_cmslacparm_003(self) -> None:
        """CP A, then a valid CM_SLAC_PARM.REQ: no CNF within TT_match_response."""
        self.run_id = self._new_run_id()
        await asyncio.sleep(T.CMN_waitBeforeUnplug)
        await self.set_cp("A")
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(tpl.parm_req(self.run_id), BROADCAST)
        template = tpl.expect_parm_cnf(EV_MAC, self.run_id)
        got = await self.ev.receive(response.expiry)
        if got is None:
            self.verdict.passed(
                "TT_match_response timer has expired, the Matching process was terminated "
                "by the SUT."
            )
            return
        if template.matches(got):
            self.verdict.fail(
                "CM_SLAC_PARM.CNF message was not expected. CP State A should be detected before.",
                got,
            )
        self.verdict.unexpected(FAIL, got, template)

    async def tb_cmslacparm_004(self) -> None:
        """f_SECC_CMN_TB_VTB_CmSlacParm_004: as _001, within T_conn_max_comm of plug-in."""
        await self.tb_cmslacparm_001(FAIL, Timer(T.T_conn_max_comm, "T_conn_max_comm"))

    # --- attenuation characterization (f_SECC_CMN_TB_VTB_AttenuationCharacterization_*) -------

    async def tb_attenuation_characterization_001(self, vct: Vct) -> None:
        """Sounding; CM_ATTEN_CHAR.IND (the template) from every EVSE that confirmed the
        parameters, each answered with CM_ATTEN_CHAR.RSP; the lowest attenuation wins."""
        if self.tp_match_sequence is not None:
            await self.tp_match_sequence.wait()
        results = Timer(T.TT_EV_atten_results, "TT_EV_atten_results")
        await self._sounding()
        template = tpl.expect_atten_char_ind(EV_MAC, self.run_id)
        count = 0
        lowest: Optional[float] = None
        while True:
            got = await self.ev.receive(results.expiry)
            if got is None:
                if count == 0:
                    self.verdict.set(
                        vct,
                        "TT_EV_atten_results timeout and no CM_ATTEN_CHAR.IND received - "
                        "EVSE_NOT_FOUND.",
                    )
                return
            if template.matches(got):
                assert isinstance(got.message, AttenCharInd)
                self.verdict.passed("CM_ATTEN_CHAR.IND is correct.")
                count += 1
                self.attenuation_list = got.message.aag
                self._send_ev(self._rsp(), got.src)
                average = sum(got.message.aag) / len(got.message.aag)
                if lowest is None or average < lowest:  # f_SECC_CMN_setMac
                    lowest = average
                    self.sut_mac = got.src
                if count >= len(self.evse_macs):
                    return  # "CM_ATTEN_CHAR.IND messages from all EVSEs are received."
                continue
            if self._ignorable(got):
                continue
            self.verdict.unexpected(vct, got, template)

    async def tb_attenuation_characterization_002(self) -> None:
        """A new CM_SLAC_PARM.REQ (new RunID) in place of the RSP gets a CNF."""
        if self.tp_match_sequence is not None:
            await self.tp_match_sequence.wait()
        results = Timer(T.TT_EV_atten_results, "TT_EV_atten_results")
        await self._sounding()
        template = tpl.expect_atten_char_ind(EV_MAC, self.run_id)
        while True:
            got = await self.ev.receive(results.expiry)
            if got is None:
                self.verdict.fail(
                    "TT_EV_atten_results timeout and no CM_ATTEN_CHAR.IND received - "
                    "EVSE_NOT_FOUND."
                )
            if template.matches(got):
                break
            if self._ignorable(got):
                continue
            self.verdict.unexpected(FAIL, got, template)
        self.verdict.passed("CM_ATTEN_CHAR.IND is correct.")
        results.stop()
        self.run_id = self._new_run_id()
        cnf = tpl.expect_parm_cnf(EV_MAC, self.run_id)
        # The catalogue waits on TT_match_response without starting it here: the REQ's timer
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(tpl.parm_req(self.run_id), BROADCAST)
        got = await self.ev.receive(response.expiry)
        if got is None:
            self.verdict.fail(
                "TT_match_response timeout. The SECC did not reply to CM_SLAC_PARM request message."
            )
        if cnf.matches(got):
            self.verdict.passed("CM_SLAC_PARM.CNF is correct.")
            return
        self.verdict.unexpected(FAIL, got, cnf)

    async def tb_attenuation_characterization_003(self, missing: int) -> None:
        """``missing`` sounds fewer than announced: CM_ATTEN_CHAR.IND all the same."""
        if self.tp_match_sequence is not None:
            await self.tp_match_sequence.wait()
        results = Timer(T.TT_EV_atten_results, "TT_EV_atten_results")
        await self._sounding(sounds=T.C_EV_match_MNBC - missing)
        template = tpl.expect_atten_char_ind(EV_MAC, self.run_id)
        while True:
            got = await self.ev.receive(results.expiry)
            if got is None:
                self.verdict.fail(
                    "TT_EV_atten_results timeout and no CM_ATTEN_CHAR.IND received - "
                    "EVSE_NOT_FOUND."
                )
            if template.matches(got):
                self.verdict.passed(
                    "Anticipated number of CM_MNBC_SOUND.IND messages was not sent, but "
                    "CM_ATTEN_CHAR.IND is correct."
                )
                return
            if self._ignorable(got):
                continue
            self.verdict.unexpected(FAIL, got, template)

    async def tb_attenuation_characterization_resends(self, rsp: Optional[AttenCharRsp]) -> None:
        """_004 (``rsp`` None: no RSP) and _005 (an invalid ``rsp`` after each IND): the IND
        is resent C_EV_match_retry times, each within TT_match_response (+ the transmission
        delay), then no more; a valid RSP and CM_SLAC_MATCH.REQ then get no CNF."""
        if self.tp_match_sequence is not None:
            await self.tp_match_sequence.wait()
        results = Timer(T.TT_EV_atten_results, "TT_EV_atten_results")
        await self._sounding()
        template = tpl.expect_atten_char_ind(EV_MAC, self.run_id)
        count = 0
        response: Optional[Timer] = None
        sut = self.sut_mac
        while True:
            got = await self.ev.receive(earliest(results, response))
            if got is None:
                if results.expired_at(time.time()):
                    self.verdict.fail(
                        "TT_EV_atten_results timeout and no CM_ATTEN_CHAR.IND received - "
                        f"EVSE_NOT_FOUND ({count} received, {T.C_EV_match_retry + 1} expected "
                        "before it ran out)."
                    )
                self.verdict.fail(
                    "TT_match_response timeout. CM_ATTEN_CHAR.IND message was not repeated "
                    f"(sent {count} time(s), expected {T.C_EV_match_retry + 1})."
                )
            if template.matches(got):
                if count > 0:
                    self.verdict.passed(f"CM_ATTEN_CHAR.IND message was repeated ({count}).")
                count += 1
                sut = got.src
                response = Timer(
                    T.TT_match_response + T.CMN_Transmission_Delay, "TT_match_response"
                )
                if rsp is not None:
                    self._send_ev(rsp, got.src)
                if count > T.C_EV_match_retry:
                    break
                continue
            if self._ignorable(got):
                continue
            self.verdict.unexpected(FAIL, got, template)
        assert response is not None
        got = await self.ev.receive(response.expiry)
        if got is not None:
            if template.matches(got):
                self.verdict.fail(
                    "CM_ATTEN_CHAR.IND message was repeated, but v_count > par_C_EV_match_retry.",
                    got,
                )
            self.verdict.unexpected(FAIL, got, template)
        self.verdict.passed(
            "TT_match_response timeout. The total number of retries is reached, the Matching "
            "process shall be considered as FAILED"
        )
        self._send_ev(self._rsp(), sut)
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(tpl.match_req(EV_MAC, sut, self.run_id), sut)
        cnf = tpl.expect_match_cnf(EV_MAC, sut, self.run_id)
        while True:
            got = await self.ev.receive(response.expiry)
            if got is None:
                self.verdict.passed(
                    "TT_match_response timeout. Matching process is considered as FAILED."
                )
                return
            if cnf.matches(got):
                self.verdict.fail(
                    "CM_SLAC_MATCH.CNF message was not expected. Repetition limit was reached.",
                    got,
                )
            if got.is_a(AttenCharInd):
                continue  # "CM_ATTEN_CHAR.IND messages will be ignored!"
            self.verdict.unexpected(FAIL, got, cnf)

    async def tb_attenuation_characterization_006(self) -> None:
        """CM_START_ATTEN_CHAR.IND only after TT_match_sequence ran out: no IND."""
        await Timer(T.TT_match_sequence, "TT_match_sequence").wait()
        await self._no_atten_char_after_sounding(
            "CM_ATTEN_CHAR.IND message was not expected. TT_EV_atten_results timer should "
            "have expired.",
            "TT_EV_atten_results timeout, Matching process is considered as FAILED.",
            late=True,
        )

    async def tb_attenuation_characterization_007(self, start: Message) -> None:
        """Three invalid CM_START_ATTEN_CHAR.IND, then valid sounds: no IND."""
        if self.tp_match_sequence is not None:
            await self.tp_match_sequence.wait()
        await self._no_atten_char_after_sounding(
            "CM_ATTEN_CHAR.IND message was not expected. Invalid CM_START_ATTEN_CHAR.IND "
            "message was sent before.",
            "TT_EV_atten_results timeout. No valid CM_START_ATTEN_CHAR.IND message was "
            "received before.",
            start=start,
        )

    async def tb_attenuation_characterization_008(self) -> None:
        """CP A, then sounding: no IND."""
        await self.set_cp("A")
        if self.tp_match_sequence is not None:
            await self.tp_match_sequence.wait()
        await self._no_atten_char_after_sounding(
            "CM_ATTEN_CHAR.IND message was not expected.CP State A should be detected before.",
            "TT_EV_atten_results timer has expired, the Matching process was terminated by "
            "the SUT.",
        )

    async def _no_atten_char_after_sounding(
        self, fail: str, passed: str, start: Optional[Message] = None, late: bool = False
    ) -> None:
        results = Timer(T.TT_EV_atten_results, "TT_EV_atten_results")
        await self._sounding(start=start, late=late)
        template = tpl.expect_atten_char_ind(EV_MAC, self.run_id)
        while True:
            got = await self.ev.receive(results.expiry)
            if got is None:
                self.verdict.passed(passed)
                return
            if template.matches(got):
                self.verdict.fail(fail, got)
            if self._ignorable(got):
                continue
            self.verdict.unexpected(FAIL, got, template)

    async def reset(self) -> None:
        """f_SECC_CMN_Reset_001: unplug, the EV's TX power lowered, plug in again."""
        await self.set_cp("A")
        # f_SECC_CMN_setTXPower(10): 10 dB less signal, so 10 dB more attenuation measured
        self.profile_db += T.SECC_txPowerStep
        self.port.note(f"EV's TX power {T.SECC_txPowerStep} dB lower")
        await asyncio.sleep(T.CMN_waitForNextHAL)
        await self.set_cp("B")
        self.tt_matching_repetition = Timer(T.TT_matching_repetition, "TT_matching_repetition")

    # --- CM_SLAC_MATCH (f_SECC_CMN_TB_VTB_CmSlacMatch_*) --------------------------------------

    async def tb_cmslacmatch_001(self, vct: Vct) -> None:
        """CM_SLAC_MATCH.REQ, resent every TT_match_response up to C_EV_match_retry times,
        until a CNF (the template) gives the NID and NMK."""
        template = tpl.expect_match_cnf(EV_MAC, self.sut_mac, self.run_id)
        count = 0
        while True:
            response = Timer(T.TT_match_response, "TT_match_response")
            count += 1
            self._send_ev(tpl.match_req(EV_MAC, self.sut_mac, self.run_id), self.sut_mac)
            while True:
                got = await self.ev.receive(response.expiry)
                if got is None:
                    break
                if template.matches(got):
                    assert isinstance(got.message, SlacMatchCnf)
                    self.verdict.passed("CM_SLAC_MATCH is correct.")
                    self.nid, self.nmk = got.message.nid, got.message.nmk
                    return
                if got.is_a(AttenCharInd):
                    response = Timer(T.TT_match_response, "TT_match_response")
                    self._send_ev(self._rsp(), self.sut_mac)
                    continue
                self.verdict.unexpected(vct, got, template)
            if count % (T.C_EV_match_retry + 1) == 0:
                self.verdict.set(
                    vct,
                    "The repetition limit is reached. The Matching process is considered as "
                    "FAILED (no CM_SLAC_MATCH.CNF).",
                )

    async def tb_cmslacmatch_002(self) -> None:
        """The tester ignores the first CNF and repeats the REQ: the CNF is retransmitted."""
        template = tpl.expect_match_cnf(EV_MAC, self.sut_mac, self.run_id)
        request = tpl.match_req(EV_MAC, self.sut_mac, self.run_id)
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(request, self.sut_mac)
        while True:
            got = await self.ev.receive(response.expiry)
            if got is None:
                break
            if template.matches(got):
                continue  # repeat: the first CNF is not taken
            if got.is_a(AttenCharInd):
                response = Timer(T.TT_match_response, "TT_match_response")
                self._send_ev(self._rsp(), self.sut_mac)
                continue
            self.verdict.unexpected(FAIL, got, template)
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(request, self.sut_mac)
        got = await self.ev.receive(response.expiry)
        if got is None:
            self.verdict.fail("TT_match_response timeout. CM_SLAC_MATCH.CNF was not retransmitted.")
        if template.matches(got):
            self.verdict.passed("TT_match_response timeout. CM_SLAC_MATCH.CNF was retransmitted.")
            return
        self.verdict.unexpected(FAIL, got, template)

    async def _no_match_cnf(self, fail: str) -> None:
        """A valid CM_SLAC_MATCH.REQ that must not be answered within TT_match_response."""
        template = tpl.expect_match_cnf(EV_MAC, self.sut_mac, self.run_id)
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(tpl.match_req(EV_MAC, self.sut_mac, self.run_id), self.sut_mac)
        while True:
            got = await self.ev.receive(response.expiry)
            if got is None:
                self.verdict.passed(
                    "TT_match_response timeout. Matching process is considered as FAILED."
                )
                return
            if template.matches(got):
                self.verdict.fail(fail, got)
            if got.is_a(AttenCharInd):
                response = Timer(T.TT_match_response, "TT_match_response")
                self._send_ev(self._rsp(), self.sut_mac)
                continue
            self.verdict.unexpected(FAIL, got, template)

    async def _quiet_until(self, timer: Timer, answer_atten_char: bool = True) -> None:
        """Nothing but (resent) CM_ATTEN_CHAR.IND may arrive before ``timer`` runs out."""
        while True:
            got = await self.ev.receive(timer.expiry)
            if got is None:
                return
            if answer_atten_char and got.is_a(AttenCharInd):
                self._send_ev(self._rsp(), self.sut_mac)
                continue
            if got.is_a(SlacMatchCnf):
                self.verdict.fail("Invalid CM_SLAC_MATCH.REQ messages shall be ignored.", got)
            self.verdict.unexpected(FAIL, got)

    async def tb_cmslacmatch_003(self) -> None:
        """A valid REQ only after TT_EVSE_match_session (+ the transmission delay): no CNF."""
        session = Timer(T.TT_EVSE_match_session + T.CMN_Transmission_Delay, "TT_EVSE_match_session")
        while True:
            got = await self.ev.receive(session.expiry)
            if got is None:
                break
            self.verdict.unexpected(FAIL, got)
        await self._no_match_cnf(
            "CM_SLAC_MATCH.CNF was not expected, TT_EVSE_match_session timer has been expired."
        )

    async def tb_cmslacmatch_004(self, request: Message) -> None:
        """An invalid REQ is ignored; the valid one after TT_EVSE_match_session is too."""
        session = Timer(T.TT_EVSE_match_session + T.CMN_Transmission_Delay, "TT_EVSE_match_session")
        self._send_ev(request, self.sut_mac)
        await self._quiet_until(session)
        await self._no_match_cnf(
            "CM_SLAC_MATCH.CNF was not expected, TT_EVSE_match_session has been expired."
        )

    async def tb_cmslacmatch_005(self) -> None:
        """CP A, then a valid REQ: no CNF."""
        await self.set_cp("A")
        await self._no_match_cnf(
            "CM_SLAC_MATCH.CNF message was not expected.CP State A should be detected before."
        )

    def invalid_match_req(self, **changes: object) -> Message:
        """md_CMN_CMN_CmSlacMatchReq_002: the valid request with one field changed."""
        valid = tpl.match_req(EV_MAC, self.sut_mac, self.run_id)
        return replace(valid, **changes)  # type: ignore[arg-type]

    # --- the EV joins (f_SECC_CMN_TB_VTB_CmSetKey_001, PLCLinkStatus_001) ---------------------

    async def tb_cmsetkey_001(self) -> None:
        """The tester's modem takes the NMK and NID of CM_SLAC_MATCH.CNF (it always accepts:
        its CM_SET_KEY does not cross this wire)."""
        self.ev_joined = (self.nmk, self.nid)
        self.port.note(f"EV joins the logical network (NID {self.nid.hex()})")
        self.verdict.passed("CM_SET_KEY is correct.")

    async def tb_plclinkstatus_001(self, vct: Vct) -> None:
        """f_SECC_getPLCLinkEstablishment: the link is up within TT_match_join, i.e. the key
        the EV joined with is the one the EVSE's modem holds."""
        timer = self.tt_match_join or Timer(T.TT_match_join, "TT_match_join")
        while self.ev_joined != self.modem_key:
            if not timer.running:
                held = self.modem_key[1].hex() if self.modem_key else "none"
                same_nid = self.modem_key is not None and self.modem_key[1] == self.nid
                self.verdict.set(
                    vct,
                    "The data link could not be established by the SUT: CM_SLAC_MATCH.CNF "
                    f"gave NID {self.nid.hex()}; the EVSE's modem holds NID {held}"
                    + (" with another NMK" if same_nid else ""),
                )
            await asyncio.sleep(0.05)
        self.verdict.passed("The data link was established by the SUT.")

    # --- CM_VALIDATE (f_SECC_CMN_TB_VTB_CmValidate_*) -----------------------------------------

    async def tb_cmvalidate_005(self, step2: ValidateReq) -> None:
        """Step 1 answered (any Result); an invalid step-2 REQ (Result not 'ready') gets no
        CNF within TT_match_sequence (+ the transmission delay)."""
        template = tpl.expect_validate_cnf()
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(tpl.validate_req(), self.sut_mac)
        while True:
            got = await self.ev.receive(response.expiry)
            if got is None:
                self.verdict.fail(
                    "TT_match_response timeout. CM_VALIDATE.CNF message was not repeated "
                    "(no answer to the step 1 CM_VALIDATE.REQ)."
                )
            if template.matches(got):
                break
            if got.is_a(AttenCharInd):
                response = Timer(T.TT_match_response, "TT_match_response")
                self._send_ev(self._rsp(), self.sut_mac)
                continue
            self.verdict.unexpected(FAIL, got, template)
        self.verdict.passed("CM_VALIDATE.CNF message was successful.")
        sequence = Timer(T.TT_match_sequence + T.CMN_Transmission_Delay, "TT_match_sequence")
        self._send_ev(step2, self.sut_mac)
        got = await self.ev.receive(sequence.expiry)
        if got is None:
            self.verdict.passed(
                "TT_match_sequence timeout. The Validation process is considered as FAILED."
            )
            return
        if template.matches(got):
            self.verdict.fail(
                "CM_VALIDATE.CNF message was repeated, but Validation process shall be "
                "considered as FAILED (the step 2 CM_VALIDATE.REQ with Result "
                f"{step2.result} is invalid and was answered).",
                got,
            )
        self.verdict.unexpected(FAIL, got, template)

    async def tb_cmvalidate_008(self, result: int) -> None:
        """Step 1 CM_VALIDATE.REQ (resent up to C_EV_match_retry times): CNF with ``result``."""
        template = tpl.expect_validate_cnf(result)
        count = 0
        while True:
            response = Timer(T.TT_match_response, "TT_match_response")
            count += 1
            self._send_ev(tpl.validate_req(), self.sut_mac)
            while True:
                got = await self.ev.receive(response.expiry)
                if got is None:
                    break
                if template.matches(got):
                    self.verdict.passed(f"CM_VALIDATE.CNF with Result {result} is correct.")
                    return
                if got.is_a(AttenCharInd):
                    response = Timer(T.TT_match_response, "TT_match_response")
                    self._send_ev(self._rsp(), self.sut_mac)
                    continue
                self.verdict.unexpected(FAIL, got, template)
            if count % (T.C_EV_match_retry + 1) == 0:
                self.verdict.fail(
                    "The repetition limit is reached. The Matching process is considered as "
                    "FAILED (no CM_VALIDATE.CNF)."
                )

    async def tb_cmvalidate_010(self) -> None:
        """CP A, then CM_VALIDATE.REQ: no CNF."""
        await self.set_cp("A")
        template = tpl.expect_validate_cnf()
        response = Timer(T.TT_match_response, "TT_match_response")
        self._send_ev(tpl.validate_req(), self.sut_mac)
        while True:
            got = await self.ev.receive(response.expiry)
            if got is None:
                self.verdict.passed(
                    "TT_match_response timer has expired, the Matching process was terminated "
                    "by the SUT."
                )
                return
            if template.matches(got):
                self.verdict.fail(
                    "CM_VALIDATE.CNF message was not expected.CP State A should be detected "
                    "before.",
                    got,
                )
            if got.is_a(AttenCharInd):
                response = Timer(T.TT_match_response, "TT_match_response")
                self._send_ev(self._rsp(), self.sut_mac)
                continue
            self.verdict.unexpected(FAIL, got, template)

    # --- CM_AMP_MAP (f_SECC_CMN_TB_VTB_CmAmpMap_*) --------------------------------------------

    async def tb_cmampmap_001(self, vct: Vct) -> None:
        """CM_AMP_MAP.REQ (resent up to C_EV_match_retry times): CNF with ResType 0."""
        ok, refused = tpl.expect_amp_map_cnf(0), tpl.expect_amp_map_cnf(1)
        count = 0
        while True:
            response = Timer(T.TT_match_response, "TT_match_response")
            count += 1
            self._send_ev(tpl.amp_map_req(), self.sut_mac)
            got = await self.ev.receive(response.expiry)
            if got is None:
                if count % (T.C_EV_match_retry + 1) == 0:
                    self.verdict.set(vct, "The SUT did not response to the CmAmpMapReq message.")
                continue
            if ok.matches(got):
                self.verdict.passed("CM_AMP_MAP.CNF is correct.")
                return
            if refused.matches(got):
                self.verdict.set(vct, "The SUT could not perform the Amplitude map exchange.", got)
            self.verdict.unexpected(vct, got, ok)

    async def tb_cmampmap_005(self) -> None:
        """CM_AMP_MAP.REQ with AMLEN 0 (the data still follows), three times: no CNF."""
        frame = tpl.amp_map_req().to_frame(self.sut_mac, EV_MAC)
        frame = tpl.patch(frame, tpl.AMP_MAP_REQ_AMLEN, b"\x00\x00")
        for _ in range(T.C_EV_match_retry + 1):
            response = Timer(T.TT_match_response, "TT_match_response")
            self.ev.send_raw(frame)
            got = await self.ev.receive(response.expiry)
            if got is None:
                self.verdict.passed(
                    "The SUT did not response to the invalid CM_AMP_MAP.REQ message."
                )
                continue
            if got.is_a(AmpMapCnf):
                self.verdict.fail("Received CM_AMP_MAP.CNF message was not expected.", got)
            self.verdict.unexpected(FAIL, got)

    async def tb_cmampmap_006(self) -> None:
        """The REQ again after its CNF: answered again."""
        ok, refused = tpl.expect_amp_map_cnf(0), tpl.expect_amp_map_cnf(1)
        for count in (1, 2):
            response = Timer(T.TT_match_response, "TT_match_response")
            self._send_ev(tpl.amp_map_req(), self.sut_mac)
            got = await self.ev.receive(response.expiry)
            if got is None:
                self.verdict.fail(
                    f"The SUT did not response to the CM_AMP_MAP.REQ message (request {count})."
                )
            if ok.matches(got):
                self.verdict.passed("CM_AMP_MAP.CNF is correct.")
                continue
            if refused.matches(got):
                self.verdict.fail("The SUT could not perform the Amplitude map exchange.", got)
            self.verdict.unexpected(FAIL, got, ok)

    async def tb_cmampmap_007(self) -> None:
        """Three REQs at once: three CNFs, each within TT_match_response of the last."""
        ok, refused = tpl.expect_amp_map_cnf(0), tpl.expect_amp_map_cnf(1)
        response = Timer(T.TT_match_response, "TT_match_response")
        for _ in range(3):
            self._send_ev(tpl.amp_map_req(), self.sut_mac)
        count = 0
        while count < 3:
            got = await self.ev.receive(response.expiry)
            if got is None:
                self.verdict.fail(
                    f"The SUT did not response to the CM_AMP_MAP.REQ message ({count} of 3 "
                    "answered)."
                )
            if ok.matches(got):
                self.verdict.passed("CM_AMP_MAP.CNF is correct.")
                count += 1
                response = Timer(T.TT_match_response, "TT_match_response")
                continue
            if refused.matches(got):
                self.verdict.fail("The SUT could not perform the Amplitude map exchange.", got)
            self.verdict.unexpected(FAIL, got, ok)


async def _sleep_until(moment: float) -> None:
    left = moment - time.time()
    if left > 0:
        await asyncio.sleep(left)
