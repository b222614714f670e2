"""EVSE response times, time to match, CPU and memory: one pair and whole car parks, ours
side by side with Qualcomm's reference ``evse`` (Debian package plc-utils-extra). Needs root.

Every case builds hosts around the virtual powerline (network namespaces, veth pairs):

- the EVSE hosts share one namespace; the EVSE is the real command, ``slac evse`` (one
  process, every port), driven through its stdin; or one Qualcomm ``evse`` per port;
- the medium (``slac.testing.powerline``) runs in its own process, the EVs (our
  ``SlacEvSession``) in another: the EVSE's CPU time and peak RSS are its own (from /proc);
- a capture socket in the EVSE hosts' namespace takes the kernel's timestamp (SO_TIMESTAMPNS)
  of every SLAC frame entering or leaving an EVSE interface: response times are measured
  at the interface, whatever the reader's delay.

Cases: ``pair`` (one EV, one EVSE, ``--pair-matches`` matches in a row) and ``scale`` for each
N of ``--sizes``: N ports, N EVs, crosstalk in clusters of 8 charge points (own cable 20 dB,
neighbours 50 dB), plugged in all at once ("burst") and spread over ``--spread`` seconds,
and the EVSE's CPU with N idle ports over ``--idle`` seconds.

    sudo .venv/bin/python benchmarks/scale.py [--sizes 1,8,32,128] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from slac.environment import Config  # noqa: E402
from slac.errors import DecodeError, SlacError  # noqa: E402
from slac.messages import (  # noqa: E402
    AttenCharInd,
    AttenProfileInd,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    decode_frame,
)
from slac.testing import fast_config  # noqa: E402
from slac.testing.netns import Netns, can_create_namespaces  # noqa: E402
from slac.testing.powerline import Topology  # noqa: E402
from slac.tools.capture import Captured, CaptureSocket  # noqa: E402

CLUSTER = 8
OWN_DB = 20.0
CROSSTALK_DB = 50.0
RESPONSES = ("CM_SLAC_PARM.CNF", "CM_ATTEN_CHAR.IND", "CM_SLAC_MATCH.CNF")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SIMULATION_NICENESS = 10
# On two cores or more, the EVSE gets core 0 to itself (as on its own hardware) and the
# simulated world (medium, EVs, capture) runs on the others.
_CORES = sorted(os.sched_getaffinity(0))
EVSE_CPU = ["taskset", "-c", str(_CORES[0])] if len(_CORES) > 1 else []
SIMULATION_CPU = ["taskset", "-c", ",".join(str(c) for c in _CORES[1:])] if len(_CORES) > 1 else []

# EVSE_ID zero, as ISO 15118-3 fixes it: our EV ignores a CM_SLAC_MATCH.CNF with another
# (Qualcomm's evse puts its station identifier there)
OPU_INI = """[default]
station identifier = 0000000000000000000000000000000000
network membership key = B59319D7E8157BA001B018669CCEE30D
network identifier = 026BCBA5354E08
number of sounds = 10
time to sound = 6
response type = 1
settle time = 0
charge time = 0
"""


# --- workers (separate processes) -----------------------------------------------------------


async def medium_worker(spec: dict[str, Any]) -> None:
    """The virtual powerline until SIGTERM."""
    from slac.testing.powerline import Powerline, site_medium

    medium = site_medium(
        spec["roles"],
        attenuation=OWN_DB,
        crosstalk=CROSSTALK_DB,
        cluster=spec["cluster"],
        jitter=1.0,
        seed=1,
    )
    powerline = await Powerline(medium, spec["interfaces"], Netns(spec["plc_netns"])).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    powerline.close()


async def ev_worker(spec: dict[str, Any]) -> None:
    """Our EVs: each starts at its offset, matches ``repeats`` times; JSON results on stdout."""
    from slac.ev import EvMatchingFailedError, SlacEvSession

    config = fast_config()

    async def one(index: int, netns: str, offset: float) -> list[dict[str, Any]]:
        await asyncio.sleep(offset)
        results = []
        for _ in range(spec["repeats"]):
            session = SlacEvSession(spec["iface"], config, netns=netns)
            started = time.time()
            try:
                result = await asyncio.wait_for(session.match(), spec["timeout"])
                results.append(
                    {
                        "index": index,
                        "ok": True,
                        "evse_mac": str(result.evse_mac),
                        "attempts": result.attempts,
                        "duration": result.duration,
                        "started": started,
                    }
                )
            except (EvMatchingFailedError, asyncio.TimeoutError, SlacError, OSError) as exc:
                results.append(
                    {
                        "index": index,
                        "ok": False,
                        "error": str(exc) or type(exc).__name__,
                        "duration": time.time() - started,
                        "started": started,
                    }
                )
            finally:
                await session.close()
            await asyncio.sleep(spec.get("pause", 0.0))
        return results

    evs = spec["evs"]
    spread = spec["spread"]
    offsets = [spread * i / len(evs) if spread else 0.0 for i in range(len(evs))]
    done = await asyncio.gather(*(one(e["index"], e["netns"], o) for e, o in zip(evs, offsets)))
    output = {"results": [r for rs in done for r in rs], "cpu_s": time.process_time()}
    print(json.dumps(output), flush=True)


# --- the orchestrator -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values]
    return {
        "n": len(ms),
        "p50": _round(percentile(ms, 50)),
        "p99": _round(percentile(ms, 99)),
        "max": _round(max(ms) if ms else None),
        "mean": _round(statistics.fmean(ms) if ms else None),
    }


def _round(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value, 3)


class Sniffer:
    """Kernel-timestamped SLAC frames of every interface of a namespace, in a thread."""

    def __init__(self, netns: Netns) -> None:
        self.socket = netns.call(lambda: CaptureSocket(None))
        self.frames: list[Captured] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sniffer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.socket.receive(timeout=0.1)
            if item is not None:
                self.frames.append(item)

    def take(self) -> list[Captured]:
        """The frames so far (the list starts anew)."""
        time.sleep(0.2)  # let the thread drain what the kernel holds
        frames, self.frames = self.frames, []
        return frames

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.socket.close()


def responses(
    frames: list[Captured], turn_per_db: float = 0.0
) -> tuple[dict[str, list[float]], list[float], int]:
    """EVSE response times at its interfaces, the time from CM_SLAC_PARM.REQ to
    CM_SLAC_MATCH.CNF per (interface, EV, RunID), and how many CM_ATTEN_CHAR.IND the end of
    the sounding window sent (the EV's last sound never arrived: no response time).

    CM_ATTEN_CHAR.IND is timed from the profile of the EV's last sound or, with
    ``turn_per_db`` (our EVSE's ATTEN_CHAR_DELAY_PER_DB, s/dB), from its turn: the last
    sound + 20 ms + ``turn_per_db`` x the mean of the profiles the interface received since
    the EV's first CM_START_ATTEN_CHAR.IND (at most 0.7 s after it), as the EVSE computes
    it."""
    times: dict[str, list[float]] = {name: [] for name in RESPONSES}
    last_sound_at: dict[tuple[str, bytes, bytes], float] = {}
    started: dict[tuple[str, bytes], tuple[bytes, float]] = {}
    heard: dict[tuple[str, bytes], list[float]] = {}  # [sum of dB, groups]
    to_match: list[float] = []
    last_sound: set[tuple[str, bytes, bytes]] = set()
    window_ended = 0
    parm_req: dict[tuple[str, bytes, bytes], float] = {}
    first_req: dict[tuple[str, bytes, bytes], float] = {}
    last_profile: dict[tuple[str, bytes], float] = {}
    ind_sent: set[tuple[str, bytes, bytes]] = set()
    match_req: dict[tuple[str, bytes, bytes], float] = {}
    for item in sorted(frames, key=lambda f: f.timestamp):
        try:
            frame = decode_frame(item.data)
        except DecodeError:
            continue
        message, ts, iface = frame.message, item.timestamp, item.interface
        if not item.outgoing:
            if isinstance(message, SlacParmReq):
                key = (iface, bytes(frame.src), message.run_id)
                parm_req[key] = ts
                first_req.setdefault(key, ts)
            elif isinstance(message, AttenProfileInd):
                last_profile[(iface, bytes(message.pev_mac))] = ts
                total = heard.setdefault((iface, bytes(message.pev_mac)), [0.0, 0.0])
                total[0] += sum(message.aag)
                total[1] += len(message.aag)
            elif isinstance(message, StartAttenCharInd):
                ev = (iface, bytes(frame.src))
                if started.get(ev, (b"", 0.0))[0] != message.run_id:
                    started[ev] = (message.run_id, ts)
                    heard[ev] = [0.0, 0.0]
            elif isinstance(message, MnbcSoundInd) and message.remaining_sounds == 0:
                last_sound.add((iface, bytes(frame.src), message.run_id))
                last_sound_at.setdefault((iface, bytes(frame.src), message.run_id), ts)
            elif isinstance(message, SlacMatchReq):
                match_req[(iface, bytes(frame.src), message.run_id)] = ts
            continue
        if isinstance(message, SlacParmCnf):
            key = (iface, bytes(frame.dst), message.run_id)
            if key in parm_req:
                times["CM_SLAC_PARM.CNF"].append(ts - parm_req.pop(key))
        elif isinstance(message, AttenCharInd):
            key = (iface, bytes(frame.dst), message.run_id)
            profile = last_profile.get((iface, bytes(frame.dst)))
            if key not in ind_sent:
                ind_sent.add(key)
                ev = (iface, bytes(frame.dst))
                total = heard.get(ev, [0.0, 0.0])
                if turn_per_db > 0 and key in last_sound_at and ev in started and total[1]:
                    turn = last_sound_at[key] + 0.02 + turn_per_db * total[0] / total[1]
                    times["CM_ATTEN_CHAR.IND"].append(ts - min(turn, started[ev][1] + 0.7))
                elif key in last_sound and profile is not None:
                    times["CM_ATTEN_CHAR.IND"].append(ts - profile)
                else:
                    window_ended += 1
        elif isinstance(message, SlacMatchCnf):
            key = (iface, bytes(frame.dst), message.run_id)
            if key in match_req:
                times["CM_SLAC_MATCH.CNF"].append(ts - match_req.pop(key))
                if key in first_req:
                    to_match.append(ts - first_req[key])
    return times, to_match, window_ended


def proc_cpu(pids: Sequence[int]) -> float:
    """User + system CPU seconds of the processes."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def proc_hwm_kib(pids: Sequence[int]) -> int:
    """Peak resident set size (VmHWM) of the processes, summed, in KiB."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
    return total


@dataclass
class EvseUnderTest:
    """The EVSE side of a case: `slac evse` (one process) or one Qualcomm evse per port."""

    kind: str  # "slac" or "qualcomm"
    processes: list[asyncio.subprocess.Process] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def start(self, topo: Topology, workdir: Path) -> None:
        assert topo.evse_netns is not None
        ifaces = topo.evse_interfaces
        if self.kind == "slac":
            station = workdir / "station.json"
            station.write_text(
                json.dumps(
                    {
                        "number_of_evses": len(ifaces),
                        "parameters": [
                            {"evse_id": f"DE*BEN*E{j:04d}", "network_interface": iface}
                            for j, iface in enumerate(ifaces)
                        ],
                    }
                )
            )
            env = workdir / "bench.env"
            env.write_text("SET_KEY_SETTLE_TIME=0\nLOG_LEVEL=INFO\n")
            python = [*EVSE_CPU, sys.executable]
            profile = os.environ.get("SLAC_BENCH_PROFILE")
            if profile:  # cProfile the EVSE process (slower: for finding hot spots only)
                python += ["-m", "cProfile", "-o", f"{profile}.{len(ifaces)}"]
            with (workdir / "evse.log").open("wb") as log:
                process = await asyncio.create_subprocess_exec(
                    *topo.evse_netns.command(
                        [*python, "-m", "slac", "evse", "--config", str(station), "--env", str(env)]
                    ),
                    cwd=ROOT,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                )
            self.processes.append(process)
            self.readers.append(asyncio.get_running_loop().create_task(self._read(process)))
            await self.wait_states("unmatched", len(ifaces), since=0, timeout=60)
        else:
            ini = workdir / "evse.ini"
            ini.write_text(OPU_INI)
            for iface in ifaces:
                process = await asyncio.create_subprocess_exec(
                    *topo.evse_netns.command(
                        [*EVSE_CPU, "evse", "-i", iface, "-p", str(ini), "-q"]
                    ),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                self.processes.append(process)
            await asyncio.sleep(1.0)  # its CM_SET_KEY

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for raw in process.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                self.states.append(json.loads(raw))
                self.changed.set()

    async def wait_states(self, state: str, count: int, since: int, timeout: float) -> bool:
        async def wait() -> None:
            while len([s for s in self.states[since:] if s["state"] == state]) < count:
                self.changed.clear()
                await self.changed.wait()

        try:
            await asyncio.wait_for(wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def cp(self, line: str) -> None:
        if self.kind != "slac":
            return
        stdin = self.processes[0].stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")
        await stdin.drain()

    async def stop(self) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                await asyncio.wait_for(process.wait(), 20)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)


async def run_worker(role: str, spec: dict[str, Any], wait_ready: bool) -> Any:
    """Start a worker process of this script; return it (wait_ready) or its JSON output."""
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
    with handle:
        json.dump(spec, handle)
    # The medium and the EVs stand for other machines (modems, cars): niced, so that the
    # EVSE process under test gets the CPU it would have on its own hardware.
    process = await asyncio.create_subprocess_exec(
        *SIMULATION_CPU,
        "nice",
        "-n",
        str(SIMULATION_NICENESS),
        sys.executable,
        __file__,
        role,
        handle.name,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    if wait_ready:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        os.unlink(handle.name)
        if line.strip() != b"ready":
            raise RuntimeError(f"{role} did not start: {line!r}")
        return process
    output, _ = await process.communicate()
    os.unlink(handle.name)
    return json.loads(output)


async def run_case(
    n: int,
    kind: str,
    *,
    patterns: Sequence[tuple[str, float, int]],
    idle: float,
    workdir: Path,
) -> dict[str, Any]:
    """One topology of n charge points; the EVSE side ``kind``; one round per pattern
    (name, spread seconds, matches per EV)."""
    case: dict[str, Any] = {"n": n, "evse": kind, "rounds": {}}
    started = time.monotonic()
    with Topology(evs=n, evses=n, evse_netns=True) as topo:
        assert topo.evse_netns is not None
        medium = await run_worker(
            "medium-worker",
            {
                "roles": [p.role for p in topo.ports],
                "interfaces": topo.modem_interfaces(),
                "plc_netns": topo.plc_netns.name,
                "cluster": CLUSTER,
            },
            wait_ready=True,
        )
        evse = EvseUnderTest(kind)
        sniffer = Sniffer(topo.evse_netns)
        try:
            await evse.start(topo, workdir)
            if idle > 0:
                before = proc_cpu(evse.pids)
                await asyncio.sleep(idle)
                used = proc_cpu(evse.pids) - before
                case["idle"] = {
                    "seconds": idle,
                    "cpu_s": round(used, 3),
                    "cpu_percent": round(100 * used / idle, 2),
                }
            sniffer.take()
            evse_macs = {str(p.host_mac): j for j, p in enumerate(topo.evse_ports)}
            ev_macs = [str(p.host_mac) for p in topo.ev_ports]
            for name, spread, repeats in patterns:
                since = len(evse.states)
                # Matched, our EVSE answers no CM_SLAC_PARM.REQ (ISO 15118-3): each of a pair's
                # matches is a plug-in of its own (CP B, match, CP A). Qualcomm's evse matches
                # again on the next request, in one plug-in.
                plug_ins = repeats if kind == "slac" else 1
                per_plug_in = 1 if kind == "slac" else repeats
                results: list[dict[str, Any]] = []
                frames: list[Captured] = []
                cpu = medium_cpu = wall = ev_cpu = 0.0
                for plug_in in range(plug_ins):
                    if plug_in:
                        mark = len(evse.states)
                        await evse.cp("A")
                        await evse.wait_states("unmatched", n, since=mark, timeout=30)
                        await asyncio.sleep(0.05)  # the EV's pause between two matches
                    mark = len(evse.states)
                    await evse.cp("B")
                    await asyncio.sleep(0.3)
                    cpu_before = proc_cpu(evse.pids)
                    medium_before = proc_cpu([medium.pid])
                    started_at = time.monotonic()
                    evs_out = await run_worker(
                        "ev-worker",
                        {
                            "iface": topo.ev_interface,
                            "evs": [
                                {"index": i, "netns": ns.name} for i, ns in enumerate(topo.ev_netns)
                            ],
                            "spread": spread,
                            "repeats": per_plug_in,
                            "timeout": 30.0 + spread,
                            "pause": 0.05 if per_plug_in > 1 else 0.0,
                        },
                        wait_ready=False,
                    )
                    wall += time.monotonic() - started_at
                    results += evs_out["results"]
                    ev_cpu += evs_out["cpu_s"]
                    if kind == "slac":
                        await evse.wait_states("matched", n, since=mark, timeout=5)
                    cpu += proc_cpu(evse.pids) - cpu_before
                    medium_cpu += proc_cpu([medium.pid]) - medium_before
                    frames += sniffer.take()
                per_db = Config().atten_char_delay_per_db if kind == "slac" else 0.0
                times, to_match, window_ended = responses(frames, per_db)
                ok = [r for r in results if r["ok"]]
                wrong_ev = [r for r in ok if evse_macs.get(r["evse_mac"]) != r["index"]]
                wrong_evse = (
                    [
                        s
                        for s in evse.states[since:]
                        if s["state"] == "matched"
                        and ev_macs.index(s["ev_mac"]) != int(s["evse_id"][-4:])
                    ]
                    if kind == "slac"
                    else []
                )
                round_result = {
                    "evs": len(results),
                    "matched": len({r["index"] for r in ok}) if repeats == 1 else len(ok),
                    "failed": [
                        f"EV {r['index']}: {r.get('error')}" for r in results if not r["ok"]
                    ][:5],
                    "wrong_pairings": len(wrong_ev) + len(wrong_evse),
                    "response_ms": {k: summary_ms(v) for k, v in times.items()},
                    "parm_req_to_match_cnf_ms": summary_ms(to_match),
                    "ev_time_to_match_ms": summary_ms([r["duration"] for r in ok]),
                    "ev_attempts_max": max((r["attempts"] for r in ok), default=None),
                    "evse_cpu_s": round(cpu, 3),
                    "simulation_cpu_s": {
                        "medium": round(medium_cpu, 2),
                        "evs": round(ev_cpu, 2),
                    },
                    "wall_s": round(wall, 2),
                    "frames_at_evse": len(frames),
                    "atten_char_ind_at_window_end": window_ended,
                }
                case["rounds"][name] = round_result
                since = len(evse.states)
                await evse.cp("A")
                if kind == "slac":
                    await evse.wait_states("unmatched", n, since=since, timeout=30)
                else:
                    await asyncio.sleep(1.0)
            case["evse_peak_rss_mib"] = round(proc_hwm_kib(evse.pids) / 1024, 1)
            case["evse_processes"] = len(evse.pids)
        finally:
            await evse.stop()
            sniffer.close()
            medium.send_signal(signal.SIGTERM)
            await medium.wait()
    case["case_s"] = round(time.monotonic() - started, 1)
    return case


def table(results: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    lines = [
        f"Measured {results['date']} on {results['machine']}.",
        "",
    ]
    if "codecs" in results:
        rows = results["codecs"]
        lines += [
            "| message | pack/s ours | pack/s scapy | x | decode/s ours | decode/s scapy | x |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['message']} | {r['pack_ours']:,.0f} | {r['pack_scapy']:,.0f} "
                f"| {r['pack_ratio']:.0f} | {r['decode_ours']:,.0f} | {r['decode_scapy']:,.0f} "
                f"| {r['decode_ratio']:.1f} |"
            )
        lines.append("")
    if "evse_cpu" in results:
        cpu = results["evse_cpu"]
        lines += [
            f"EVSE frame handling without sockets (benchmarks/evse_cpu.py): "
            f"{cpu['frames_per_cpu_second']:,} frames per CPU second "
            f"({cpu['us_per_frame']} us per frame).",
            "",
        ]
    lines += [
        "| case | EVSE | matched | wrong | PARM.CNF p50/p99 ms | ATTEN_CHAR.IND p50/p99 ms "
        "| MATCH.CNF p50/p99 ms | PARM.REQ→MATCH.CNF p50/p99 ms | EVSE CPU s | peak RSS MiB "
        "| idle CPU % |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for case in results["cases"]:
        for name, rnd in case["rounds"].items():
            r = rnd["response_ms"]

            def pp(s: dict[str, Any]) -> str:
                if not s["n"]:
                    return "-"
                return f"{s['p50']:.2f} / {s['p99']:.2f}"

            idle = case.get("idle", {}).get("cpu_percent")
            lines.append(
                f"| {case['label']} {name} | {case['evse']} | {rnd['matched']}/{rnd['evs']} "
                f"| {rnd['wrong_pairings']} | {pp(r['CM_SLAC_PARM.CNF'])} "
                f"| {pp(r['CM_ATTEN_CHAR.IND'])} | {pp(r['CM_SLAC_MATCH.CNF'])} "
                f"| {pp(rnd['parm_req_to_match_cnf_ms'])} | {rnd['evse_cpu_s']:.2f} "
                f"| {case['evse_peak_rss_mib']:.1f} | {'-' if idle is None else f'{idle:.2f}'} |"
            )
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scale = [c for c in results["cases"] if c["label"].startswith("N=") and c["evse"] == "slac"]
    qualcomm = [
        c for c in results["cases"] if c["label"].startswith("N=") and c["evse"] == "qualcomm"
    ]
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.6))
    sizes = [c["n"] for c in scale]
    for pattern, style in (("burst", "-o"), ("spread", "--s")):
        for message in RESPONSES:
            p99 = [c["rounds"][pattern]["response_ms"][message]["p99"] or 0 for c in scale]
            axes[0].plot(sizes, p99, style, label=f"{message} ({pattern})")
        ttm = [c["rounds"][pattern]["parm_req_to_match_cnf_ms"]["p99"] or 0 for c in scale]
        axes[1].plot(sizes, ttm, style, label=f"p99 ({pattern})")
        ttm50 = [c["rounds"][pattern]["parm_req_to_match_cnf_ms"]["p50"] or 0 for c in scale]
        axes[1].plot(sizes, ttm50, style, alpha=0.5, label=f"p50 ({pattern})")
    axes[0].axhline(20, color="red", linewidth=0.8, label="target 20 ms")
    axes[0].set(title="EVSE response time p99", xlabel="charge points N", ylabel="ms")
    axes[0].legend(fontsize=7)
    axes[1].set(
        title="CM_SLAC_PARM.REQ to CM_SLAC_MATCH.CNF", xlabel="charge points N", ylabel="ms"
    )
    axes[1].legend(fontsize=7)
    for cases, label, style in (
        (scale, "slac (one process)", "-o"),
        (qualcomm, "Qualcomm evse (one per port)", "-s"),
    ):
        if cases:
            axes[2].plot(
                [c["n"] for c in cases],
                [100 * c["rounds"]["burst"]["matched"] / c["n"] for c in cases],
                style,
                label=label,
            )
    axes[2].set(
        title="EVs matched, all plugged in at once",
        xlabel="charge points N",
        ylabel="% of N",
        ylim=(0, 105),
    )
    axes[2].legend(fontsize=7)
    rss = [c["evse_peak_rss_mib"] for c in scale]
    cpu = [c["rounds"]["burst"]["evse_cpu_s"] for c in scale]
    axes[3].plot(sizes, rss, "-o", color="tab:blue", label="peak RSS (MiB)")
    axes[3].set(
        title="EVSE process (one for all ports)",
        xlabel="charge points N",
        ylabel="MiB",
        ylim=(0, max(rss, default=1) * 1.3),
    )
    twin = axes[3].twinx()
    twin.plot(sizes, cpu, "-s", color="tab:orange", label="CPU s, burst round")
    twin.set_ylabel("CPU seconds")
    twin.set_ylim(0, max(cpu, default=1) * 1.3)
    idle = max((c.get("idle", {}).get("cpu_percent", 0) for c in scale), default=0)
    axes[3].text(
        0.02,
        0.95,
        f"idle CPU with N ports: at most {idle:.2f} % of a core",
        transform=axes[3].transAxes,
        fontsize=8,
        va="top",
    )
    axes[3].legend(loc="center left", fontsize=7)
    twin.legend(loc="center right", fontsize=7)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.grid(alpha=0.3)
    fig.suptitle(f"slac EVSE, one process — {results['date']}, {results['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


async def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    from shutil import which

    if len(_CORES) > 1:  # this process (the capture thread) belongs to the simulated world
        os.sched_setaffinity(0, _CORES[1:])
    sizes = [int(s) for s in args.sizes.split(",") if s]
    opu = which("evse") is not None and not args.no_qualcomm
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "settings": {
            "cluster": CLUSTER,
            "own_db": OWN_DB,
            "crosstalk_db": CROSSTALK_DB,
            "spread_s": args.spread,
            "idle_s": args.idle,
            "pair_matches": args.pair_matches,
            "evse_cpu": EVSE_CPU[-1] if EVSE_CPU else "shared",
            "simulation_cpu": SIMULATION_CPU[-1] if SIMULATION_CPU else "shared",
            "simulation_niceness": SIMULATION_NICENESS,
        },
        "cases": [],
    }
    if not opu:
        print("Qualcomm evse not installed (plc-utils-extra) or --no-qualcomm: ours only")
    with tempfile.TemporaryDirectory(prefix="slac-bench-") as tmp:
        work = Path(tmp)
        plan: list[tuple[str, int, str, list[tuple[str, float, int]], float]] = []
        if args.pair_matches:
            plan.append(("pair", 1, "slac", [("sequential", 0.0, args.pair_matches)], 0.0))
            if opu:
                plan.append(
                    ("pair", 1, "qualcomm", [("sequential", 0.0, args.opu_pair_matches)], 0.0)
                )
        for n in sizes:
            plan.append(
                (f"N={n}", n, "slac", [("burst", 0.0, 1), ("spread", args.spread, 1)], args.idle)
            )
            if opu and n <= args.opu_max:
                plan.append((f"N={n}", n, "qualcomm", [("burst", 0.0, 1)], 0.0))
        for label, n, kind, patterns, idle in plan:
            print(f"== {label} {kind} ...", flush=True)
            case = await run_case(n, kind, patterns=patterns, idle=idle, workdir=work)
            case["label"] = label
            results["cases"].append(case)
            for name, rnd in case["rounds"].items():
                r = rnd["response_ms"]
                print(
                    f"   {name}: matched {rnd['matched']}/{rnd['evs']}, wrong "
                    f"{rnd['wrong_pairings']}, p99 ms "
                    + ", ".join(f"{k} {v['p99']}" for k, v in r.items())
                    + f", to match p50/p99 {rnd['parm_req_to_match_cnf_ms']['p50']}/"
                    f"{rnd['parm_req_to_match_cnf_ms']['p99']} ms, CPU {rnd['evse_cpu_s']} s "
                    f"(simulation {rnd['simulation_cpu_s']})"
                    + (f", failures {rnd['failed']}" if rnd["failed"] else ""),
                    flush=True,
                )
            print(
                f"   peak RSS {case['evse_peak_rss_mib']} MiB, idle {case.get('idle')}, "
                f"{case['case_s']} s",
                flush=True,
            )
    return results


def write_results(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in ("codecs", "evse_cpu"):  # written just before by `make bench`
        path = out / f"{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
    (out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    text = table(results)
    (out / "scale.md").write_text(text + "\n")
    print()
    print(text)
    try:
        chart(results, out / "scale.png")
        print(f"\nwritten: {out / 'scale.json'}, {out / 'scale.md'}, {out / 'scale.png'}")
    except ImportError:
        print("\nmatplotlib is not installed: no chart (pip install 'slac[plot]')")


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("medium-worker", "ev-worker"):
        spec = json.loads(Path(argv[1]).read_text())
        worker = medium_worker if argv[0] == "medium-worker" else ev_worker
        asyncio.run(worker(spec))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,8,32,128", help="charge points per case")
    parser.add_argument("--spread", type=float, default=10.0, help="plug-in spread (s)")
    parser.add_argument("--idle", type=float, default=30.0, help="idle CPU window (s)")
    parser.add_argument("--pair-matches", type=int, default=50, help="matches of one pair")
    parser.add_argument(
        "--opu-pair-matches", type=int, default=20, help="matches of one pair, Qualcomm evse"
    )
    parser.add_argument(
        "--opu-max", type=int, default=32, help="largest N run with Qualcomm evse processes"
    )
    parser.add_argument("--no-qualcomm", action="store_true", help="ours only")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    can, why = can_create_namespaces()
    if not can:
        print(f"benchmarks/scale.py needs root: {why}", file=sys.stderr)
        return 2
    results = asyncio.run(orchestrate(args))
    write_results(results, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
