"""``slac doctor``: is each interface's GreenPHY modem ready for SLAC, before a car comes?

Per interface, in this order (a check that cannot run says why, as ``skip``):

- ``raw_socket``: may this program open AF_PACKET sockets (root or CAP_NET_RAW)?
- ``interface``: does the interface exist, is it up, has it a carrier?
- ``modem``: does a modem answer VS_SW_VER.REQ (its firmware string, device class, address)?
- ``link_status``: does it answer VS_PL_LINK_STATUS.REQ (the station's link supervision)?
- ``role``: is it in the EVSE role where its PIB tells (VS_RD_MOD: SLAC_EnableMode 2)?
- ``set_key``: does it confirm CM_SET_KEY.REQ, with a Result that ``SET_KEY_RESULT_OK``
  accepts (Qualcomm modems send 1 for success, the HomePlug text says 0)?
- ``sounding`` (``--with-ev``): while an EV sounds, does the modem send CM_ATTEN_PROFILE.IND
  for each sound, with data (58 groups, not NumGroups 0, not all zero)?

What doctor changes: the ``set_key`` check gives the modem a fresh random network key (NMK),
as ``slac evse`` does after every unplug: the modem leaves any logical network it was in
(no car may be charging through it). When another program holds a raw socket on the
interface (a running ``slac evse``), the check is skipped and the key stays, unless forced.
The key itself is never logged. With ``--with-ev``, doctor answers the EV's CM_SLAC_PARM.REQ
so that it sounds, and nothing more: the EV's attempt ends without a match. Beside a running
station doctor only listens (the station answers the EV and may match it).

The verdicts are pure functions of what was received (``judge_*``), tested without sockets;
:func:`diagnose` does the I/O.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import statistics
import textwrap
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

from slac.enums import (
    DEVICE_CLASSES,
    NUM_GROUPS,
    PIB_SLAC_ENABLE_MODE,
    PLC_LOCAL_MAC,
    SET_KEY_RESULT_HPGP_SUCCESS,
    SET_KEY_RESULT_QCA_SUCCESS,
    SLAC_MODE_EVSE,
    SLAC_MODE_OFF,
    SLAC_MODE_PEV,
)
from slac.errors import DecodeError, SlacError
from slac.messages import (
    AttenProfileInd,
    Frame,
    Message,
    MnbcSoundInd,
    SetKeyCnf,
    SetKeyReq,
    SlacParmCnf,
    SlacParmReq,
    VsPlLinkStatusCnf,
    VsPlLinkStatusReq,
    VsRdModCnf,
    VsRdModReq,
    VsSwVerCnf,
    VsSwVerReq,
    decode_frame,
)
from slac.sockets.async_linux_socket import RawSocket, interface_is_up
from slac.utils import MacAddress, generate_nmk, nid_from_nmk

logger = logging.getLogger(__name__)

PASS = "pass"
FAIL = "fail"
SKIP = "skip"

#: The checks in the order they run and are reported: id -> the title an installer reads.
CHECKS: dict[str, str] = {
    "raw_socket": "raw socket",
    "interface": "interface",
    "modem": "modem",
    "link_status": "link status",
    "role": "role",
    "set_key": "set key",
    "sounding": "sounding",
}
#: Version of the JSON document (``--json``).
JSON_VERSION = 1


@dataclass
class CheckResult:
    """One check of one interface: its verdict, what was seen, and what to do about it."""

    check: str
    verdict: str
    detail: str
    advice: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return CHECKS[self.check]


@dataclass
class InterfaceReport:
    interface: str
    evse_id: Optional[str] = None
    checks: list[CheckResult] = field(default_factory=list)
    #: whether doctor gave the modem a fresh key (the set_key check ran)
    key_changed: bool = False

    def result(self, check: str) -> Optional[CheckResult]:
        return next((c for c in self.checks if c.check == check), None)

    @property
    def findings(self) -> list[CheckResult]:
        return [c for c in self.checks if c.verdict == FAIL]


@dataclass
class DoctorReport:
    interfaces: list[InterfaceReport]

    @property
    def exit_code(self) -> int:
        """0: nothing found; 1: at least one check failed."""
        return 1 if any(r.findings for r in self.interfaces) else 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": JSON_VERSION,
                "exit_code": self.exit_code,
                "findings": sum(len(r.findings) for r in self.interfaces),
                "interfaces": [
                    {
                        "interface": r.interface,
                        "evse_id": r.evse_id,
                        "key_changed": r.key_changed,
                        "checks": [asdict(c) for c in r.checks],
                    }
                    for r in self.interfaces
                ],
            },
            indent=2,
        )

    def to_text(self) -> str:
        findings = sum(len(r.findings) for r in self.interfaces)
        count = len(self.interfaces)
        lines = [
            f"slac doctor: {count} interface{'s' if count != 1 else ''}, "
            f"{findings or 'no'} finding{'s' if findings != 1 else ''}"
        ]
        for report in self.interfaces:
            lines.append("")
            name = report.interface + (f" (EVSE {report.evse_id})" if report.evse_id else "")
            lines.append(name)
            for c in report.checks:
                head = f"  {c.verdict.upper():<4}  {c.title:<11}  "
                lines.extend(_wrapped(c.detail, head))
                if c.advice and c.verdict != PASS:
                    lines.extend(_wrapped(c.advice, " " * len(head) + "-> "))
            if report.key_changed:
                lines.extend(
                    _wrapped(
                        "doctor sent this modem a fresh random network key (as slac evse does "
                        "after every unplug): a modem that takes it leaves any logical network "
                        "it was in",
                        "  note: ",
                    )
                )
        return "\n".join(lines)


#: Width of the text report.
TEXT_WIDTH = 100


def _wrapped(text: str, head: str) -> list[str]:
    return textwrap.wrap(
        text,
        TEXT_WIDTH,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_on_hyphens=False,
    ) or [head.rstrip()]


@dataclass(frozen=True)
class DoctorOptions:
    """How doctor asks: ``timeout`` per try, ``tries`` per request; the Result values that
    mean success (``SET_KEY_RESULT_OK``); the key policy (``auto``: skip the set_key check
    when another program uses the interface; ``set``: always; ``keep``: never)."""

    timeout: float = 0.5
    tries: int = 3
    accepted: tuple[int, ...] = (SET_KEY_RESULT_QCA_SUCCESS,)
    key: str = "auto"
    with_ev: bool = False
    #: how long to wait for an EV's CM_SLAC_PARM.REQ (``--with-ev``)
    ev_timeout: float = 30.0
    #: pause after the modem took the key, before the sounding (QCA modems restart)
    settle_time: float = 0.0
    #: how long to collect the profiles after the CM_SLAC_PARM.CNF
    sounding_window: float = 2.0
    #: the sudo hint of raw-socket errors
    sudo_hint: str = "`sudo slac doctor ...`"


# --- verdicts (pure) ----------------------------------------------------------------------------


def device_name(device_class: int) -> str:
    return DEVICE_CLASSES.get(device_class, f"unknown device class 0x{device_class:02X}")


def judge_modem(
    cnf: Optional[VsSwVerCnf], modem_mac: Optional[MacAddress], waited: float
) -> CheckResult:
    if cnf is None or modem_mac is None:
        return CheckResult(
            "modem",
            FAIL,
            f"no answer to VS_SW_VER.REQ within {waited:g} s",
            "no modem on this interface, or it is off, wedged or still starting, or it is not a "
            "Qualcomm modem: check its power and cable (SPI modems: the qcaspi driver and its "
            "interface name), power-cycle it, and run doctor again",
        )
    data = {
        "mac": str(modem_mac),
        "firmware": cnf.version,
        "device_class": cnf.device_class,
        "device": device_name(cnf.device_class),
    }
    seen = f"{data['device']} at {modem_mac}, firmware {cnf.version or '(empty)'}"
    if cnf.status != 0:
        return CheckResult(
            "modem",
            FAIL,
            f"{seen}: VS_SW_VER.CNF MSTATUS 0x{cnf.status:02X} (not success)",
            "the modem reports an error state: power-cycle it; if it stays, reflash its firmware",
            data,
        )
    return CheckResult("modem", PASS, seen, data=data)


def judge_link_status(cnf: Optional[VsPlLinkStatusCnf], waited: float) -> CheckResult:
    if cnf is None:
        return CheckResult(
            "link_status",
            FAIL,
            f"no answer to VS_PL_LINK_STATUS.REQ within {waited:g} s",
            "the station cannot watch the link after a match with this modem: set "
            "LINK_CHECK_PERIOD=0 (no link supervision), or use a firmware that answers it",
        )
    state = "linked (in a logical network)" if cnf.linked else "no link (no car joined)"
    return CheckResult(
        "link_status", PASS, f"answered: {state}", data={"link_status": cnf.link_status}
    )


def judge_role(cnf: Optional[VsRdModCnf], waited: float) -> CheckResult:
    where = f"PIB SLAC_EnableMode (0x{PIB_SLAC_ENABLE_MODE:04X})"
    if cnf is None or cnf.status != 0 or len(cnf.data) < 1:
        why = (
            f"no answer to VS_RD_MOD.REQ within {waited:g} s"
            if cnf is None
            else f"the PIB read was refused (MSTATUS 0x{cnf.status:02X})"
        )
        return CheckResult(
            "role",
            SKIP,
            f"{why}: the modem does not tell its role",
            "run doctor with --with-ev while an EV sounds: the sounding check shows whether the "
            "modem measures sounds as an EVSE's modem does",
        )
    mode = cnf.data[0]
    data = {"slac_mode": mode}
    if mode == SLAC_MODE_EVSE:
        return CheckResult("role", PASS, f"{where} = 2: EVSE", data=data)
    advice = (
        "write the EVSE role into the modem's PIB: SLAC_EnableMode (0x1653) = 2 and "
        "CCoSelection (0x00F4) = 2, with the module vendor's EVSE PIB or Qualcomm's tools "
        "(setpib on a PIB file, then plctool to write it), then power-cycle the modem"
    )
    if mode == SLAC_MODE_PEV:
        what = f"{where} = 1: PEV, the role of a car's modem; it does not measure sounds"
    elif mode == SLAC_MODE_OFF:
        what = f"{where} = 0: SLAC off; the modem does not measure sounds"
    else:
        what = f"{where} = {mode}: not a known role"
    return CheckResult("role", FAIL, what, advice, data)


def _result_meaning(result: int) -> str:
    if result == SET_KEY_RESULT_HPGP_SUCCESS:
        return "HomePlug's success, a Qualcomm modem's failure"
    if result == SET_KEY_RESULT_QCA_SUCCESS:
        return "a Qualcomm modem's success"
    return "no source names this value"


def judge_set_key(
    result: Optional[int], accepted: Sequence[int], waited: float, *, qualcomm: bool
) -> CheckResult:
    setting = f"SET_KEY_RESULT_OK={','.join(str(v) for v in accepted)}"
    if result is None:
        return CheckResult(
            "set_key",
            FAIL,
            f"no CM_SET_KEY.CNF within {waited:g} s",
            "slac evse cannot key this modem (it stops with 'did not confirm CM_SET_KEY'): "
            "check the modem (see the modem check); a modem that restarts slowly after a key "
            "needs a longer SET_KEY_TIMEOUT",
        )
    data = {"result": result, "accepted": list(accepted), "meaning": _result_meaning(result)}
    seen = f"CM_SET_KEY.CNF Result {result}"
    if result in accepted:
        return CheckResult(
            "set_key", PASS, f"{seen} ({_result_meaning(result)}): {setting} accepts it", data=data
        )
    if result == SET_KEY_RESULT_HPGP_SUCCESS and qualcomm:
        advice = (
            "this Qualcomm modem refused the key (it sends 1 when it takes one): power-cycle it "
            "and check its PIB; only if its LEDs blinked and it restarted (it took the key) "
            "does it follow the HomePlug text: then set SET_KEY_RESULT_OK=0 (or 0,1)"
        )
    elif result == SET_KEY_RESULT_HPGP_SUCCESS:
        advice = (
            "a modem that follows the HomePlug text sends 0 for success: set "
            "SET_KEY_RESULT_OK=0 (or 0,1 for both kinds of modem)"
        )
    elif result == SET_KEY_RESULT_QCA_SUCCESS:
        advice = (
            "Result 1 is a Qualcomm modem's success (the HomePlug text calls it failure): set "
            "SET_KEY_RESULT_OK=1 (the default) or 0,1"
        )
    else:
        advice = f"if this is the modem's success, add it: SET_KEY_RESULT_OK={result}"
    return CheckResult(
        "set_key",
        FAIL,
        f"{seen}; {setting} does not accept it: slac evse would stop with "
        "'the modem refused the key'",
        advice,
        data,
    )


@dataclass
class Sounding:
    """What one EV's sounding brought: the sounds the host heard, the modem's profiles."""

    ev_mac: Optional[MacAddress] = None
    sounds: int = 0
    expected: int = 0
    profiles: list[tuple[int, ...]] = field(default_factory=list)
    #: doctor answered the EV (False: another program on the interface did, or nobody)
    answered: bool = True


def judge_sounding(sounding: Optional[Sounding], ev_timeout: float) -> CheckResult:
    if sounding is None:
        return CheckResult(
            "sounding",
            SKIP,
            "needs a sounding: run doctor with --with-ev while an EV sounds",
            "plug in a car (or an EV simulator) and run doctor --with-ev; on the virtual "
            "powerline, run slac ev on the EV host meanwhile",
        )
    if sounding.ev_mac is None:
        return CheckResult(
            "sounding",
            FAIL,
            f"no CM_SLAC_PARM.REQ within {ev_timeout:g} s: no EV started SLAC",
            "a car starts SLAC when the control pilot shows 5 % PWM (state B): check the CP "
            "signal; an EV simulator must run while doctor waits (see --ev-timeout)",
        )
    data: dict[str, Any] = {
        "ev_mac": str(sounding.ev_mac),
        "sounds": sounding.sounds,
        "profiles": len(sounding.profiles),
        "answered": sounding.answered,
    }
    if not sounding.profiles:
        if sounding.sounds == 0:
            why = (
                "the EV may have chosen another EVSE or given up; run doctor again"
                if sounding.answered
                else "doctor only listened (another program on the interface should answer "
                "the EV): is that station in the plugged-in state? Or stop it and run doctor "
                "again"
            )
            return CheckResult(
                "sounding",
                FAIL,
                f"EV {sounding.ev_mac} asked (CM_SLAC_PARM.REQ) but no sound arrived",
                why,
                data,
            )
        return CheckResult(
            "sounding",
            FAIL,
            f"{sounding.sounds} sounds of EV {sounding.ev_mac} heard, but no "
            "CM_ATTEN_PROFILE.IND from the modem: it does not measure them",
            "the modem is not in the EVSE role (see the role check) or its firmware lacks "
            "SLAC support: configure the EVSE role, update the firmware",
            data,
        )
    groups = [len(p) for p in sounding.profiles]
    data["groups"] = max(groups)
    if max(groups) == 0:
        return CheckResult(
            "sounding",
            FAIL,
            f"{len(sounding.profiles)} CM_ATTEN_PROFILE.IND without data (NumGroups 0, as "
            "older Qualcomm firmware sends)",
            "the station can only send an all-zero CM_ATTEN_CHAR.IND, which some cars reject: "
            "update the modem's firmware",
            data,
        )
    values = [v for p in sounding.profiles for v in p]
    mean = statistics.fmean(values)
    data["mean_db"] = round(mean, 1)
    if not any(values):
        return CheckResult(
            "sounding",
            FAIL,
            f"{len(sounding.profiles)} CM_ATTEN_PROFILE.IND, every group 0 dB",
            "an attenuation of 0 dB is implausible (DIN 70121 calls values under 20 dB "
            "implausible): check the modem's firmware and its coupling to the CP line",
            data,
        )
    short = [g for g in groups if g != NUM_GROUPS]
    detail = (
        f"{len(sounding.profiles)} CM_ATTEN_PROFILE.IND for {sounding.sounds} sounds of EV "
        f"{sounding.ev_mac}: {max(groups)} groups, mean {mean:.1f} dB"
    )
    if short:
        return CheckResult(
            "sounding",
            FAIL,
            f"{detail}; {len(short)} profile(s) with {short[0]} groups, not {NUM_GROUPS}",
            "ISO 15118-3 needs 58 groups: update the modem's firmware",
            data,
        )
    return CheckResult("sounding", PASS, detail, data=data)


# --- the I/O ------------------------------------------------------------------------------------


def can_open_raw_sockets() -> Optional[str]:
    """None if AF_PACKET sockets may be opened here; else why not."""
    try:
        probe = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        return "not permitted"
    except OSError as exc:
        return str(exc)
    probe.close()
    return None


def other_packet_sockets(ifindex: int, table: str = "/proc/net/packet") -> int:
    """How many packet sockets of this network namespace are bound to interface ``ifindex``
    (another program's: call before opening one's own). Sockets bound to every interface
    (index 0, e.g. ``tcpdump -i any``) do not count."""
    try:
        with open(table, encoding="ascii") as lines:
            rows = lines.read().splitlines()[1:]
    except OSError:
        return 0
    count = 0
    for row in rows:
        fields = row.split()
        if len(fields) >= 5 and fields[4].isdigit() and int(fields[4]) == ifindex:
            count += 1
    return count


def _interfaces_here() -> str:
    try:
        return ", ".join(sorted(os.listdir("/sys/class/net")))
    except OSError:
        return "see `ip link`"


def check_interface(interface: str) -> tuple[CheckResult, Optional[int]]:
    """The interface check, and the interface's index when it exists."""
    try:
        index = socket.if_nametoindex(interface)
    except OSError:
        return (
            CheckResult(
                "interface",
                FAIL,
                f"no network interface {interface!r} here",
                f"interfaces here: {_interfaces_here()}; fix network_interface in the station "
                "file or --iface (SPI modems: is the qcaspi driver loaded?)",
            ),
            None,
        )
    try:
        up = interface_is_up(interface)
    except (SlacError, OSError) as exc:
        return CheckResult("interface", FAIL, str(exc), "see `ip link`"), index
    if not up:
        return (
            CheckResult(
                "interface",
                FAIL,
                f"{interface} is down",
                f"bring it up: `ip link set {interface} up` (and at boot, in the network "
                "configuration)",
            ),
            index,
        )
    try:
        with open(f"/sys/class/net/{interface}/carrier", encoding="ascii") as carrier:
            has_carrier = carrier.read().strip() != "0"
    except OSError:
        has_carrier = True  # not told: the modem checks will tell
    if not has_carrier:
        return (
            CheckResult(
                "interface",
                FAIL,
                f"{interface} is up but has no carrier",
                "check the cable or the SPI link to the modem and the modem's power",
            ),
            index,
        )
    return CheckResult("interface", PASS, f"{interface} exists and is up"), index


