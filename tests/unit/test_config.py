"""The settings are declared once (slac/config.py, slac/app/settings.py): the loader, the
checks at construction and the README's configuration table all come from that metadata; the
state machines import the settings without environs or python-dotenv."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from slac import Config as PublicConfig
from slac.app.settings import AppSettings
from slac.config import (
    EvConfig,
    EvseConfig,
    MatchingConfig,
    ModemConfig,
    Setting,
    default_text,
    settings_of,
)
from slac.environment import (
    BEGIN,
    END,
    TABLE_GROUPS,
    VARIABLES,
    Config,
    config_table,
    load_settings,
    table_block,
    update_table,
)
from slac.errors import ConfigError

from ..conftest import ROOT

SETTINGS_CLASSES = (MatchingConfig, ModemConfig, EvConfig, AppSettings)
#: every settings field: (class, field, its Setting)
ALL = [(cls, f, meta) for cls in SETTINGS_CLASSES for f, meta in settings_of(cls)]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./.env unless a test writes one


def _table_file() -> Path:
    """README.md, or docs/configuration.md once the configuration section moved there."""
    for path in (ROOT / "README.md", ROOT / "docs" / "configuration.md"):
        if path.is_file() and table_block(path.read_text(encoding="utf-8")) is not None:
            return path
    raise AssertionError(f"no {BEGIN} ... {END} in README.md or docs/configuration.md")


def test_the_configuration_table_is_the_generated_one() -> None:
    """Edit slac/config.py (or slac/app/settings.py), then `make config-table`."""
    text = _table_file().read_text(encoding="utf-8")
    span = table_block(text)
    assert span is not None
    assert text[span[0] : span[1]] == "\n" + config_table(), (
        "the configuration table differs from the settings' declarations: run make config-table"
    )


def test_slac_config_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    from slac.app.cli import main

    assert main(["config", "--markdown"]) == 0
    assert capsys.readouterr().out == config_table()


def test_make_config_table_rewrites_a_stale_table(tmp_path: Path) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text(f"# Configuration\n\n{BEGIN}\n| old | table |\n{END}\n\nafter\n")
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        [make, "-s", "config-table", f"CONFIG_TABLE_FILES={tmp_path / 'absent.md'} {stale}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"written to {stale}" in done.stdout
    assert stale.read_text() == (f"# Configuration\n\n{BEGIN}\n{config_table()}{END}\n\nafter\n")
    assert update_table([stale]) == stale  # a second run changes nothing
    assert stale.read_text().count("| old |") == 0


def test_slac_config_update_without_markers_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slac.app.cli import main

    plain = tmp_path / "plain.md"
    plain.write_text("no table here\n")
    assert main(["config", "--update", str(plain)]) == 2
    assert "config-table" in capsys.readouterr().err
    assert plain.read_text() == "no table here\n"


def test_every_field_has_one_setting_and_every_variable_one_field() -> None:
    for cls in SETTINGS_CLASSES:
        assert [f.name for f in dataclasses.fields(cls)] == [f.name for f, _ in settings_of(cls)]
    names = [meta.env for _, _, meta in ALL]
    assert len(names) == len(set(names)), "an environment variable named twice"
    assert set(VARIABLES) == set(names)
    for _, _, meta in ALL:
        assert meta.doc and meta.unit, meta.env
        assert meta.env == meta.env.upper()


def test_the_table_groups_are_the_settings_classes() -> None:
    assert [cls for _, cls, _ in TABLE_GROUPS] == list(SETTINGS_CLASSES)


@pytest.mark.parametrize(
    ("cls", "f", "meta"),
    [a for a in ALL if a[1].default is not None],
    ids=lambda a: a.env if isinstance(a, Setting) else "",
)
def test_the_default_text_of_each_variable_reads_back_as_the_default(
    monkeypatch: pytest.MonkeyPatch, cls: Any, f: dataclasses.Field[Any], meta: Setting
) -> None:
    """The table's default, given as the variable, is the field's default: units, scales
    and parsers of every variable are right."""
    monkeypatch.setenv(meta.env, default_text(f, meta))
    (loaded,) = load_settings(None, cls)
    assert getattr(loaded, f.name) == pytest.approx(f.default), meta.env


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("MATCH_RESPONSE_TIMEOUT", "250", "match_response_timeout", 0.25),  # ms -> s
        ("ATTEN_CHAR_DELAY_PER_DB", "6", "atten_char_delay_per_db", 0.006),  # ms/dB -> s/dB
        ("MATCH_SESSION_TIMEOUT", "8", "match_session_timeout", 8.0),  # s
        ("SET_KEY_TIMEOUT", "300", "set_key_timeout", 0.3),
        ("LINK_CHECK_PERIOD", "0.5", "link_check_period", 0.5),
        ("MATCH_HOLD_MARGIN", "4.5", "match_hold_margin", 4.5),  # dB
    ],
)
def test_variables_in_ms_give_fields_in_seconds(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, attribute: str, expected: float
) -> None:
    monkeypatch.setenv(name, value)
    assert getattr(Config().load_envs(), attribute) == pytest.approx(expected)


def test_the_ev_reads_its_own_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EV_ATTEN_LIMIT", "30")
    monkeypatch.setenv("EV_CHOICE", "First")
    monkeypatch.setenv("EV_ATTEMPT_PAUSE", "800")
    monkeypatch.setenv("EV_ATTEMPTS", "2")
    monkeypatch.setenv("MATCH_RESPONSE_TIMEOUT", "300")  # the EVSE's, not the EV's
    config, ev = load_settings(None, Config, EvConfig)
    assert ev == EvConfig(atten_limit=30.0, choice="first", attempt_pause=0.8, attempts=2)
    assert ev.match_response_timeout == pytest.approx(0.2)
    assert config.match_response_timeout == pytest.approx(0.3)


def test_bad_values_of_several_classes_are_reported_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SLAC_INIT_TIMEOUT", "x")
    monkeypatch.setenv("EV_NUM_SOUNDS", "0")
    monkeypatch.setenv("EV_ATTEMPT_PAUSE", "100")
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError) as caught:
        load_settings(None, Config, AppSettings, EvConfig)
    assert caught.value.problems == {
        "SLAC_INIT_TIMEOUT": "'x' is not valid: Not a valid number.",
        "EV_NUM_SOUNDS": "'0' must be from 1 to 255",
        "EV_ATTEMPT_PAUSE": "'100' must be at least TT_matching_rate (0.4 s)",
        "LOG_FORMAT": "'xml' must be one of text, json",
    }


def test_application_settings_come_from_the_same_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("CP_SOURCE", " mqtt://broker/station1 ")
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret")
    config, app = load_settings(None, Config, AppSettings)
    assert (app.log_level, app.cp_source) == ("DEBUG", "mqtt://broker/station1")
    # the deprecated attributes of Config hold the same values
    assert (config.log_level, config.cp_source) == (app.log_level, app.cp_source)
    assert "s3cret" not in repr(app) and "s3cret" not in repr(config)
    assert config.describe()["mqtt_password"] == "***"


def test_bad_cp_source_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CP_SOURCE", "mqtt://broker")
    with pytest.raises(ConfigError, match="CP_SOURCE: 'mqtt://broker' 'mqtt://broker': a topic"):
        load_settings(None, AppSettings)


@pytest.mark.parametrize(
    ("cls", "fields", "key", "why"),
    [
        (Config, {"slac_init_timeout": -1.0}, "Config.slac_init_timeout", "-1.0 s must be greater"),
        (Config, {"matching_attempts": 0}, "Config.matching_attempts", "0 must be at least 1"),
        (Config, {"atten_results_timeout": 1.1}, "Config.atten_results_timeout", "1050 ms"),
        (Config, {"set_key_result_ok": ()}, "Config.set_key_result_ok", "at least one"),
        (MatchingConfig, {"max_parallel_runs": 0}, "MatchingConfig.max_parallel_runs", "least 1"),
        (ModemConfig, {"set_key_retries": -1}, "ModemConfig.set_key_retries", "not be negative"),
        (EvConfig, {"num_sounds": 256}, "EvConfig.num_sounds", "from 1 to 255"),
        (AppSettings, {"log_level": "LOUD"}, "AppSettings.log_level", "must be one of"),
    ],
)
def test_a_bad_value_in_code_is_refused_at_construction(
    cls: Any, fields: dict[str, Any], key: str, why: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        cls(**fields)
    assert list(caught.value.problems) == [key]
    assert why in caught.value.problems[key]


def test_config_is_the_evse_settings_with_the_loader() -> None:
    config = PublicConfig(slac_init_timeout=20, set_key_timeout=0.5)
    assert isinstance(config, EvseConfig)
    assert isinstance(config, MatchingConfig) and isinstance(config, ModemConfig)
    assert config == Config(slac_init_timeout=20, set_key_timeout=0.5)
    assert [f.name for f in dataclasses.fields(Config)][:2] == [
        "slac_init_timeout",
        "atten_results_timeout",
    ]
    changed = dataclasses.replace(config, matching_attempts=4)
    assert type(changed) is Config and changed.matching_attempts == 4
    assert config.matching_attempts == 3


def test_assigning_a_field_is_deprecated_but_still_works_and_is_checked() -> None:
    config = Config()
    with pytest.deprecated_call(match="dataclasses.replace"):
        config.slac_init_timeout = 30  # type: ignore[misc]
    assert config.slac_init_timeout == 30
    with pytest.deprecated_call(), pytest.raises(ConfigError, match="Config.matching_attempts"):
        config.matching_attempts = 0  # type: ignore[misc]
    assert config.matching_attempts == 3


def test_the_settings_classes_are_frozen() -> None:
    for cls in (MatchingConfig, ModemConfig, EvseConfig, EvConfig, AppSettings):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(cls(), next(iter(dataclasses.fields(cls))).name, None)


def test_the_machines_and_the_settings_import_without_environs_or_dotenv() -> None:
    """slac.fsm.* and slac.config are sans-IO: no third-party package is needed to import
    them (environs and python-dotenv are blocked in a fresh interpreter)."""
    code = (
        "import sys\n"
        "sys.modules['environs'] = None\n"
        "sys.modules['dotenv'] = None\n"
        "import slac.config, slac.fsm.evse, slac.fsm.ev, slac.fsm.modem\n"
        "m = slac.fsm.evse.EvseMatcher(b'\\x02' * 6, b'\\x04' * 16, b'\\x03' * 7,"
        " config=slac.config.MatchingConfig(slac_init_timeout=20))\n"
        "assert m.config.slac_init_timeout == 20\n"
        "loaded = sorted(n for n in sys.modules if n.startswith('slac'))\n"
        "assert 'slac.environment' not in loaded and 'slac.session' not in loaded, loaded\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_package_has_no_import_cycle() -> None:
    tool = ROOT.parent / "shared" / "tools" / "import_check.py"
    if not tool.is_file():
        pytest.skip(f"{tool} is not beside the checkout")
    done = subprocess.run(
        [sys.executable, str(tool), str(ROOT / "slac")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cycles 0" in done.stdout


def test_slac_ev_takes_the_ev_variables_and_its_options_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import slac.ev
    from slac.app.cli import main

    seen: list[tuple[Config, EvConfig]] = []

    class NoEvse:  # records what `slac ev` built; finds no EVSE
        def __init__(self, iface: str, config: Config, ev_config: EvConfig, **_: Any) -> None:
            seen.append((config, ev_config))

        async def match(self) -> None:
            raise slac.ev.EvMatchingFailedError("no EVSE answered")

        async def close(self) -> None:
            pass

    monkeypatch.setattr(slac.ev, "SlacEvSession", NoEvse)
    env = tmp_path / "ev.env"
    env.write_text("EV_ATTEN_LIMIT=30\nEV_CHOICE=first\nEV_NUM_SOUNDS=8\nSET_KEY_TIMEOUT=500\n")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:  # `slac ev` sets up logging (LOG_LEVEL): put the test's back afterwards
        assert main(["ev", "--iface", "ev0", "--env", str(env), "--choice", "lowest"]) == 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "no match: no EVSE answered" in capsys.readouterr().out
    ((config, ev),) = seen
    assert (ev.atten_limit, ev.num_sounds, ev.choice) == (30.0, 8, "lowest")
    assert config.set_key_timeout == pytest.approx(0.5)
