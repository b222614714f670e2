"""The installs that need the package index: the production install (what the Docker build
stage runs) and `make lock` (skipped with SLAC_SKIP_NETWORK_TESTS=1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import ROOT


@pytest.mark.skipif(
    os.environ.get("SLAC_SKIP_NETWORK_TESTS") == "1", reason="SLAC_SKIP_NETWORK_TESTS=1"
)
def test_production_install_runs_the_slac_command(tmp_path: Path) -> None:
    """What the Docker build stage runs, here: scripts/install.sh --prod into a new venv."""
    venv = tmp_path / "venv"
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "install.sh"), "--prod", str(venv)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(production)" in done.stdout
    slac = venv / "bin" / "slac"
    version = subprocess.run([str(slac), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("slac ")
    usage = subprocess.run([str(slac), "evse", "--help"], capture_output=True, text=True)
    assert usage.returncode == 0 and "--cp" in usage.stdout
    # the production environment has no test or development packages
    listing = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {p["name"].lower() for p in json.loads(listing)}
    assert {"slac", "environs", "python-dotenv", "aiomqtt"} <= installed
    assert not installed & {"pytest", "scapy", "mypy", "ruff", "matplotlib"}
    assert not (
        venv
        / "lib"
        / "python{}.{}".format(*sys.version_info[:2])
        / "site-packages"
        / "__editable__.slac-0.1.0.pth"
    ).exists()
    shutil.rmtree(venv)


@pytest.mark.skipif(
    os.environ.get("SLAC_SKIP_NETWORK_TESTS") == "1", reason="SLAC_SKIP_NETWORK_TESTS=1"
)
def test_make_lock_recreates_a_lock_that_poetry_accepts(tmp_path: Path) -> None:
    """`make lock` in a copy of the project (it asks the package index: network)."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "poetry.lock", "README.md", "LICENSE", "Makefile"):
        shutil.copy(ROOT / name, copy / name)
    shutil.copytree(ROOT / "scripts", copy / "scripts")
    shutil.copytree(ROOT / "slac", copy / "slac", ignore=shutil.ignore_patterns("__pycache__"))
    if (ROOT / ".tools").is_dir():  # Poetry, as installed by scripts/poetry.sh
        (copy / ".tools").symlink_to(ROOT / ".tools")
    done = subprocess.run(
        ["make", "--no-print-directory", "lock"],
        capture_output=True,
        text=True,
        cwd=copy,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "poetry.lock written" in done.stdout + done.stderr
    check = subprocess.run(
        ["bash", "scripts/poetry.sh", "check", "--lock"], capture_output=True, text=True, cwd=copy
    )
    assert check.returncode == 0, check.stdout + check.stderr
    lock = (copy / "poetry.lock").read_text()
    assert "[package.source]" not in lock and "/simple" not in lock
    assert (copy / "pyproject.toml").read_text() == (ROOT / "pyproject.toml").read_text()
