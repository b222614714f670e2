"""ISO 15118 on a test host: iso15118's EVCC (the ``hlc`` extra, Java) after our EV matched.

    python -m slac.testing.hlc evcc --iface plc0 --protocol ISO_15118_2

runs iso15118's EVCC with its simulated EV controller on ``--iface`` (TCP without TLS, one SDP
cycle), until SessionStopRes (exit 0) or a failed session (exit 1). Its log goes to stderr;
stdout carries one JSON object per line, ``{"t": <time.time()>, "event": <name>}``, for
each SDP request (``SDPRequest``, every 250 ms until answered), the SDP response
(``SDPResponse``), the TCP connection (``connected``) and every V2G message it receives
(``supportedAppProtocolRes``, ``SessionSetupRes``, ..., ``SessionStopRes``): the timeline
of ``make demo-hlc``.

:func:`evcc_command` is the command line; run it inside an EV host's namespace
(``Netns.command``). :func:`hlc_missing` says what is missing to run it here, if anything.
:class:`JsonLinesProcess` runs a program that reports in JSON lines (the EVCC, and
examples/iso15118_station.py) and lets a test or the demo wait for what it reports.
:class:`HlcSite` is the whole bed of ``make demo-hlc`` and tests/integration/test_hlc.py: a
virtual powerline, examples/iso15118_station.py on the EVSE host, our EV and the EVCC on the EV
host.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Optional

from slac.ev import EvMatchResult, SlacEvSession
from slac.testing.config import fast_config
from slac.testing.powerline import Powerline, Topology

ROOT = Path(__file__).resolve().parent.parent.parent
STATION = ROOT / "examples" / "iso15118_station.py"
EVSE_ID = "DE*SWT*E123456789"
#: the station's settings: fast key changes (the virtual modems take a key at once)
STATION_ENV = "LOG_LEVEL=INFO\nSET_KEY_SETTLE_TIME=0\nSET_KEY_TIMEOUT=500\nLINK_CHECK_PERIOD=0.2\n"

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


def evcc_command(
    interface: str, protocol: str = "ISO_15118_2", timeout_scale: float = 1.0
) -> list[str]:
    """The command that runs the EVCC on ``interface`` (run it in the EV host's namespace,
    with :func:`hlc_environment` and a working directory without a ``.env``).

    ``timeout_scale`` stretches the simulated EV's wait for each response (ISO 15118-2 and
    DIN 70121 message timeouts; 1: as the standards say): on a loaded machine iso15118's Java
    EXI codec misses DIN 70121's 250 ms for CurrentDemandRes."""
    if protocol not in ENERGY_MODES:
        raise ValueError(f"protocol {protocol!r}: one of {', '.join(ENERGY_MODES)}")
    return [sys.executable, "-m", "slac.testing.hlc", "evcc", "--iface", interface,
            "--protocol", protocol, "--timeout-scale", str(timeout_scale)]  # fmt: skip


def _scale_evcc_timeouts(scale: float) -> None:
    """The EVCC's message timeouts (its states' ``Timeouts`` enums) times ``scale``."""
    import enum

    from iso15118.evcc.states import din_spec_states, iso15118_2_states, sap_states

    for module in (din_spec_states, iso15118_2_states, sap_states):
        original = module.Timeouts
        # __members__: the aliases too (members of equal value, e.g. the many 2 s timeouts)
        values = {
            name: float(member.value) * scale for name, member in original.__members__.items()
        }
        module.Timeouts = enum.Enum(original.__name__, values, type=float)  # type: ignore[misc]


