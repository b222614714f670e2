"""The library's settings, each declared once: plain frozen dataclasses, standard library only.

- :class:`MatchingConfig`: the EVSE's matching (ISO 15118-3 timers and counts, the opt-ins);
- :class:`ModemConfig`: the local modem (CM_SET_KEY, link supervision);
- :class:`EvseConfig`: both, what an EVSE session reads (``slac.Config`` adds the loader);
- :class:`EvConfig`: the EV side (``slac ev``, :class:`slac.fsm.ev.EvMatcher`).

Every field carries a :class:`Setting` as dataclass metadata (``field.metadata["setting"]``):
its environment variable, its meaning, its unit and the variable's unit (times are seconds in
Python and milliseconds in the variables of the sub-second ISO timers), the validation rule
and, for a default of None, what None means. The loader (:mod:`slac.environment`) and the
configuration table (docs/configuration.md) are built from this metadata, nothing else.
Values are checked at construction: a bad one raises :class:`~slac.errors.ConfigError`
naming every bad field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Callable, Optional

from slac import enums
from slac.errors import ConfigError

# --- the metadata ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A validation rule: ``check(value)`` is None for an allowed value, else why not (the end
    of a sentence that starts with the value); ``text`` is the rule for the table."""

    text: str
    check: Callable[[Any], Optional[str]]


POSITIVE = Rule("> 0", lambda v: None if v > 0 else "must be greater than 0")
NOT_NEGATIVE = Rule("≥ 0", lambda v: None if v >= 0 else "must not be negative")
AT_LEAST_ONE = Rule("≥ 1", lambda v: None if v >= 1 else "must be at least 1")


def one_of(*choices: str) -> Rule:
    return Rule(
        " or ".join(choices) if len(choices) < 3 else f"one of {', '.join(choices)}",
        lambda v: None if v in choices else f"must be one of {', '.join(choices)}",
    )


def within(low: float, high: float, unit: str = "") -> Rule:
    """``low`` to ``high`` inclusive (in the field's unit)."""
    span = f"{low:g} to {high:g}" + (f" {unit}" if unit else "")
    return Rule(span, lambda v: None if low <= v <= high else f"must be from {span}")


#: The units a variable may be given in when its field is in seconds (the factor to seconds).
SCALES = {("ms", "s"): 0.001, ("ms/dB", "s/dB"): 0.001}
#: Units of things that are not quantities: no unit is printed after their values.
PLAIN_UNITS = frozenset({"count", "bool", "list", "name", "text", "path"})


@dataclass(frozen=True)
class Setting:
    """What a field means, where its value comes from and what it may be."""

    #: the environment variable (and ``.env`` key)
    env: str
    #: the meaning, as the configuration table shows it
    doc: str
    #: the field's unit: s, dB, s/dB, count, bool, list, name, text, path
    unit: str
    #: the variable's unit where it differs from the field's (``ms`` for a field in s)
    env_unit: str = ""
    rule: Optional[Rule] = None
    #: what a default of None means (the table shows "unset (...)")
    unset: str = ""
    #: never shown: ``repr`` and :meth:`slac.Config.describe` mask it
    secret: bool = False
    #: applied to the variable's text before it is parsed: "strip", "lower" or "upper"
    text: str = ""
    #: accepted, but logged as a warning when it fails (the variable's value and unit first)
    advice: Optional[Rule] = None

    @property
    def variable_unit(self) -> str:
        return self.env_unit or self.unit

    @property
    def scale(self) -> float:
        """Field value = variable value x scale."""
        return SCALES.get((self.variable_unit, self.unit), 1.0)


def setting(
    default: Any,
    *,
    env: str,
    doc: str,
    unit: str,
    env_unit: str = "",
    rule: Optional[Rule] = None,
    unset: str = "",
    secret: bool = False,
    text: str = "",
    advice: Optional[Rule] = None,
) -> Any:
    """A dataclass field with its :class:`Setting` (typed Any, like :func:`dataclasses.field`)."""
    meta = Setting(env, doc, unit, env_unit, rule, unset, secret, text, advice)
    if env_unit and meta.scale == 1.0 and env_unit != unit:
        raise ValueError(f"{env}: no conversion from {env_unit} to {unit}")
    return field(default=default, metadata={"setting": meta}, repr=not secret)


