"""`make bench` end to end, shortened (the real run takes minutes): every benchmark runs, the
table, the JSON and the chart come out, and the figures are sane. Needs root."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from ..conftest import ROOT, needs_root

pytestmark = needs_root

QUICK = {
    "BENCH_CODECS_ARGS": "--repeat 1",
    "BENCH_CPU_ARGS": "--rounds 5",
    "BENCH_CARPARK_ARGS": "--episodes 2",
    "BENCH_SCALE_ARGS": "--sizes 1,8 --idle 1 --spread 1 --pair-matches 3 "
    "--opu-pair-matches 2 --opu-max 8",
}


def test_make_bench_writes_table_json_and_chart(tmp_path: Path) -> None:
    out = tmp_path / "results"
    args = [f"{k}={v}" for k, v in QUICK.items()]
    done = subprocess.run(
        ["make", "--no-print-directory", "bench", f"BENCH_OUT={out}", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "lowest ratio: pack" in done.stdout
    assert "frames per CPU second" in done.stdout
    assert "| N=8 burst | slac | 8/8 | 0 |" in done.stdout
    results = json.loads((out / "scale.json").read_text())
    assert (out / "scale.md").read_text().startswith("Measured ")
    assert (out / "scale.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {r["message"] for r in results["codecs"]} >= {"CM_SLAC_PARM.REQ", "CM_SLAC_MATCH.CNF"}
    assert results["evse_cpu"]["frames_per_cpu_second"] > 0
    carpark = json.loads((out / "carpark.json").read_text())
    assert carpark["kinds"]["lowest"]["figures"]["plug_ins"] == 32
    assert (out / "carpark.md").read_text().startswith("Car park, 2 seeded episodes")
    cases = {(c["label"], c["evse"]): c for c in results["cases"]}
    pair = cases[("pair", "slac")]["rounds"]["sequential"]
    assert pair["matched"] == 3 and pair["wrong_pairings"] == 0
    for message in ("CM_SLAC_PARM.CNF", "CM_ATTEN_CHAR.IND", "CM_SLAC_MATCH.CNF"):
        timing = pair["response_ms"][message]
        assert timing["n"] == 3 and 0 < timing["p50"] < 200, (message, timing)
    for pattern in ("burst", "spread"):
        round_ = cases[("N=8", "slac")]["rounds"][pattern]
        assert round_["matched"] == 8 and round_["wrong_pairings"] == 0, round_
    assert 0 < cases[("N=8", "slac")]["evse_peak_rss_mib"] < 150
    assert cases[("N=8", "slac")]["idle"]["seconds"] == 1
    if shutil.which("evse"):  # Qualcomm's reference EVSE, side by side
        assert cases[("pair", "qualcomm")]["rounds"]["sequential"]["matched"] == 2
        assert ("N=8", "qualcomm") in cases
