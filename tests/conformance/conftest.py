"""Fixtures of the conformance suites: one test system per case, in its own namespaces.

The cases mostly wait on the standard's timers, so they run in parallel (pytest-xdist,
``make conformance``). Two things keep a parallel run fair to timing-sensitive cases:
the longest cases are handed out first (so the run lasts about as long as the longest case),
and every worker waits until all workers have collected before its first case (the start-up
burst of many Python processes would otherwise delay the first cases' frames). A case
whose test system missed its own schedule (``TestSystemLate``: an overloaded machine, no
verdict on the SUT) runs again, up to ``SLAC_CONFORMANCE_RERUNS`` (2) more times; only
its last run is reported, with the earlier inconclusive runs named in its output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Optional

import pytest
from _pytest.runner import runtestprotocol

from slac.testing.netns import can_create_namespaces

from .catalogue import CASES
from .testsystem.evcc import EvccTester
from .testsystem.secc import SeccTester

_CAN, _WHY = can_create_namespaces()
BARRIER_WAIT = 90.0
RERUNS = int(os.environ.get("SLAC_CONFORMANCE_RERUNS", "2"))


def _late(report: pytest.TestReport) -> Optional[str]:
    """The inconclusive message when the run ended in TestSystemLate, else None."""
    crash = getattr(report.longrepr, "reprcrash", None) if report.failed else None
    message: str = getattr(crash, "message", "") or ""
    head, _, rest = message.partition(": ")
    if not head.endswith("TestSystemLate"):
        return None
    return rest.splitlines()[0] if rest else "inconclusive"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Optional[pytest.Item]) -> bool:
    """Run the case; run it again while its test system was late (inconclusive)."""
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    earlier: list[str] = []
    for attempt in range(RERUNS + 1):
        if attempt:
            item._initrequest()  # type: ignore[attr-defined]  # fresh fixtures for the rerun
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        late = [reason for reason in map(_late, reports) if reason is not None]
        if not late or attempt == RERUNS:
            break
        earlier.append(f"run {attempt + 1}: {late[0]}")
    for report in reports:
        if earlier and report.when == "call":
            report.sections.append(("inconclusive runs before this one", "\n".join(earlier)))
        item.ihook.pytest_runtest_logreport(report=report)
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


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
