"""What every test folder shares: the project's root, the field captures beside it, and the
mark for tests that need root (network namespaces, veth pairs, raw sockets).

tests/unit: no root, no sockets, no network (codecs, state machines, configuration, the
analyser, the car park, the project's own files); tests/integration: real sockets on veth
pairs, our commands as subprocesses, MQTT, Docker; tests/interop: third-party oracles
(tshark, scapy's readers, Qualcomm's pev/evse, field captures replayed); tests/conformance:
the ISO 15118-5 suites. Helpers that integration and interop tests share: site.py (test
hosts around a virtual powerline), replay.py (field captures replayed over veth)."""

from __future__ import annotations

from pathlib import Path

import pytest

from slac.testing.netns import can_create_namespaces

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT.parent / "shared" / "captures"

_CAN, _WHY = can_create_namespaces()
needs_root = pytest.mark.skipif(not _CAN, reason=_WHY or "root")

#: the order the folders run in: the fast, root-free tests first (a broken build fails
#: within a minute, also in `make tests`)
FOLDERS = ("unit", "integration", "interop", "conformance")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def folder(item: pytest.Item) -> int:
        parts = item.path.relative_to(ROOT / "tests").parts
        return FOLDERS.index(parts[0]) if parts[0] in FOLDERS else len(FOLDERS)

    items.sort(key=folder)  # stable: each folder keeps its own order
