"""Read a capture (pcap or pcapng) and tell, message by message, what went right or wrong in
each SLAC session.

A session starts with an EV's CM_SLAC_PARM.REQ and is named by (EV MAC, RunID). Frames to
and from that EV (and the CM_ATTEN_PROFILE.IND that name it) belong to its latest session.
Each check of ISO 15118-3 that a capture can show becomes a :class:`Finding` that says what
was expected and what was seen.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

from slac import enums
from slac.errors import DecodeError
from slac.messages import (
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Frame,
    Message,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    UnknownMessage,
    decode_frame,
)
from slac.tools.pcap import Packet, read_packets
from slac.utils import MacAddress, nid_from_nmk

#: Slack for timestamps taken on a host, not on the wire (scheduling, the modem's SPI).
TIMING_TOLERANCE = 0.005

EV_TO_EVSE = (SlacParmReq, StartAttenCharInd, MnbcSoundInd, AttenCharRsp, SlacMatchReq)
EVSE_TO_EV = (SlacParmCnf, AttenCharInd, SlacMatchCnf)


@dataclass
class TimelineEntry:
    time: float  # seconds since the session's first CM_SLAC_PARM.REQ
    message: str
    source: str
    destination: str
    direction: str
    detail: str = ""


@dataclass
class Finding:
    check: str
    ok: bool
    expected: str
    seen: str

    def __str__(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"[{mark}] {self.check}: expected {self.expected}; seen {self.seen}"


@dataclass
class Session:
    ev_mac: str
    run_id: str
    start: float
    evse_macs: list[str] = field(default_factory=list)
    timeline: list[TimelineEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    outcome: str = "no match"
    # working data, not reported
    frames: list[tuple[float, Frame]] = field(default_factory=list, repr=False)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("frames")
        return data


@dataclass
class Report:
    file: str
    frames: int
    homeplug_frames: int
    unknown_messages: int
    undecodable: int
    sessions: list[Session]

    def to_json(self) -> str:
        data = {
            "file": self.file,
            "frames": self.frames,
            "homeplug_frames": self.homeplug_frames,
            "unknown_messages": self.unknown_messages,
            "undecodable": self.undecodable,
            "sessions": [s.to_dict() for s in self.sessions],
        }
        return json.dumps(data, indent=2)

    def to_text(self) -> str:
        lines = [
            f"{self.file}: {self.frames} frames, {self.homeplug_frames} HomePlug, "
            f"{len(self.sessions)} SLAC session(s)"
        ]
        for s in self.sessions:
            lines.append("")
            lines.append(
                f"session EV {s.ev_mac} RunID {s.run_id} (EVSE {', '.join(s.evse_macs) or '-'})"
                f": {s.outcome}, {len(s.violations)} violation(s)"
            )
            for entry in s.timeline:
                lines.append(
                    f"  {entry.time * 1000:9.1f} ms  {entry.direction:<11} {entry.message:<24} "
                    f"{entry.detail}"
                )
            for finding in s.findings:
                lines.append(f"  {finding}")
        return "\n".join(lines)


def _direction(message: Union[Message, UnknownMessage]) -> str:
    if isinstance(message, EV_TO_EVSE):
        return "EV->EVSE"
    if isinstance(message, EVSE_TO_EV):
        return "EVSE->EV"
    if isinstance(message, AttenProfileInd):
        return "modem->EVSE"
    return "host<->modem"


def _ev_of(frame: Frame) -> Optional[bytes]:
    message = frame.message
    if isinstance(message, EV_TO_EVSE):
        return bytes(frame.src)
    if isinstance(message, EVSE_TO_EV):
        return bytes(frame.dst)
    if isinstance(message, AttenProfileInd):
        return bytes(message.pev_mac)
    return None


def _detail(message: Message) -> str:
    if isinstance(message, (SlacParmReq, StartAttenCharInd, AttenCharRsp, SlacMatchReq)):
        return f"RunID {message.run_id.hex()}"
    if isinstance(message, SlacParmCnf):
        return (
            f"RunID {message.run_id.hex()} NUM_SOUNDS {message.num_sounds} "
            f"Time_Out {message.time_out} RESP_TYPE {message.resp_type}"
        )
    if isinstance(message, MnbcSoundInd):
        return f"Cnt {message.remaining_sounds}"
    if isinstance(message, AttenProfileInd):
        return f"mean {sum(message.aag) / max(1, len(message.aag)):.1f} dB"
    if isinstance(message, AttenCharInd):
        return (
            f"RunID {message.run_id.hex()} NUM_SOUNDS {message.num_sounds} "
            f"mean {sum(message.aag) / max(1, len(message.aag)):.1f} dB"
        )
    if isinstance(message, SlacMatchCnf):
        return f"RunID {message.run_id.hex()} NID {message.nid.hex()}"
    return ""


def analyze_packets(packets: Iterable[Packet], name: str = "capture") -> Report:
    sessions: list[Session] = []
    current: dict[bytes, Session] = {}
    frames = homeplug = unknown = undecodable = 0
    for packet in packets:
        frames += 1
        if len(packet.data) < 14 or packet.data[12:14] != b"\x88\xe1":
            continue
        homeplug += 1
        try:
            frame = decode_frame(packet.data)
        except DecodeError:
            undecodable += 1
            continue
        if isinstance(frame.message, UnknownMessage):
            unknown += 1
            continue
        ev = _ev_of(frame)
        if ev is None:
            continue
        message = frame.message
        if isinstance(message, SlacParmReq):
            session = current.get(ev)
            # A new session: a new RunID, or the same one again after the last session got
            # past its parameters (some cars, the Ioniq among them, reuse their RunID).
            if (
                session is None
                or session.run_id != message.run_id.hex()
                or any(
                    not isinstance(f.message, (SlacParmReq, SlacParmCnf)) for _, f in session.frames
                )
            ):
                session = Session(str(MacAddress(ev)), message.run_id.hex(), packet.timestamp)
                sessions.append(session)
                current[ev] = session
        session = current.get(ev)
        if session is None:
            continue  # the capture starts in the middle of a session
        session.frames.append((packet.timestamp, frame))
    for session in sessions:
        _describe(session)
        _run_checks(session)
    return Report(name, frames, homeplug, unknown, undecodable, sessions)


def analyze_file(path: Union[str, Path]) -> Report:
    return analyze_packets(read_packets(path), str(path))


def _describe(session: Session) -> None:
    for t, frame in session.frames:
        message = frame.message
        assert isinstance(message, Message)
        if isinstance(message, EVSE_TO_EV) and str(frame.src) not in session.evse_macs:
            session.evse_macs.append(str(frame.src))
        session.timeline.append(
            TimelineEntry(
                t - session.start,
                message.name,
                str(frame.src),
                str(frame.dst),
                _direction(message),
                _detail(message),
            )
        )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --- the checks ---------------------------------------------------------------------------------
#
# One function per check of ISO 15118-3 that a capture can show, registered with @check in the
# order of the report. Each reads one session's frames (:class:`Evidence`) and returns its
# Finding, or None where this capture cannot show it. A gate stands where the later checks
# need what it looks for (a CM_SLAC_PARM.CNF, a CM_ATTEN_CHAR.IND): missing, the gate's
# finding is the session's last.

_M = TypeVar("_M", bound=Message)


class Evidence:
    """What the checks read: one session's frames by message type, with their times."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.run_id = bytes.fromhex(session.run_id)
        self.ev = MacAddress(session.ev_mac)

    def of(self, kind: type[_M]) -> list[tuple[float, Frame, _M]]:
        """Every frame of this message type: (capture time, frame, message), in order."""
        return [(t, f, f.message) for t, f in self.session.frames if isinstance(f.message, kind)]

    def first(self, kind: type[_M]) -> tuple[float, Frame, _M]:
        """The first frame of this type (checks behind the type's gate: there is one)."""
        return self.of(kind)[0]