def settings_of(cls: Any) -> Iterator[tuple[Field[Any], Setting]]:
    """The fields of a settings dataclass (class or instance) that carry a :class:`Setting`."""
    for f in fields(cls):
        meta = f.metadata.get("setting")
        if isinstance(meta, Setting):
            yield f, meta


def problems_of(obj: Any) -> dict[str, str]:
    """Every field of ``obj`` its rule refuses: ``{"Class.field": "value why"}``."""
    problems: dict[str, str] = {}
    for f, meta in settings_of(obj):
        value = getattr(obj, f.name)
        if meta.rule is None or value is None:
            continue
        why = meta.rule.check(value)
        if why:
            unit = "" if meta.unit in PLAIN_UNITS else f" {meta.unit}"
            problems[f"{type(obj).__name__}.{f.name}"] = f"{value!r}{unit} {why}"
    return problems


@dataclass(frozen=True)
class Settings:
    """Base of the settings dataclasses: every field is checked at construction."""

    def __post_init__(self) -> None:
        problems = problems_of(self)
        if problems:
            raise ConfigError(problems)


# --- the EVSE ----------------------------------------------------------------------------------

#: ATTEN_RESULTS_TIMEOUT at most (s): the EVSE must answer before the EV's 1200 ms
#: (TT_EV_atten_results) run out.
ATTEN_RESULTS_TIMEOUT_MAX = 1.05


def _atten_results(value: float) -> Optional[str]:
    if 0 < value <= ATTEN_RESULTS_TIMEOUT_MAX:
        return None
    return (
        f"must be from 1 to {ATTEN_RESULTS_TIMEOUT_MAX * 1000:g} ms, so that the EV's "
        "1200 ms (TT_EV_atten_results) are never exceeded"
    )


def _iso_init(value: float) -> Optional[str]:
    low, high = enums.TT_EVSE_SLAC_INIT_MIN, enums.TT_EVSE_SLAC_INIT_MAX
    if low <= value <= high:
        return None
    return f"is outside ISO 15118-3's TT_EVSE_SLAC_init of {low:g} s to {high:g} s"


