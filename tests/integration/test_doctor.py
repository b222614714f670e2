"""``slac doctor`` against the virtual powerline's emulated modem (real sockets, root): each
check passes with a healthy modem and fails with the modem broken in the way it checks (issue
15 item 5), and the command's exit codes, text and --json."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest

from slac.enums import PLC_LOCAL_MAC
from slac.ev import EvMatchingFailedError, SlacEvSession
from slac.messages import (
    VsHostActionInd,
    VsRsDevCnf,
    VsRsDevReq,
    VsSwVerCnf,
    VsSwVerReq,
    decode_frame,
)
from slac.session import SlacEvseSession, SlacSessionController
from slac.sockets.async_linux_socket import RawSocket
from slac.testing.config import fast_config
from slac.testing.netns import can_create_namespaces, ip
from slac.testing.powerline import EV, Medium, Modem, Powerline, Topology
from slac.tools.doctor import CHECKS, FAIL, PASS, SKIP, DoctorOptions, DoctorReport, diagnose

SLAC = str(Path(sys.executable).parent / "slac")
#: quick tries: a silent modem costs 3 x 0.2 s per request
QUICK = DoctorOptions(timeout=0.2)

_CAN, _WHY = can_create_namespaces()
pytestmark = pytest.mark.skipif(not _CAN, reason=_WHY)


@dataclass
class Bed:
    topo: Topology
    medium: Medium
    powerline: Powerline

    @property
    def interface(self) -> str:
        return self.topo.evse_interfaces[0]

    @property
    def modem(self) -> Modem:
        """The EVSE host's emulated modem."""
        return self.medium.modems[self.topo.ports.index(self.topo.evse_ports[0])]

    async def doctor(self, options: DoctorOptions = QUICK) -> DoctorReport:
        return await diagnose([(self.interface, "DE*TST*E1")], options)

    async def doctor_with_ev(self, options: DoctorOptions = QUICK) -> DoctorReport:
        """Doctor --with-ev while our EV (in its namespace) tries to match."""
        ev = SlacEvSession(self.topo.ev_interface, fast_config(), netns=self.topo.ev_netns[0].name)

        async def sound() -> None:
            await asyncio.sleep(0.3)  # doctor listens by then
            with contextlib.suppress(EvMatchingFailedError, asyncio.TimeoutError):
                await asyncio.wait_for(ev.match(), 4)  # doctor never lets it match

        task = asyncio.ensure_future(sound())
        try:
            return await self.doctor(DoctorOptions(timeout=0.2, with_ev=True, ev_timeout=5.0))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await ev.close()


@pytest.fixture
async def bed() -> AsyncIterator[Bed]:
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=1.0, seed=7)
        async with Powerline(medium, topo.modem_interfaces(), topo.plc_netns) as powerline:
            yield Bed(topo, medium, powerline)


def verdicts(report: DoctorReport) -> dict[str, str]:
    (only,) = report.interfaces
    assert [c.check for c in only.checks] == list(CHECKS)
    return {c.check: c.verdict for c in only.checks}


def check(report: DoctorReport, name: str) -> Any:
    result = report.interfaces[0].result(name)
    assert result is not None
    return result


# --- a healthy modem: every check passes --------------------------------------------------------


async def test_healthy_modem_passes_every_check_and_says_what_doctor_did_to_the_key(
    bed: Bed,
) -> None:
    report = await bed.doctor()
    assert verdicts(report) == {name: PASS for name in CHECKS} | {"sounding": SKIP}
    assert report.exit_code == 0
    modem = check(report, "modem")
    assert modem.data == {
        "mac": str(bed.modem.mac),
        "firmware": "MAC-QCA7000-1.2.5-virtual",
        "device_class": 0x22,
        "device": "QCA7000/QCA7005",
    }
    assert f"QCA7000/QCA7005 at {bed.modem.mac}" in modem.detail
    assert check(report, "set_key").data["result"] == 1
    assert check(report, "role").data == {"slac_mode": 2}
    assert bed.modem.keys_set == 1 and report.interfaces[0].key_changed
    text = report.to_text()
    assert "no findings" in text and "fresh random network key" in text
    assert "needs a sounding: run doctor with --with-ev" in text