Check = Callable[[Evidence], Optional[Finding]]


@dataclass(frozen=True)
class RegisteredCheck:
    run: Check
    #: a failed gate ends the session's checks
    gate: bool = False


#: Every check, in the order of the report.
CHECKS: list[RegisteredCheck] = []


def check(*, gate: bool = False) -> Callable[[Check], Check]:
    """Register the decorated function as the next check (a gate with ``gate=True``)."""

    def register(func: Check) -> Check:
        CHECKS.append(RegisteredCheck(func, gate))
        return func

    return register


def _run_checks(session: Session) -> None:
    evidence = Evidence(session)
    for registered in CHECKS:
        finding = registered.run(evidence)
        if finding is None:
            continue
        session.findings.append(finding)
        if registered.gate and not finding.ok:
            return


def _within(name: str, took: float, limit: float, after: str) -> Finding:
    """A timing check: ``took`` seconds, at most ``limit`` (with TIMING_TOLERANCE)."""
    return Finding(
        name, took <= limit + TIMING_TOLERANCE, f"at most {_ms(limit)} after {after}", _ms(took)
    )


def _answered_in_time(
    e: Evidence, request: type[Message], answer: type[Message]
) -> Optional[Finding]:
    """The first answer came within TT_match_response of the last request before it."""
    t_answer, _, message = e.first(answer)
    before = [t for t, _, _ in e.of(request) if t <= t_answer]
    if not before:
        return None
    name = f"{message.name} within TT_match_response"
    return _within(name, t_answer - before[-1], enums.TT_MATCH_RESPONSE, "the request")