@dataclass(frozen=True)
class MatchingConfig(Settings):
    """How the EVSE matches (ISO 15118-3 defaults). Times in seconds, attenuations in dB."""

    slac_init_timeout: float = setting(
        enums.TT_EVSE_SLAC_INIT,
        env="SLAC_INIT_TIMEOUT",
        unit="s",
        rule=POSITIVE,
        advice=Rule("20 to 50 (ISO)", _iso_init),
        doc="TT_EVSE_SLAC_init: how long the EVSE waits for CM_SLAC_PARM.REQ after plug-in "
        "(ISO 15118-3: 20 to 50 s; other values are accepted with a warning)",
    )
    atten_results_timeout: Optional[float] = setting(
        None,
        env="ATTEN_RESULTS_TIMEOUT",
        unit="s",
        env_unit="ms",
        rule=Rule(f"> 0, ≤ {ATTEN_RESULTS_TIMEOUT_MAX * 1000:g}", _atten_results),
        unset=f"{enums.TT_EVSE_MATCH_MNBC * 1000:g}",
        doc="Sounding window (TT_EVSE_match_MNBC) instead of the EV's Time_Out "
        f"({enums.TT_EVSE_MATCH_MNBC * 1000:g} ms); at most "
        f"{ATTEN_RESULTS_TIMEOUT_MAX * 1000:g}",
    )
    sounding_without_start: bool = setting(
        False,
        env="SOUNDING_WITHOUT_START",
        unit="bool",
        doc="Not ISO 15118-3 conformant: a CM_MNBC_SOUND.IND or CM_ATTEN_PROFILE.IND starts "
        "sounding when every CM_START_ATTEN_CHAR.IND was lost (false: only a valid "
        "CM_START_ATTEN_CHAR.IND starts it, as ISO 15118-5 tests)",
    )
    confirm_on_start: bool = setting(
        True,
        env="CONFIRM_ON_START",
        unit="bool",
        doc="Answer each valid CM_START_ATTEN_CHAR.IND of a run with its CM_SLAC_PARM.CNF "
        "again, and confirm the START of an EV whose CM_SLAC_PARM.REQ this EVSE never "
        "received (while a parallel slot is free): an EV whose CNF (or request) was lost on "
        "its own cable but that a neighbour's EVSE confirmed counts this EVSE while it sounds "
        "(ISO 15118-3 does not describe it; no ISO 15118-5 SECC case sees it: they ignore "
        "CM_SLAC_PARM.CNF while sounding and never send a START without a request). false: a "
        "START is never answered",
    )
    match_sequence_timeout: float = setting(
        enums.TT_MATCH_SEQUENCE,
        env="MATCH_SEQUENCE_TIMEOUT",
        unit="s",
        env_unit="ms",
        rule=POSITIVE,
        doc="TT_match_sequence: wait for CM_START_ATTEN_CHAR.IND after CM_SLAC_PARM.CNF",
    )
    match_response_timeout: float = setting(
        enums.TT_MATCH_RESPONSE,
        env="MATCH_RESPONSE_TIMEOUT",
        unit="s",
        env_unit="ms",
        rule=POSITIVE,
        doc="TT_match_response: wait for CM_ATTEN_CHAR.RSP before resending CM_ATTEN_CHAR.IND",
    )
    match_session_timeout: float = setting(
        enums.TT_EVSE_MATCH_SESSION,
        env="MATCH_SESSION_TIMEOUT",
        unit="s",
        rule=POSITIVE,
        doc="TT_EVSE_match_session: wait for CM_SLAC_MATCH.REQ after CM_ATTEN_CHAR.RSP",
    )
    match_hold_margin: float = setting(
        3.0,
        env="MATCH_HOLD_MARGIN",
        unit="dB",
        rule=NOT_NEGATIVE,
        doc="A CM_SLAC_MATCH.REQ from an EV heard this much worse (mean attenuation) than "
        "another EV still choosing waits for that EV, within the requesting EV's retries (EVs "
        "that take the first CM_ATTEN_CHAR.IND pair with the wrong EVSE otherwise; the own "
        "cable is heard at least 6 dB better than crosstalk); and one from an EV that another "
        "EVSE of this station (one process, a shared StationView) heard this much better is "
        "not answered; 0 turns both off",
    )
    atten_char_retries: int = setting(
        enums.C_EV_MATCH_RETRY,
        env="ATTEN_CHAR_RETRIES",
        unit="count",
        rule=NOT_NEGATIVE,
        doc="C_EV_match_retry: resends of CM_ATTEN_CHAR.IND without CM_ATTEN_CHAR.RSP",
    )
    atten_char_delay_per_db: float = setting(
        0.004,
        env="ATTEN_CHAR_DELAY_PER_DB",
        unit="s/dB",
        env_unit="ms/dB",
        rule=NOT_NEGATIVE,
        doc="CM_ATTEN_CHAR.IND goes out this long per dB of the EV's mean attenuation after the "
        "EV's last sound (plus 20 ms), at the latest when it and its resends still come within "
        "the EV's TT_EV_atten_results: across EVSEs the one that hears a car best answers it "
        "first, so a car that takes the first CM_ATTEN_CHAR.IND takes its own EVSE; the "
        "measurement ends at that turn even when the last sound or its profile was lost "
        "(unless ATTEN_RESULTS_TIMEOUT is set). 0: the IND goes out when the measurement ends",
    )
    atten_char_first_resend: float = setting(
        0.0,
        env="ATTEN_CHAR_FIRST_RESEND",
        unit="s",
        env_unit="ms",
        rule=NOT_NEGATIVE,
        doc="Not ISO 15118-3 conformant: without CM_ATTEN_CHAR.RSP, the first resend of "
        "CM_ATTEN_CHAR.IND comes this soon instead of after TT_match_response (the later "
        "resend and their number stay), so that a lost IND of the EVSE that hears a car best "
        "is repeated before the next EVSE's turn and a car that takes the first IND still "
        "takes its own EVSE. Choose it longer than the EV's CM_ATTEN_CHAR.RSP takes and "
        "shorter than 6 dB of ATTEN_CHAR_DELAY_PER_DB minus the jitter between EVSEs (e.g. 15 "
        "with 6 ms/dB); 0: off",
    )
    matching_attempts: int = setting(
        enums.C_CONN_MAX_MATCH,
        env="MATCHING_ATTEMPTS",
        unit="count",
        rule=AT_LEAST_ONE,
        doc="C_conn_max_match: failed matching attempts per EV and plug-in; an EV that used "
        "them up is not answered again until the next plug-in (ISO 15118-3: at least 3)",
    )
    matching_repetition: float = setting(
        enums.TT_MATCHING_REPETITION,
        env="MATCHING_REPETITION",
        unit="s",
        rule=POSITIVE,
        doc="TT_matching_repetition: an EV may start matching attempts this long after its "
        "first CM_SLAC_PARM.REQ; with TT_EVSE_SLAC_init it bounds every plug-in",
    )
    matching_rate: float = setting(
        enums.TT_MATCHING_RATE,
        env="MATCHING_RATE",
        unit="s",
        env_unit="ms",
        rule=NOT_NEGATIVE,
        doc="TT_matching_rate: the EV's pause between two matching attempts; the EVSE does not "
        "pause (no request is dropped because some EV's attempt failed)",
    )
    max_parallel_runs: int = setting(
        enums.C_EVSE_MATCH_PARALLEL,
        env="MAX_PARALLEL_RUNS",
        unit="count",
        rule=AT_LEAST_ONE,
        doc="C_EVSE_match_parallel: EV runs (EV MAC, RunID) one EVSE serves at once",
    )
    sounding_attenuation_offset: float = setting(
        0.0,
        env="SOUNDING_ATTENUATION_OFFSET",
        unit="dB",
        rule=within(-60, 60, "dB"),
        doc="Added to every group of CM_ATTEN_CHAR.IND (EVerest's "
        "sounding_attenuation_adjustment): for a coupling that measures lower or higher than "
        "its cars expect; the results are kept within 0 to 255 dB; per EVSE in the station "
        "file",
    )
    empty_profile_attenuation: float = setting(
        20.0,
        env="EMPTY_PROFILE_ATTENUATION",
        unit="dB",
        rule=within(0, 255, "dB"),
        doc="What CM_ATTEN_CHAR.IND reports in every group when the modem's "
        "CM_ATTEN_PROFILE.IND carried no values (NumGroups 0, older QCA firmware): never "
        "all zero silently (some cars refuse 0 dB; DIN 70121 Annex C calls under 20 dB "
        "implausible); a WARNING and a counter each time; SOUNDING_ATTENUATION_OFFSET is "
        "added",
    )


