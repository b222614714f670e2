"""The charging-station file (``cs_configuration.json``): which EVSE is on which interface.

{"number_of_evses": 2,
 "parameters": [{"evse_id": "DE*SWT*E123456789", "network_interface": "eth0"}, ...]}

An entry may name the EVerest module it stands in for (``"everest_module_id": "slac_1"``,
for ``slac evse --everest``); without it, the EVSE id is the module id.
Optional per EVSE: ``"reset_command"`` (a command line, run without a shell, that resets
this EVSE's modem by hardware: a GPIO reset line, a power switch; run when the modem does not
answer any more) and ``"sounding_attenuation_offset"`` (dB; overrides
SOUNDING_ATTENUATION_OFFSET for this EVSE).
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from slac.errors import ConfigError


@dataclass(frozen=True)
class EvseSpec:
    """One EVSE of the station: its id and the interface to its GreenPHY modem."""

    evse_id: str
    network_interface: str
    #: the module id of EVerest's slac_API for this EVSE (``slac evse --everest``); None:
    #: the EVSE id
    everest_module_id: Optional[str] = None
    #: the hardware reset of this EVSE's modem: a command line (None: none)
    reset_command: Optional[str] = None
    #: dB added to every group of CM_ATTEN_CHAR.IND (None: SOUNDING_ATTENUATION_OFFSET)
    sounding_attenuation_offset: Optional[float] = None


def parse_station(data: Any, source: str = "station configuration") -> list[EvseSpec]:
    """The EVSEs of a decoded station configuration; ConfigError naming what is wrong."""
    if not isinstance(data, dict):
        raise ConfigError({source: "must hold a JSON object"})
    parameters = data.get("parameters")
    if not isinstance(parameters, list) or not parameters:
        raise ConfigError({source: '"parameters" must be a non-empty list of EVSEs'})
    number = data.get("number_of_evses", len(parameters))
    if not isinstance(number, int) or isinstance(number, bool) or number != len(parameters):
        raise ConfigError(
            {source: f'"number_of_evses" ({number!r}) must equal the {len(parameters)} entries'}
        )
    specs: list[EvseSpec] = []
    for i, entry in enumerate(parameters):
        if not isinstance(entry, dict):
            raise ConfigError({source: f"parameters[{i}] must be an object"})
        evse_id, interface = entry.get("evse_id"), entry.get("network_interface")
        if not isinstance(evse_id, str) or not evse_id.strip():
            raise ConfigError({source: f"parameters[{i}] needs a non-empty evse_id"})
        if not isinstance(interface, str) or not interface.strip():
            raise ConfigError({source: f"parameters[{i}] needs a network_interface"})
        module_id = entry.get("everest_module_id")
        if module_id is not None and (
            not isinstance(module_id, str)
            or not module_id.strip()
            or any(c in module_id for c in "/+#")
        ):
            raise ConfigError(
                {
                    source: f"parameters[{i}].everest_module_id must be a non-empty string "
                    "without /, + or #"
                }
            )
        reset = entry.get("reset_command")
        if reset is not None:
            try:
                words = shlex.split(reset) if isinstance(reset, str) else []
            except ValueError as exc:
                raise ConfigError({source: f"parameters[{i}].reset_command: {exc}"}) from None
            if not words:
                raise ConfigError(
                    {source: f"parameters[{i}].reset_command must be a non-empty command line"}
                )
        offset = entry.get("sounding_attenuation_offset")
        if offset is not None and (
            isinstance(offset, bool) or not isinstance(offset, (int, float)) or abs(offset) > 60
        ):
            raise ConfigError(
                {source: f"parameters[{i}].sounding_attenuation_offset must be -60 to 60 (dB)"}
            )
        specs.append(
            EvseSpec(
                evse_id.strip(),
                interface.strip(),
                everest_module_id=module_id.strip() if isinstance(module_id, str) else None,
                reset_command=reset,
                sounding_attenuation_offset=None if offset is None else float(offset),
            )
        )
    ids = [s.evse_id for s in specs]
    doubles = sorted({i for i in ids if ids.count(i) > 1})
    if doubles:
        raise ConfigError({source: f"evse_id used twice: {', '.join(doubles)}"})
    interfaces = [s.network_interface for s in specs]
    shared = sorted({i for i in interfaces if interfaces.count(i) > 1})
    if shared:
        raise ConfigError(
            {source: f"one interface per EVSE (one modem each); shared: {', '.join(shared)}"}
        )
    return specs


def load_station(path: Union[str, os.PathLike[str]]) -> list[EvseSpec]:
    """Read and check a station file. Raises ConfigError in plain words."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError({name: f"cannot read the file: {exc.strerror or exc}"}) from None
    except UnicodeDecodeError:
        raise ConfigError({name: "not UTF-8 text"}) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError({name: f"not valid JSON: {exc}"}) from None
    return parse_station(data, name)