def _unicast(e: Evidence, kind: type[Message]) -> Finding:
    """The first message of this type went to the EV alone."""
    _, frame, message = e.first(kind)
    return Finding(
        f"{message.name} unicast", frame.dst == e.ev, f"to the EV {e.ev}", f"to {frame.dst}"
    )


@check()
def run_id_echoed(e: Evidence) -> Finding:
    """The session's RunID in every answer and every EV message."""
    s = e.session
    wrong = [
        (t, f, carried)
        for t, f in s.frames
        if (carried := getattr(f.message, "run_id", e.run_id)) != e.run_id
    ]
    return Finding(
        "RunID echoed",
        not wrong,
        f"RunID {s.run_id} in every message",
        "all carry it"
        if not wrong
        else "; ".join(
            f"{f.message.name} at {_ms(t - s.start)} with RunID {carried.hex()}"
            for t, f, carried in wrong
        ),
    )


@check(gate=True)
def parm_cnf_sent(e: Evidence) -> Optional[Finding]:
    """Gate: an answer to CM_SLAC_PARM.REQ."""
    if e.of(SlacParmCnf):
        return None
    return Finding("CM_SLAC_PARM.CNF", False, "an answer to CM_SLAC_PARM.REQ", "none")


@check()
def parm_cnf_fields(e: Evidence) -> Finding:
    """CM_SLAC_PARM.CNF carries the values ISO 15118-3 fixes."""
    _, _, cnf = e.first(SlacParmCnf)
    values = {
        "RESP_TYPE": (cnf.resp_type, enums.RESP_TYPE_OTHER_GP_STA),
        "NUM_SOUNDS": (cnf.num_sounds, enums.C_EV_MATCH_MNBC),
        "Time_Out": (cnf.time_out, 6),
        "FORWARDING_STA": (str(cnf.forwarding_sta), str(e.ev)),
        "M-SOUND_TARGET": (str(cnf.msound_target), str(MacAddress(enums.BROADCAST_MAC))),
    }
    bad = {k: v for k, v in values.items() if v[0] != v[1]}
    return Finding(
        "CM_SLAC_PARM.CNF field values",
        not bad,
        ", ".join(f"{k} {v[1]}" for k, v in values.items()),
        "as expected" if not bad else ", ".join(f"{k} {v[0]}" for k, v in bad.items()),
    )


@check()
def parm_cnf_unicast(e: Evidence) -> Finding:
    return _unicast(e, SlacParmCnf)


@check()
def parm_cnf_timing(e: Evidence) -> Optional[Finding]:
    """CM_SLAC_PARM.CNF within TT_match_response of the request before it."""
    return _answered_in_time(e, SlacParmReq, SlacParmCnf)


def _sounding(e: Evidence) -> bool:
    """The EV started sounding: a CM_START_ATTEN_CHAR.IND or a sound."""
    return bool(e.of(StartAttenCharInd) or e.of(MnbcSoundInd))


@check()
def start_atten_char_count(e: Evidence) -> Optional[Finding]:
    """C_EV_start_atten_char_inds: the EV sends CM_START_ATTEN_CHAR.IND three times."""
    if not _sounding(e):
        return None
    starts = e.of(StartAttenCharInd)
    return Finding(
        "CM_START_ATTEN_CHAR.IND count",
        len(starts) == 3,
        "3 (C_EV_start_atten_char_inds)",
        str(len(starts)),
    )


