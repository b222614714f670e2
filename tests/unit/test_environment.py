"""Config: defaults, the .env file, the environment over the file, every bad value named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from slac.environment import VARIABLES, Config
from slac.errors import ConfigError

from ..conftest import ROOT


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./.env unless a test writes one


def test_defaults_are_the_iso_values() -> None:
    config = Config().load_envs()
    assert config.slac_init_timeout == 50.0
    assert config.atten_results_timeout is None
    assert config.match_response_timeout == pytest.approx(0.2)
    assert config.match_sequence_timeout == pytest.approx(0.4)
    assert config.match_session_timeout == 10.0
    assert config.matching_attempts == 3
    assert config.max_parallel_runs == 5
    assert config.set_key_result_ok == (1,)
    assert config.log_level == "INFO"
    assert config == Config()


def test_dot_env_in_the_working_directory_is_read_by_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("SLAC_INIT_TIMEOUT=30\nATTEN_RESULTS_TIMEOUT=900\n")
    config = Config().load_envs()
    assert config.slac_init_timeout == 30.0
    assert config.atten_results_timeout == pytest.approx(0.9)
    assert config.env_file == ".env"


def test_named_env_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "site.env"
    path.write_text("LOG_LEVEL=debug\nSET_KEY_RESULT_OK=0,1\nRESET_KEY_ON_UNPLUG=false\n")
    config = Config.from_env(path)
    assert config.log_level == "DEBUG"
    assert config.log_level_number == logging.DEBUG
    assert config.set_key_result_ok == (0, 1)
    assert config.reset_key_on_unplug is False


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "site.env"
    path.write_text("SLAC_INIT_TIMEOUT=30\nMATCHING_ATTEMPTS=4\n")
    monkeypatch.setenv("SLAC_INIT_TIMEOUT", "45")
    config = Config().load_envs(path)
    assert config.slac_init_timeout == 45.0
    assert config.matching_attempts == 4


def test_reading_does_not_write_the_process_environment(tmp_path: Path) -> None:
    import os

    path = tmp_path / "site.env"
    path.write_text("MATCHING_ATTEMPTS=4\n")
    Config().load_envs(path)
    assert "MATCHING_ATTEMPTS" not in os.environ


def test_missing_named_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such .env file"):
        Config().load_envs(tmp_path / "nope.env")


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("SLAC_INIT_TIMEOUT", "soon", "Not a valid number"),
        ("SLAC_INIT_TIMEOUT", "-1", "greater than 0"),
        ("ATTEN_RESULTS_TIMEOUT", "1100", "1050"),
        ("ATTEN_RESULTS_TIMEOUT", "0", "1050"),
        ("MATCH_RESPONSE_TIMEOUT", "x", "Not a valid number"),
        ("MATCHING_ATTEMPTS", "0", "at least 1"),
        ("MATCHING_ATTEMPTS", "2.5", "Not a valid integer"),
        ("MAX_PARALLEL_RUNS", "0", "at least 1"),
        ("SET_KEY_TIMEOUT", "0", "greater than 0"),
        ("SET_KEY_RETRIES", "-1", "not be negative"),
        ("SET_KEY_SETTLE_TIME", "-2", "not be negative"),
        ("SET_KEY_RESULT_OK", "yes", "Not a valid integer"),
        ("SET_KEY_RESULT_OK", "256", "0 to 255"),
        ("RESET_KEY_ON_UNPLUG", "maybe", "Not a valid boolean"),
        ("LOG_LEVEL", "LOUD", "must be one of"),
    ],
)
def test_each_bad_value_is_rejected_with_its_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, why: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        Config().load_envs()
    assert name in caught.value.problems
    assert why in caught.value.problems[name]
    assert name in str(caught.value)


def test_all_bad_values_are_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLAC_INIT_TIMEOUT", "x")
    monkeypatch.setenv("MATCHING_ATTEMPTS", "0")
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError) as caught:
        Config().load_envs()
    assert set(caught.value.problems) == {"SLAC_INIT_TIMEOUT", "MATCHING_ATTEMPTS", "LOG_LEVEL"}


def test_init_timeout_outside_iso_range_is_accepted_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLAC_INIT_TIMEOUT", "5")
    with caplog.at_level(logging.WARNING, logger="slac.environment"):
        config = Config().load_envs()
    assert config.slac_init_timeout == 5.0
    assert "20 s to 50 s" in caplog.text


def test_every_variable_is_documented_in_the_configuration_page() -> None:
    page = (ROOT / "docs" / "configuration.md").read_text()
    for name in VARIABLES:
        assert f"`{name}`" in page, name
