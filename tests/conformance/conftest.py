"""Fixtures of the conformance suites: one test system per case, in its own namespaces.

The cases mostly wait on the standard's timers, so they run in parallel (pytest-xdist,
``make conformance``). Two things keep a parallel run fair to timing-sensitive cases:
the longest cases are handed out first (so the run lasts about as long as the longest case),
and every worker waits until all workers have collected before its first case (the start-up
burst of many Python processes would otherwise delay the first cases' frames).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from slac.testing.netns import can_create_namespaces

from .catalogue import CASES
from .testsystem.evcc import EvccTester
from .testsystem.secc import SeccTester

_CAN, _WHY = can_create_namespaces()
BARRIER_WAIT = 90.0


def _tc_of(request: pytest.FixtureRequest) -> str:
    name: str = request.node.name
    assert name.startswith("test_TC_"), f"conformance tests are named test_<TC id>: {name}"
    return name[len("test_") :]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest cases first: with xdist's load scheduling the run then lasts about as long as
    its longest case."""

    def seconds(item: pytest.Item) -> float:
        case = CASES.get(item.name[len("test_") :])
        return case.seconds if case is not None else 0.0

    items.sort(key=seconds, reverse=True)


@pytest.fixture(scope="session", autouse=True)
def _all_workers_started() -> Iterator[None]:
    """Under xdist, wait (at most BARRIER_WAIT s) until every worker has started."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if worker is None or run is None or count <= 1:
        yield
        return
    folder = Path(tempfile.gettempdir()) / f"slac-conformance-{run}"
    folder.mkdir(exist_ok=True)
    (folder / worker).touch()
    deadline = time.monotonic() + BARRIER_WAIT
    while len(list(folder.iterdir())) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the last ones to arrive finish their start-up
    yield
    (folder / worker).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # the last worker to finish removes the folder


@pytest.fixture
async def secc(request: pytest.FixtureRequest) -> AsyncIterator[SeccTester]:
    if not _CAN:
        pytest.skip(_WHY)
    tester = SeccTester(_tc_of(request))
    try:
        await tester.start()
        yield tester
    finally:
        await tester.close()


@pytest.fixture
async def evcc(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EvccTester]:
    if not _CAN:
        pytest.skip(_WHY)
    tester = EvccTester(_tc_of(request), tmp_path)
    try:
        await tester.start()
        yield tester
    finally:
        await tester.close()
