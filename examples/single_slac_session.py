"""Example: one EVSE (the first of cs_configuration.json) matched through the control pilot.

    python examples/single_slac_session.py [--config cs_configuration.json] [--env .env]

Needs root or CAP_NET_RAW (raw sockets): ``make run-local-sudo-single``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slac_handler import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], only_first=True, description=__doc__.splitlines()[0]))
