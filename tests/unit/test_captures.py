"""SLAC captured in the field with production cars and chargers (../shared/captures):
decoded and analysed (`slac analyze`). The replays into our EVSE and our EV are in
tests/interop/test_captures_replay.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slac.messages import (
    Message,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacParmCnf,
    UnknownMessage,
    decode_frame,
)
from slac.tools.analyze import analyze_file, analyze_packets
from slac.tools.pcap import Packet, read_packets, write_pcap

from ..conftest import CAPTURES, ROOT
from ..replay import capture_path

pytestmark = pytest.mark.skipif(
    not CAPTURES.is_dir(),
    reason=f"the field captures are not here ({CAPTURES}); they live beside the project, not in it",
)

ALL = sorted(CAPTURES.glob("*.pcap*")) if CAPTURES.is_dir() else []

#: Violations the analyser reports in sessions that matched, each with what shows it.
JUSTIFIED = {
    (
        "2022-12-13_compleo_powerdelivery230_no_load",
        1,
        "CM_SLAC_PARM.CNF within TT_match_response",
    ): "the Compleo's confirmation came 216 ms after the last request (capture timestamps)",
    (
        "2023-04-19_compleo_pyPlc_lightbulb_failedBadRegulation",
        1,
        "CM_ATTEN_CHAR.RSP within TT_match_response",
    ): "pyPLC (the EV) answered 440 ms after the first indication; the charger resent it",
    (
        "2023-04-19_westparkAlpi_pyPlc_lightbulb_1fail_1ok",
        1,
        "CM_ATTEN_CHAR.RSP within TT_match_response",
    ): "pyPLC (the EV) answered 432 ms after the first indication; the charger resent it",
    (
        "2026-02-03_pyPLC_FoccciCape_with_Ioniq_runs_10_minutes",
        0,
        "CM_ATTEN_CHAR.IND averages",
    ): "pyPLC (the EVSE) reports fixed values (mean 9.6 dB), not the modem's (mean 24.4 dB)",
    (
        "2026-02-03_pyPLC_FoccciCape_with_Ioniq_runs_10_minutes",
        1,
        "CM_ATTEN_CHAR.IND averages",
    ): "pyPLC (the EVSE) reports fixed values (mean 9.6 dB), not the modem's (mean 23.2 dB)",
}


def stem(path: Path) -> str:
    return path.name.split(".slac.")[0]


@pytest.mark.parametrize("path", ALL, ids=[stem(p) for p in ALL])
def test_every_frame_decodes_and_every_slac_message_repacks_to_the_same_bytes(
    path: Path,
) -> None:
    packets = list(read_packets(path))
    assert packets
    for packet in packets:
        frame = decode_frame(packet.data)  # raises on failure
        message = frame.message
        if isinstance(message, UnknownMessage):
            assert message.pack() == packet.data[14 + frame.homeplug.length :]
            continue
        assert isinstance(message, Message)
        if not 0x6000 <= message.MMTYPE < 0x8000:
            continue  # vendor messages: decoded above, only the fields SLAC needs are modelled
        ours = message.to_frame(frame.dst, frame.src)
        common = min(len(ours), len(packet.data))
        assert ours[:common] == packet.data[:common], message.name
        longer = ours if len(ours) > len(packet.data) else packet.data
        assert not any(longer[common:]), f"{message.name}: beyond the shorter frame, padding"


@pytest.mark.parametrize("path", ALL, ids=[stem(p) for p in ALL])
def test_analyser_runs_and_matched_sessions_have_only_justified_violations(
    path: Path,
) -> None:
    report = analyze_file(path)
    json.loads(report.to_json())
    assert report.undecodable == 0
    for index, session in enumerate(report.sessions):
        if session.outcome != "matched":
            continue
        for finding in session.violations:
            assert (stem(path), index, finding.check) in JUSTIFIED, str(finding)


def test_every_justified_violation_is_still_reported() -> None:
    for name, index, check in JUSTIFIED:
        session = analyze_file(capture_path(name)).sessions[index]
        assert check in {f.check for f in session.violations}, (name, check)


def _model_y() -> list[Packet]:
    return list(read_packets(capture_path("2024-04-20_ModelY_pyPLC_stop_in_precharge")))


def _violations(packets: list[Packet]) -> set[str]:
    (session,) = analyze_packets(packets).sessions
    return {f.check for f in session.violations}


def test_clean_session_has_no_violation() -> None:
    assert _violations(_model_y()) == set()


def test_a_confirmation_with_a_wrong_run_id_is_reported_exactly() -> None:
    packets = []
    for packet in _model_y():
        message = decode_frame(packet.data).message
        if isinstance(message, SlacParmCnf):
            frame = decode_frame(packet.data)
            wrong = SlacParmCnf(forwarding_sta=message.forwarding_sta, run_id=b"\x99" * 8)
            packet = Packet(packet.timestamp, wrong.to_frame(frame.dst, frame.src))
        packets.append(packet)
    assert _violations(packets) == {"RunID echoed"}


def test_eight_sounds_instead_of_ten_are_reported_exactly() -> None:
    packets, dropped = [], 0
    for packet in _model_y():
        message = decode_frame(packet.data).message
        if isinstance(message, MnbcSoundInd) and message.remaining_sounds in (0, 1):
            dropped += 1
            continue
        packets.append(packet)
    assert dropped == 2
    assert _violations(packets) == {"CM_MNBC_SOUND.IND count"}


def test_a_late_answer_is_reported_exactly() -> None:
    packets = []
    for packet in _model_y():
        if isinstance(decode_frame(packet.data).message, SlacMatchCnf):
            packet = Packet(packet.timestamp + 0.3, packet.data)
        packets.append(packet)
    assert _violations(packets) == {"CM_SLAC_MATCH.CNF within TT_match_response"}


def test_slac_analyze_command_text_json_and_plot(tmp_path: Path) -> None:
    path = capture_path("2023-04-24_atHome_Ioniq_without_and_with_60W_bulbs")
    text = subprocess.run(
        [sys.executable, "-m", "slac", "analyze", str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "3 SLAC session(s)" in text
    assert "CM_SLAC_MATCH.CNF" in text
    data = json.loads(
        subprocess.run(
            [sys.executable, "-m", "slac", "analyze", "--json", str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout
    )
    assert [s["outcome"] for s in data["sessions"]] == ["matched"] * 3
    png = tmp_path / "chart.png"
    subprocess.run(
        [sys.executable, "-m", "slac", "analyze", str(path), "--plot", str(png)],
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = subprocess.run(
        [sys.executable, "-m", "slac", "analyze", "nope.pcap"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == "error: no such file: nope.pcap"


def test_analyser_reads_our_own_pcap(tmp_path: Path) -> None:
    path = tmp_path / "copy.pcap"
    write_pcap(path, _model_y())
    (session,) = analyze_file(path).sessions
    assert session.outcome == "matched"


def test_slac_analyze_strict_exit_code(tmp_path: Path) -> None:
    """--strict: exit 1 when a session breaks a rule, 0 when none does; --plot alongside."""
    slac = str(Path(sys.executable).parent / "slac")  # the console script, as the README runs it
    late = capture_path("2022-12-13_compleo_powerdelivery230_no_load")  # CNF after 216 ms
    clean = capture_path("2024-04-20_ModelY_pyPLC_stop_in_precharge")
    png = tmp_path / "seq.png"
    failing = subprocess.run(
        [slac, "analyze", str(late), "--plot", str(png), "--strict"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "TT_match_response" in failing.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    passing = subprocess.run(
        [slac, "analyze", str(clean), "--strict"], capture_output=True, text=True, cwd=ROOT
    )
    assert passing.returncode == 0, passing.stdout
