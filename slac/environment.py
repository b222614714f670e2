"""Configuration from environment variables and ``.env`` files: a thin loader over the
settings' metadata (:mod:`slac.config`, :mod:`slac.app.settings`).

``Config().load_envs(env_path)`` reads the ``.env`` file (``./.env`` by default, when it
exists), then the process environment, which wins. Values are typed and validated with
environs; every bad value is reported at once in one :class:`~slac.errors.ConfigError`.
The process environment is only read, never written.

:func:`config_table` is the configuration table (docs/configuration.md), from the same metadata
(``slac config --markdown`` prints it, ``make config-table`` rewrites it in place).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional, TypeVar, Union, overload

import environs
from dotenv import dotenv_values
from environs import EnvError

from slac.app.settings import AppSettings
from slac.config import (
    EvConfig,
    EvseConfig,
    Group,
    MatchingConfig,
    ModemConfig,
    Setting,
    markdown_table,
    settings_of,
)
from slac.errors import ConfigError

logger = logging.getLogger(__name__)

EnvPath = Union[str, "os.PathLike[str]", None]
T = TypeVar("T")
T2 = TypeVar("T2")
T3 = TypeVar("T3")


class _MappingEnv(environs.Env):
    """environs' parsers over a given mapping instead of ``os.environ``."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(eager=True)
        self._values = dict(values)

    def _get_value(self, env_key: str, default: Any) -> Any:
        return self._values.get(env_key, default)


@dataclass(frozen=True)
class _Config(AppSettings, EvseConfig):
    #: Where the values came from (the .env file read, if any); for messages only.
    env_file: Optional[str] = field(default=None, compare=False)


