"""Deprecated: moved to :mod:`slac.app.cli` (this old path still works, with a warning)."""

from slac._deprecated import moved
from slac.app.cli import *  # noqa: F403  (the names, for type checkers)

moved("slac.cli")

if __name__ == "__main__":  # python -m slac.cli
    import sys

    sys.exit(main())  # noqa: F405
