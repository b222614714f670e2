"""Configuration from environment variables and ``.env`` files.

``Config().load_envs(env_path)`` reads the ``.env`` file (``./.env`` by default, when it
exists), then the process environment, which wins. Values are typed and validated with
environs; every bad value is reported at once in one :class:`~slac.errors.ConfigError`.
The process environment is only read, never written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional, Union

import environs
from dotenv import dotenv_values
from environs import EnvError

from slac import enums
from slac.errors import ConfigError

logger = logging.getLogger(__name__)

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


class _MappingEnv(environs.Env):
    """environs' parsers over a given mapping instead of ``os.environ``."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(eager=True)
        self._values = dict(values)

    def _get_value(self, env_key: str, default: Any) -> Any:
        return self._values.get(env_key, default)


@dataclass
class Config:
    """Every setting of the library, with the ISO 15118-3 defaults.

    Times are in seconds here (the variables' units are in the README's table). Construct
    it directly for tests, or fill it from the environment with :meth:`load_envs`.
    """

    #: TT_EVSE_SLAC_init: wait this long for CM_SLAC_PARM.REQ after plug-in.
    slac_init_timeout: float = enums.TT_EVSE_SLAC_INIT
    #: Sounding window; None = the EV's Time_Out (the standard's 600 ms).
    atten_results_timeout: Optional[float] = None
    #: Not ISO 15118-3: a sound or profile starts sounding when every
    #: CM_START_ATTEN_CHAR.IND was lost (off: only a valid CM_START_ATTEN_CHAR.IND does).
    sounding_without_start: bool = False
    #: Answer each valid CM_START_ATTEN_CHAR.IND of a run with its CM_SLAC_PARM.CNF again,
    #: and open the run of an EV whose CM_SLAC_PARM.REQ was lost (a neighbour's EVSE
    #: confirmed it).
    confirm_on_start: bool = True
    #: TT_match_sequence: CM_START_ATTEN_CHAR.IND after CM_SLAC_PARM.CNF.
    match_sequence_timeout: float = enums.TT_MATCH_SEQUENCE
    #: TT_match_response: CM_ATTEN_CHAR.RSP after CM_ATTEN_CHAR.IND.
    match_response_timeout: float = enums.TT_MATCH_RESPONSE
    #: TT_EVSE_match_session: CM_SLAC_MATCH.REQ after CM_ATTEN_CHAR.RSP.
    match_session_timeout: float = enums.TT_EVSE_MATCH_SESSION
    #: dB: a CM_SLAC_MATCH.REQ from an EV heard this much worse than another EV still
    #: choosing waits for that EV (within the EV's retries); 0 turns it off.
    match_hold_margin: float = enums.MATCH_HOLD_MARGIN_DB
    #: C_EV_match_retry: resends of CM_ATTEN_CHAR.IND.
    atten_char_retries: int = enums.C_EV_MATCH_RETRY
    #: Seconds per dB of mean attenuation: CM_ATTEN_CHAR.IND goes out this much later after
    #: the EV's last sound, so the EVSE hearing an EV best answers it first; 0: at once.
    atten_char_delay_per_db: float = enums.ATTEN_CHAR_DELAY_PER_DB
    #: Not ISO 15118-3: the first resend of CM_ATTEN_CHAR.IND this soon without
    #: CM_ATTEN_CHAR.RSP (0: after TT_match_response, as the standard says).
    atten_char_first_resend: float = 0.0
    #: C_conn_max_match: failed matching attempts per EV and plug-in.
    matching_attempts: int = enums.C_CONN_MAX_MATCH
    #: TT_matching_repetition: an EV may start attempts this long after its first one.
    matching_repetition: float = enums.TT_MATCHING_REPETITION
    #: TT_matching_rate: the EV's pause between two attempts (the EVSE does not pause).
    matching_rate: float = enums.TT_MATCHING_RATE
    #: C_EVSE_match_parallel: EV runs served at once.
    max_parallel_runs: int = enums.C_EVSE_MATCH_PARALLEL
    #: Wait this long for CM_SET_KEY.CNF.
    set_key_timeout: float = 1.0
    #: Further CM_SET_KEY.REQ attempts when the modem does not answer.
    set_key_retries: int = 2
    #: Pause after the modem accepted a key (QCA modems restart).
    set_key_settle_time: float = 10.0
    #: CM_SET_KEY.CNF Result values that mean "accepted" (QCA: 1; HomePlug text: 0).
    set_key_result_ok: tuple[int, ...] = (enums.SET_KEY_RESULT_QCA_SUCCESS,)
    #: Give the modem a fresh key (leave the logical network) when the EV leaves; False:
    #: when the next EV plugs in.
    reset_key_on_unplug: bool = True
    #: After a match, ask the modem for its link status this often (0: never).
    link_check_period: float = 1.0
    #: TT_match_join: the EV's modem must join the logical network within this time.
    link_join_timeout: float = enums.TT_MATCH_JOIN
    #: Link supervision: polls in a row the modem may leave unanswered (0: any number).
    link_check_max_unanswered: int = 10
    log_level: str = "INFO"
    #: "text" (human lines) or "json" (one JSON object per line).
    log_format: str = "text"
    #: Write every SLAC frame the EVSEs send or receive to this pcap file (None: off).
    pcap_file: Optional[str] = None
    #: Where ``slac evse`` reads control-pilot states: "stdin" or mqtt://host:port/prefix.
    cp_source: str = "stdin"
    #: MQTT client id (None: slac-<hostname>-<pid>).
    mqtt_client_id: Optional[str] = None
    mqtt_username: Optional[str] = field(default=None, repr=False)
    mqtt_password: Optional[str] = field(default=None, repr=False)
    #: Reconnect backoff: first wait, doubled after each failure up to the maximum.
    mqtt_reconnect_min: float = 0.5
    mqtt_reconnect_max: float = 30.0
    #: Where the values came from (the .env file read, if any); for messages only.
    env_file: Optional[str] = field(default=None, compare=False)

    def load_envs(self, env_path: Union[str, os.PathLike[str], None] = None) -> Config:
        """Fill this config from ``env_path`` (or ``./.env``) and the process environment.

        Returns ``self``. Raises :class:`ConfigError` naming every bad variable.
        """
        loaded = read_settings(env_path)
        for name, value in loaded.items():
            setattr(self, name, value)
        return self

    @classmethod
    def from_env(cls, env_path: Union[str, os.PathLike[str], None] = None) -> Config:
        return cls().load_envs(env_path)

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level))

    def describe(self) -> dict[str, Any]:
        """The settings as a plain dictionary (for logs and ``--help``-style output);
        secrets are masked."""
        return {
            f.name: "***"
            if f.name in SECRET_FIELDS and getattr(self, f.name)
            else getattr(self, f.name)
            for f in fields(self)
        }


