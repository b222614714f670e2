"""The wait for a missing or down interface (issue 15 item 1), with a hand-moved clock:
backoff, and what the operator reads (one INFO line, one WARNING after 30 s, one INFO when it
comes)."""

from __future__ import annotations

import logging

import pytest

from slac.fsm.interface import InterfaceWait


def test_the_pause_doubles_from_half_a_second_to_30_s(caplog: pytest.LogCaptureFixture) -> None:
    wait = InterfaceWait("eth7")
    now, pauses = 0.0, []
    with caplog.at_level(logging.DEBUG):
        for _ in range(9):
            again = wait.failed(now, "network interface 'eth7' does not exist")
            pauses.append(again - now)
            now = again
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(infos) == 1 and "waiting for the interface" in infos[0].getMessage()
    assert len(warnings) == 1
    assert warnings[0].getMessage().startswith("still waiting for eth7 after 32 s (7 tries)")
    assert wait.waiting and wait.tries == 9


def test_opened_ends_the_wait_and_says_how_long_it_took(caplog: pytest.LogCaptureFixture) -> None:
    wait = InterfaceWait("eth7")
    assert wait.opened(5.0) is None  # no wait: nothing to say
    wait.failed(10.0, "network interface eth7 is down")
    with caplog.at_level(logging.INFO):
        assert wait.opened(13.0) == 3.0
    assert "eth7 is there after 3.0 s" in caplog.text
    assert not wait.waiting
    assert wait.failed(20.0, "down again") == 20.5  # a new wait starts from the beginning
