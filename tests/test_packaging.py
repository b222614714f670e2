"""Packaging: the Dockerfile names files that exist and runs what the local install runs;
the lock file carries no registry address."""

from __future__ import annotations

import json
import re
import shlex

from .conftest import ROOT


def test_dockerfile_copies_and_runs_files_that_exist() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, _dest = shlex.split(line)[1:]
            for source in sources:
                assert (ROOT / source).exists(), source
    entry = json.loads(re.search(r"^ENTRYPOINT (.*)$", text, re.M).group(1))  # type: ignore[union-attr]
    command = json.loads(re.search(r"^CMD (.*)$", text, re.M).group(1))  # type: ignore[union-attr]
    assert entry[0] == "/app/.venv/bin/python"
    assert (ROOT / entry[1]).is_file()
    assert (ROOT / command[command.index("--config") + 1]).is_file()
    assert "scripts/install.sh" in text  # the same install as `make install-local`


def test_lock_file_names_no_package_source() -> None:
    lock = (ROOT / "poetry.lock").read_text()
    assert "[package.source]" not in lock
    assert not [line for line in lock.splitlines() if line.startswith("url = ")]
    assert "/simple" not in lock
