"""The EVCC test system: the tester plays the EVSE (one or two) and the EV's own modem.

The SUT is the real ``slac ev`` command, run as a subprocess inside its own network
namespace on its end of a veth pair; the test system sits on the other end, in another
namespace. Starting ``slac ev`` stands for the EV seeing 5 % PWM after plug-in (it has no
control-pilot input); its first CM_SET_KEY.REQ to its modem (it leaves any logical network
first) marks the moment it runs, and the catalogue's timers start there.

The EV's modem is emulated: CM_SET_KEY.REQ to 00:B0:52:00:00:01 is confirmed (Result 0x01)
and every key it is given is kept, with the time: "the EV joined the logical network" is
the modem receiving the NMK and NID of CM_SLAC_MATCH.CNF. The EVSE's modem needs no frames
on this wire: the tester reports the attenuation its own modem would have measured.

Methods ``pr_*`` are the catalogue's preconditions (``f_EVCC_CMN_PR_*``), ``tb_*`` its test
behaviours (``f_EVCC_CMN_TB_VTB_*``), with the same numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Callable, Optional, Union

from slac.enums import PLC_LOCAL_MAC
from slac.messages import (
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Message,
    MnbcSoundInd,
    SetKeyCnf,
    SetKeyReq,
    SlacMatchCnf,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    ValidateCnf,
    ValidateReq,
)
from slac.testing.netns import Netns, VethPair
from slac.utils import MacAddress

from . import templates as tpl
from .common import Timer, earliest, new_netns
from .port import Port, Received, Station
from .timers import EVCC_PIXIT, EvccPixit, T
from .verdict import FAIL, INCONC, Vct, Verdict

#: the SUT's (the EV host's) MAC address
EV_MAC = MacAddress("02:15:11:85:e0:01")
#: the tester's EVSE (par_testSystem_mac) and a second EVSE (SLAC_Tester2)
EVSE_MAC = MacAddress("02:15:11:85:5e:01")
EVSE2_MAC = MacAddress("02:15:11:85:5e:02")
#: the EV's modem: its own address (the host talks to it at 00:B0:52:00:00:01)
EV_MODEM_MAC = MacAddress("00:b0:52:15:11:e0")
#: what the tester's EVSEs "measured" (dB per group): the EV's limit is 40 dB
ATTENUATION_DB = 20
ATTENUATION2_DB = 30
#: how long ``slac ev`` may take to start (a Python process on a busy machine)
EV_START_TIMEOUT = 30.0
#: the first sound's count may be NUM_SOUNDS (10 .. 1) or NUM_SOUNDS - 1 (9 .. 0)
NUMBER_OF_SOUNDINGS = 10


@dataclass(frozen=True)
class KeyGiven:
    at: float
    nmk: bytes
    nid: bytes


class EvProcess:
    """``slac ev`` as a subprocess in the SUT's namespace; its output kept for reports."""

    def __init__(self, netns: Netns, interface: str, workdir: Path) -> None:
        self.netns = netns
        self.interface = interface
        self.workdir = workdir
        self.process: Optional[asyncio.subprocess.Process] = None
        self.stdout_path = workdir / "slac-ev.stdout"
        self.stderr_path = workdir / "slac-ev.stderr"
        self._files: list[IO[bytes]] = []

    async def start(self) -> None:
        env = dict(os.environ)
        env.update({"LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"})
        command = self.netns.command(
            [sys.executable, "-m", "slac", "ev", "--iface", self.interface, "--timeout", "60"]
        )
        stdout = open(self.stdout_path, "wb")  # noqa: SIM115 (closed in stop())
        stderr = open(self.stderr_path, "wb")  # noqa: SIM115
        self._files = [stdout, stderr]
        self.process = await asyncio.create_subprocess_exec(
            *command, stdout=stdout, stderr=stderr, cwd=self.workdir, env=env
        )

    async def stop(self) -> None:
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 5)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for handle in self._files:
            handle.close()
        self._files = []

    def __str__(self) -> str:
        parts = []
        for path in (self.stderr_path, self.stdout_path):
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(text)
        code = None if self.process is None else self.process.returncode
        if code is not None:
            parts.append(f"(slac ev exited with {code})")
        return "\n".join(parts)