@check()
def sound_count(e: Evidence) -> Optional[Finding]:
    """As many sounds as announced (NUM_SOUNDS of the first START, else of the CNF)."""
    if not _sounding(e):
        return None
    starts = e.of(StartAttenCharInd)
    announced = starts[0][2].num_sounds if starts else e.first(SlacParmCnf)[2].num_sounds
    counts = {sound.remaining_sounds for _, _, sound in e.of(MnbcSoundInd)}
    return Finding(
        "CM_MNBC_SOUND.IND count",
        len(counts) == announced,
        f"{announced} sounds (NUM_SOUNDS)",
        f"{len(counts)}",
    )


@check()
def sound_interval(e: Evidence) -> Optional[Finding]:
    """TP_EV_batch_msg_interval between the sounds (their median gap)."""
    sounds = e.of(MnbcSoundInd)
    if len(sounds) < 2:
        return None
    gaps = [b[0] - a[0] for a, b in zip(sounds, sounds[1:])]
    median = statistics.median(gaps)
    low, high = enums.TP_EV_BATCH_MSG_INTERVAL, enums.TP_EV_BATCH_MSG_INTERVAL_MAX
    return Finding(
        "sound interval (TP_EV_batch_msg_interval)",
        low - TIMING_TOLERANCE <= median <= high + TIMING_TOLERANCE,
        "20 ms to 50 ms between sounds",
        f"median {_ms(median)} (min {_ms(min(gaps))}, max {_ms(max(gaps))})",
    )


@check(gate=True)
def atten_char_ind_sent(e: Evidence) -> Optional[Finding]:
    """Gate: the EVSE's attenuation results."""
    if e.of(AttenCharInd):
        return None
    return Finding("CM_ATTEN_CHAR.IND", False, "the EVSE's attenuation results", "none")


@check()
def atten_char_ind_timing(e: Evidence) -> Optional[Finding]:
    """CM_ATTEN_CHAR.IND within TT_EV_atten_results of the first START."""
    starts = e.of(StartAttenCharInd)
    if not starts:
        return None
    t_ind, _, _ = e.first(AttenCharInd)
    return _within(
        "CM_ATTEN_CHAR.IND within TT_EV_atten_results",
        t_ind - starts[0][0],
        enums.TT_EV_ATTEN_RESULTS,
        "the first CM_START_ATTEN_CHAR.IND",
    )


def _profiles_before_ind(e: Evidence) -> list[AttenProfileInd]:
    """The CM_ATTEN_PROFILE.IND the EVSE had received when it sent its first results."""
    t_ind, _, _ = e.first(AttenCharInd)
    return [profile for t, _, profile in e.of(AttenProfileInd) if t <= t_ind]


@check()
def atten_char_ind_num_sounds(e: Evidence) -> Optional[Finding]:
    """NUM_SOUNDS of CM_ATTEN_CHAR.IND: the profiles received before it."""
    received = _profiles_before_ind(e)
    if not received:
        return None
    _, _, ind = e.first(AttenCharInd)
    expected = min(len(received), ind.num_sounds or 255)
    return Finding(
        "CM_ATTEN_CHAR.IND NUM_SOUNDS",
        ind.num_sounds == expected,
        f"the {expected} profiles received before it",
        str(ind.num_sounds),
    )


@check()
def atten_char_ind_averages(e: Evidence) -> Optional[Finding]:
    """Per group, CM_ATTEN_CHAR.IND holds the mean of the profiles received (+/- 1 dB)."""
    received = _profiles_before_ind(e)
    if not received:
        return None
    _, _, ind = e.first(AttenCharInd)
    groups = [p.aag for p in received if p.aag]
    if not groups:
        return Finding(
            "CM_ATTEN_CHAR.IND averages",
            True,
            "the mean of the profiles' values",
            "not checkable: the profiles carry no values (NumGroups 0)",
        )
    if not all(len(g) == len(ind.aag) for g in groups):
        return None
    means = [sum(g[i] for g in groups) / len(groups) for i in range(len(ind.aag))]
    off = [i for i, (v, m) in enumerate(zip(ind.aag, means)) if abs(v - m) > 1.0]
    return Finding(
        "CM_ATTEN_CHAR.IND averages",
        not off,
        "per group, the mean of the profiles received (+/- 1 dB for rounding): "
        f"overall {sum(means) / len(means):.1f} dB",
        "as expected"
        if not off
        else f"{len(off)} of {len(ind.aag)} groups "
        f"differ, overall {sum(ind.aag) / len(ind.aag):.1f} dB",
    )


