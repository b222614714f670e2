"""One exception tree (issue 14 item 3): the CP-state and usage errors, both matching-failed
errors in slac.errors with their old import paths still working."""

from __future__ import annotations

import pytest

import slac
from slac import errors
from slac.fsm.events import MatchingFailed
from slac.fsm.evse import parse_cp_state
from slac.session import SlacSession


def test_a_bad_control_pilot_state_is_a_cp_state_error_and_still_a_value_error() -> None:
    with pytest.raises(errors.CpStateError, match="not a control-pilot state: 'G'"):
        parse_cp_state("G")
    assert issubclass(errors.CpStateError, errors.UsageError)
    assert issubclass(errors.UsageError, ValueError)  # what callers caught before
    assert issubclass(errors.UsageError, errors.SlacError)


def test_an_evse_without_an_id_is_a_usage_error() -> None:
    with pytest.raises(errors.UsageError, match="an EVSE needs an id"):
        SlacSession("", "eth0")


def test_the_matching_failed_errors_live_in_errors_and_at_their_old_paths() -> None:
    from slac.ev import EvMatchingFailedError
    from slac.session import MatchingFailedError

    assert MatchingFailedError is errors.MatchingFailedError is slac.MatchingFailedError
    assert EvMatchingFailedError is errors.EvMatchingFailedError is slac.EvMatchingFailedError
    assert issubclass(EvMatchingFailedError, MatchingFailedError)


def test_a_matching_failed_error_carries_the_failure_s_reason() -> None:
    failure = MatchingFailed(slac.FailureReason.NO_SOUNDS, 1, "no profiles")
    error = errors.MatchingFailedError("matching failed", failure)
    assert error.reason is slac.FailureReason.NO_SOUNDS
    assert errors.MatchingFailedError("no failure known").reason is None
