"""Deprecated: moved to :mod:`slac.app.service` (this old path still works, with a warning)."""

from slac._deprecated import moved
from slac.app.service import *  # noqa: F403  (the names, for type checkers)

moved("slac.service")