async def test_healthy_modem_with_ev_measures_every_sound_with_58_groups(bed: Bed) -> None:
    report = await bed.doctor_with_ev()
    assert verdicts(report) == {name: PASS for name in CHECKS}
    sounding = check(report, "sounding")
    assert sounding.data["profiles"] == 10 and sounding.data["groups"] == 58
    assert 18.0 <= sounding.data["mean_db"] <= 22.0
    assert sounding.data["ev_mac"] == str(bed.topo.ev_ports[0].host_mac)


# --- each broken modem: its check fails ---------------------------------------------------------


def test_raw_socket_check_fails_without_cap_net_raw_and_the_rest_is_skipped() -> None:
    done = subprocess.run(
        ["setpriv", "--bounding-set", "-net_raw", SLAC, "doctor", "--iface", "lo", "--json"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (only,) = json.loads(done.stdout)["interfaces"]
    results = {c["check"]: c for c in only["checks"]}
    assert results["raw_socket"]["verdict"] == FAIL
    assert "needs root or CAP_NET_RAW" in results["raw_socket"]["detail"]
    assert "sudo slac doctor" in results["raw_socket"]["advice"]
    assert {c["verdict"] for name, c in results.items() if name != "raw_socket"} == {SKIP}


async def test_interface_check_fails_for_a_missing_interface() -> None:
    report = await diagnose([("nosuchif0", None)], QUICK)
    result = check(report, "interface")
    assert result.verdict == FAIL and "no network interface 'nosuchif0'" in result.detail
    assert "interfaces here:" in result.advice
    assert report.exit_code == 1


async def test_interface_check_fails_for_an_interface_that_is_down(bed: Bed) -> None:
    ip("link", "set", bed.interface, "down")
    report = await bed.doctor()
    result = check(report, "interface")
    assert result.verdict == FAIL and result.detail == f"{bed.interface} is down"
    assert f"ip link set {bed.interface} up" in result.advice
    assert verdicts(report)["modem"] == SKIP


async def test_silent_modem_fails_the_modem_and_key_checks(bed: Bed) -> None:
    bed.modem.silent = True
    report = await bed.doctor()
    assert verdicts(report) == {
        "raw_socket": PASS,
        "interface": PASS,
        "modem": FAIL,
        "link_status": SKIP,
        "role": SKIP,
        "set_key": FAIL,
        "sounding": SKIP,
    }
    assert "no answer to VS_SW_VER.REQ within 0.6 s" in check(report, "modem").detail
    assert check(report, "set_key").detail == "no CM_SET_KEY.CNF within 0.6 s"
    assert bed.modem.requests["VS_SW_VER.REQ"] == 3  # three tries
    assert report.exit_code == 1


async def test_link_status_check_fails_when_the_modem_does_not_answer_it(bed: Bed) -> None:
    bed.modem.answer_link_status = False
    report = await bed.doctor()
    result = check(report, "link_status")
    assert result.verdict == FAIL and "VS_PL_LINK_STATUS.REQ" in result.detail
    assert "LINK_CHECK_PERIOD=0" in result.advice
    assert report.exit_code == 1


async def test_role_check_fails_for_a_modem_in_the_ev_role(bed: Bed) -> None:
    bed.medium.set_role(0, EV)
    report = await bed.doctor()
    result = check(report, "role")
    assert result.verdict == FAIL
    assert "SLAC_EnableMode (0x1653) = 1: PEV" in result.detail
    assert "SLAC_EnableMode (0x1653) = 2" in result.advice


async def test_role_is_skipped_when_the_modem_does_not_read_its_pib(bed: Bed) -> None:
    bed.modem.answer_pib_read = False
    report = await bed.doctor()
    assert check(report, "role").verdict == SKIP
    assert report.exit_code == 0  # not knowing is not a finding


async def test_set_key_check_fails_when_the_result_is_not_what_set_key_result_ok_accepts(
    bed: Bed,
) -> None:
    bed.modem.set_key_result = 0  # as the HomePlug text says, where the setting expects 1
    report = await bed.doctor()
    result = check(report, "set_key")
    assert result.verdict == FAIL
    assert result.detail.startswith("CM_SET_KEY.CNF Result 0; SET_KEY_RESULT_OK=1 does not")
    assert "SET_KEY_RESULT_OK=0 (or 0,1)" in result.advice
    accepting = await bed.doctor(DoctorOptions(timeout=0.2, accepted=(0, 1)))
    assert check(accepting, "set_key").verdict == PASS


async def test_set_key_is_skipped_and_the_key_kept_while_another_program_uses_the_interface(
    bed: Bed,
) -> None:
    station = RawSocket(bed.interface).open()  # as a running slac evse holds one
    try:
        report = await bed.doctor()
        forced = await bed.doctor(DoctorOptions(timeout=0.2, key="set"))
    finally:
        station.close()
    result = check(report, "set_key")
    assert result.verdict == SKIP and "a running slac evse?" in result.detail
    assert not report.interfaces[0].key_changed
    assert check(forced, "set_key").verdict == PASS
    assert bed.modem.keys_set == 1  # only the forced run keyed it


async def test_sounding_fails_for_a_modem_in_the_ev_role(bed: Bed) -> None:
    bed.medium.set_role(0, EV)
    report = await bed.doctor_with_ev()
    result = check(report, "sounding")
    assert result.verdict == FAIL
    assert "but no CM_ATTEN_PROFILE.IND from the modem" in result.detail
    assert result.data["sounds"] >= 1 and result.data["profiles"] == 0


async def test_sounding_fails_for_profiles_without_data(bed: Bed) -> None:
    bed.modem.profile_data = False  # NumGroups 0, as older QCA firmware
    report = await bed.doctor_with_ev()
    result = check(report, "sounding")
    assert result.verdict == FAIL and "without data (NumGroups 0" in result.detail
    assert result.data["groups"] == 0


async def test_sounding_fails_when_no_ev_comes(bed: Bed) -> None:
    report = await bed.doctor(DoctorOptions(timeout=0.2, with_ev=True, ev_timeout=0.5))
    result = check(report, "sounding")
    assert result.verdict == FAIL and "no CM_SLAC_PARM.REQ within 0.5 s" in result.detail


# --- the emulated modem's restarts and resets (also for the station's restart handling) ---------


async def _request(sock: RawSocket, frame: bytes, kind: type, timeout: float) -> Optional[Any]:
    sock.drain_queue()
    sock.send(frame)
    return await _wait_for(sock, kind, timeout)


async def _wait_for(sock: RawSocket, kind: type, timeout: float) -> Optional[Any]:
    """The next received message of type ``kind`` within ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (remaining := deadline - loop.time()) > 0:
        try:
            data, _ = await asyncio.wait_for(sock.recv(), remaining)
        except asyncio.TimeoutError:
            return None
        message = decode_frame(data).message
        if isinstance(message, kind):
            return message
    return None


async def test_injected_restart_loses_the_key_silences_the_modem_then_announces_itself(
    bed: Bed,
) -> None:
    sock = RawSocket(bed.interface).open()
    try:
        ask = VsSwVerReq().to_frame(PLC_LOCAL_MAC, sock.mac)
        assert await _request(sock, ask, VsSwVerCnf, 1.0) is not None  # the modem knows us
        key = bed.modem.nmk
        bed.modem.restart_time = 0.5
        bed.powerline.restart_modem(0)
        assert bed.modem.nmk != key and bed.modem.restarts == 1
        assert await _request(sock, ask, VsSwVerCnf, 0.2) is None  # away while it restarts
        assert await _wait_for(sock, VsHostActionInd, 1.0) == VsHostActionInd(action=0)
        assert await _request(sock, ask, VsSwVerCnf, 1.0) is not None  # back
    finally:
        sock.close()


async def test_vs_rs_dev_is_confirmed_then_the_modem_restarts(bed: Bed) -> None:
    sock = RawSocket(bed.interface).open()
    try:
        cnf = await _request(sock, VsRsDevReq().to_frame(PLC_LOCAL_MAC, sock.mac), VsRsDevCnf, 1.0)
        assert cnf == VsRsDevCnf(status=0)
        assert bed.modem.resets == 1 and bed.modem.restarts == 1
        ask = VsSwVerReq().to_frame(PLC_LOCAL_MAC, sock.mac)
        assert await _request(sock, ask, VsSwVerCnf, 0.1) is None
        await asyncio.sleep(bed.modem.restart_time)
        assert await _request(sock, ask, VsSwVerCnf, 1.0) is not None
    finally:
        sock.close()


# --- the command: exit codes, text, --json ------------------------------------------------------


async def _slac(
    *args: str, cwd: Optional[Path] = None, netns: Optional[str] = None
) -> tuple[int, str, str]:
    """Run the slac command (in network namespace ``netns``): exit code, stdout, stderr."""
    where = [] if netns is None else ["ip", "netns", "exec", netns]
    process = await asyncio.create_subprocess_exec(
        *where,
        SLAC,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_slac_doctor_iface_json_exit_0_for_a_healthy_modem(bed: Bed, tmp_path: Path) -> None:
    env = tmp_path / "debug.env"
    env.write_text("LOG_LEVEL=DEBUG\n")
    code, out, err = await _slac(
        "doctor", "--iface", bed.interface, "--json", "--env", str(env), cwd=tmp_path
    )
    assert code == 0, out + err
    assert "DEBUG" in err  # the most talkative level, and still no network key in it
    assert bed.modem.keys_set == 1 and bed.modem.nmk.hex() not in out + err
    document = json.loads(out)
    assert document["version"] == 1 and document["exit_code"] == 0
    assert document["findings"] == 0
    (only,) = document["interfaces"]
    assert only["interface"] == bed.interface and only["key_changed"] is True
    assert [c["check"] for c in only["checks"]] == list(CHECKS)
    assert only["checks"][2]["data"]["firmware"] == "MAC-QCA7000-1.2.5-virtual"


async def test_slac_doctor_config_text_exit_1_names_the_finding_and_what_to_do(
    bed: Bed, tmp_path: Path
) -> None:
    bed.modem.set_key_result = 0
    station = tmp_path / "cs_configuration.json"
    station.write_text(
        json.dumps(
            {
                "number_of_evses": 1,
                "parameters": [{"evse_id": "DE*TST*E7", "network_interface": bed.interface}],
            }
        )
    )
    code, out, err = await _slac("doctor", "--config", str(station), cwd=tmp_path)
    assert code == 1, out + err
    assert "slac doctor: 1 interface, 1 finding" in out
    assert f"{bed.interface} (EVSE DE*TST*E7)" in out
    assert "FAIL  set key      CM_SET_KEY.CNF Result 0; SET_KEY_RESULT_OK=1" in out
    assert "-> this Qualcomm modem refused the key" in out
    env = tmp_path / "doctor.env"
    env.write_text("SET_KEY_RESULT_OK=0,1\n")
    code, out, err = await _slac("doctor", "--config", str(station), "--env", str(env))
    assert code == 0, out + err
    assert "SET_KEY_RESULT_OK=0,1 accepts it" in out


async def test_slac_doctor_with_ev_passes_when_our_ev_sounds(bed: Bed, tmp_path: Path) -> None:
    env = tmp_path / "doctor.env"
    env.write_text("SET_KEY_SETTLE_TIME=0\n")
    doctor = asyncio.ensure_future(
        _slac(
            "doctor",
            "--iface",
            bed.interface,
            "--with-ev",
            "--ev-timeout",
            "20",
            "--env",
            str(env),
            "--json",
            cwd=tmp_path,
        )
    )
    ev = SlacEvSession(bed.topo.ev_interface, fast_config(), netns=bed.topo.ev_netns[0].name)
    try:
        while not doctor.done() and bed.modem.keys_set == 0:  # noqa: ASYNC110 - no event to await
            await asyncio.sleep(0.05)  # doctor listens once it keyed the modem
        with pytest.raises((EvMatchingFailedError, asyncio.TimeoutError)):  # no match from doctor
            await asyncio.wait_for(ev.match(), 5)
    finally:
        await ev.close()
    code, out, err = await doctor
    assert code == 0, out + err
    checks = {c["check"]: c for c in json.loads(out)["interfaces"][0]["checks"]}
    assert checks["sounding"]["verdict"] == PASS and checks["sounding"]["data"]["groups"] == 58


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iface", "eth0", "--config", "cs.json"], "not allowed with argument"),
        (["--set-key", "--keep-key"], "not allowed with argument"),
        (["--config", "missing.json"], "cannot read the file"),
        (["--iface", "eth0", "--ev-timeout", "0"], "must be more than 0 s"),
    ],
)
async def test_slac_doctor_bad_usage_exits_2(args: list[str], message: str, tmp_path: Path) -> None:
    code, out, err = await _slac("doctor", *args, cwd=tmp_path)
    assert code == 2, out + err
    assert message in err and "Traceback" not in err


async def test_slac_doctor_finds_the_modems_the_powerline_command_breaks(tmp_path: Path) -> None:
    """`slac powerline -- --evse-role ev --set-key-result 0 ...` (the README's example): doctor
    in the EVSE hosts' namespace finds the role and the Result; SIGUSR1 restarts the EVSE
    modems."""
    process = await asyncio.create_subprocess_exec(
        SLAC,
        "powerline",
        "--",
        "--evse-role",
        "ev",
        "--set-key-result",
        "0",
        "--profiles-without-data",
        "--firmware",
        "MAC-QCA7000-1.1.0.730-test",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        async for raw in process.stdout:
            seen.append(raw.decode())
            if b"virtual powerline running" in raw:
                break
        (hosts,) = [line for line in seen if line.startswith("EVSE hosts: ip netns exec ")]
        namespace = hosts.split()[5]
        code, out, err = await _slac(
            "doctor",
            "--iface",
            "evse0",
            "--json",
            "--timeout",
            "0.2",
            cwd=tmp_path,
            netns=namespace,
        )
        assert code == 1, out + err
        checks = {c["check"]: c for c in json.loads(out)["interfaces"][0]["checks"]}
        assert checks["modem"]["data"]["firmware"] == "MAC-QCA7000-1.1.0.730-test"
        assert checks["role"]["verdict"] == FAIL and checks["role"]["data"]["slac_mode"] == 1
        assert checks["set_key"]["verdict"] == FAIL and checks["set_key"]["data"]["result"] == 0
        process.send_signal(signal.SIGUSR1)
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        assert line == b"restarted 1 EVSE modem(s)\n"
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        rest, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, "".join(seen) + rest.decode()
    assert "'modem restart': 1" in rest.decode()


async def test_beside_a_running_station_doctor_keeps_its_key_and_only_listens(bed: Bed) -> None:
    """A running SlacEvseSession on the interface: doctor --with-ev leaves the key alone,
    does not answer the EV itself, still sees the modem's profiles, and the car matches."""
    station = SlacEvseSession("DE*TST*E9", bed.interface, fast_config())
    ev = SlacEvSession(bed.topo.ev_interface, fast_config(), netns=bed.topo.ev_netns[0].name)
    try:
        await station.evse_set_key()
        key, keys_set = bed.modem.nmk, bed.modem.keys_set
        await SlacSessionController().process_cp_state(station, "B")
        doctor = asyncio.ensure_future(
            bed.doctor(DoctorOptions(timeout=0.2, with_ev=True, ev_timeout=10.0))
        )
        await asyncio.sleep(0.5)  # doctor listens by then
        matched = await asyncio.wait_for(ev.match(), 15)
        report = await doctor
        await station.wait_matched(timeout=5)
    finally:
        await ev.close()
        await station.close()
    assert matched.evse_mac == bed.topo.evse_ports[0].host_mac
    set_key = check(report, "set_key")
    assert set_key.verdict == SKIP and "a running slac evse?" in set_key.detail
    assert not report.interfaces[0].key_changed
    assert bed.modem.keys_set == keys_set and bed.modem.nmk == key  # the station's key stayed
    sounding = check(report, "sounding")
    assert sounding.verdict == PASS and sounding.data["answered"] is False
    assert sounding.data["profiles"] == 10