class JsonLinesProcess:
    """A child process whose stdout is JSON lines (other lines are passed on as they are) and
    whose stderr is its log: both go to ``echo`` (``"out"`` or ``"err"``, the line)."""

    def __init__(self, args: Sequence[str], echo: Callable[[str, str], None], **kwargs: Any):
        self.args = list(args)
        self.kwargs = kwargs
        self.echo = echo
        self.events: list[dict[str, Any]] = []
        self.log: list[str] = []
        self.process: Optional[asyncio.subprocess.Process] = None
        self._changed = asyncio.Event()
        self._readers: list[asyncio.Future[None]] = []

    async def start(self) -> JsonLinesProcess:
        self.process = await asyncio.create_subprocess_exec(
            *self.args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            **self.kwargs,
        )  # fmt: skip
        assert self.process.stdout is not None and self.process.stderr is not None
        self._readers = [
            asyncio.ensure_future(self._read(self.process.stdout, "out")),
            asyncio.ensure_future(self._read(self.process.stderr, "err")),
        ]
        return self

    async def _read(self, stream: asyncio.StreamReader, name: str) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            if name == "err":
                self.log.append(line)
                self._changed.set()
            else:
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                    self._changed.set()
            self.echo(name, line)
        self._changed.set()

    async def write(self, line: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float, *, after: int = 0
    ) -> dict[str, Any]:
        """The first event from index ``after`` on for which ``predicate`` holds; TimeoutError
        (with the log's tail) when none came within ``timeout`` s or the process ended."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for event in self.events[after:]:
                if predicate(event):
                    return event
            self._check_alive(deadline, f"no such event within {timeout} s")
            await self._changed_within(deadline)

    async def wait_for_log(self, text: str, timeout: float, *, after: int = 0) -> str:
        """The first log line from index ``after`` on that contains ``text``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for line in self.log[after:]:
                if text in line:
                    return line
            self._check_alive(deadline, f"no log line with {text!r} within {timeout} s")
            await self._changed_within(deadline)

    def _check_alive(self, deadline: float, why: str) -> None:
        ended = self.process is not None and all(r.done() for r in self._readers)
        if ended or asyncio.get_running_loop().time() >= deadline:
            tail = "\n".join(self.log[-15:])
            reason = "it ended" if ended else why
            raise TimeoutError(f"{' '.join(self.args[-3:])}: {reason}; its log ends:\n{tail}")

    async def _changed_within(self, deadline: float) -> None:
        self._changed.clear()
        left = deadline - asyncio.get_running_loop().time()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(left, 0.0))

    async def wait(self, timeout: float) -> int:
        """The exit code, once it ended (killed after ``timeout`` s)."""
        assert self.process is not None
        try:
            await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()
        await asyncio.gather(*self._readers)
        assert self.process.returncode is not None
        return self.process.returncode

    async def stop(self, timeout: float = 10.0) -> int:
        """Close its stdin (if it has one), then terminate it if it is still running."""
        assert self.process is not None
        if self.process.stdin is not None and not self.process.stdin.is_closing():
            self.process.stdin.close()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.process.wait(), timeout)
        if self.process.returncode is None:
            self.process.terminate()
        return await self.wait(timeout)


def _quiet(_stream: str, _line: str) -> None:
    pass


