"""Templates: the messages the test system sends (valid and invalid) and what it accepts.

Sending: the catalogue's ``md_CMN_CMN_*`` templates are built with :mod:`slac.messages`;
invalid variants change one field (``dataclasses.replace``) or, where the message classes
cannot express the fault (NumGroups 0 in front of 58 values, AMLEN 0 in front of data, a
fragmented header), one byte range of the finished frame (:func:`patch`).

Receiving: :class:`Expect` is a receive template: the message type, the fixed header
(MMV 0x01, FMI 0, FMSN 0 as ``md_CMN_CMN_SlacMmeCmnHeader_001``) and field values, each
exact or :data:`ANY`. :meth:`Expect.mismatches` says in words why a frame does not match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from slac.enums import mmtype_name
from slac.messages import (
    AmpMapCnf,
    AmpMapReq,
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    MnbcSoundInd,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    ValidateCnf,
    ValidateReq,
)
from slac.utils import MacAddress

from .port import BROADCAST, Received

ZERO_ID = bytes(17)
ONE_ID = bytes(16) + b"\x01"  # the catalogue's "0000...0001" station ID
ZERO_MAC = MacAddress(bytes(6))
INVALID = 0xFF  # the catalogue's invalid APPLICATION_TYPE / SECURITY_TYPE / Result

# Frame offsets (wire-format reference, section 3): payload offset + 19.
FMI_OFFSET = 17
ATTEN_CHAR_IND_NUM_GROUPS = 19 + 51
AMP_MAP_REQ_AMLEN = 19


class _Any:
    def __repr__(self) -> str:
        return "any"


#: A template field that matches any value (the catalogue's ``?``).
ANY: Any = _Any()


@dataclass(frozen=True)
class Groups:
    """A template field: a list of ``count`` values, each any (the 58 AAG of a profile)."""

    count: int

    def accepts(self, value: object) -> bool:
        return isinstance(value, tuple) and len(value) == self.count

    def __repr__(self) -> str:
        return f"{self.count} values"


def patch(frame: bytes, offset: int, value: bytes) -> bytes:
    """``frame`` with ``value`` written at ``offset`` (a raw edit for invalid variants)."""
    if offset + len(value) > len(frame):
        raise ValueError(f"patch at {offset} of {len(value)} bytes is past the frame")
    return frame[:offset] + value + frame[offset + len(value) :]


def nid_from_nmk(nmk: bytes, security_level: int = 0) -> bytes:
    """HomePlug AV's NID of an NMK (HPAVKeyNID: 5 x SHA-256, 52 bits + security level),
    written here from the algorithm, not taken from the SUT's code."""
    digest = hashlib.sha256(nmk).digest()
    for _ in range(4):
        digest = hashlib.sha256(digest).digest()
    return digest[:6] + bytes(((security_level & 0x3) << 4 | digest[6] >> 4,))


def flat_profile(db: int) -> tuple[int, ...]:
    """58 groups of ``db`` dB."""
    return (db,) * 58


