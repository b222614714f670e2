"""Old import paths of modules that moved: ``slac.service`` is now ``slac.app.service``, ...

A module left at an old path calls :func:`moved`: it warns once (DeprecationWarning, pointing
at the importing line) and puts the new module in its place in ``sys.modules``, so the old
name *is* the new module (the same classes, functions and module state; patching one patches
the other). Submodules of a moved package are aliased as well.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Iterable
from types import ModuleType

#: old module -> new module, for every path kept working (the tests import each one)
MOVED: dict[str, str] = {
    "slac.cli": "slac.app.cli",
    "slac.service": "slac.app.service",
    "slac.mqtt": "slac.app.mqtt",
    "slac.station": "slac.app.station",
    "slac.logs": "slac.app.logs",
    "slac.analyze": "slac.tools.analyze",
    "slac.capture": "slac.tools.capture",
    "slac.pcap": "slac.tools.pcap",
    "slac.netns": "slac.testing.netns",
    "slac.powerline": "slac.testing.powerline",
}


def moved(old: str, submodules: Iterable[str] = ()) -> ModuleType:
    """Replace module ``old`` by its new module (see :data:`MOVED`), with a warning.

    ``submodules``: names inside a moved package that stay importable under the old name
    (``slac.powerline.medium``). Returns the new module.
    """
    new = MOVED[old]
    warnings.warn(
        f"{old} has moved to {new}: import {new} instead ({old} will be removed)",
        DeprecationWarning,
        # this function, the module at the old path, then the line that imports it (the
        # import machinery's own frames are skipped)
        stacklevel=3,
    )
    module = importlib.import_module(new)
    for name in submodules:
        sys.modules[f"{old}.{name}"] = importlib.import_module(f"{new}.{name}")
    sys.modules[old] = module
    return module