class EvccTester:
    """One EVCC test case: namespaces, veth pair, ``slac ev``, the tester's EVSEs and the
    EV's modem."""

    def __init__(self, tc: str, workdir: Path, pixit: EvccPixit = EVCC_PIXIT) -> None:
        self.tc = tc
        self.workdir = workdir
        self.pixit = pixit
        self.sut_ns: Optional[Netns] = None
        self.tester_ns: Optional[Netns] = None
        self.pair: Optional[VethPair] = None
        self.port: Port
        self.evse: Station
        self.evse2: Station
        self.modem: Station
        self.ev: Optional[EvProcess] = None
        self.verdict: Verdict
        # the catalogue's component variables
        self.run_id = bytes(8)  # vc_RunID
        self.sut_mac = EV_MAC  # vc_sut_mac
        self.num_sounds = T.C_EV_match_MNBC  # vc_Num_sounds
        self.nmk = secrets.token_bytes(16)  # vc_Nmk: the tester's EVSE key
        self.nid = tpl.nid_from_nmk(self.nmk)  # vc_Nid
        self.tt_evse_slac_init: Optional[Timer] = None
        self.tt_evse_match_session: Optional[Timer] = None
        # the emulated EV modem
        self.keys: list[KeyGiven] = []
        self._ev_running = asyncio.Event()

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> EvccTester:
        self.sut_ns = new_netns()
        self.tester_ns = new_netns()
        self.pair = VethPair(
            netns_a=self.sut_ns,
            netns_b=self.tester_ns,
            mac_a=str(EV_MAC),
            mac_b=str(EVSE_MAC),
        ).create()
        self.port = await Port(self.tester_ns, self.pair.name_b).start()
        self.evse = self.port.station(EVSE_MAC, "EVSE")
        self.evse2 = self.port.station(EVSE2_MAC, "EVSE2")
        self.modem = self.port.station(EV_MODEM_MAC, "EV modem", PLC_LOCAL_MAC)
        self.port.handlers.append(self._modem_answers)
        self.ev = EvProcess(self.sut_ns, self.pair.name_a, self.workdir)
        self.verdict = Verdict(self.tc, self.port, self.ev)
        return self

    async def close(self) -> None:
        try:
            if self.ev is not None:
                await self.ev.stop()
            if hasattr(self, "verdict"):
                self.verdict.write_report()
        finally:
            if hasattr(self, "port"):
                self.port.close()
            if self.pair is not None:
                self.pair.delete()
            for ns in (self.sut_ns, self.tester_ns):
                if ns is not None:
                    ns.delete()

    # --- the emulated EV modem ----------------------------------------------------------------

    def _modem_answers(self, received: Received) -> bool:
        if bytes(received.dst) not in (PLC_LOCAL_MAC, bytes(EV_MODEM_MAC)):
            return False
        message = received.message
        if isinstance(message, SetKeyReq):
            self.keys.append(KeyGiven(received.at, message.new_key, message.nid))
            self.modem.send(SetKeyCnf(result=0x01), received.src)
            self._ev_running.set()
            return True
        return False

    def modem_has_key(self, nmk: bytes) -> Optional[KeyGiven]:
        return next((k for k in self.keys if k.nmk == nmk), None)

    # --- preconditions (f_EVCC_CMN_PR_*) ------------------------------------------------------

    async def pr_duty_cycle(self) -> None:
        """f_EVCC_CMN_PR_DutyCycle_001: plugged in (B), 5 %: ``slac ev`` starts; the
        precondition ends when the EV runs (its first CM_SET_KEY.REQ to its modem, or its
        first SLAC frame). TT_EVSE_SLAC_init starts."""
        assert self.ev is not None
        self.port.note("control pilot B, 5 %: slac ev starts")
        await self.ev.start()
        deadline = time.time() + EV_START_TIMEOUT
        while not self._ev_running.is_set():
            if self.ev.process is not None and self.ev.process.returncode is not None:
                self.verdict.set(INCONC, "slac ev ended before it sent anything")
            if time.time() > deadline:
                self.verdict.set(
                    INCONC, f"slac ev sent nothing within {EV_START_TIMEOUT:g} s of its start"
                )
            if self.evse.pending:  # a SLAC frame first: the EV runs too
                break
            await asyncio.sleep(0.01)
        self.port.note("the EV runs")
        self.tt_evse_slac_init = Timer(T.TT_EVSE_SLAC_init_min, "TT_EVSE_SLAC_init")

    async def pr_cmslacparm(self) -> None:
        """f_EVCC_CMN_PR_CmSlacParm_001."""
        await self.pr_duty_cycle()
        await self.tb_cmslacparm_001(INCONC)

    async def pr_attenuation_characterization(self) -> None:
        """f_EVCC_CMN_PR_AttenuationCharacterization_001."""
        await self.pr_cmslacparm()
        await self.tb_attenuation_characterization_001(self.evse, INCONC)

    async def pr_cmvalidate_or_cmslacmatch(self) -> None:
        """f_EVCC_CMN_PR_CmValidateOrCmSlacMatch_001: up to the EV's CM_SLAC_MATCH.REQ."""
        await self.pr_attenuation_characterization()
        await self.tb_cmvalidate_or_cmslacmatch_001(INCONC)

    # --- helpers ------------------------------------------------------------------------------

    def _slac_init(self) -> Timer:
        assert self.tt_evse_slac_init is not None, "pr_duty_cycle() first"
        return self.tt_evse_slac_init

    def _slac_init_timeout(self, vct: Vct) -> None:
        if self._slac_init().expired_at(time.time()):
            self.verdict.set(
                vct, "TT_EVSE_SLAC_init timeout. SECC assumes that no SLAC will be performed."
            )

    def _parm_cnf(self, forwarding_sta: Optional[MacAddress] = None) -> SlacParmCnf:
        return tpl.parm_cnf(forwarding_sta or self.sut_mac, self.run_id)

    # --- CM_SLAC_PARM (f_EVCC_CMN_TB_VTB_CmSlacParm_*) ----------------------------------------

    async def tb_cmslacparm_001(self, vct: Vct) -> None:
        """The EV's CM_SLAC_PARM.REQ (the template) within TT_EVSE_SLAC_init."""
        template = tpl.expect_parm_req()
        got = await self.evse.receive(self._slac_init().expiry)
        if got is None:
            self._slac_init_timeout(vct)
            self.verdict.set(vct, "no CM_SLAC_PARM.REQ")
        if template.matches(got):
            assert isinstance(got.message, SlacParmReq)
            self.verdict.passed("CM_SLAC_PARM.REQ is correct.")
            self.run_id = got.message.run_id
            self.sut_mac = got.src
            return
        self.verdict.unexpected(vct, got, template)

    async def _parm_repetitions(
        self,
        answer: Optional[Callable[[], Message]] = None,
        repetition: Optional[Timer] = None,
    ) -> None:
        """Count the EV's CM_SLAC_PARM.REQ (each answered with ``answer()`` when given):
        repeated within TT_match_sequence up to C_EV_match_retry times, then silent for
        TT_match_response + 2 x the transmission delay. With ``repetition``
        (TT_matching_repetition) new matching processes must follow while it runs, each
        within TT_matching_rate (+ the transmission delay) of the end of the silence before
        it, and none after it."""
        template = tpl.expect_parm_req()
        count = 0
        sequence: Optional[Timer] = None
        rate: Optional[Timer] = None
        attempts = 1
        last_at = 0.0
        while True:
            got = await self.evse.receive(earliest(self._slac_init(), sequence, rate))
            if got is None:
                self._slac_init_timeout(FAIL)
                if sequence is not None and sequence.expired_at(time.time()):
                    self.verdict.fail(
                        "TT_match_sequence timeout. CM_SLAC_PARM.REQ message was not repeated "
                        f"(attempt {attempts}: {count} of {T.C_EV_match_retry + 1} sent)."
                    )
                self.verdict.fail(
                    "TP_matching_rate timeout. SUT did not start a new matching process "
                    f"(attempt {attempts}: {count} of {T.C_EV_match_retry + 1} CM_SLAC_PARM.REQ "
                    f"within {self.pixit.TTMatchingRate + T.CMN_Transmission_Delay:g} s of the "
                    "end of the silence after the last attempt, while TT_matching_repetition "
                    "runs)."
                )
            if template.matches(got):
                assert isinstance(got.message, SlacParmReq)
                # tc_TP_matching_rate is not stopped by the next process's first REQ (the
                # catalogue never stops it): that process runs while it runs, and its last REQ
                # too must come before it expires (then the silence phase takes over)
                self.run_id = got.message.run_id
                last_at = got.at
                if count > 0:
                    self.verdict.passed(f"CM_SLAC_PARM.REQ message was repeated ({count}).")
                count += 1
                sequence = Timer(T.TT_match_sequence, "TT_match_sequence")
                if answer is not None:
                    self.evse.send(answer(), got.src)
                if count <= T.C_EV_match_retry:
                    continue
                sequence.stop()
                sequence = None
                silence = Timer(
                    T.TT_match_response + 2 * T.CMN_Transmission_Delay, "TT_match_response"
                )
                got = await self.evse.receive(silence.expiry)
                if got is not None:
                    if template.matches(got):
                        gap = got.at - last_at
                        self.verdict.fail(
                            "CM_SLAC_PARM.REQ message was repeated, but v_count > "
                            f"par_C_EV_match_retry: a REQ {gap:.3f} s after REQ {count} of "
                            f"attempt {attempts} ({silence.duration:g} s of silence expected).",
                            got,
                        )
                    self.verdict.unexpected(FAIL, got, template)
                self.verdict.passed(
                    "TT_match_response timeout. The total number of retries is reached, the "
                    "Matching process shall be considered as FAILED."
                )
                if repetition is None:
                    return
                rate = Timer(
                    self.pixit.TTMatchingRate + T.CMN_Transmission_Delay, "TP_matching_rate"
                )
                if repetition.running:
                    count = 0
                    attempts += 1
                    continue
                got = await self.evse.receive(rate.expiry)
                if got is None:
                    self.verdict.passed(
                        "SUT did not start a new matching process after tc_TP_matching_repetition "
                        "timeout."
                    )
                    return
                if template.matches(got):
                    self.verdict.fail(
                        "CM_SLAC_PARM.REQ message was repeated, but tc_TP_matching_repetition "
                        f"timer has expired (after {attempts} matching processes).",
                        got,
                    )
                self.verdict.unexpected(FAIL, got, template)
            if got.is_a(StartAttenCharInd) and tpl.expect_start_atten(self.run_id).matches(got):
                self.verdict.fail(
                    "CM_START_ATTEN_CHAR.IND message was received but not expected.", got
                )
            self.verdict.unexpected(FAIL, got, template)

    async def tb_cmslacparm_002(self) -> None:
        """No CNF: the REQ is repeated C_EV_match_retry times, then the EV is silent."""
        await self._parm_repetitions()

    async def tb_cmslacparm_003(self, invalid: Callable[[], Message]) -> None:
        """Every REQ gets an invalid CNF (``invalid()``): no CM_START_ATTEN_CHAR.IND, the REQ
        is repeated C_EV_match_retry times, then the EV is silent."""
        await self._parm_repetitions(answer=invalid)

    async def tb_cmslacparm_004(self) -> None:
        """EV-side messages sent to the EV get no answer within TT_EV_atten_results."""
        template = tpl.expect_parm_req()
        got = await self.evse.receive(self._slac_init().expiry)
        if got is None:
            self._slac_init_timeout(FAIL)
            self.verdict.fail("no CM_SLAC_PARM.REQ")
        if not template.matches(got):
            self.verdict.unexpected(FAIL, got, template)
        assert isinstance(got.message, SlacParmReq)
        self.verdict.passed("CM_SLAC_PARM.REQ is correct.")
        timer = Timer(T.TT_EV_atten_results, "t")
        self.run_id, ev = got.message.run_id, got.src
        for message in (
            tpl.parm_req(self.run_id),
            tpl.start_atten_char(EVSE_MAC, self.run_id),
            tpl.mnbc_sound(10, self.run_id, secrets.token_bytes(16)),
            tpl.atten_char_rsp(EVSE_MAC, self.run_id),
            tpl.validate_req(),
            tpl.match_req(EVSE_MAC, ev, self.run_id),
        ):
            self.evse.send(message, ev)
        while True:
            got = await self.evse.receive(timer.expiry)
            if got is None:
                self.verdict.passed("The SUT did not respond to the EVCC messages.")
                return
            if template.matches(got):
                continue
            if got.is_a((SlacParmCnf, AttenCharInd, ValidateCnf, SlacMatchCnf)):
                self.verdict.fail(
                    "The EVCC shall not respond to the following messages: CM_SLAC_PARM.REQ, "
                    "CM_START_ATTEN_CHAR.IND, CM_MNBC_SOUND.IND, CM_ATTEN_CHAR.RSP, "
                    f"CM_VALIDATE.REQ, CM_SLAC_MATCH.REQ (it sent {got.name}).",
                    got,
                )
            self.verdict.unexpected(FAIL, got, template)

    async def tb_cmslacparm_005(self) -> None:
        """No CNF at all: new matching processes while TT_matching_repetition runs."""
        repetition = Timer(self.pixit.TTMatchingRepetition, "TP_matching_repetition")
        await self._parm_repetitions(repetition=repetition)

    # --- attenuation characterization (f_EVCC_CMN_TB_VTB_AttenuationCharacterization_*) -------

    async def _start_and_sounds(
        self, station: Station, vct: Vct, forwarding_sta: Optional[MacAddress] = None
    ) -> tuple[int, Optional[Timer]]:
        """CM_SLAC_PARM.CNF, then the EV's 3 CM_START_ATTEN_CHAR.IND (within
        TT_match_sequence) and its sounds counting down within TT_EVSE_match_MNBC. Returns the
        sounds heard and TP_EVSE_atten_results (started with the first START_ATTEN_CHAR)."""
        sequence = Timer(T.TT_match_sequence, "TT_match_sequence")
        station.send(self._parm_cnf(forwarding_sta), self.sut_mac)
        start = tpl.expect_start_atten(self.run_id)
        parm = tpl.expect_parm_req()
        starts = 0
        mnbc: Optional[Timer] = None
        results: Optional[Timer] = None
        while starts < T.C_EV_start_atten_char_inds:
            got = await station.receive(earliest(sequence, mnbc))
            if got is None:
                if sequence.expired_at(time.time()):
                    self.verdict.set(
                        vct,
                        "TT_match_sequence timeout. No CM_START_ATTEN_CHAR.IND message was "
                        "received. Matching process shall be considered as FAILED.",
                    )
                self.verdict.set(
                    vct,
                    "TT_EVSE_match_MNBC timeout. A wrong number of CM_START_ATTEN_CHAR.IND "
                    f"message was received ({starts}). Matching process shall be considered "
                    "as FAILED.",
                )
            if start.matches(got):
                assert isinstance(got.message, StartAttenCharInd)
                if starts == 0:
                    mnbc = Timer(T.TT_EVSE_match_MNBC, "TT_EVSE_match_MNBC")
                    # from the kernel's time of the first START_ATTEN_CHAR: the EV's
                    # TT_EV_atten_results started when it sent it
                    results = Timer(T.TT_EV_atten_results, "TP_EVSE_atten_results", got.at)
                    sequence.stop()
                    self.num_sounds = got.message.num_sounds
                self.verdict.passed("CM_START_ATTEN_CHAR.IND is correct.")
                starts += 1
                continue
            if parm.matches(got):
                sequence = Timer(T.TT_match_sequence, "TT_match_sequence")
                station.send(self._parm_cnf(forwarding_sta), self.sut_mac)
                continue
            if starts < T.C_EV_start_atten_char_inds and starts > 0:
                self.verdict.set(
                    vct,
                    f"A wrong number of CM_START_ATTEN_CHAR.IND message was received ({starts} "
                    f"before {got.name}; {T.C_EV_start_atten_char_inds} expected).",
                    got,
                )
            self.verdict.unexpected(vct, got, start, parm)
        assert mnbc is not None
        heard = 0
        decrement: Optional[int] = None
        stop = 0
        while heard < self.num_sounds:
            got = await station.receive(mnbc.expiry)
            if got is None:
                break
            if decrement is None and tpl.expect_sound(self.run_id).matches(got):
                assert isinstance(got.message, MnbcSoundInd)
                first = got.message.remaining_sounds
                if first == NUMBER_OF_SOUNDINGS:
                    decrement, stop = first - 1, 1
                elif first == NUMBER_OF_SOUNDINGS - 1:
                    decrement, stop = first - 1, 0
                else:
                    self.verdict.set(vct, f"The field 'count' has an invalid value ({first}).", got)
                heard += 1  # the tester's modem measured this sound
                continue
            if decrement is not None and tpl.expect_sound(self.run_id, decrement).matches(got):
                decrement -= 1
                heard += 1
                continue
            if parm.matches(got):
                self.verdict.set(
                    INCONC,
                    "CM_SLAC_PARM.REQ message was received. New Matching process is started.",
                    got,
                )
            self.verdict.unexpected(vct, got, tpl.expect_sound(self.run_id, decrement))
        mnbc.stop()
        if heard == 0:
            self.verdict.set(vct, "No Atten Profile messages received (no CM_MNBC_SOUND.IND).")
        if decrement != stop - 1:
            self.verdict.set(
                vct,
                f"A wrong number of CM_MNBC_SOUND.IND messages was received ({heard} within "
                f"TT_EVSE_match_MNBC, {self.num_sounds} announced).",
            )
        self.verdict.passed("CM_MNBC_SOUND.IND is correct.")
        return heard, results

    async def tb_attenuation_characterization_001(
        self, station: Station, vct: Vct, db: int = ATTENUATION_DB
    ) -> None:
        """The whole characterization with one EVSE (``station``): CNF, sounding,
        CM_ATTEN_CHAR.IND resent every TT_match_response until the RSP (the template)."""
        heard, _results = await self._start_and_sounds(station, vct)
        ind = tpl.atten_char_ind(self.sut_mac, self.run_id, heard, tpl.flat_profile(db))
        await self._atten_char_until_rsp(station, ind, vct)

    async def _atten_char_until_rsp(self, station: Station, ind: Message, vct: Vct) -> None:
        template = tpl.expect_atten_char_rsp(self.sut_mac, self.run_id)
        count = 0
        while True:
            response = Timer(T.TT_match_response, "TT_match_response")
            count += 1
            station.send(ind, self.sut_mac)
            while True:
                got = await station.receive(response.expiry)
                if got is None:
                    break
                if template.matches(got):
                    self.verdict.passed("CM_ATTEN_CHAR.RSP is correct.")
                    self.tt_evse_match_session = Timer(
                        T.TT_EVSE_match_session, "TT_EVSE_match_session"
                    )
                    return
                if tpl.expect_parm_req().matches(got):
                    self.verdict.set(
                        INCONC,
                        "CM_SLAC_PARM.REQ message was received. New Matching process is "
                        f"started (no CM_ATTEN_CHAR.RSP to {station.name}).",
                        got,
                    )
                if got.is_a((MnbcSoundInd, AttenProfileInd)):
                    continue
                self.verdict.unexpected(vct, got, template)
            if count % (T.C_EV_match_retry + 1) == 0:
                self.verdict.set(
                    vct,
                    "The repetition limit is reached. The Matching process is considered as "
                    f"FAILED (no CM_ATTEN_CHAR.RSP to {station.name}).",
                )

    async def tb_attenuation_characterization_second_evse(self, with_ind: bool) -> None:
        """SLAC_Tester2 (f_EVCC_CMN_TB_VTB_AttenuationCharacterization_002, _003 without the
        IND): a second EVSE confirms the EV's request, follows the sounding, and sends its
        own CM_ATTEN_CHAR.IND (or none)."""
        slac_init = Timer(T.TT_EVSE_SLAC_init_min, "TT_EVSE_SLAC_init")
        template = tpl.expect_parm_req()
        got = await self.evse2.receive(slac_init.expiry)
        if got is None:
            self.verdict.fail(
                "TT_EVSE_SLAC_init timeout (second EVSE). SECC assumes that no SLAC will be "
                "performed."
            )
        if not template.matches(got):
            self.verdict.unexpected(FAIL, got, template)
        self.verdict.passed("CM_SLAC_PARM.REQ is correct (second EVSE).")
        heard, _results = await self._start_and_sounds(self.evse2, FAIL)
        if with_ind:
            ind = tpl.atten_char_ind(
                self.sut_mac, self.run_id, heard, tpl.flat_profile(ATTENUATION2_DB)
            )
            await self._atten_char_until_rsp(self.evse2, ind, FAIL)

    async def tb_attenuation_characterization_004(self) -> None:
        """CM_ATTEN_CHAR.IND only after TT_EV_atten_results: no RSP."""
        heard, results = await self._start_and_sounds(self.evse, FAIL)
        assert results is not None
        got = await self.evse.receive(results.expiry)
        if got is not None:
            self.verdict.unexpected(FAIL, got)
        ind = tpl.atten_char_ind(self.sut_mac, self.run_id, heard, tpl.flat_profile(ATTENUATION_DB))
        await self._no_rsp(ind)

    async def tb_attenuation_characterization_005(self, invalid: Callable[[int], bytes]) -> None:
        """An invalid CM_ATTEN_CHAR.IND (the frame ``invalid(num_sounds)``) gets no RSP;
        after TT_EV_atten_results a valid one gets none either."""
        heard, results = await self._start_and_sounds(self.evse, FAIL)
        assert results is not None
        self.evse.send_raw(invalid(self.num_sounds))
        while True:
            got = await self.evse.receive(results.expiry)
            if got is None:
                break
            if got.is_a(AttenCharRsp):
                self.verdict.fail("Invalid CM_ATTEN_CHAR.IND messages shall be ignored.", got)
            self.verdict.unexpected(FAIL, got)
        ind = tpl.atten_char_ind(self.sut_mac, self.run_id, heard, tpl.flat_profile(ATTENUATION_DB))
        await self._no_rsp(ind)

    async def _no_rsp(self, ind: Message) -> None:
        template = tpl.expect_atten_char_rsp(self.sut_mac, self.run_id)
        response = Timer(T.TT_match_response, "TT_match_response")
        self.evse.send(ind, self.sut_mac)
        while True:
            got = await self.evse.receive(response.expiry)
            if got is None:
                self.verdict.passed(
                    "TT_match_response timeout. No CM_ATTEN_CHAR.RSP message was received from "
                    "the SUT."
                )
                return
            if template.matches(got):
                self.verdict.fail("CM_ATTEN_CHAR.RSP message was not expected.", got)
            if tpl.expect_parm_req().matches(got):
                self.verdict.set(
                    INCONC,
                    "CM_SLAC_PARM.REQ message was received. New Matching process is started.",
                    got,
                )
            if got.is_a((MnbcSoundInd, AttenProfileInd)):
                continue
            self.verdict.unexpected(FAIL, got, template)

    def invalid_atten_char_ind(
        self,
        *,
        num_groups: Optional[int] = None,
        num_sounds: Optional[int] = None,
        source_address: Optional[MacAddress] = None,
        run_id: Optional[bytes] = None,
        **changes: Union[int, bytes],
    ) -> Callable[[int], bytes]:
        """md_EVCC_CMN_CmAttenCharInd_002 with m_EVCC_CMN_atten_list_001 (30 dB), one field
        changed; NumGroups is a raw edit (the message class writes it from the values)."""

        def build(announced: int) -> bytes:
            ind = tpl.atten_char_ind(
                source_address or self.sut_mac,
                run_id or self.run_id,
                announced if num_sounds is None else num_sounds,
                tpl.flat_profile(0x1E),
                **changes,  # type: ignore[arg-type]
            )
            frame = ind.to_frame(self.sut_mac, EVSE_MAC)
            if num_groups is not None:
                frame = tpl.patch(frame, tpl.ATTEN_CHAR_IND_NUM_GROUPS, bytes((num_groups,)))
            return frame

        return build

    # --- CM_SLAC_MATCH (f_EVCC_CMN_TB_VTB_CmSlacMatch_*, CmValidateOrCmSlacMatch_001) ---------

    async def tb_cmvalidate_or_cmslacmatch_001(self, vct: Vct) -> None:
        """After the RSP the EV sends CM_SLAC_MATCH.REQ (the template) within
        TT_EVSE_match_session (or CM_VALIDATE.REQ, which this EV declares it never sends)."""
        session = self.tt_evse_match_session or Timer(
            T.TT_EVSE_match_session, "TT_EVSE_match_session"
        )
        template = tpl.expect_match_req(self.sut_mac, EVSE_MAC, self.run_id)
        while True:
            got = await self.evse.receive(session.expiry)
            if got is None:
                self.verdict.set(
                    vct,
                    "TT_EVSE_match_session timeout. Matching process shall be considered as "
                    "FAILED.",
                )
            if template.matches(got):
                self.verdict.passed("CM_SLAC_MATCH.REQ is correct.")
                session.stop()
                return
            if got.is_a(ValidateReq):
                self.verdict.set(
                    vct,
                    "CM_VALIDATE.REQ from an EV that declares PIXIT_EVCC_CMN_CmValidate = none",
                    got,
                )
            if tpl.expect_parm_req().matches(got):
                self.verdict.set(
                    INCONC,
                    "CM_SLAC_PARM.REQ message was received. New Matching process is started.",
                    got,
                )
            if got.is_a(AttenCharRsp):
                continue
            self.verdict.unexpected(vct, got, template)

    async def tb_cmslacmatch_001(self) -> None:
        """f_EVCC_CMN_TB_VTB_CmSlacMatch_001: CM_SLAC_MATCH.REQ within TT_EVSE_match_session."""
        await self.tb_cmvalidate_or_cmslacmatch_001(FAIL)

    async def _match_repetitions(self, answer: Optional[Message]) -> None:
        """The EV's first CM_SLAC_MATCH.REQ came in the precondition; unanswered (or with
        ``answer``, an invalid CNF), it is repeated within TT_match_response (+ the
        transmission delay) up to C_EV_match_retry times, then no more."""
        template = tpl.expect_match_req(self.sut_mac, EVSE_MAC, self.run_id)
        count = 1
        response = Timer(T.TT_match_response + T.CMN_Transmission_Delay, "TT_match_response")
        if answer is not None:
            self.evse.send(answer, self.sut_mac)
        while True:
            got = await self.evse.receive(response.expiry)
            if got is None:
                self.verdict.fail(
                    "TT_match_response timeout. CM_SLAC_MATCH.REQ message was not repeated "
                    f"({count} of {T.C_EV_match_retry + 1} sent)."
                )
            if not template.matches(got):
                self.verdict.unexpected(FAIL, got, template)
            count += 1
            response = Timer(T.TT_match_response + T.CMN_Transmission_Delay, "TT_match_response")
            if answer is not None:
                self.evse.send(answer, self.sut_mac)
            if count > T.C_EV_match_retry:
                break
        got = await self.evse.receive(response.expiry)
        if got is not None:
            if template.matches(got):
                self.verdict.fail(
                    "CM_SLAC_MATCH.REQ message was repeated, but v_count > par_C_EV_match_retry.",
                    got,
                )
            self.verdict.unexpected(FAIL, got, template)
        self.verdict.passed(
            "TT_match_response timeout. The total number of retries is reached, the Matching "
            "process shall be considered as FAILED"
        )

    async def tb_cmslacmatch_002(self) -> None:
        """No CNF: the REQ is repeated C_EV_match_retry times, then no more."""
        await self._match_repetitions(None)

    async def tb_cmslacmatch_003(self, invalid: SlacMatchCnf) -> None:
        """Every REQ gets an invalid CNF: the REQ is repeated as without one, and (beyond the
        catalogue's check) the EV's modem never receives that CNF's NMK."""
        await self._match_repetitions(invalid)
        given = self.modem_has_key(invalid.nmk)
        if given is not None:
            self.verdict.fail(
                "the EV gave its modem the NMK of an invalid CM_SLAC_MATCH.CNF "
                f"({self.port.since_start(given.at):.3f} s after the start)"
            )

    def valid_match_cnf(self) -> SlacMatchCnf:
        return tpl.match_cnf(self.sut_mac, EVSE_MAC, self.run_id, self.nid, self.nmk)

    # --- the link (f_EVCC_CMN_TB_VTB_PLCLinkStatus_001) ---------------------------------------

    async def tb_plclinkstatus_001(self) -> None:
        """A valid CM_SLAC_MATCH.CNF: within TT_match_join the EV's modem joins with its NMK
        and NID (f_EVCC_getPLCLinkEstablishment: here, the emulated modem gets that key)."""
        join = Timer(T.TT_match_join, "TT_match_join")
        self.evse.send(self.valid_match_cnf(), self.sut_mac)
        while join.running:
            given = self.modem_has_key(self.nmk)
            if given is not None:
                if given.nid != self.nid:
                    self.verdict.fail(
                        f"The data link could not be established by the SUT: its modem got the "
                        f"NMK with NID {given.nid.hex()} instead of {self.nid.hex()}."
                    )
                self.verdict.passed(
                    "The data link was established by the SUT "
                    f"({given.at - join.started:.3f} s after CM_SLAC_MATCH.CNF)."
                )
                return
            await asyncio.sleep(0.02)
        self.verdict.fail(
            "The data link could not be established by the SUT: its modem did not get the "
            f"NMK of CM_SLAC_MATCH.CNF within TT_match_join ({T.TT_match_join:g} s)."
        )
