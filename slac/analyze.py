"""Deprecated: moved to :mod:`slac.tools.analyze` (this old path still works, with a warning)."""

from slac._deprecated import moved
from slac.tools.analyze import *  # noqa: F403  (the names, for type checkers)

moved("slac.analyze")