SECRET_FIELDS = frozenset({"mqtt_password"})


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, field, unit and meaning (for the README too)."""

    name: str
    attribute: str
    unit: str
    meaning: str
    parse: Callable[[environs.Env, str, Any], Any]
    default_text: str
    check: Optional[Callable[[Any], Optional[str]]] = None


def _seconds(env: environs.Env, name: str, default: Any) -> Any:
    return env.float(name, default)


def _ms_to_s(env: environs.Env, name: str, default: Any) -> Any:
    value = env.float(name, None)
    return default if value is None else value / 1000.0


def _positive(value: Any) -> Optional[str]:
    return None if value is None or value > 0 else "must be greater than 0"


def _not_negative(value: Any) -> Optional[str]:
    return None if value >= 0 else "must not be negative"


def _at_least_one(value: Any) -> Optional[str]:
    return None if value >= 1 else "must be at least 1"


def _atten_results(value: Any) -> Optional[str]:
    if value is None:
        return None
    limit = enums.ATTEN_RESULTS_TIMEOUT_MAX_MS / 1000.0
    if not 0 < value <= limit:
        return (
            f"must be from 1 to {enums.ATTEN_RESULTS_TIMEOUT_MAX_MS} ms, so that the EV's "
            "1200 ms (TT_EV_atten_results) are never exceeded"
        )
    return None


def _result_list(env: environs.Env, name: str, default: Any) -> Any:
    values: Optional[list[int]] = env.list(name, None, subcast=int)
    return default if values is None else tuple(values)


def _result_values(value: Any) -> Optional[str]:
    if not value:
        return "must name at least one Result value (e.g. 1 for QCA modems)"
    if any(not 0 <= v <= 255 for v in value):
        return "Result values are bytes: 0 to 255"
    return None


def _log_level(env: environs.Env, name: str, default: Any) -> Any:
    value = env.str(name, default)
    return value.upper() if isinstance(value, str) else value


def _log_level_check(value: Any) -> Optional[str]:
    return None if value in LOG_LEVELS else f"must be one of {', '.join(LOG_LEVELS)}"


def _lower(env: environs.Env, name: str, default: Any) -> Any:
    value = env.str(name, default)
    return value.strip().lower() if isinstance(value, str) else value


def _log_format_check(value: Any) -> Optional[str]:
    return None if value in LOG_FORMATS else f"must be one of {', '.join(LOG_FORMATS)}"


def _optional_str(env: environs.Env, name: str, default: Any) -> Any:
    value = env.str(name, None)
    return value if value else default


def _cp_source_check(value: Any) -> Optional[str]:
    if value == "stdin":
        return None
    from slac.app.mqtt import parse_mqtt_url  # no aiomqtt needed to parse

    try:
        parse_mqtt_url(value)
    except ValueError as exc:
        return str(exc)
    return None


LOG_FORMATS = ("text", "json")


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "SLAC_INIT_TIMEOUT",
        "slac_init_timeout",
        "s",
        "TT_EVSE_SLAC_init: how long the EVSE waits for CM_SLAC_PARM.REQ after plug-in "
        "(ISO 15118-3: 20 to 50 s; other values are accepted with a warning)",
        _seconds,
        "50",
        _positive,
    ),
    Variable(
        "ATTEN_RESULTS_TIMEOUT",
        "atten_results_timeout",
        "ms",
        "Sounding window (TT_EVSE_match_MNBC) instead of the EV's Time_Out (600 ms); "
        f"at most {enums.ATTEN_RESULTS_TIMEOUT_MAX_MS}",
        _ms_to_s,
        "unset (600)",
        _atten_results,
    ),
    Variable(
        "SOUNDING_WITHOUT_START",
        "sounding_without_start",
        "bool",
        "Not ISO 15118-3 conformant: a CM_MNBC_SOUND.IND or CM_ATTEN_PROFILE.IND starts "
        "sounding when every CM_START_ATTEN_CHAR.IND was lost (false: only a valid "
        "CM_START_ATTEN_CHAR.IND starts it, as ISO 15118-5 tests)",
        lambda env, n, d: env.bool(n, d),
        "false",
    ),
    Variable(
        "CONFIRM_ON_START",
        "confirm_on_start",
        "bool",
        "Answer each valid CM_START_ATTEN_CHAR.IND of a run with its CM_SLAC_PARM.CNF "
        "again, and confirm the START of an EV whose CM_SLAC_PARM.REQ this EVSE never "
        "received (while a parallel slot is free): an EV "
        "whose CNF (or request) was lost on its own cable but that a neighbour's EVSE "
        "confirmed counts this EVSE while it sounds (ISO 15118-3 does not describe it; no "
        "ISO 15118-5 SECC case sees it: they ignore CM_SLAC_PARM.CNF while sounding and "
        "never send a START without a request). false: a START is never answered",
        lambda env, n, d: env.bool(n, d),
        "true",
    ),
    Variable(
        "MATCH_SEQUENCE_TIMEOUT",
        "match_sequence_timeout",
        "ms",
        "TT_match_sequence: wait for CM_START_ATTEN_CHAR.IND after CM_SLAC_PARM.CNF",
        _ms_to_s,
        "400",
        _positive,
    ),
    Variable(
        "MATCH_RESPONSE_TIMEOUT",
        "match_response_timeout",
        "ms",
        "TT_match_response: wait for CM_ATTEN_CHAR.RSP before resending CM_ATTEN_CHAR.IND",
        _ms_to_s,
        "200",
        _positive,
    ),
    Variable(
        "MATCH_SESSION_TIMEOUT",
        "match_session_timeout",
        "s",
        "TT_EVSE_match_session: wait for CM_SLAC_MATCH.REQ after CM_ATTEN_CHAR.RSP",
        _seconds,
        "10",
        _positive,
    ),
    Variable(
        "MATCH_HOLD_MARGIN",
        "match_hold_margin",
        "dB",
        "A CM_SLAC_MATCH.REQ from an EV heard this much worse (mean attenuation) than "
        "another EV still choosing waits for that EV, within the requesting EV's retries "
        "(EVs that take the first CM_ATTEN_CHAR.IND pair with the wrong EVSE otherwise); "
        "0 turns it off",
        lambda env, n, d: env.float(n, d),
        "3",
        _not_negative,
    ),
    Variable(
        "ATTEN_CHAR_RETRIES",
        "atten_char_retries",
        "count",
        "C_EV_match_retry: resends of CM_ATTEN_CHAR.IND without CM_ATTEN_CHAR.RSP",
        lambda env, n, d: env.int(n, d),
        "2",
        _not_negative,
    ),
    Variable(
        "ATTEN_CHAR_DELAY_PER_DB",
        "atten_char_delay_per_db",
        "ms/dB",
        "CM_ATTEN_CHAR.IND goes out this long per dB of the EV's mean attenuation after the "
        "EV's last sound (plus 20 ms), at the latest when it and its resends still come "
        "within the EV's TT_EV_atten_results: across EVSEs the one that hears a car best "
        "answers it first, so a car that takes the first CM_ATTEN_CHAR.IND takes its own "
        "EVSE; the measurement ends at that turn even when the last sound or its profile "
        "was lost (unless ATTEN_RESULTS_TIMEOUT is set). 0: the IND goes out when the "
        "measurement ends",
        _ms_to_s,
        "4",
        _not_negative,
    ),
    Variable(
        "ATTEN_CHAR_FIRST_RESEND",
        "atten_char_first_resend",
        "ms",
        "Not ISO 15118-3 conformant: without CM_ATTEN_CHAR.RSP, the first resend of "
        "CM_ATTEN_CHAR.IND comes this soon instead of after TT_match_response (the later "
        "resend and their number stay), so that a lost IND of the EVSE that hears a car "
        "best is repeated before the next EVSE's turn and a car that takes the first IND "
        "still takes its own EVSE. Choose it longer than the EV's CM_ATTEN_CHAR.RSP takes "
        "and shorter than 6 dB of ATTEN_CHAR_DELAY_PER_DB minus the jitter between EVSEs "
        "(e.g. 15 with 6 ms/dB); 0: off",
        _ms_to_s,
        "0",
        _not_negative,
    ),
    Variable(
        "MATCHING_ATTEMPTS",
        "matching_attempts",
        "count",
        "C_conn_max_match: failed matching attempts per EV and plug-in; an EV that used "
        "them up is not answered again until the next plug-in (ISO 15118-3: at least 3)",
        lambda env, n, d: env.int(n, d),
        "3",
        _at_least_one,
    ),
    Variable(
        "MATCHING_REPETITION",
        "matching_repetition",
        "s",
        "TT_matching_repetition: an EV may start matching attempts this long after its "
        "first CM_SLAC_PARM.REQ; with TT_EVSE_SLAC_init it bounds every plug-in",
        _seconds,
        "10",
        _positive,
    ),
    Variable(
        "MATCHING_RATE",
        "matching_rate",
        "ms",
        "TT_matching_rate: the EV's pause between two matching attempts; the EVSE does not "
        "pause (no request is dropped because some EV's attempt failed)",
        _ms_to_s,
        "400",
        _not_negative,
    ),
    Variable(
        "MAX_PARALLEL_RUNS",
        "max_parallel_runs",
        "count",
        "C_EVSE_match_parallel: EV runs (EV MAC, RunID) one EVSE serves at once",
        lambda env, n, d: env.int(n, d),
        "5",
        _at_least_one,
    ),
    Variable(
        "SET_KEY_TIMEOUT",
        "set_key_timeout",
        "ms",
        "How long to wait for the modem's CM_SET_KEY.CNF",
        _ms_to_s,
        "1000",
        _positive,
    ),
    Variable(
        "SET_KEY_RETRIES",
        "set_key_retries",
        "count",
        "Further CM_SET_KEY.REQ attempts when the modem does not answer",
        lambda env, n, d: env.int(n, d),
        "2",
        _not_negative,
    ),
    Variable(
        "SET_KEY_SETTLE_TIME",
        "set_key_settle_time",
        "s",
        "Pause after the modem accepted a new key (QCA modems restart)",
        _seconds,
        "10",
        _not_negative,
    ),
    Variable(
        "SET_KEY_RESULT_OK",
        "set_key_result_ok",
        "list",
        "CM_SET_KEY.CNF Result values that mean success, comma-separated: 1 for "
        "Qualcomm modems, 0 as the HomePlug text says, 0,1 to accept both",
        _result_list,
        "1",
        _result_values,
    ),
    Variable(
        "RESET_KEY_ON_UNPLUG",
        "reset_key_on_unplug",
        "bool",
        "Leave the logical network (fresh NMK to the modem) as soon as an EV that received "
        "the key unplugs; false: the fresh key is set when the next EV plugs in instead (that "
        "plug-in waits for it, SET_KEY_SETTLE_TIME included). Either way no EV receives a key "
        "an earlier EV received",
        lambda env, n, d: env.bool(n, d),
        "true",
    ),
    Variable(
        "LINK_CHECK_PERIOD",
        "link_check_period",
        "s",
        "After a match, ask the modem for its link status (VS_PL_LINK_STATUS) this often; a "
        "lost link is reported (notify_link_lost) and matching starts again; 0 turns "
        "supervision off",
        _seconds,
        "1",
        _not_negative,
    ),
    Variable(
        "LINK_JOIN_TIMEOUT",
        "link_join_timeout",
        "s",
        "TT_match_join: the EV's modem must join the logical network within this time after "
        "CM_SLAC_MATCH.CNF",
        _seconds,
        "12",
        _positive,
    ),
    Variable(
        "LINK_CHECK_MAX_UNANSWERED",
        "link_check_max_unanswered",
        "count",
        "Link supervision: VS_PL_LINK_STATUS polls in a row the modem may leave unanswered "
        "(a busy modem) before the link counts as lost; an unanswered poll never counts as "
        "link down; 0: never",
        lambda env, n, d: env.int(n, d),
        "10",
        _not_negative,
    ),
    Variable(
        "LOG_LEVEL",
        "log_level",
        "name",
        "Log level of the examples and commands: DEBUG, INFO, WARNING, ERROR",
        _log_level,
        "INFO",
        _log_level_check,
    ),
    Variable(
        "LOG_FORMAT",
        "log_format",
        "name",
        "text: one readable line per event; json: one JSON object per line (time, level, "
        "logger, message, evse_id, ev_mac, run_id)",
        _lower,
        "text",
        _log_format_check,
    ),
    Variable(
        "PCAP_FILE",
        "pcap_file",
        "path",
        "Write every SLAC frame the EVSEs send or receive to this pcap file (overwritten at "
        "start; open it in Wireshark or `slac analyze`); unset: no capture",
        _optional_str,
        "unset",
    ),
    Variable(
        "CP_SOURCE",
        "cp_source",
        "text",
        "Where `slac evse` reads control-pilot states: stdin, or mqtt://host:port/prefix "
        "(overridden by --cp)",
        lambda env, n, d: env.str(n, d).strip(),
        "stdin",
        _cp_source_check,
    ),
    Variable(
        "MQTT_CLIENT_ID",
        "mqtt_client_id",
        "text",
        "MQTT client identifier of `slac evse --cp mqtt://...`",
        _optional_str,
        "slac-<host>-<pid>",
    ),
    Variable(
        "MQTT_USERNAME",
        "mqtt_username",
        "text",
        "MQTT user name (unset: anonymous)",
        _optional_str,
        "unset",
    ),
    Variable(
        "MQTT_PASSWORD",
        "mqtt_password",
        "text",
        "MQTT password (never logged)",
        _optional_str,
        "unset",
    ),
    Variable(
        "MQTT_RECONNECT_MIN",
        "mqtt_reconnect_min",
        "s",
        "First wait before reconnecting to the MQTT broker; doubled after each failure",
        _seconds,
        "0.5",
        _positive,
    ),
    Variable(
        "MQTT_RECONNECT_MAX",
        "mqtt_reconnect_max",
        "s",
        "Longest wait between two reconnection attempts",
        _seconds,
        "30",
        _positive,
    ),
)


def _flatten(messages: Any) -> str:
    """marshmallow error messages (lists, or dicts by list index) as one sentence."""
    if isinstance(messages, dict):
        return "; ".join(f"item {k}: {_flatten(v)}" for k, v in messages.items())
    if isinstance(messages, (list, tuple)):
        return "; ".join(_flatten(m) for m in messages)
    return str(messages)


def read_settings(env_path: Union[str, os.PathLike[str], None] = None) -> dict[str, Any]:
    """Parse every variable from the .env file and the environment (which wins).

    Returns the values of the variables that were set, keyed by Config attribute.
    """
    problems: dict[str, str] = {}
    values: dict[str, str] = {}
    path = Path(env_path) if env_path is not None else Path(".env")
    if path.is_file():
        try:
            file_values = dotenv_values(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError({str(path): f"cannot read the .env file: {exc}"}) from exc
        values.update({k: v for k, v in file_values.items() if v is not None})
    elif env_path is not None:
        raise ConfigError({str(path): "no such .env file"})
    names = {v.name for v in VARIABLES}
    values.update({k: v for k, v in os.environ.items() if k in names})

    env = _MappingEnv(values)
    defaults = Config()
    parsed: dict[str, Any] = {}
    for var in VARIABLES:
        if var.name not in values:
            continue
        try:
            parsed[var.attribute] = var.parse(env, var.name, getattr(defaults, var.attribute))
        except EnvError as exc:  # EnvValidationError carries the parsers' messages
            messages = getattr(exc, "error_messages", None)
            problems[var.name] = f"{values[var.name]!r} is not valid: " + (
                _flatten(messages) if messages else str(exc)
            )
    for var in VARIABLES:
        if var.name in problems or var.attribute not in parsed or var.check is None:
            continue
        why = var.check(parsed[var.attribute])
        if why:
            problems[var.name] = f"{values[var.name]!r} {why}"
    if problems:
        raise ConfigError(problems)
    init = parsed.get("slac_init_timeout")
    if init is not None and not enums.TT_EVSE_SLAC_INIT_MIN <= init <= enums.TT_EVSE_SLAC_INIT_MAX:
        logger.warning(
            "SLAC_INIT_TIMEOUT=%s s is outside ISO 15118-3's TT_EVSE_SLAC_init of 20 s to 50 s",
            values["SLAC_INIT_TIMEOUT"],
        )
    if path.is_file():
        parsed["env_file"] = str(path)
    return parsed
