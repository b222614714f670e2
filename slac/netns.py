"""Deprecated: moved to :mod:`slac.testing.netns` (this old path still works, with a warning)."""

from slac._deprecated import moved
from slac.testing.netns import *  # noqa: F403  (the names, for type checkers)

moved("slac.netns")
