"""EVerest's slac_API as `slac evse --everest` reads it: the URL, the module ids of the
station's EVSEs, the e2m payloads (slac_API's encodings: "{}" for the commands, a JSON
boolean for reset, a JSON unsigned integer for heartbeat). No broker: the exchange with
Mosquitto is tests/integration/test_everest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from slac.app.cli import main
from slac.app.everest import API_STATES, module_ids, parse_command, parse_everest_url
from slac.app.station import EvseSpec, parse_station
from slac.errors import ConfigError


def test_the_url_gives_broker_and_prefix_default_everest_api_1_slac() -> None:
    url = parse_everest_url("mqtt://127.0.0.1:1884")
    assert (url.host, url.port, url.prefix) == ("127.0.0.1", 1884, "everest_api/1/slac")
    assert parse_everest_url("mqtt://h/").prefix == "everest_api/1/slac"
    assert parse_everest_url("mqtt://h/ext/everest_api/1/slac").prefix == ("ext/everest_api/1/slac")
    for bad, why in [
        ("http://h", "expected mqtt"),
        ("mqtt://h:0x/p", "port"),
        ("mqtt://h/a/#", "wildcards"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_everest_url(bad)


def test_module_ids_are_everest_module_id_else_evse_id_unique_and_topic_safe() -> None:
    specs = parse_station(
        {
            "parameters": [
                {"evse_id": "DE*SWT*E1", "network_interface": "eth1"},
                {
                    "evse_id": "DE*SWT*E2",
                    "network_interface": "eth2",
                    "everest_module_id": "slac_2",
                },
            ]
        }
    )
    assert module_ids(specs) == {"DE*SWT*E1": "DE*SWT*E1", "slac_2": "DE*SWT*E2"}
    with pytest.raises(ConfigError, match="cannot be an MQTT topic level"):
        module_ids([EvseSpec("DE/1", "eth1")])
    with pytest.raises(ConfigError, match="used by two EVSEs"):
        module_ids([EvseSpec("a", "eth1", "m"), EvseSpec("b", "eth2", "m")])
    for bad in ("", " ", 7, "a/b", "a+"):
        with pytest.raises(ConfigError, match="everest_module_id"):
            parse_station(
                {
                    "parameters": [
                        {"evse_id": "E", "network_interface": "eth1", "everest_module_id": bad}
                    ]
                }
            )


def test_e2m_payloads_as_slac_api_sends_them_and_bad_ones_in_plain_words() -> None:
    for name in ("enter_bcd", "leave_bcd", "dlink_terminate", "dlink_error", "dlink_pause"):
        assert parse_command(name, b"{}") is None
        assert parse_command(name, b"") is None
    assert parse_command("reset", b"true") is True
    assert parse_command("reset", b"false") is False
    assert parse_command("heartbeat", b"42") == 42
    assert parse_command("heartbeat", str(2**64 - 1).encode()) == 2**64 - 1
    assert parse_command("count_bc", b"2") == 2  # newer copies of the API file
    for name, payload, why in [
        ("enter_bcd", b"{", "not JSON"),
        ("enter_bcd", b"\xff", "not UTF-8"),
        ("reset", b"1", "JSON boolean"),
        ("reset", b'"true"', "JSON boolean"),
        ("reset", b"", "not JSON"),
        ("heartbeat", b"true", "unsigned integer"),
        ("heartbeat", b"-1", "unsigned integer"),
        ("heartbeat", b"1.5", "unsigned integer"),
        ("count_bc", b"-2", "unsigned integer"),
        ("fly", b"{}", "no command"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_command(name, payload)


def test_our_states_map_onto_slac_apis_three() -> None:
    assert set(API_STATES.values()) == {"UNMATCHED", "MATCHING", "MATCHED"}
    assert API_STATES["failed"] == "UNMATCHED"


def test_slac_evse_everest_usage_errors_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    station = tmp_path / "station.json"
    station.write_text('{"parameters": [{"evse_id": "a/b", "network_interface": "eth1"}]}')
    env = tmp_path / "empty.env"
    env.write_text("")
    base = ["evse", "--config", str(station), "--env", str(env)]
    for args, why in [
        (["--everest", "http://x"], "--everest 'http://x': expected mqtt://"),
        (["--everest", "mqtt://x", "--cp", "stdin"], "no --cp"),
        (["--everest", "mqtt://127.0.0.1:1"], 'give it an "everest_module_id"'),
    ]:
        assert main([*base, *args]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1, err
