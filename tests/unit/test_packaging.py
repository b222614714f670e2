"""Packaging: the Dockerfile and the compose files name files that exist and agree with each
other, the image runs the entry point the tests run (`slac evse`), the lock file carries no
registry address, and `make help` lists every target. The production install and `make lock`
run in tests/integration/test_install.py; the Docker targets are built and run for real in
tests/integration/test_docker.py."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from ..conftest import ROOT

COMPOSE_FILES = ["docker-compose.yml", "docker-compose.dev.yml", "docker-compose.prod.yml"]


def _instruction(text: str, name: str) -> list[str]:
    match = re.search(rf"^{name} (.*)$", text, re.M)
    assert match, f"no {name} in the Dockerfile"
    value: list[str] = json.loads(match.group(1))
    return value


def test_dockerfile_copies_and_runs_files_that_exist() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+", text, re.M)
    assert len(stages) == 2, "a build stage (Poetry) and a runtime stage"
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _dest = shlex.split(line)[1:]
            for source in sources:
                assert (ROOT / source).exists(), source
    assert "scripts/install.sh --prod" in text  # Poetry export + pip, as tested below
    entry = _instruction(text, "ENTRYPOINT")
    command = _instruction(text, "CMD")
    # /app/.venv/bin/slac evse: the console script of pyproject.toml, the command that
    # tests/test_operator.py and tests/test_mqtt.py run
    assert entry == ["/app/.venv/bin/slac", "evse"]
    assert 'slac = "slac.app.cli:main"' in (ROOT / "pyproject.toml").read_text()
    assert (ROOT / command[command.index("--config") + 1]).is_file()


def _default(value: str) -> str:
    """A compose value with its ${VARIABLE:-default} substitutions replaced by the default."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def _compose_references(path: Path) -> list[str]:
    """Host-side files a compose file names (with the variables' defaults): build context,
    env files, bind mounts."""
    names = []
    for raw in path.read_text().splitlines():
        line = _default(raw.split("#", 1)[0].strip())
        if line.startswith(("build:", "context:", "env_file:")):
            value = line.split(":", 1)[1].strip()
            if value:
                names.append(value)
        elif line.startswith("- ./"):
            names.append(line[2:].split(":", 1)[0])
    return names


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_compose_files_name_files_that_exist(name: str) -> None:
    path = ROOT / name
    text = path.read_text()
    assert "services:" in text and "slac:" in text
    references = _compose_references(path)
    for reference in references:
        assert (ROOT / reference).exists(), f"{name} names {reference}"
    if name == "docker-compose.yml":
        defaults = _default(text)
        assert "network_mode: host" in defaults  # unless SLAC_DOCKER_NETWORK says otherwise
        assert re.search(r"cap_drop:\n\s+- ALL\n\s+cap_add:\n\s+- NET_RAW\n", text)
        assert "- ./cs_configuration.json:/app/cs_configuration.json:ro" in defaults
        assert "." in references and (ROOT / "Dockerfile").is_file()
    if name == "docker-compose.dev.yml":
        assert ".env.dev.docker" in references
    # every variable an env file sets is one the program knows
    from slac.environment import VARIABLES

    known = set(VARIABLES)
    for reference in references:
        if reference.startswith(".env"):
            for line in (ROOT / reference).read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    assert line.split("=", 1)[0] in known, (reference, line)


def test_build_arguments_agree_and_stay_in_the_build_stage() -> None:
    """The pip index settings: the same four names in the Dockerfile (ARGs of the build
    stage only), the compose file, the Makefile and scripts/host-pip-env.sh; and one
    default base image in the Dockerfile and the compose file."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    build_stage, runtime_stage = re.split(r"^FROM .*\n", dockerfile, flags=re.M)[1:]
    names = re.findall(r"^ARG (PIP_[A-Z_]+)$", build_stage, re.M)
    assert len(names) == 4
    assert "PIP_" not in runtime_stage
    compose = (ROOT / "docker-compose.yml").read_text()
    assert re.findall(r"^\s+- (PIP_[A-Z_]+)$", compose, re.M) == names
    makefile = re.search(r"^PIP_BUILD_ARGS := (.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert makefile and makefile.group(1).split() == names
    exported = (ROOT / "scripts" / "host-pip-env.sh").read_text()
    assert all(f'{n}=""' in exported for n in names)
    default = re.search(r"^ARG BASE_IMAGE=(\S+)$", dockerfile, re.M)
    assert default and f"BASE_IMAGE=${{BASE_IMAGE:-{default.group(1)}}}" in compose


def test_lock_file_names_no_package_source() -> None:
    lock = (ROOT / "poetry.lock").read_text()
    assert "[package.source]" not in lock
    assert not [line for line in lock.splitlines() if line.startswith("url = ")]
    assert "/simple" not in lock


def _make_targets() -> list[str]:
    makefile = (ROOT / "Makefile").read_text()
    return re.findall(r"^([a-z][a-z-]*):.*## ", makefile, re.M)


def test_make_help_lists_every_target() -> None:
    out = subprocess.run(
        ["make", "--no-print-directory", "help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0
    listed = {line.split()[0] for line in out.stdout.splitlines() if line.strip()}
    targets = set(_make_targets())
    assert targets == listed
    page = (ROOT / "docs" / "development.md").read_text()
    for target in targets:  # and the table of targets (docs/development.md) names each one
        assert f"`make {target}`" in page, target
