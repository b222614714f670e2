"""An inconclusive case (the test system late on its own schedule) runs again, and only its
last run counts (root: the case itself runs over veth)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slac.testing.netns import can_create_namespaces

ROOT = Path(__file__).resolve().parent.parent.parent
CASE = "TC_SECC_CMN_VTB_AttenuationCharacterization_001"
_CAN, _WHY = can_create_namespaces()


@pytest.mark.skipif(not _CAN, reason=_WHY)
def test_an_inconclusive_case_runs_again_and_reports_the_earlier_runs() -> None:
    """With a negative slack every run of a sounding case is late: the case runs
    1 + SLAC_CONFORMANCE_RERUNS times, fails once, and names the earlier inconclusive run."""
    env = dict(os.environ, SLAC_CONFORMANCE_SLACK="-1", SLAC_CONFORMANCE_RERUNS="1")
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            f"tests/conformance/test_secc.py::test_{CASE}",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "1 failed" in out, out
    assert "inconclusive runs before this one" in out, out
    assert f"run 1: {CASE}: inconclusive" in out, out