# --- the modem ---------------------------------------------------------------------------------


def _result_values(value: tuple[int, ...]) -> Optional[str]:
    if not value:
        return "must name at least one Result value (e.g. 1 for QCA modems)"
    if any(not 0 <= v <= 255 for v in value):
        return "Result values are bytes: 0 to 255"
    return None


@dataclass(frozen=True)
class ModemConfig(Settings):
    """The local modem: the key (CM_SET_KEY) and link supervision (VS_PL_LINK_STATUS)."""

    set_key_timeout: float = setting(
        1.0,
        env="SET_KEY_TIMEOUT",
        unit="s",
        env_unit="ms",
        rule=POSITIVE,
        doc="How long to wait for the modem's CM_SET_KEY.CNF",
    )
    set_key_retries: int = setting(
        2,
        env="SET_KEY_RETRIES",
        unit="count",
        rule=NOT_NEGATIVE,
        doc="Further CM_SET_KEY.REQ attempts when the modem does not answer",
    )
    set_key_settle_time: float = setting(
        10.0,
        env="SET_KEY_SETTLE_TIME",
        unit="s",
        rule=NOT_NEGATIVE,
        doc="Pause after the modem accepted a new key (QCA modems restart)",
    )
    set_key_result_ok: tuple[int, ...] = setting(
        (enums.SET_KEY_RESULT_QCA_SUCCESS,),
        env="SET_KEY_RESULT_OK",
        unit="list",
        rule=Rule("bytes, at least one", _result_values),
        doc="CM_SET_KEY.CNF Result values that mean success, comma-separated: 1 for Qualcomm "
        "modems, 0 as the HomePlug text says, 0,1 to accept both",
    )
    reset_key_on_unplug: bool = setting(
        True,
        env="RESET_KEY_ON_UNPLUG",
        unit="bool",
        doc="Leave the logical network (fresh NMK to the modem) as soon as an EV that received "
        "the key unplugs; false: the fresh key is set when the next EV plugs in instead (that "
        "plug-in waits for it, SET_KEY_SETTLE_TIME included). Either way no EV receives a key "
        "an earlier EV received",
    )
    link_check_period: float = setting(
        1.0,
        env="LINK_CHECK_PERIOD",
        unit="s",
        rule=NOT_NEGATIVE,
        doc="After a match, ask the modem for its link status (VS_PL_LINK_STATUS) this often; a "
        "lost link is reported (notify_link_lost) and matching starts again; 0 turns "
        "supervision off",
    )
    link_join_timeout: float = setting(
        enums.TT_MATCH_JOIN,
        env="LINK_JOIN_TIMEOUT",
        unit="s",
        rule=POSITIVE,
        doc="TT_match_join: the EV's modem must join the logical network within this time after "
        "CM_SLAC_MATCH.CNF",
    )
    link_check_max_unanswered: int = setting(
        10,
        env="LINK_CHECK_MAX_UNANSWERED",
        unit="count",
        rule=NOT_NEGATIVE,
        doc="Link supervision: VS_PL_LINK_STATUS polls in a row the modem may leave unanswered "
        "(a busy modem) before the link counts as lost; an unanswered poll never counts as "
        "link down; 0: never",
    )
    modem_heartbeat_period: float = setting(
        0.0,
        env="MODEM_HEARTBEAT_PERIOD",
        unit="s",
        rule=NOT_NEGATIVE,
        doc="While no EV is plugged in, ask the modem for its firmware (VS_SW_VER.REQ) this "
        "often: a heartbeat unanswered and then answered again, or another firmware string, "
        "means the modem restarted and lost its key, and a fresh key is set before the next "
        "plug-in (VS_HOST_ACTION.IND is heeded always); 0 turns the heartbeat off",
    )
    interface_strict: bool = setting(
        False,
        env="INTERFACE_STRICT",
        unit="bool",
        doc="`slac evse`: an EVSE's interface that does not exist or is down at start-up is an "
        "error (exit code 2); false: that EVSE is reported unavailable and waited for (tries "
        "0.5 s apart, doubling to 30 s; INFO, then a WARNING after 30 s) while the others run",
    )
    reset_after_failures: int = setting(
        0,
        env="RESET_AFTER_FAILURES",
        unit="count",
        rule=NOT_NEGATIVE,
        doc="Reset the modem (QCA VS_RS_DEV.REQ) when the EV unplugs after this many plug-ins "
        "in a row that failed to match; then wait for the modem (VS_SW_VER) and give it a "
        "fresh key; 0: never",
    )
    reset_on_unplug: bool = setting(
        False,
        env="RESET_ON_UNPLUG",
        unit="bool",
        doc="Reset the modem (VS_RS_DEV.REQ) after every unplug (for modems that must be "
        "reset between sessions); the fresh key follows once it answers again",
    )
    modem_reset_wait: float = setting(
        30.0,
        env="MODEM_RESET_WAIT",
        unit="s",
        rule=POSITIVE,
        doc="After a reset, how long the modem may take to answer VS_SW_VER again; a modem "
        "that does not take VS_RS_DEV.REQ or does not come back within it is unresponsive: "
        "the hardware reset hook runs (the station file's reset_command)",
    )
    set_key_concurrency: int = setting(
        0,
        env="SET_KEY_CONCURRENCY",
        unit="count",
        rule=NOT_NEGATIVE,
        doc="`slac evse`: modems keyed at the same time at start-up (CM_SET_KEY and the "
        "SET_KEY_SETTLE_TIME after it; the others wait their turn); 0: all at once",
    )


