"""The application's settings (``slac evse``, ``slac ev``, the examples): logging, the pcap
capture, the control-pilot source and MQTT.

Declared like the library's (:mod:`slac.config`: one :class:`~slac.config.Setting` per field)
and read by the same loader: ``load_settings(env_path, Config, AppSettings)`` from
:mod:`slac.environment`. Standard library only (the MQTT URL is parsed here, without aiomqtt).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from slac.config import POSITIVE, Rule, Settings, one_of, setting

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LOG_FORMATS = ("text", "json")


@dataclass(frozen=True)
class MqttUrl:
    host: str
    port: int
    prefix: str

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}/{self.prefix}"


def parse_mqtt_url(url: str) -> MqttUrl:
    """mqtt://host[:port]/prefix (port 1883 by default); ValueError in plain words."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt":
        raise ValueError(f"{url!r}: expected stdin or mqtt://host:port/prefix")
    if not parts.hostname:
        raise ValueError(f"{url!r}: no broker host")
    try:
        port = parts.port or 1883
    except ValueError:
        raise ValueError(f"{url!r}: the port is not a number from 1 to 65535") from None
    prefix = parts.path.strip("/")
    if not prefix:
        raise ValueError(f"{url!r}: a topic prefix is needed, e.g. mqtt://localhost:1883/slac")
    if any(c in prefix for c in "+#"):
        raise ValueError(f"{url!r}: the prefix must not contain MQTT wildcards (+ or #)")
    return MqttUrl(parts.hostname, port, prefix)


def _cp_source(value: str) -> Optional[str]:
    if value == "stdin":
        return None
    try:
        parse_mqtt_url(value)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class AppSettings(Settings):
    """What the ``slac`` command and the examples read besides :class:`slac.Config`."""

    log_level: str = setting(
        "INFO",
        env="LOG_LEVEL",
        unit="name",
        rule=one_of(*LOG_LEVELS),
        text="upper",
        doc="Log level of the examples and commands: DEBUG, INFO, WARNING, ERROR",
    )
    log_format: str = setting(
        "text",
        env="LOG_FORMAT",
        unit="name",
        rule=one_of(*LOG_FORMATS),
        text="lower",
        doc="text: one readable line per event; json: one JSON object per line (time, level, "
        "logger, message, evse_id, ev_mac, run_id)",
    )
    pcap_file: Optional[str] = setting(
        None,
        env="PCAP_FILE",
        unit="path",
        doc="Write every SLAC frame the EVSEs send or receive to this pcap file (overwritten at "
        "start; open it in Wireshark or `slac analyze`; `slac evse --pcap`); unset: no capture",
    )
    cp_source: str = setting(
        "stdin",
        env="CP_SOURCE",
        unit="text",
        rule=Rule("stdin or mqtt://host:port/prefix", _cp_source),
        text="strip",
        doc="Where `slac evse` reads control-pilot states: stdin, or mqtt://host:port/prefix "
        "(overridden by --cp)",
    )
    mqtt_client_id: Optional[str] = setting(
        None,
        env="MQTT_CLIENT_ID",
        unit="text",
        unset="slac-<host>-<pid>",
        doc="MQTT client identifier of `slac evse --cp mqtt://...`",
    )
    mqtt_username: Optional[str] = setting(
        None,
        env="MQTT_USERNAME",
        unit="text",
        secret=True,
        unset="anonymous",
        doc="MQTT user name",
    )
    mqtt_password: Optional[str] = setting(
        None,
        env="MQTT_PASSWORD",
        unit="text",
        secret=True,
        doc="MQTT password (never logged)",
    )
    mqtt_reconnect_min: float = setting(
        0.5,
        env="MQTT_RECONNECT_MIN",
        unit="s",
        rule=POSITIVE,
        doc="First wait before reconnecting to the MQTT broker; doubled after each failure",
    )
    mqtt_reconnect_max: float = setting(
        30.0,
        env="MQTT_RECONNECT_MAX",
        unit="s",
        rule=POSITIVE,
        doc="Longest wait between two reconnection attempts",
    )

    @property
    def log_level_number(self) -> int:
        return int(getattr(logging, self.log_level))