class Config(_Config):
    """Every setting the library reads, with the ISO 15118-3 defaults, and the loader.

    The fields are :class:`slac.config.MatchingConfig`'s and :class:`slac.config.ModemConfig`'s
    (times in seconds, attenuations in dB; the variables' units are in the configuration table),
    then the application's (:class:`slac.app.settings.AppSettings`: deprecated here, except
    ``pcap_file``, which :class:`slac.SlacEvseSession` reads). Construct it directly
    (``Config(slac_init_timeout=20)``: checked at once) or from the environment
    (:meth:`from_env`, :meth:`load_envs`). Treat it as frozen: ``dataclasses.replace(config,
    ...)``; assigning a field still works but is deprecated (DeprecationWarning).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        warnings.warn(
            f"slac.Config: assigning {name} is deprecated (Config is frozen): use "
            f"dataclasses.replace(config, {name}=...) or Config({name}=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        if name in {f.name for f in fields(self)}:
            replace(self, **{name: value})  # checked as at construction: ConfigError
        object.__setattr__(self, name, value)

    def load_envs(self, env_path: EnvPath = None) -> Config:
        """Fill this config from ``env_path`` (or ``./.env``) and the process environment.

        Returns ``self``. Raises :class:`ConfigError` naming every bad variable.
        """
        (values,) = read_values(env_path, type(self))
        for name, value in values.items():
            object.__setattr__(self, name, value)
        return self

    @classmethod
    def from_env(cls, env_path: EnvPath = None) -> Config:
        return cls().load_envs(env_path)

    def describe(self) -> dict[str, Any]:
        """The settings as a plain dictionary (for logs and ``--help``-style output);
        secrets are masked."""
        secret = {f.name for f, meta in settings_of(self) if meta.secret}
        return {
            f.name: "***" if f.name in secret and getattr(self, f.name) else getattr(self, f.name)
            for f in fields(self)
        }


# --- the loader --------------------------------------------------------------------------------


def _flatten(messages: Any) -> str:
    """marshmallow error messages (lists, or dicts by list index) as one sentence."""
    if isinstance(messages, dict):
        return "; ".join(f"item {k}: {_flatten(v)}" for k, v in messages.items())
    if isinstance(messages, (list, tuple)):
        return "; ".join(_flatten(m) for m in messages)
    return str(messages)


def _text(value: str, how: str) -> str:
    if how == "strip":
        return value.strip()
    if how == "lower":
        return value.strip().lower()
    if how == "upper":
        return value.upper()
    return value


def _parse(env: environs.Env, f: Any, meta: Setting, raw: str) -> Any:
    """The value of variable ``meta.env`` (its text ``raw``) for field ``f``, in its unit."""
    kind = str(f.type).replace(" ", "")
    optional = kind.startswith("Optional[")
    kind = kind[len("Optional[") : -1] if optional else kind
    if optional and not raw.strip():
        return None
    name = meta.env
    if kind == "float":
        value: Any = env.float(name) * meta.scale
    elif kind == "int":
        value = env.int(name)
    elif kind == "bool":
        value = env.bool(name)
    elif kind == "tuple[int,...]":
        value = tuple(env.list(name, subcast=int))
    elif kind == "str":
        value = _text(env.str(name), meta.text)
    else:  # a new field type: the unit test of every field catches it first
        raise TypeError(f"{name}: no parser for {f.type}")
    return value


def _read_files(env_path: EnvPath, names: set[str]) -> tuple[dict[str, str], Optional[Path]]:
    values: dict[str, str] = {}
    path = Path(env_path) if env_path is not None else Path(".env")
    read: Optional[Path] = None
    if path.is_file():
        try:
            file_values = dotenv_values(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError({str(path): f"cannot read the .env file: {exc}"}) from exc
        values.update({k: v for k, v in file_values.items() if v is not None})
        read = path
    elif env_path is not None:
        raise ConfigError({str(path): "no such .env file"})
    values.update({k: v for k, v in os.environ.items() if k in names})
    return values, read


def read_values(env_path: EnvPath, *classes: Any) -> list[dict[str, Any]]:
    """The values the ``.env`` file and the environment (which wins) set for each settings
    class, by field name (``env_file`` too for a class that has it). One ConfigError names
    every bad variable of every class."""
    names = {meta.env for cls in classes for _, meta in settings_of(cls)}
    raw, path = _read_files(env_path, names)
    env = _MappingEnv(raw)
    problems: dict[str, str] = {}
    advice: dict[str, str] = {}
    result: list[dict[str, Any]] = []
    for cls in classes:
        values: dict[str, Any] = {}
        for f, meta in settings_of(cls):
            if meta.env not in raw:
                continue
            text = raw[meta.env]
            try:
                value = _parse(env, f, meta, text)
            except EnvError as exc:  # EnvValidationError carries the parsers' messages
                messages = getattr(exc, "error_messages", None)
                problems[meta.env] = f"{text!r} is not valid: " + (
                    _flatten(messages) if messages else str(exc)
                )
                continue
            why = meta.rule.check(value) if meta.rule and value is not None else None
            if why:
                problems[meta.env] = f"{text!r} {why}"
                continue
            hint = meta.advice.check(value) if meta.advice and value is not None else None
            if hint:
                advice[meta.env] = f"{meta.env}={text} {meta.variable_unit} {hint}"
            values[f.name] = value
        if path is not None and "env_file" in {f.name for f in fields(cls)}:
            values["env_file"] = str(path)
        result.append(values)
    if problems:
        raise ConfigError(problems)
    for text in advice.values():
        logger.warning("%s", text)
    return result


@overload
def load_settings(env_path: EnvPath, c1: type[T], /) -> tuple[T]: ...
@overload
def load_settings(env_path: EnvPath, c1: type[T], c2: type[T2], /) -> tuple[T, T2]: ...
@overload
def load_settings(
    env_path: EnvPath, c1: type[T], c2: type[T2], c3: type[T3], /
) -> tuple[T, T2, T3]: ...
def load_settings(env_path: EnvPath, *classes: Any) -> tuple[Any, ...]:
    """One instance of each settings class from the ``.env`` file and the environment, e.g.
    ``config, app = load_settings(None, Config, AppSettings)``; one ConfigError for all."""
    return tuple(cls(**values) for cls, values in zip(classes, read_values(env_path, *classes)))


# --- the table ---------------------------------------------------------------------------------

#: The configuration table's parts (docs/configuration.md).
TABLE_GROUPS: tuple[Group, ...] = (
    (
        "EVSE matching",
        MatchingConfig,
        "Fields of `slac.config.MatchingConfig`, and so of `slac.Config`.",
    ),
    (
        "Modem",
        ModemConfig,
        "The key (CM_SET_KEY) and link supervision: fields of `slac.config.ModemConfig`, and so "
        "of `slac.Config`.",
    ),
    ("EV", EvConfig, "Fields of `slac.config.EvConfig`; `slac ev` reads them (its options win)."),
    (
        "Application",
        AppSettings,
        "Fields of `slac.app.settings.AppSettings`: `slac evse`, `slac ev` and the examples read "
        "them (and `Config`, as deprecated attributes).",
    ),
)
BEGIN = "<!-- BEGIN config-table -->"
END = "<!-- END config-table -->"

#: Every variable the program reads (the env files may set only these).
VARIABLES: tuple[str, ...] = tuple(
    meta.env for _, cls, _ in TABLE_GROUPS for _, meta in settings_of(cls)
)


def config_table() -> str:
    return markdown_table(TABLE_GROUPS)


def table_block(text: str) -> Optional[tuple[int, int]]:
    """Where the table is in ``text``: the span between the markers (None: no markers)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return start + len(BEGIN), end


def update_table(paths: Sequence[Path]) -> Optional[Path]:
    """Rewrite the table in the first of ``paths`` that has the markers; that path."""
    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        span = table_block(text)
        if span is not None:
            new = text[: span[0]] + "\n" + config_table() + text[span[1] :]
            if new != text:
                path.write_text(new, encoding="utf-8")
            return path
    return None