@dataclass(frozen=True)
class EvseConfig(ModemConfig, MatchingConfig):
    """Everything an EVSE session reads: :class:`MatchingConfig` and :class:`ModemConfig`
    (matching's fields first). ``slac.Config`` is this with the environment loader."""


# --- the EV ------------------------------------------------------------------------------------

#: The values of :attr:`EvConfig.choice`.
CHOICES = ("lowest", "first")

#: Pause between a failed attempt and the next (:attr:`EvConfig.attempt_pause`). ISO 15118-3
#: asks for TT_matching_rate (0.4 s) at least (V2G3-A09-124). ISO 15118-5 test systems
#: (TC_EVCC_CMN_VTB_CmSlacParm_010) listen, after the last CM_SLAC_PARM.REQ of a failed
#: attempt, for TT_match_response + 2 x 0.25 s (0.7 s) of silence, then start a timer of
#: TT_matching_rate + 0.25 s within which the new matching process must come (1.35 s after
#: the last request), and do not stop that timer when its first request arrives. The
#: attempt fails TT_match_response after its last REQ; TT_matching_rate + TT_match_response
#: more puts the next attempt's first REQ 0.8 s after the last one, and its third at 1.2 s:
#: the whole attempt inside the window.
ATTEMPT_PAUSE = enums.TT_MATCHING_RATE + enums.TT_MATCH_RESPONSE