def amplitude_map(carriers: int = 917) -> tuple[int, ...]:
    """An amplitude map of ``carriers`` 4-bit values (AMLEN 917 as the catalogue's
    m_CMN_CMN_CmAmpMapReq_001): full level on the low carriers, then steps down."""
    values = []
    for i in range(carriers):
        values.append(0 if i >= 400 else (0xC, 0xA, 0x8, 0xF)[(i // 25) % 4])
    return tuple(values)


# --- messages the test system sends ----------------------------------------------------------


def parm_req(run_id: bytes, application_type: int = 0, security_type: int = 0) -> SlacParmReq:
    return SlacParmReq(
        run_id=run_id, application_type=application_type, security_type=security_type
    )


def parm_cnf(
    forwarding_sta: MacAddress,
    run_id: bytes,
    *,
    msound_target: MacAddress = BROADCAST,
    num_sounds: int = 10,
    time_out: int = 6,
    resp_type: int = 1,
    application_type: int = 0,
    security_type: int = 0,
) -> SlacParmCnf:
    """md_CMN_CMN_CmSlacParmCnf_001 (the defaults) and _002 (any field given)."""
    return SlacParmCnf(
        forwarding_sta=forwarding_sta,
        run_id=run_id,
        msound_target=msound_target,
        num_sounds=num_sounds,
        time_out=time_out,
        resp_type=resp_type,
        application_type=application_type,
        security_type=security_type,
    )


def start_atten_char(
    forwarding_sta: MacAddress,
    run_id: bytes,
    *,
    num_sounds: int = 10,
    time_out: int = 6,
    resp_type: int = 1,
    application_type: int = 0,
    security_type: int = 0,
) -> StartAttenCharInd:
    return StartAttenCharInd(
        forwarding_sta=forwarding_sta,
        run_id=run_id,
        num_sounds=num_sounds,
        time_out=time_out,
        resp_type=resp_type,
        application_type=application_type,
        security_type=security_type,
    )


def mnbc_sound(remaining: int, run_id: bytes, random: bytes) -> MnbcSoundInd:
    """md_CMN_CMN_CmMnbcSoundInd_001: SenderID zero, RSVD zero, the EV's random value."""
    return MnbcSoundInd(remaining_sounds=remaining, run_id=run_id, random=random)


def atten_profile(pev_mac: MacAddress, aag: Sequence[int]) -> AttenProfileInd:
    return AttenProfileInd(pev_mac=pev_mac, aag=tuple(aag))


def atten_char_ind(
    source_address: MacAddress,
    run_id: bytes,
    num_sounds: int,
    aag: Sequence[int],
    *,
    source_id: bytes = ZERO_ID,
    resp_id: bytes = ZERO_ID,
    application_type: int = 0,
    security_type: int = 0,
) -> AttenCharInd:
    """md_EVCC_CMN_CmAttenCharInd_001/_002 (NumGroups is written by :func:`patch`)."""
    return AttenCharInd(
        source_address=source_address,
        run_id=run_id,
        num_sounds=num_sounds,
        aag=tuple(aag),
        source_id=source_id,
        resp_id=resp_id,
        application_type=application_type,
        security_type=security_type,
    )


def atten_char_rsp(
    source_address: MacAddress,
    run_id: bytes,
    *,
    source_id: bytes = ZERO_ID,
    resp_id: bytes = ZERO_ID,
    result: int = 0,
    application_type: int = 0,
    security_type: int = 0,
) -> AttenCharRsp:
    """md_CMN_CMN_CmAttenCharRsp_001 with md_CMN_CMN_Acvarfield_001 (defaults) / _002."""
    return AttenCharRsp(
        source_address=source_address,
        run_id=run_id,
        source_id=source_id,
        resp_id=resp_id,
        result=result,
        application_type=application_type,
        security_type=security_type,
    )


def match_req(
    pev_mac: MacAddress,
    evse_mac: MacAddress,
    run_id: bytes,
    *,
    mvf_length: int = 0x3E,
    pev_id: bytes = ZERO_ID,
    evse_id: bytes = ZERO_ID,
    application_type: int = 0,
    security_type: int = 0,
) -> SlacMatchReq:
    """md_CMN_CMN_CmSlacMatchReq_001 (defaults) and _002."""
    return SlacMatchReq(
        pev_mac=pev_mac,
        evse_mac=evse_mac,
        run_id=run_id,
        mvf_length=mvf_length,
        pev_id=pev_id,
        evse_id=evse_id,
        application_type=application_type,
        security_type=security_type,
    )


def match_cnf(
    pev_mac: MacAddress,
    evse_mac: MacAddress,
    run_id: bytes,
    nid: bytes,
    nmk: bytes,
    *,
    mvf_length: int = 0x56,
    pev_id: bytes = ZERO_ID,
    evse_id: bytes = ZERO_ID,
    application_type: int = 0,
    security_type: int = 0,
) -> SlacMatchCnf:
    """md_CMN_CMN_CmSlacMatchCnf_001 (defaults) and _002."""
    return SlacMatchCnf(
        pev_mac=pev_mac,
        evse_mac=evse_mac,
        run_id=run_id,
        nid=nid,
        nmk=nmk,
        mvf_length=mvf_length,
        pev_id=pev_id,
        evse_id=evse_id,
        application_type=application_type,
        security_type=security_type,
    )


def validate_req(timer: int = 0, result: int = 0x01, signal_type: int = 0) -> ValidateReq:
    """m_CMN_CMN_CmValidateReq_001 (step 1: Timer 0, Result ready) and _004."""
    return ValidateReq(timer=timer, result=result, signal_type=signal_type)


def amp_map_req(amplitudes: Optional[Sequence[int]] = None) -> AmpMapReq:
    return AmpMapReq(amplitudes=tuple(amplitude_map() if amplitudes is None else amplitudes))


# --- receive templates -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """A receive template: message type, fixed header and field values (exact or ANY)."""

    kind: type
    fields: dict[str, Any] = field(default_factory=dict)
    #: the header of md_CMN_CMN_SlacMmeCmnHeader_001 (MMV 1, FMI 0, FMSN 0)
    check_header: bool = True

    @property
    def name(self) -> str:
        mmtype = getattr(self.kind, "MMTYPE", None)
        return mmtype_name(mmtype) if mmtype is not None else self.kind.__name__

    def mismatches(self, received: Received) -> list[str]:
        """Why ``received`` does not match (empty: it matches)."""
        message = received.message
        if message is None:
            return [f"undecodable frame ({received.error})"]
        if not isinstance(message, self.kind):
            return [f"{message.name} is not {self.name}"]
        problems = []
        if self.check_header:
            raw = received.raw
            header = (raw[14], raw[17], raw[18]) if len(raw) >= 19 else None
            if header != (0x01, 0x00, 0x00):
                problems.append(f"header MMV/FMI/FMSN {header} (template: (1, 0, 0))")
        for name, wanted in self.fields.items():
            if wanted is ANY:
                continue
            got = getattr(message, name)
            if isinstance(wanted, Groups):
                if not wanted.accepts(got):
                    problems.append(f"{name}: {len(got)} values (template: {wanted!r})")
            elif got != wanted:
                problems.append(f"{name} {_show(got)} (template: {_show(wanted)})")
        return problems

    def matches(self, received: Received) -> bool:
        return not self.mismatches(received)


def _show(value: object) -> str:
    if isinstance(value, MacAddress):
        return str(value)
    if isinstance(value, bytes):
        return value.hex() or "''"
    if isinstance(value, tuple) and len(value) > 8:
        return f"({len(value)} values, mean {sum(value) / max(1, len(value)):.1f})"
    return repr(value)


def expect_parm_req() -> Expect:
    """md_CMN_CMN_CmSlacParmReq_001(m_CMN_CMN_SlacPayloadHeader_001, ?)."""
    return Expect(SlacParmReq, {"application_type": 0, "security_type": 0})


def expect_parm_cnf(forwarding_sta: MacAddress, run_id: Any) -> Expect:
    """md_CMN_CMN_CmSlacParmCnf_001: the ISO values, FORWARDING_STA and RunID."""
    return Expect(
        SlacParmCnf,
        {
            "msound_target": BROADCAST,
            "num_sounds": 10,
            "time_out": 6,
            "resp_type": 1,
            "forwarding_sta": forwarding_sta,
            "application_type": 0,
            "security_type": 0,
            "run_id": run_id,
        },
    )


def expect_start_atten(run_id: bytes) -> Expect:
    """md_CMN_CMN_CmStartAttenCharInd_001(header, ?, ?, "01", ?, RunID)."""
    return Expect(
        StartAttenCharInd,
        {"application_type": 0, "security_type": 0, "resp_type": 1, "run_id": run_id},
    )


def expect_sound(run_id: bytes, remaining: Any = ANY) -> Expect:
    """md_CMN_CMN_CmMnbcSoundInd_001(header, count, RunID, ?)."""
    return Expect(
        MnbcSoundInd,
        {
            "application_type": 0,
            "security_type": 0,
            "sender_id": ZERO_ID,
            "remaining_sounds": remaining,
            "run_id": run_id,
            "reserved": bytes(8),
        },
    )


def expect_atten_char_ind(source_address: MacAddress, run_id: bytes) -> Expect:
    """mdw_SECC_CMN_CmAttenCharInd_001: SOURCE_ADDRESS, RunID, zero IDs, 58 groups."""
    return Expect(
        AttenCharInd,
        {
            "application_type": 0,
            "security_type": 0,
            "source_address": source_address,
            "run_id": run_id,
            "source_id": ZERO_ID,
            "resp_id": ZERO_ID,
            "num_sounds": ANY,
            "aag": Groups(58),
        },
    )


def expect_atten_char_rsp(source_address: MacAddress, run_id: bytes) -> Expect:
    """md_CMN_CMN_CmAttenCharRsp_001 with md_CMN_CMN_Acvarfield_001."""
    return Expect(
        AttenCharRsp,
        {
            "application_type": 0,
            "security_type": 0,
            "source_address": source_address,
            "run_id": run_id,
            "source_id": ZERO_ID,
            "resp_id": ZERO_ID,
            "result": 0,
        },
    )


def expect_match_req(pev_mac: MacAddress, evse_mac: MacAddress, run_id: bytes) -> Expect:
    """md_CMN_CMN_CmSlacMatchReq_001."""
    return Expect(
        SlacMatchReq,
        {
            "application_type": 0,
            "security_type": 0,
            "mvf_length": 0x3E,
            "pev_id": ZERO_ID,
            "pev_mac": pev_mac,
            "evse_id": ZERO_ID,
            "evse_mac": evse_mac,
            "run_id": run_id,
            "reserved": bytes(8),
        },
    )


def expect_match_cnf(pev_mac: MacAddress, evse_mac: MacAddress, run_id: bytes) -> Expect:
    """md_CMN_CMN_CmSlacMatchCnf_001(header, PEV MAC, EVSE MAC, RunID, ?, ?)."""
    return Expect(
        SlacMatchCnf,
        {
            "application_type": 0,
            "security_type": 0,
            "mvf_length": 0x56,
            "pev_id": ZERO_ID,
            "pev_mac": pev_mac,
            "evse_id": ZERO_ID,
            "evse_mac": evse_mac,
            "run_id": run_id,
            "reserved": bytes(8),
            "reserved_2": 0,
            "nid": ANY,
            "nmk": ANY,
        },
    )


def expect_validate_cnf(result: Any = ANY, toggle_num: Any = 0) -> Expect:
    """md_CMN_CMN_CmValidateCnf_001(result): SignalType 0, ToggleNum 0."""
    return Expect(ValidateCnf, {"signal_type": 0, "toggle_num": toggle_num, "result": result})


def expect_amp_map_cnf(result: Any = 0) -> Expect:
    return Expect(AmpMapCnf, {"result": result})


def expect_amp_map_req() -> Expect:
    return Expect(AmpMapReq)