@check()
def atten_char_rsp(e: Evidence) -> Finding:
    """The EV acknowledges CM_ATTEN_CHAR.IND within TT_match_response."""
    t_ind, _, _ = e.first(AttenCharInd)
    responses = [t for t, _, _ in e.of(AttenCharRsp) if t >= t_ind]
    if not responses:
        return Finding("CM_ATTEN_CHAR.RSP", False, "the EV's acknowledgement", "none")
    return _within(
        "CM_ATTEN_CHAR.RSP within TT_match_response",
        responses[0] - t_ind,
        enums.TT_MATCH_RESPONSE,
        "CM_ATTEN_CHAR.IND",
    )


@check()
def match_cnf_timing(e: Evidence) -> Optional[Finding]:
    """CM_SLAC_MATCH.CNF within TT_match_response of the request before it."""
    return _answered_in_time(e, SlacMatchReq, SlacMatchCnf) if e.of(SlacMatchCnf) else None


@check()
def match_cnf_unicast(e: Evidence) -> Optional[Finding]:
    return _unicast(e, SlacMatchCnf) if e.of(SlacMatchCnf) else None


@check()
def match_outcome(e: Evidence) -> Finding:
    """Matched (CM_SLAC_MATCH.CNF): the session's outcome becomes "matched"."""
    if e.of(SlacMatchCnf):
        t_match, _, match = e.first(SlacMatchCnf)
        e.session.outcome = "matched"
        return Finding(
            "outcome",
            True,
            "a match",
            f"matched after {_ms(t_match - e.session.start)} "
            f"(NID {match.nid.hex()}, NID of the NMK: "
            f"{'yes' if nid_from_nmk(match.nmk) == match.nid else 'no'})",
        )
    if e.of(SlacMatchReq):
        return Finding("outcome", False, "CM_SLAC_MATCH.CNF after CM_SLAC_MATCH.REQ", "none")
    return Finding("outcome", False, "CM_SLAC_MATCH.REQ and .CNF", "the EV never asked")


def plot(report: Report, path: Union[str, Path]) -> None:
    """Draw every session as a sequence chart (EV, EVSE, EVSE's modem) with the timings."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise RuntimeError(
            "--plot needs matplotlib: pip install 'slac[plot]' (or matplotlib)"
        ) from exc
    sessions = report.sessions or []
    height = min(60.0, max(4.0, sum(2 + 0.18 * len(s.timeline) for s in sessions)))
    figure, axes = plt.subplots(max(1, len(sessions)), 1, figsize=(9, height), squeeze=False)
    lanes = {"EV": 0.0, "EVSE": 1.0, "modem": 2.0}
    for ax, session in zip(axes[:, 0], sessions):
        ax.set_title(f"EV {session.ev_mac} RunID {session.run_id}: {session.outcome}", fontsize=9)
        for name, x in lanes.items():
            ax.axvline(x, color="grey", linewidth=1)
            ax.text(
                x,
                -0.02,
                name,
                ha="center",
                va="bottom",
                fontsize=8,
                transform=ax.get_xaxis_transform(),
            )
        for entry in session.timeline:
            y = entry.time * 1000
            start, end = {
                "EV->EVSE": (0.0, 1.0),
                "EVSE->EV": (1.0, 0.0),
                "modem->EVSE": (2.0, 1.0),
            }.get(entry.direction, (1.0, 2.0))
            ax.annotate(
                "",
                xy=(end, y),
                xytext=(start, y),
                arrowprops={"arrowstyle": "->", "linewidth": 0.8},
            )
            ax.text(
                (start + end) / 2,
                y,
                f"{entry.message}  {y:.1f} ms",
                fontsize=6,
                ha="center",
                va="bottom",
            )
        last = max((e.time * 1000 for e in session.timeline), default=1.0)
        ax.set_ylim(last * 1.04 + 5, -last * 0.04 - 5)
        ax.set_xlim(-0.3, 2.3)
        ax.set_xticks([])
        ax.set_ylabel("ms since CM_SLAC_PARM.REQ", fontsize=8)
    figure.subplots_adjust(left=0.12, right=0.97, top=0.97, bottom=0.03, hspace=0.25)
    figure.savefig(str(path), dpi=110)
    plt.close(figure)