class _Probe:
    """Requests to the local modem over one raw socket, and the frames that come back."""

    def __init__(self, interface: str, options: DoctorOptions) -> None:
        self.options = options
        self.socket = RawSocket(interface, sudo_hint=options.sudo_hint)

    @property
    def mac(self) -> MacAddress:
        return self.socket.mac

    def open(self) -> None:
        self.socket.open()

    def close(self) -> None:
        self.socket.close()

    @property
    def waited(self) -> float:
        return self.options.timeout * self.options.tries

    def send(self, message: Message, dst: bytes = PLC_LOCAL_MAC) -> None:
        self.socket.send(message.to_frame(dst, self.mac))

    async def next_frame(self, deadline: float) -> Optional[Frame]:
        """The next decodable frame before ``deadline`` (loop time), None when it passed."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                data, _ = await asyncio.wait_for(self.socket.recv(), remaining)
            except asyncio.TimeoutError:
                return None
            if data[0:6] != self.mac and not data[0] & 0x01:
                continue  # another station's unicast
            try:
                return decode_frame(data)
            except DecodeError as exc:
                logger.debug("undecodable frame ignored: %s", exc)

    async def ask(self, message: Message, answer: type[Message]) -> Optional[Frame]:
        """Send ``message`` to the local modem until a frame of type ``answer`` comes."""
        loop = asyncio.get_running_loop()
        for attempt in range(self.options.tries):
            self.socket.drain_queue()
            logger.debug("%s to the modem (try %d)", message.name, attempt + 1)
            self.send(message)
            deadline = loop.time() + self.options.timeout
            while True:
                frame = await self.next_frame(deadline)
                if frame is None:
                    break
                if isinstance(frame.message, answer):
                    return frame
        return None

    async def sounding(self, *, answer: bool = True) -> Sounding:
        """Answer the first EV's CM_SLAC_PARM.REQ (``answer``; else a running station on
        this interface does), then count its sounds and the modem's CM_ATTEN_PROFILE.IND
        for it."""
        loop = asyncio.get_running_loop()
        result = Sounding()
        deadline = loop.time() + self.options.ev_timeout
        self.socket.drain_queue()
        while True:
            frame = await self.next_frame(deadline)
            if frame is None:
                return result
            if isinstance(frame.message, SlacParmReq):
                break
        request = frame.message
        assert isinstance(request, SlacParmReq)
        result.ev_mac = frame.src
        cnf = SlacParmCnf(forwarding_sta=frame.src, run_id=request.run_id)
        result.expected = cnf.num_sounds
        result.answered = answer
        if answer:
            self.send(cnf, frame.src)
        logger.info(
            "EV %s asked%s: counting its sounds",
            frame.src,
            ": CM_SLAC_PARM.CNF sent" if answer else " (the station on this interface answers)",
        )
        window = loop.time() + self.options.sounding_window
        while len(result.profiles) < cnf.num_sounds or result.sounds < cnf.num_sounds:
            frame = await self.next_frame(window)
            if frame is None:
                break
            message = frame.message
            if isinstance(message, MnbcSoundInd) and frame.src == result.ev_mac:
                result.sounds += 1
            elif isinstance(message, AttenProfileInd) and message.pev_mac == result.ev_mac:
                result.profiles.append(message.aag)
        return result


async def diagnose_interface(
    interface: str,
    options: DoctorOptions,
    evse_id: Optional[str] = None,
    *,
    raw_sockets: Optional[str] = None,
) -> InterfaceReport:
    """Every check of one interface (``raw_sockets``: the raw-socket check's finding)."""
    report = InterfaceReport(interface, evse_id)
    checks = report.checks

    def skip_rest(why: str) -> InterfaceReport:
        done = {c.check for c in checks}
        checks.extend(CheckResult(name, SKIP, why) for name in CHECKS if name not in done)
        return report

    if raw_sockets is not None:
        checks.append(
            CheckResult(
                "raw_socket",
                FAIL,
                f"opening a raw (AF_PACKET) socket: {raw_sockets}; it needs root or CAP_NET_RAW",
                "run doctor (and slac evse) as root, e.g. `sudo slac doctor ...`, or give it "
                "CAP_NET_RAW (setcap cap_net_raw+ep, docker --cap-add NET_RAW)",
            )
        )
        return skip_rest("needs the raw-socket permission")
    checks.append(CheckResult("raw_socket", PASS, "raw (AF_PACKET) sockets may be opened"))
    result, index = check_interface(interface)
    checks.append(result)
    if result.verdict != PASS or index is None:
        return skip_rest("needs the interface")
    in_use = other_packet_sockets(index)
    probe = _Probe(interface, options)
    try:
        probe.open()
    except SlacError as exc:
        checks[-1] = CheckResult("interface", FAIL, str(exc), "see `ip link`")
        return skip_rest("needs the interface")
    try:
        result.detail += f" (host MAC {probe.mac})"
        await _modem_checks(probe, report, options, in_use)
    finally:
        probe.close()
    return report


async def _modem_checks(
    probe: _Probe, report: InterfaceReport, options: DoctorOptions, in_use: int
) -> None:
    checks = report.checks
    frame = await probe.ask(VsSwVerReq(), VsSwVerCnf)
    version = frame.message if frame is not None else None
    assert version is None or isinstance(version, VsSwVerCnf)
    modem = judge_modem(version, frame.src if frame else None, probe.waited)
    checks.append(modem)
    qualcomm = version is not None
    if qualcomm:
        frame = await probe.ask(VsPlLinkStatusReq(), VsPlLinkStatusCnf)
        link = frame.message if frame is not None else None
        assert link is None or isinstance(link, VsPlLinkStatusCnf)
        checks.append(judge_link_status(link, probe.waited))
        frame = await probe.ask(VsRdModReq(length=1, offset=PIB_SLAC_ENABLE_MODE), VsRdModCnf)
        pib = frame.message if frame is not None else None
        assert pib is None or isinstance(pib, VsRdModCnf)
        checks.append(judge_role(pib, probe.waited))
    else:
        why = "needs a modem that answers Qualcomm vendor messages (see the modem check)"
        checks.append(CheckResult("link_status", SKIP, why))
        checks.append(CheckResult("role", SKIP, why))
    if options.key == "keep":
        checks.append(
            CheckResult("set_key", SKIP, "--keep-key: the modem's key was left as it was")
        )
    elif options.key == "auto" and in_use:
        checks.append(
            CheckResult(
                "set_key",
                SKIP,
                f"another program has {in_use} raw socket(s) on {report.interface} (a running "
                "slac evse?): the modem's key was left as it was",
                "stop that program and run doctor again, or pass --set-key",
            )
        )
    else:
        nmk = generate_nmk()
        frame = await probe.ask(SetKeyReq(nid=nid_from_nmk(nmk), new_key=nmk), SetKeyCnf)
        report.key_changed = True
        cnf = frame.message if frame is not None else None
        assert cnf is None or isinstance(cnf, SetKeyCnf)
        checks.append(
            judge_set_key(
                None if cnf is None else cnf.result,
                options.accepted,
                probe.waited,
                qualcomm=qualcomm,
            )
        )
        if cnf is not None and options.with_ev and options.settle_time > 0:
            await asyncio.sleep(options.settle_time)  # a QCA modem restarts with its new key
    if options.with_ev:
        logger.info(
            "%s: waiting up to %g s for an EV to sound", report.interface, options.ev_timeout
        )
        # Beside a running station, doctor only listens: the station answers the EV.
        sounding = await probe.sounding(answer=not in_use)
        checks.append(judge_sounding(sounding, options.ev_timeout))
    else:
        checks.append(judge_sounding(None, options.ev_timeout))


async def diagnose(
    interfaces: Sequence[tuple[str, Optional[str]]], options: DoctorOptions
) -> DoctorReport:
    """Check each (interface, EVSE id) in turn."""
    raw_sockets = can_open_raw_sockets()
    reports = []
    for interface, evse_id in interfaces:
        reports.append(
            await diagnose_interface(interface, options, evse_id, raw_sockets=raw_sockets)
        )
    return DoctorReport(reports)
