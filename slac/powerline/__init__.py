"""Deprecated: moved to :mod:`slac.testing.powerline` (this old path still works, with a
warning; so do ``slac.powerline.medium``, ``.runner``, ``.topology``, ``.carpark`` and
``python -m slac.powerline``)."""

from slac._deprecated import moved
from slac.testing.powerline import *  # noqa: F403  (the names, for type checkers)

moved("slac.powerline", submodules=("medium", "runner", "topology", "carpark"))