@dataclass(frozen=True)
class EvConfig(Settings):
    """The EV's timers and limits (ISO 15118-3 defaults). Times in seconds, attenuations in dB;
    ``slac ev`` reads the ``EV_*`` variables."""

    match_response_timeout: float = setting(
        enums.TT_MATCH_RESPONSE,
        env="EV_MATCH_RESPONSE_TIMEOUT",
        unit="s",
        env_unit="ms",
        rule=POSITIVE,
        doc="TT_match_response: the EV waits this long for CM_SLAC_PARM.CNF, "
        "CM_SLAC_MATCH.CNF, before it resends the request",
    )
    match_retries: int = setting(
        enums.C_EV_MATCH_RETRY,
        env="EV_MATCH_RETRIES",
        unit="count",
        rule=NOT_NEGATIVE,
        doc="C_EV_match_retry: resends of CM_SLAC_PARM.REQ and CM_SLAC_MATCH.REQ after the first",
    )
    atten_results_timeout: float = setting(
        enums.TT_EV_ATTEN_RESULTS,
        env="EV_ATTEN_RESULTS_TIMEOUT",
        unit="s",
        env_unit="ms",
        rule=POSITIVE,
        doc="TT_EV_atten_results: the EV collects CM_ATTEN_CHAR.IND this long after its sounds "
        "(ISO 15118-3: at most 1200 ms)",
    )
    batch_interval: float = setting(
        enums.TP_EV_BATCH_MSG_INTERVAL,
        env="EV_BATCH_INTERVAL",
        unit="s",
        env_unit="ms",
        rule=NOT_NEGATIVE,
        doc="TP_EV_batch_msg_interval: between two CM_START_ATTEN_CHAR.IND or two "
        "CM_MNBC_SOUND.IND (ISO 15118-3: 20 to 50 ms)",
    )
    num_sounds: int = setting(
        enums.C_EV_MATCH_MNBC,
        env="EV_NUM_SOUNDS",
        unit="count",
        rule=within(1, 255),
        doc="C_EV_match_MNBC: CM_MNBC_SOUND.IND the EV sends (its NUM_SOUNDS)",
    )
    start_atten_char_copies: int = setting(
        enums.C_EV_START_ATTEN_CHAR_INDS,
        env="EV_START_ATTEN_CHAR_COPIES",
        unit="count",
        rule=AT_LEAST_ONE,
        doc="C_EV_start_atten_char_inds: copies of CM_START_ATTEN_CHAR.IND the EV sends",
    )
    atten_limit: float = setting(
        40.0,
        env="EV_ATTEN_LIMIT",
        unit="dB",
        doc="Highest average attenuation accepted for a match (open-plc-utils: 40; "
        "`slac ev --atten-limit`)",
    )
    attempts: Optional[int] = setting(
        None,
        env="EV_ATTEMPTS",
        unit="count",
        rule=AT_LEAST_ONE,
        unset="as many as EV_MATCHING_REPETITION allows",
        doc="At most this many matching attempts",
    )
    attempt_pause: float = setting(
        ATTEMPT_PAUSE,
        env="EV_ATTEMPT_PAUSE",
        unit="s",
        env_unit="ms",
        rule=Rule(
            f"≥ {enums.TT_MATCHING_RATE * 1000:g} (TT_matching_rate)",
            lambda v: (
                None
                if v >= enums.TT_MATCHING_RATE
                else f"must be at least TT_matching_rate ({enums.TT_MATCHING_RATE:g} s)"
            ),
        ),
        doc="Pause after a failed attempt, before the next one: TT_matching_rate + "
        "TT_match_response, so that the next attempt falls into the window ISO 15118-5 "
        "testers watch",
    )
    matching_repetition: float = setting(
        enums.TT_MATCHING_REPETITION,
        env="EV_MATCHING_REPETITION",
        unit="s",
        rule=POSITIVE,
        doc="TT_matching_repetition: failed attempts are repeated while this runs (from the start)",
    )
    max_candidates: int = setting(
        16,
        env="EV_MAX_CANDIDATES",
        unit="count",
        rule=AT_LEAST_ONE,
        doc="EVSEs kept per attempt (CM_SLAC_PARM.CNF senders); later ones are ignored, so a "
        "flood of confirmations cannot grow the EV's state",
    )
    choice: str = setting(
        "lowest",
        env="EV_CHOICE",
        unit="name",
        rule=one_of(*CHOICES),
        text="lower",
        doc="How the EV chooses among the EVSEs that sent CM_ATTEN_CHAR.IND: lowest (ISO "
        "15118-3): wait for every EVSE that confirmed (or TT_EV_atten_results), then the "
        "lowest average attenuation under EV_ATTEN_LIMIT; first: the first indication under "
        "the limit at once, as naive EVs do (Qualcomm's pev, EVerest's EV, pyPLC): for "
        "simulations, not for a real vehicle (`slac ev --choice`)",
    )
    accept_nonstandard_match_cnf: bool = setting(
        False,
        env="EV_ACCEPT_NONSTANDARD_MATCH_CNF",
        unit="bool",
        doc="Not conformant: accept a CM_SLAC_MATCH.CNF whose NID is not derived from its NMK "
        "and whose PEV_ID/EVSE_ID are not zero (pyPLC's EVSE sends the fixed NID "
        "01020304050607, Qualcomm's evse its station identifier; real cars take both); every "
        "other field is still checked (`slac ev --accept-nonstandard-match-cnf`)",
    )


