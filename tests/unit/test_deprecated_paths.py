"""The modules that moved into slac/app, slac/tools and slac/testing keep their old import
paths for now: each old name *is* the new module, and importing it warns once
(DeprecationWarning, at the importing line, naming the new path). Nothing in the project
imports an old path any more: pyproject.toml turns these warnings into errors in the tests."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from slac._deprecated import MOVED

from ..conftest import ROOT


def _forget(monkeypatch: pytest.MonkeyPatch, old: str) -> None:
    for name in [m for m in sys.modules if m == old or m.startswith(f"{old}.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_old_path_is_the_new_module_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, old: str, new: str
) -> None:
    _forget(monkeypatch, old)
    with pytest.warns(DeprecationWarning, match="has moved to") as caught:
        __import__(old)  # the import statement's own machinery, no frame of importlib's
    assert [str(w.message) for w in caught] == [
        f"{old} has moved to {new}: import {new} instead ({old} will be removed)"
    ]
    assert caught[0].filename == __file__, "the warning points at the importing line"
    assert sys.modules[old] is importlib.import_module(new)


def test_the_old_names_are_the_new_objects(monkeypatch: pytest.MonkeyPatch) -> None:
    """Also the submodules of slac.powerline (aliases at run time; type checkers see only
    the package's names there)."""
    _forget(monkeypatch, "slac.service")
    _forget(monkeypatch, "slac.powerline")
    with warnings.catch_warnings():  # the warnings: the test above
        warnings.simplefilter("ignore", DeprecationWarning)
        from slac.powerline import Topology
        from slac.service import EvseService

        medium = importlib.import_module("slac.powerline.medium")
        carpark = importlib.import_module("slac.powerline.carpark")
    from slac.app.service import EvseService as new_service
    from slac.testing.powerline import Topology as new_topology
    from slac.testing.powerline import carpark as new_carpark
    from slac.testing.powerline import medium as new_medium

    assert (EvseService, Topology) == (new_service, new_topology)
    assert (medium, carpark) == (new_medium, new_carpark)
    assert medium.Medium is new_medium.Medium


@pytest.mark.parametrize(
    ("module", "args", "says"),
    [("slac.cli", ["--version"], "slac 0.1.0"), ("slac.powerline", ["--help"], "--evs")],
)
def test_python_m_on_an_old_path_still_runs(module: str, args: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert says in done.stdout


def test_no_module_of_the_project_imports_an_old_path() -> None:
    old = "|".join(re.escape(name) for name in MOVED)
    pattern = re.compile(rf"^\s*(from ({old})(\.\w+)* import|import ({old})\b)", re.M)
    shims = {ROOT / (name.replace(".", "/") + ".py") for name in MOVED}
    shims |= {ROOT / "slac" / "powerline" / "__init__.py"}
    offenders = []
    for folder in ("slac", "tests", "benchmarks", "scripts", "examples"):
        for path in (ROOT / folder).rglob("*.py"):
            if path in shims or path in (ROOT / "slac" / "_deprecated.py", Path(__file__)):
                continue
            if pattern.search(path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
