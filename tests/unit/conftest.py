"""Unit tests run without root: no raw sockets, no network namespaces. A test that tries
either fails here with a pointer to tests/integration, whoever runs it (root or not)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from slac.testing import netns

_WHERE = "unit tests open no raw sockets and create no test hosts: move it to tests/integration"


@pytest.fixture(autouse=True)
def _no_raw_sockets_or_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    opened = socket.socket.__init__

    def guarded(self: socket.socket, family: Any = -1, *args: Any, **kwargs: Any) -> None:
        if family == socket.AF_PACKET:
            raise AssertionError(f"an AF_PACKET socket: {_WHERE}")
        opened(self, family, *args, **kwargs)

    def no_ip(*args: str, **kwargs: Any) -> str:
        raise AssertionError(f"`ip {' '.join(args)}`: {_WHERE}")

    monkeypatch.setattr(socket.socket, "__init__", guarded)
    monkeypatch.setattr(netns, "ip", no_ip)