# --- the table ---------------------------------------------------------------------------------


def _number(value: float) -> str:
    text = f"{round(value, 9):g}"
    return text


def default_text(f: Field[Any], meta: Setting) -> str:
    """The default as a variable would say it (in the variable's unit)."""
    value = f.default if f.default is not MISSING else None
    if value is None:
        return f"unset ({meta.unset})" if meta.unset else "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        scaled = value / meta.scale
        if math.isfinite(scaled):
            return _number(scaled)
    return str(value)


def unit_text(meta: Setting) -> str:
    if meta.env_unit and meta.env_unit != meta.unit:
        return f"{meta.env_unit} (field: {meta.unit})"
    return meta.unit


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


#: A part of the table: its title (a heading), the settings class, a sentence about them.
Group = tuple[str, Any, str]


def markdown_table(groups: Sequence[Group]) -> str:
    """The configuration table in Markdown: one heading and table per group."""
    out: list[str] = []
    for title, cls, note in groups:
        out += [f"## {title}", "", note, ""]
        out.append("| Variable | Field | Default | Unit | Allowed | Meaning |")
        out.append("|---|---|---|---|---|---|")
        for f, meta in settings_of(cls):
            allowed = (
                meta.rule.text if meta.rule else ("true or false" if meta.unit == "bool" else "")
            )
            if meta.advice:
                allowed = f"{allowed}; warns outside {meta.advice.text}".lstrip("; ")
            out.append(
                "| "
                + " | ".join(
                    _cell(c)
                    for c in (
                        f"`{meta.env}`",
                        f"`{f.name}`",
                        default_text(f, meta),
                        unit_text(meta),
                        allowed,
                        meta.doc,
                    )
                )
                + " |"
            )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
