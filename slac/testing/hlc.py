"""ISO 15118 on a test host: iso15118's EVCC (the ``hlc`` extra, Java) after our EV matched.

    python -m slac.testing.hlc evcc --iface plc0 --protocol ISO_15118_2

runs iso15118's EVCC with its simulated EV controller on ``--iface`` (TCP without TLS, one SDP
cycle), until SessionStopRes (exit 0) or a failed session (exit 1). Its log goes to stderr;
stdout carries one JSON object per line, ``{"t": <time.time()>, "event": <name>}``, for the
first SDP request (``SDPRequest``), the SDP response (``SDPResponse``), the TCP connection
(``connected``) and every V2G message it receives (``SupportedAppProtocolRes``,
``SessionSetupRes``, ..., ``SessionStopRes``): the timeline of ``make demo-hlc``.

:func:`evcc_command` is the command line; run it inside an EV host's namespace
(``Netns.command``). :func:`hlc_missing` says what is missing to run it here, if anything.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

#: the energy transfer mode the simulated EV asks for, by protocol (iso15118's names)
ENERGY_MODES = {
    "ISO_15118_2": "AC_three_phase_core",
    "DIN_SPEC_70121": "DC_extended",
    "ISO_15118_20_AC": "AC_three_phase_core",
}

#: iso15118's Java EXI codec: ~130 MB instead of ~300 MB, and a faster start
JAVA_TOOL_OPTIONS = "-XX:+UseSerialGC -Xmx96m -XX:TieredStopAtLevel=1"


def hlc_missing() -> Optional[str]:
    """Why iso15118 cannot run here (None when it can): the extra, or Java."""
    for module in ("iso15118", "aiofile", "py4j"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (the hlc extra: pip install 'slac[hlc]')"
    if shutil.which("java") is None:
        return "java is not installed (Debian package default-jre-headless; .ci/run installs it)"
    return None


def hlc_environment(**extra: str) -> dict[str, str]:
    """The environment for an iso15118 process: this one's, Java's memory options, no JSON
    dump of every message, and ``extra``."""
    return {
        **os.environ,
        "JAVA_TOOL_OPTIONS": JAVA_TOOL_OPTIONS,
        "MESSAGE_LOG_JSON": "False",
        "LOG_LEVEL": os.environ.get("HLC_LOG_LEVEL", "WARNING"),
        **extra,
    }


def evcc_command(interface: str, protocol: str = "ISO_15118_2") -> list[str]:
    """The command that runs the EVCC on ``interface`` (run it in the EV host's namespace,
    with :func:`hlc_environment` and a working directory without a ``.env``)."""
    if protocol not in ENERGY_MODES:
        raise ValueError(f"protocol {protocol!r}: one of {', '.join(ENERGY_MODES)}")
    return [sys.executable, "-m", "slac.testing.hlc", "evcc", "--iface", interface,
            "--protocol", protocol]  # fmt: skip


def _emit(event: str, when: Optional[float] = None) -> None:
    print(json.dumps({"t": time.time() if when is None else when, "event": event}), flush=True)


class _Timeline(logging.Handler):
    """Turns iso15118's log records into timeline events; ``done`` once the session ended."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.sdp_sent = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Sending SDPRequest") and not self.sdp_sent:
            self.sdp_sent = True
            _emit("SDPRequest", record.created)
        elif message.startswith("SDPResponse received"):
            _emit("SDPResponse", record.created)
        elif message == "TCP client connected":
            _emit("connected", record.created)
        elif message.endswith(" received") and " " not in message[: -len(" received")]:
            name = message[: -len(" received")]
            _emit(name, record.created)
            if name == "SessionStopRes" and not self.done.done():
                self.done.set_result(True)
        elif message.startswith("Reason: ") and not self.done.done():
            _emit("failed: " + message[len("Reason: ") :], record.created)
            self.done.set_result(False)


async def _run_evcc(interface: str, protocol: str) -> int:
    from iso15118.evcc import EVCCHandler  # sets up logging to stdout: move it to stderr
    from iso15118.evcc.controller.simulator import SimEVController
    from iso15118.evcc.evcc_config import EVCCConfig
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec
    from iso15118.shared.settings import load_shared_settings

    load_shared_settings()  # the EVCC's settings loader does it; we build EVCCConfig directly
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sys.stderr)
            handler.setLevel(root.level)
    root.setLevel(logging.INFO)  # the timeline needs iso15118's INFO lines
    timeline = _Timeline()
    root.addHandler(timeline)
    config = EVCCConfig(
        useTls=False,
        enforceTls=False,
        sdpRetryCycles=1,
        supportedProtocols=[protocol],
        energyTransferMode=ENERGY_MODES[protocol],
        supportedEnergyServices=["DC" if "DC" in ENERGY_MODES[protocol] else "AC"],
    )
    config.load_raw_values()
    handler = EVCCHandler(
        evcc_config=config,
        iface=interface,
        exi_codec=ExificientEXICodec(),
        ev_controller=SimEVController(config),
    )
    task: asyncio.Task[Any] = asyncio.ensure_future(handler.start())
    await asyncio.wait({task, timeline.done}, return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    return 0 if timeline.done.done() and timeline.done.result() else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    evcc = sub.add_parser("evcc", help="iso15118's EVCC until SessionStopRes")
    evcc.add_argument("--iface", required=True)
    evcc.add_argument("--protocol", choices=sorted(ENERGY_MODES), default="ISO_15118_2")
    args = parser.parse_args(argv)
    why = hlc_missing()
    if why is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    return asyncio.run(_run_evcc(args.iface, args.protocol))


if __name__ == "__main__":
    sys.exit(main())
