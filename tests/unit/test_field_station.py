"""The station file's per-EVSE field options (issue 15 items 3 and 6) and the status a
station reports (items 1 and 2): no sockets."""

from __future__ import annotations

import json

import pytest

from slac.app.service import EvseService, StateReport
from slac.app.station import EvseSpec, parse_station
from slac.errors import ConfigError
from slac.fsm.events import SessionState
from slac.testing.config import fast_config


def station(**extra: object) -> dict[str, object]:
    return {"parameters": [{"evse_id": "E1", "network_interface": "eth0", **extra}]}


def test_reset_command_and_offset_are_read_per_evse() -> None:
    (spec,) = parse_station(
        station(reset_command="gpioset gpiochip0 17=0", sounding_attenuation_offset=-6)
    )
    assert spec.reset_command == "gpioset gpiochip0 17=0"
    assert spec.sounding_attenuation_offset == -6.0
    (plain,) = parse_station(station())
    assert plain.reset_command is None and plain.sounding_attenuation_offset is None


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"reset_command": ""}, "reset_command must be a non-empty command line"),
        ({"reset_command": 5}, "reset_command must be a non-empty command line"),
        ({"reset_command": "reset 'unclosed"}, "reset_command: No closing quotation"),
        ({"sounding_attenuation_offset": "6"}, "sounding_attenuation_offset must be -60 to 60"),
        ({"sounding_attenuation_offset": 61}, "sounding_attenuation_offset must be -60 to 60"),
        ({"sounding_attenuation_offset": True}, "sounding_attenuation_offset must be -60 to 60"),
    ],
)
def test_bad_field_options_are_one_clear_error(extra: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_station(station(**extra))


def test_the_per_evse_offset_overrides_the_setting_for_that_evse_only() -> None:
    service = EvseService(
        [EvseSpec("E1", "eth0", sounding_attenuation_offset=4.0), EvseSpec("E2", "eth1")],
        fast_config(sounding_attenuation_offset=-2.0),
    )
    assert service.sessions["E1"].config.sounding_attenuation_offset == 4.0
    assert service.sessions["E2"].config.sounding_attenuation_offset == -2.0


def test_an_unavailable_evse_reports_its_state_reason_and_counters() -> None:
    service = EvseService([EvseSpec("E1", "eth0")], fast_config())
    session = service.sessions["E1"]
    session.state = SessionState.UNAVAILABLE
    session.unavailable_reason = "network interface 'eth0' does not exist (interfaces here: lo)"
    data = json.loads(StateReport.of(session).to_json())
    assert data["state"] == "unavailable"
    assert data["reason"].startswith("network interface 'eth0' does not exist")
    assert data["modem_restarts"] == 0 and data["empty_profile_soundings"] == 0
    assert data["modem_resets"] == 0 and data["hardware_resets"] == 0
    session.state, session.unavailable_reason = SessionState.UNMATCHED, None
    assert StateReport.of(session).to_dict()["reason"] is None  # the status always has the key
