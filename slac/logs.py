"""Deprecated: moved to :mod:`slac.app.logs` (this old path still works, with a warning)."""

from slac._deprecated import moved
from slac.app.logs import *  # noqa: F403  (the names, for type checkers)

moved("slac.logs")