class HlcSite:
    """A virtual powerline with one EVSE host (examples/iso15118_station.py) and one EV host.

        async with HlcSite() as site:
            await site.plug_in()            # CP B at the station; it signals 5 % PWM
            await site.match()              # our EV: SLAC, then its modem joins the network
            evcc = await site.start_evcc()  # iso15118's EVCC on the EV host

    ``echo(source, line)`` sees every line of the station and the EVCC (``source``:
    ``station``, ``station log``, ``evcc``, ``evcc log``).
    """

    def __init__(self, echo: Callable[[str, str], None] = _quiet, attenuation: float = 20.0):
        self.echo = echo
        self.attenuation = attenuation
        self.topo = Topology(evs=1, evses=1, evse_netns=True)
        self.powerline: Optional[Powerline] = None
        self.station: Optional[JsonLinesProcess] = None
        self._tmp = tempfile.TemporaryDirectory(prefix="slac-hlc-")
        self.ev_result: Optional[EvMatchResult] = None
        self.evccs: list[JsonLinesProcess] = []

    async def __aenter__(self) -> HlcSite:
        try:
            self.topo.create()
            assert self.topo.evse_netns is not None
            medium = self.topo.medium(attenuation=self.attenuation)
            netns = self.topo.plc_netns
            self.powerline = await Powerline(medium, self.topo.modem_interfaces(), netns).start()
            await self.start_station()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    async def start_station(self) -> JsonLinesProcess:
        tmp = Path(self._tmp.name)
        station = tmp / "cs_configuration.json"
        interface = self.topo.evse_interfaces[0]
        station.write_text(
            json.dumps(
                {
                    "number_of_evses": 1,
                    "parameters": [{"evse_id": EVSE_ID, "network_interface": interface}],
                }
            )
        )
        env = tmp / "station.env"
        env.write_text(STATION_ENV)
        assert self.topo.evse_netns is not None
        command = [sys.executable, str(STATION), "--config", str(station), "--env", str(env)]
        self.station = JsonLinesProcess(
            self.topo.evse_netns.command(command),
            lambda stream, line: self.echo("station" if stream == "out" else "station log", line),
            stdin=asyncio.subprocess.PIPE,
            cwd=str(ROOT),
        )
        await self.station.start()
        await self.station.wait_for(lambda event: event.get("state") == "unmatched", 60)
        return self.station

    async def cp(self, state: str) -> None:
        assert self.station is not None
        await self.station.write(state)

    async def plug_in(self) -> float:
        """CP B at the station; returns once it signals 5 % PWM (ready to match). The time of
        the plug-in (``time.time()``)."""
        assert self.station is not None
        after = len(self.station.log)
        plugged = time.time()
        await self.cp("B")
        await self.station.wait_for_log("ready to match", 10, after=after)
        return plugged

    def ev(self) -> SlacEvSession:
        return SlacEvSession(
            self.topo.ev_interface, fast_config(), netns=self.topo.ev_netns[0].name
        )

    async def match(self) -> tuple[float, float]:
        """Our EV: SLAC with the station, then the received key into its modem (it joins the
        logical network). The times both ended (``time.time()``)."""
        ev = self.ev()
        try:
            self.ev_result = await asyncio.wait_for(ev.match(join=False), 30)
            matched = time.time()
            await ev.set_key(self.ev_result.nmk, self.ev_result.nid)
            return matched, time.time()
        finally:
            await ev.close()

    async def start_evcc(
        self, protocol: str = "ISO_15118_2", timeout_scale: float = 1.0
    ) -> JsonLinesProcess:
        """iso15118's EVCC on the EV host (see :func:`evcc_command`)."""
        args = evcc_command(self.topo.ev_interface, protocol, timeout_scale)
        command = self.topo.ev_netns[0].command(args)
        evcc = JsonLinesProcess(
            command,
            lambda stream, line: self.echo("evcc" if stream == "out" else "evcc log", line),
            env=hlc_environment(),
            cwd="/",
        )
        self.evccs.append(evcc)
        return await evcc.start()

    async def udp_15118_bound(self) -> bool:
        """Whether anything on the EVSE host listens on UDP port 15118 (SDP)."""
        assert self.topo.evse_netns is not None
        process = await asyncio.create_subprocess_exec(
            *self.topo.evse_netns.command(["ss", "-H", "-uln", "sport = :15118"]),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await process.communicate()
        return bool(out.strip())

    async def close(self) -> None:
        try:
            for evcc in self.evccs:
                if evcc.process is not None and evcc.process.returncode is None:
                    await evcc.stop()
            if self.station is not None and self.station.process is not None:
                await self.station.stop()
        finally:
            if self.powerline is not None:
                self.powerline.close()
            self.topo.delete()
            self._tmp.cleanup()


def _emit(event: str, when: Optional[float] = None) -> None:
    print(json.dumps({"t": time.time() if when is None else when, "event": event}), flush=True)


class _Timeline(logging.Handler):
    """Turns iso15118's log records into timeline events; ``done`` once the session ended."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Sending SDPRequest"):
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
        elif message.startswith("SDPRequest was not successful") and not self.done.done():
            _emit("failed: no SDPResponse", record.created)
            self.done.set_result(False)


async def _run_evcc(interface: str, protocol: str, timeout_scale: float) -> int:
    from iso15118.evcc import EVCCHandler  # sets up logging to stdout: move it to stderr
    from iso15118.evcc.controller.simulator import SimEVController
    from iso15118.evcc.evcc_config import EVCCConfig
    from iso15118.shared.exificient_exi_codec import ExificientEXICodec
    from iso15118.shared.settings import load_shared_settings

    load_shared_settings()  # the EVCC's settings loader does it; we build EVCCConfig directly
    if timeout_scale != 1.0:
        _scale_evcc_timeouts(timeout_scale)
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
    evcc.add_argument("--timeout-scale", type=float, default=1.0, help="see evcc_command")
    args = parser.parse_args(argv)
    why = hlc_missing()
    if why is not None:
        print(f"error: {why}", file=sys.stderr)
        return 2
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: end with the test or demo
    return asyncio.run(_run_evcc(args.iface, args.protocol, args.timeout_scale))


if __name__ == "__main__":
    sys.exit(main())
