"""The SECC process of examples/iso15118_station.py: iso15118's SECC on one interface.

    python examples/iso15118_secc.py INTERFACE

iso15118's SECC with its simulated EVSE controller, whose news goes to stdout as JSON lines:
``secc status`` (``ready`` once its UDP server listens) and ``session ended`` (``error``: the
session did not end with SessionStop, which the station takes as D-LINK_ERROR), each with
``secc_lag_ms``, the worst stall of this process's event loop so far (the EXI codec's calls
block it). iso15118's own log goes to stderr. A real station puts its EVSE controller here.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import signal
import sys
import time
from typing import Any

#: iso15118's settings (its names) unless set already; Java's options: ~130 MB, not ~300 MB
DEFAULTS = {"JAVA_TOOL_OPTIONS": "-XX:+UseSerialGC -Xmx96m -XX:TieredStopAtLevel=1",
            "PROTOCOLS": "ISO_15118_2,DIN_SPEC_70121", "AUTH_MODES": "EIM",
            "MESSAGE_LOG_JSON": "False", "LOG_LEVEL": "WARNING"}  # fmt: skip
LAG = [0.0]  # this process's worst event-loop stall, ms


def emit(**fields: Any) -> None:
    print(json.dumps({"t": time.time(), **fields}), flush=True)


async def probe_loop_lag(period: float = 0.01) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        LAG[0] = max(LAG[0], (loop.time() - due) * 1000)


async def run(interface: str) -> None:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: end with the station
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    from iso15118.secc import SECCHandler  # its logging goes to stdout: move it to stderr
    from iso15118.secc.controller.simulator import SimEVSEController
    from iso15118.secc.secc_settings import Config
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)

    class Reporter(SimEVSEController):  # type: ignore[misc]
        async def set_status(self, status: Any) -> None:
            emit(hlc="secc status", status=status.value, secc_lag_ms=LAG[0])

        async def session_ended(self, current_state: str, reason: str) -> None:
            ok = current_state == "SessionStop"  # any other state: the session failed
            emit(hlc="session ended", state=current_state, reason=reason, error=not ok,
                 secc_lag_ms=LAG[0])  # fmt: skip

    config = Config()
    config.load_envs()  # NETWORK_INTERFACE, PROTOCOLS, AUTH_MODES, ... (iso15118's names)
    probe = asyncio.ensure_future(probe_loop_lag())
    handler = SECCHandler(exi_codec=ExificientEXICodec(), evse_controller=Reporter(), config=config)
    await handler.start(interface)
    probe.cancel()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} INTERFACE")
    asyncio.run(run(sys.argv[1]))
    sys.exit(1)  # the SECC serves until it is stopped: ending by itself is an error
