"""HomePlug AV / Green PHY management messages used by ISO 15118-3 SLAC.

One frozen dataclass per message. ``pack()`` gives the payload (the bytes after the HomePlug
header and OUI), ``unpack(payload)`` reads it back, ``to_frame(dst, src)`` builds a whole,
padded Ethernet frame, and :func:`decode_frame` reads any frame into a :class:`Frame`.

Fields are validated once, at construction: sizes of byte strings, ranges of integers.
Decoding raises only :class:`~slac.errors.DecodeError`, whatever the bytes. Multi-byte
numbers are little-endian; MAC addresses, RunIDs, NIDs and keys are byte strings in order.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Optional, TypeVar, Union

from slac.enums import (
    APPLICATION_TYPE_PEV_EVSE,
    BROADCAST_MAC,
    C_EV_MATCH_MNBC,
    ETH_HEADER_LEN,
    ETH_TYPE_HPAV,
    KEY_TYPE_NMK,
    MATCH_CNF_MVF_LENGTH,
    MATCH_REQ_MVF_LENGTH,
    MMV_HPAV_1_0,
    MMV_HPAV_1_1,
    NEW_EKS_NMK,
    PID_HLE,
    QUALCOMM_OUI,
    RD_MOD_MODULE_PIB,
    RESP_TYPE_OTHER_GP_STA,
    SECURITY_TYPE_NONE,
    SECURITY_TYPE_PUBLIC_KEY,
    SET_KEY_NONCE,
    MMType,
    ValidateResult,
    mmtype_name,
)
from slac.errors import DecodeError, FieldError
from slac.layer_2_headers import EthernetHeader, HomePlugHeader, pad_frame
from slac.utils import MacAddress, fast_mac

M = TypeVar("M", bound="Message")

ZERO_ID = bytes(17)
ZERO_RUN_ID = bytes(8)
BROADCAST = MacAddress(BROADCAST_MAC)

#: struct codes of the layout language below: "mac" is a 6-byte MAC address, "Ns" N bytes.
_INT_LIMITS = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}

#: MMTYPE -> message class, filled as the classes below are defined.
MESSAGES: dict[int, type[Message]] = {}


@dataclass(frozen=True)
class Message:
    """Base of every management message.

    Subclasses declare ``MMTYPE`` and ``_LAYOUT``: the fixed part of the payload as
    ``(field name, struct code)`` pairs in wire order. Variable parts are read and written
    by ``_pack_tail`` / ``_unpack_tail``.
    """

    MMTYPE: ClassVar[int]
    MMV: ClassVar[int] = MMV_HPAV_1_1
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = ()
    _STRUCT: ClassVar[struct.Struct]
    _MACS: ClassVar[tuple[str, ...]]
    _NAMES: ClassVar[tuple[str, ...]]
    _HAS_TAIL: ClassVar[bool]
    #: Values of the variable part when SECURITY_TYPE is not 1 (CM_SLAC_PARM only).
    _PLAIN_TAIL: ClassVar[Optional[dict[str, Any]]] = None
    _HEADER_BYTES: ClassVar[bytes]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        codes = "".join("6s" if code == "mac" else code for _, code in cls._LAYOUT)
        cls._STRUCT = struct.Struct("<" + codes)
        cls._MACS = tuple(name for name, code in cls._LAYOUT if code == "mac")
        cls._NAMES = tuple(name for name, _ in cls._LAYOUT)
        cls._HAS_TAIL = "_unpack_tail" in cls.__dict__ or any(
            "_unpack_tail" in vars(base) for base in cls.__mro__[1:] if base is not Message
        )
        mmtype = cls.__dict__.get("MMTYPE")
        if mmtype is not None:
            cls._HEADER_BYTES = HomePlugHeader.for_mmtype(mmtype, cls.MMV).pack()
            if mmtype in MESSAGES:
                raise TypeError(f"two message classes for {mmtype_name(mmtype)}")
            MESSAGES[mmtype] = cls

    def __post_init__(self) -> None:
        for name, code in self._LAYOUT:
            value = getattr(self, name)
            if code == "mac":
                object.__setattr__(self, name, MacAddress(value))
            elif code in _INT_LIMITS:
                _check_uint(name, value, _INT_LIMITS[code])
            else:
                _check_bytes(name, value, int(code[:-1]))
        self._validate()

    def _validate(self) -> None:
        """Checks of the variable part; subclasses override."""

    def _trusted_copy(self: M, **changes: Any) -> M:
        """A copy with ``changes``, not validated again: only for values that are of their
        field's type and range already (read from a decoded frame). The hot path of the
        EVSE's answers."""
        copy = object.__new__(type(self))
        object.__setattr__(copy, "__dict__", {**self.__dict__, **changes})
        return copy

    # --- encoding ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The message's name as the standard writes it, e.g. ``CM_SLAC_PARM.REQ``."""
        return mmtype_name(self.MMTYPE)

    def pack(self) -> bytes:
        """The payload: the bytes after the HomePlug header (and OUI), without padding."""
        head = self._STRUCT.pack(*[getattr(self, name) for name in self._NAMES])
        return head + self._pack_tail()

    def _pack_tail(self) -> bytes:
        return b""

    def header(self) -> HomePlugHeader:
        return HomePlugHeader.for_mmtype(self.MMTYPE, self.MMV)

    def to_frame(self, dst: bytes, src: bytes) -> bytes:
        """A whole Ethernet frame from ``src`` to ``dst``, zero-padded to 60 bytes."""
        return pad_frame(EthernetHeader.build(dst, src) + self._HEADER_BYTES + self.pack())

    # --- decoding ---------------------------------------------------------------------------

    @classmethod
    def unpack(cls: type[M], payload: bytes) -> M:
        """Read the payload; trailing bytes (padding) are ignored. Raises ``DecodeError``."""
        return cls._decode(payload, 0)

    @classmethod
    def _decode(cls: type[M], data: bytes, offset: int) -> M:
        """Read the payload that starts at ``offset`` of ``data``."""
        size = cls._STRUCT.size
        if len(data) - offset < size:
            raise DecodeError(
                f"{mmtype_name(cls.MMTYPE)} needs at least {size} payload bytes, "
                f"got {len(data) - offset}"
            )
        values = dict(zip(cls._NAMES, cls._STRUCT.unpack_from(data, offset)))
        for name in cls._MACS:
            values[name] = fast_mac(values[name])
        if cls._PLAIN_TAIL is not None and values["security_type"] != SECURITY_TYPE_PUBLIC_KEY:
            values.update(cls._PLAIN_TAIL)  # no variable part without security (the hot path)
        elif cls._HAS_TAIL:
            values.update(cls._unpack_tail(values, data[offset + size :]))
        # Every value is of its field's type and range by construction: skip re-validation.
        message = object.__new__(cls)
        object.__setattr__(message, "__dict__", values)
        return message

    @classmethod
    def _unpack_tail(cls, head: dict[str, Any], rest: bytes) -> dict[str, Any]:
        return {}

    def __str__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, MacAddress):
                text = str(value)
            elif isinstance(value, bytes):
                text = value.hex()
            else:
                text = repr(value)
            parts.append(f"{f.name}={text}")
        return f"{self.name}({', '.join(parts)})"


class VendorMessage(Message):
    """A Qualcomm vendor-specific message: MMV 0x00 header followed by the QCA OUI."""

    MMV: ClassVar[int] = MMV_HPAV_1_0


def _check_uint(name: str, value: object, limit: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= limit:
        raise FieldError(f"{name} must be an integer from 0 to {limit}, got {value!r}")


def _check_bytes(name: str, value: object, size: int) -> None:
    if not isinstance(value, bytes) or len(value) != size:
        got = f"{len(value)} bytes" if isinstance(value, (bytes, bytearray)) else repr(value)
        raise FieldError(f"{name} must be {size} bytes, got {got}")


def _check_byte_list(name: str, values: tuple[int, ...], limit: int = 0xFF) -> None:
    if not isinstance(values, tuple):
        raise FieldError(f"{name} must be a tuple of integers")
    if len(values) > 0xFF:
        raise FieldError(f"{name} has at most 255 entries, got {len(values)}")
    for value in values:
        _check_uint(f"{name} entry", value, limit)


def _byte_list(rest: bytes, count: int, what: str) -> tuple[int, ...]:
    if len(rest) < count:
        raise DecodeError(f"{what} announces {count} values but {len(rest)} bytes follow")
    return tuple(rest[:count])


# --- CM_SET_KEY --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetKeyReq(Message):
    """CM_SET_KEY.REQ: host to its own modem, to set the network membership key (NMK)."""

    MMTYPE: ClassVar[int] = MMType.CM_SET_KEY_REQ
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("key_type", "B"),
        ("my_nonce", "I"),
        ("your_nonce", "I"),
        ("pid", "B"),
        ("prn", "H"),
        ("pmn", "B"),
        ("cco_capability", "B"),
        ("nid", "7s"),
        ("new_eks", "B"),
        ("new_key", "16s"),
    )
    nid: bytes
    new_key: bytes = field(repr=False)
    key_type: int = KEY_TYPE_NMK
    my_nonce: int = SET_KEY_NONCE
    your_nonce: int = 0
    pid: int = PID_HLE
    prn: int = 0
    pmn: int = 0
    cco_capability: int = 0
    new_eks: int = NEW_EKS_NMK

    def __str__(self) -> str:  # the key is a secret: never in the text form
        return f"{self.name}(nid={self.nid.hex()}, new_key=<{len(self.new_key)} bytes>)"


@dataclass(frozen=True)
class SetKeyCnf(Message):
    """CM_SET_KEY.CNF: the modem's answer (QCA modems send Result 0x01 on success)."""

    MMTYPE: ClassVar[int] = MMType.CM_SET_KEY_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("result", "B"),
        ("my_nonce", "I"),
        ("your_nonce", "I"),
        ("pid", "B"),
        ("prn", "H"),
        ("pmn", "B"),
        ("cco_capability", "B"),
    )
    result: int
    my_nonce: int = 0
    your_nonce: int = SET_KEY_NONCE
    pid: int = PID_HLE
    prn: int = 0
    pmn: int = 0
    cco_capability: int = 0


# --- CM_SLAC_PARM ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlacParmReq(Message):
    """CM_SLAC_PARM.REQ: the EV asks, by broadcast, for the EVSEs' matching parameters."""

    MMTYPE: ClassVar[int] = MMType.CM_SLAC_PARM_REQ
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("application_type", "B"),
        ("security_type", "B"),
        ("run_id", "8s"),
    )
    run_id: bytes
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    #: CipherSuite list, present on the wire only with SECURITY_TYPE 0x01.
    cipher_suites: tuple[int, ...] = ()
    _PLAIN_TAIL: ClassVar[Optional[dict[str, Any]]] = {"cipher_suites": ()}

    def _validate(self) -> None:
        if self.cipher_suites and self.security_type != SECURITY_TYPE_PUBLIC_KEY:
            raise FieldError("cipher_suites are sent only with security_type 1")
        _check_byte_list("cipher_suites", tuple(self.cipher_suites), 0xFFFF)

    def _pack_tail(self) -> bytes:
        if self.security_type != SECURITY_TYPE_PUBLIC_KEY:
            return b""
        n = len(self.cipher_suites)
        return struct.pack(f"<B{n}H", n, *self.cipher_suites)

    @classmethod
    def _unpack_tail(cls, head: dict[str, Any], rest: bytes) -> dict[str, Any]:
        if head["security_type"] != SECURITY_TYPE_PUBLIC_KEY:
            return {"cipher_suites": ()}
        if not rest:
            raise DecodeError("CM_SLAC_PARM.REQ with security type 1 lacks CipherSuiteSetSize")
        n = rest[0]
        if len(rest) < 1 + 2 * n:
            raise DecodeError(f"CM_SLAC_PARM.REQ announces {n} cipher suites, fewer follow")
        return {"cipher_suites": struct.unpack_from(f"<{n}H", rest, 1)}


@dataclass(frozen=True)
class SlacParmCnf(Message):
    """CM_SLAC_PARM.CNF: an EVSE's answer, unicast to the EV."""

    MMTYPE: ClassVar[int] = MMType.CM_SLAC_PARM_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("msound_target", "mac"),
        ("num_sounds", "B"),
        ("time_out", "B"),
        ("resp_type", "B"),
        ("forwarding_sta", "mac"),
        ("application_type", "B"),
        ("security_type", "B"),
        ("run_id", "8s"),
    )
    forwarding_sta: MacAddress
    run_id: bytes
    msound_target: MacAddress = BROADCAST
    num_sounds: int = C_EV_MATCH_MNBC
    #: Sounding window in units of 100 ms (6 = 600 ms = TT_EVSE_match_MNBC).
    time_out: int = 6
    resp_type: int = RESP_TYPE_OTHER_GP_STA
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    #: CipherSuite, present on the wire only with SECURITY_TYPE 0x01.
    cipher_suite: Optional[int] = None
    _PLAIN_TAIL: ClassVar[Optional[dict[str, Any]]] = {"cipher_suite": None}

    def _validate(self) -> None:
        if (self.cipher_suite is not None) != (self.security_type == SECURITY_TYPE_PUBLIC_KEY):
            raise FieldError("cipher_suite is given exactly when security_type is 1")
        if self.cipher_suite is not None:
            _check_uint("cipher_suite", self.cipher_suite, 0xFFFF)

    def _pack_tail(self) -> bytes:
        return b"" if self.cipher_suite is None else struct.pack("<H", self.cipher_suite)

    @classmethod
    def _unpack_tail(cls, head: dict[str, Any], rest: bytes) -> dict[str, Any]:
        if head["security_type"] != SECURITY_TYPE_PUBLIC_KEY:
            return {"cipher_suite": None}
        if len(rest) < 2:
            raise DecodeError("CM_SLAC_PARM.CNF with security type 1 lacks its CipherSuite")
        return {"cipher_suite": struct.unpack_from("<H", rest)[0]}


# --- Sounding ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StartAttenCharInd(Message):
    """CM_START_ATTEN_CHAR.IND: the EV announces sounding (broadcast, three copies)."""

    MMTYPE: ClassVar[int] = MMType.CM_START_ATTEN_CHAR_IND
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("application_type", "B"),
        ("security_type", "B"),
        ("num_sounds", "B"),
        ("time_out", "B"),
        ("resp_type", "B"),
        ("forwarding_sta", "mac"),
        ("run_id", "8s"),
    )
    forwarding_sta: MacAddress
    run_id: bytes
    num_sounds: int = C_EV_MATCH_MNBC
    time_out: int = 6
    resp_type: int = RESP_TYPE_OTHER_GP_STA
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE


@dataclass(frozen=True)
class MnbcSoundInd(Message):
    """CM_MNBC_SOUND.IND: one M-sound from the EV; ``remaining_sounds`` counts down to 0.

    Decoding accepts a cut-off random field (open-plc-utils' PEV sends 64-byte frames that
    end 7 bytes into it); the missing bytes read as zeros.
    """

    MMTYPE: ClassVar[int] = MMType.CM_MNBC_SOUND_IND
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("application_type", "B"),
        ("security_type", "B"),
        ("sender_id", "17s"),
        ("remaining_sounds", "B"),
        ("run_id", "8s"),
        ("reserved", "8s"),
        ("random", "16s"),
    )
    remaining_sounds: int
    run_id: bytes
    sender_id: bytes = ZERO_ID
    #: The 8 bytes after the RunID (the rest of HomePlug's 16-byte RunID field).
    reserved: bytes = ZERO_RUN_ID
    random: bytes = bytes(16)
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE

    @classmethod
    def _decode(cls: type[M], data: bytes, offset: int) -> M:
        size = cls._STRUCT.size
        if _MIN_SOUND <= len(data) - offset < size:  # the random field cut off: zeros
            data, offset = bytes(data[offset:]).ljust(size, b"\x00"), 0
        return super()._decode(data, offset)


_MIN_SOUND = 36


@dataclass(frozen=True)
class AttenProfileInd(Message):
    """CM_ATTEN_PROFILE.IND: from the EVSE's own modem, the attenuation of one sound.

    ``aag`` holds one average attenuation per carrier group, in dB (58 groups).
    """

    MMTYPE: ClassVar[int] = MMType.CM_ATTEN_PROFILE_IND
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (("pev_mac", "mac"),)
    pev_mac: MacAddress
    aag: tuple[int, ...]
    #: The byte after NumGroups (reserved; scapy calls it NumberOfCarrierPerGroupe).
    reserved: int = 0

    def _validate(self) -> None:
        object.__setattr__(self, "aag", tuple(self.aag))
        _check_byte_list("aag", self.aag)
        _check_uint("reserved", self.reserved, 0xFF)

    def _pack_tail(self) -> bytes:
        return bytes((len(self.aag), self.reserved)) + bytes(self.aag)

    @classmethod
    def _unpack_tail(cls, head: dict[str, Any], rest: bytes) -> dict[str, Any]:
        if len(rest) < 2:
            raise DecodeError("CM_ATTEN_PROFILE.IND ends before NumGroups")
        return {"reserved": rest[1], "aag": _byte_list(rest[2:], rest[0], "CM_ATTEN_PROFILE.IND")}


@dataclass(frozen=True)
class AttenCharInd(Message):
    """CM_ATTEN_CHAR.IND: the EVSE's averaged attenuation profile, unicast to the EV."""

    MMTYPE: ClassVar[int] = MMType.CM_ATTEN_CHAR_IND
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("application_type", "B"),
        ("security_type", "B"),
        ("source_address", "mac"),
        ("run_id", "8s"),
        ("source_id", "17s"),
        ("resp_id", "17s"),
        ("num_sounds", "B"),
    )
    source_address: MacAddress
    run_id: bytes
    num_sounds: int
    aag: tuple[int, ...]
    source_id: bytes = ZERO_ID
    resp_id: bytes = ZERO_ID
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE

    def _validate(self) -> None:
        object.__setattr__(self, "aag", tuple(self.aag))
        _check_byte_list("aag", self.aag)

    def _pack_tail(self) -> bytes:
        return bytes((len(self.aag),)) + bytes(self.aag)

    @classmethod
    def _unpack_tail(cls, head: dict[str, Any], rest: bytes) -> dict[str, Any]:
        if not rest:
            raise DecodeError("CM_ATTEN_CHAR.IND ends before NumGroups")
        return {"aag": _byte_list(rest[1:], rest[0], "CM_ATTEN_CHAR.IND")}


@dataclass(frozen=True)
class AttenCharRsp(Message):
    """CM_ATTEN_CHAR.RSP: the EV acknowledges CM_ATTEN_CHAR.IND (Result 0 = success)."""

    MMTYPE: ClassVar[int] = MMType.CM_ATTEN_CHAR_RSP
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("application_type", "B"),
        ("security_type", "B"),
        ("source_address", "mac"),
        ("run_id", "8s"),
        ("source_id", "17s"),
        ("resp_id", "17s"),
        ("result", "B"),
    )
    source_address: MacAddress
    run_id: bytes
    result: int = 0
    source_id: bytes = ZERO_ID
    resp_id: bytes = ZERO_ID
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE


# --- CM_VALIDATE -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValidateReq(Message):
    """CM_VALIDATE.REQ: optional validation by toggling the control pilot."""

    MMTYPE: ClassVar[int] = MMType.CM_VALIDATE_REQ
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("signal_type", "B"),
        ("timer", "B"),
        ("result", "B"),
    )
    timer: int = 0
    result: int = ValidateResult.READY
    signal_type: int = 0


@dataclass(frozen=True)
class ValidateCnf(Message):
    """CM_VALIDATE.CNF: the EVSE's answer (ToggleNum edges counted, Result)."""

    MMTYPE: ClassVar[int] = MMType.CM_VALIDATE_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("signal_type", "B"),
        ("toggle_num", "B"),
        ("result", "B"),
    )
    result: int
    toggle_num: int = 0
    signal_type: int = 0


# --- CM_SLAC_MATCH -----------------------------------------------------------------------------

_MATCH_COMMON: tuple[tuple[str, str], ...] = (
    ("application_type", "B"),
    ("security_type", "B"),
    ("mvf_length", "H"),
    ("pev_id", "17s"),
    ("pev_mac", "mac"),
    ("evse_id", "17s"),
    ("evse_mac", "mac"),
    ("run_id", "8s"),
    ("reserved", "8s"),
)


@dataclass(frozen=True)
class SlacMatchReq(Message):
    """CM_SLAC_MATCH.REQ: the EV asks the EVSE it chose to join its network."""

    MMTYPE: ClassVar[int] = MMType.CM_SLAC_MATCH_REQ
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = _MATCH_COMMON
    pev_mac: MacAddress
    evse_mac: MacAddress
    run_id: bytes
    pev_id: bytes = ZERO_ID
    evse_id: bytes = ZERO_ID
    reserved: bytes = ZERO_RUN_ID
    mvf_length: int = MATCH_REQ_MVF_LENGTH
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE


@dataclass(frozen=True)
class SlacMatchCnf(Message):
    """CM_SLAC_MATCH.CNF: the EVSE's network ID and key, unicast to the matched EV."""

    MMTYPE: ClassVar[int] = MMType.CM_SLAC_MATCH_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        *_MATCH_COMMON,
        ("nid", "7s"),
        ("reserved_2", "B"),
        ("nmk", "16s"),
    )
    pev_mac: MacAddress
    evse_mac: MacAddress
    run_id: bytes
    nid: bytes
    nmk: bytes = field(repr=False)
    pev_id: bytes = ZERO_ID
    evse_id: bytes = ZERO_ID
    reserved: bytes = ZERO_RUN_ID
    reserved_2: int = 0
    mvf_length: int = MATCH_CNF_MVF_LENGTH
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE

    def __str__(self) -> str:  # the NMK is a secret: never in the text form
        return (
            f"{self.name}(pev_mac={self.pev_mac}, evse_mac={self.evse_mac}, "
            f"run_id={self.run_id.hex()}, nid={self.nid.hex()}, nmk=<{len(self.nmk)} bytes>)"
        )


# --- CM_AMP_MAP --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AmpMapReq(Message):
    """CM_AMP_MAP.REQ: amplitude map, one 4-bit value per carrier (low nibble first).

    AMLEN 0 is legal on the wire but must not be answered.
    """

    MMTYPE: ClassVar[int] = MMType.CM_AMP_MAP_REQ
    amplitudes: tuple[int, ...]

    def _validate(self) -> None:
        object.__setattr__(self, "amplitudes", tuple(self.amplitudes))
        if len(self.amplitudes) > 0xFFFF:
            raise FieldError("amplitudes has at most 65535 entries")
        for value in self.amplitudes:
            _check_uint("amplitudes entry", value, 0x0F)

    def _pack_tail(self) -> bytes:
        values = self.amplitudes
        packed = bytearray((len(values) + 1) // 2)
        for i, value in enumerate(values):
            packed[i // 2] |= value << (4 * (i % 2))
        return struct.pack("<H", len(values)) + bytes(packed)

    @classmethod
    def _unpack_tail(cls, head: dict[str, Any], rest: bytes) -> dict[str, Any]:
        if len(rest) < 2:
            raise DecodeError("CM_AMP_MAP.REQ ends before AMLEN")
        count = rest[0] | rest[1] << 8
        data = rest[2:]
        if len(data) < (count + 1) // 2:
            raise DecodeError(f"CM_AMP_MAP.REQ announces {count} carriers, fewer follow")
        return {"amplitudes": tuple((data[i // 2] >> (4 * (i % 2))) & 0x0F for i in range(count))}


@dataclass(frozen=True)
class AmpMapCnf(Message):
    """CM_AMP_MAP.CNF: 0 success, 1 failure."""

    MMTYPE: ClassVar[int] = MMType.CM_AMP_MAP_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (("result", "B"),)
    result: int = 0


# --- Qualcomm vendor messages ------------------------------------------------------------------


@dataclass(frozen=True)
class VsSwVerReq(VendorMessage):
    """VS_SW_VER.REQ: ask a modem (the local one, or all by broadcast) for its firmware."""

    MMTYPE: ClassVar[int] = MMType.VS_SW_VER_REQ


#: Width of the version field in VS_SW_VER.CNF as Wireshark and scapy read it.
SW_VERSION_FIELD_LEN = 64


@dataclass(frozen=True)
class VsSwVerCnf(VendorMessage):
    """VS_SW_VER.CNF: status, device class (0x22 = QCA7000/7005) and firmware version."""

    MMTYPE: ClassVar[int] = MMType.VS_SW_VER_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (("status", "B"), ("device_class", "B"))
    version: str
    status: int = 0
    device_class: int = 0x22
    upgradable: int = 0

    def _validate(self) -> None:
        if (
            not self.version.isascii()
            or "\x00" in self.version
            or len(self.version) >= SW_VERSION_FIELD_LEN
        ):
            raise FieldError(
                f"version is ASCII without NUL, at most {SW_VERSION_FIELD_LEN - 1} characters"
            )
        _check_uint("upgradable", self.upgradable, 0xFF)

    def _pack_tail(self) -> bytes:
        raw = self.version.encode("ascii") + b"\x00"
        return (
            bytes((len(raw),))
            + raw.ljust(SW_VERSION_FIELD_LEN, b"\x00")
            + bytes((self.upgradable,))
        )

    @classmethod
    def _unpack_tail(cls, head: dict[str, Any], rest: bytes) -> dict[str, Any]:
        if not rest:
            raise DecodeError("VS_SW_VER.CNF ends before MVERLENGTH")
        raw = bytes(_byte_list(rest[1:], rest[0], "VS_SW_VER.CNF"))
        version = raw.split(b"\x00", 1)[0].decode("latin-1")
        # The Upgradable flag follows a 64-byte field (Wireshark, scapy); firmware that uses a
        # longer field (OPU reserves 254/255 bytes) leaves it unknown, read as 0.
        upgradable = rest[1 + SW_VERSION_FIELD_LEN] if len(rest) > 1 + SW_VERSION_FIELD_LEN else 0
        return {"version": version, "upgradable": upgradable}


@dataclass(frozen=True)
class VsPlLinkStatusReq(VendorMessage):
    """VS_PL_LINK_STATUS.REQ: ask the local modem whether it is in a logical network."""

    MMTYPE: ClassVar[int] = MMType.VS_PL_LINK_STATUS_REQ


@dataclass(frozen=True)
class VsPlLinkStatusCnf(VendorMessage):
    """VS_PL_LINK_STATUS.CNF: LINKSTATUS 0x01 = linked, 0x00 = no link."""

    MMTYPE: ClassVar[int] = MMType.VS_PL_LINK_STATUS_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (("status", "B"), ("link_status", "B"))
    link_status: int
    status: int = 0

    @property
    def linked(self) -> bool:
        return self.link_status == 0x01


@dataclass(frozen=True)
class VsRsDevReq(VendorMessage):
    """VS_RS_DEV.REQ: ask the local modem to reset (it restarts, and forgets a key it was
    given with CM_SET_KEY unless that was stored)."""

    MMTYPE: ClassVar[int] = MMType.VS_RS_DEV_REQ


@dataclass(frozen=True)
class VsRsDevCnf(VendorMessage):
    """VS_RS_DEV.CNF: MSTATUS 0 = the modem resets now."""

    MMTYPE: ClassVar[int] = MMType.VS_RS_DEV_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (("status", "B"),)
    status: int = 0


@dataclass(frozen=True)
class VsHostActionInd(VendorMessage):
    """VS_HOST_ACTION.IND: the modem asks its host for an action; a modem sends it when its
    firmware (re)starts (MACTION 0x00, "start device"; see ``enums.HOST_ACTIONS``)."""

    MMTYPE: ClassVar[int] = MMType.VS_HOST_ACTION_IND
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("action", "B"),
        ("major_version", "B"),
        ("minor_version", "B"),
    )
    action: int = 0
    major_version: int = 0
    minor_version: int = 0


@dataclass(frozen=True)
class VsHostActionRsp(VendorMessage):
    """VS_HOST_ACTION.RSP: the host's answer (MSTATUS 0); it stops the modem's resends."""

    MMTYPE: ClassVar[int] = MMType.VS_HOST_ACTION_RSP
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (("status", "B"),)
    status: int = 0


@dataclass(frozen=True)
class VsRdModReq(VendorMessage):
    """VS_RD_MOD.REQ: read ``length`` bytes at ``offset`` of a module of the local modem
    (MODULEID 0x02: its parameter block, the PIB)."""

    MMTYPE: ClassVar[int] = MMType.VS_RD_MOD_REQ
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("module_id", "B"),
        ("access", "B"),
        ("length", "H"),
        ("offset", "I"),
        ("secret", "16s"),
    )
    length: int
    offset: int
    module_id: int = RD_MOD_MODULE_PIB
    access: int = 0
    secret: bytes = field(default=bytes(16), repr=False)


@dataclass(frozen=True)
class VsRdModCnf(VendorMessage):
    """VS_RD_MOD.CNF: MSTATUS (0 success), what was read (module, length, offset) and the
    bytes. The checksum is carried, not checked."""

    MMTYPE: ClassVar[int] = MMType.VS_RD_MOD_CNF
    _LAYOUT: ClassVar[tuple[tuple[str, str], ...]] = (
        ("status", "B"),
        ("reserved1", "3s"),
        ("module_id", "B"),
        ("reserved2", "B"),
        ("length", "H"),
        ("offset", "I"),
        ("checksum", "I"),
    )
    offset: int
    data: bytes
    status: int = 0
    module_id: int = RD_MOD_MODULE_PIB
    length: int = -1  # -1: len(data)
    checksum: int = 0
    reserved1: bytes = bytes(3)
    reserved2: int = 0

    def __post_init__(self) -> None:
        if self.length == -1 and isinstance(self.data, bytes):
            object.__setattr__(self, "length", len(self.data))
        super().__post_init__()

    def _validate(self) -> None:
        if not isinstance(self.data, bytes) or len(self.data) != self.length:
            raise FieldError(f"data must be bytes of the announced length {self.length}")

    def _pack_tail(self) -> bytes:
        return self.data

    @classmethod
    def _unpack_tail(cls, head: dict[str, Any], rest: bytes) -> dict[str, Any]:
        length = head["length"]
        if head["status"] != 0:  # a refusal carries no data
            return {"data": bytes(rest[: min(length, len(rest))]).ljust(length, b"\x00")}
        if len(rest) < length:
            raise DecodeError(f"VS_RD_MOD.CNF announces {length} bytes but {len(rest)} follow")
        return {"data": bytes(rest[:length])}


# --- Anything else -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UnknownMessage:
    """A HomePlug frame whose type (or vendor OUI) this library does not model.

    ``payload`` is everything after the header and OUI, padding included (its length is
    not known). It is a value, not an error: modems send many vendor messages.
    """

    mmtype: int
    mmv: int
    payload: bytes
    oui: Optional[bytes] = None

    @property
    def name(self) -> str:
        vendor = " (vendor)" if self.oui is not None else ""
        return f"unknown {mmtype_name(self.mmtype)}{vendor}"

    def pack(self) -> bytes:
        return self.payload


AnyMessage = Union[Message, UnknownMessage]


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its Ethernet and HomePlug headers and the message."""

    ethernet: EthernetHeader
    homeplug: HomePlugHeader
    message: AnyMessage

    @property
    def src(self) -> MacAddress:
        return self.ethernet.src

    @property
    def dst(self) -> MacAddress:
        return self.ethernet.dst


#: Ethernet header and HomePlug AV 1.1 header in one read (EtherType read little-endian)
_FAST_HEAD = struct.Struct("<6s6sHBHBB")
_HPAV_LE = int.from_bytes(ETH_TYPE_HPAV.to_bytes(2, "big"), "little")


def decode_frame(data: bytes) -> Frame:
    """Decode a whole Ethernet frame. Raises only :class:`DecodeError`, whatever the bytes.

    Frames of another EtherType are rejected; HomePlug frames of a type this library does
    not model give an :class:`UnknownMessage`.
    """
    try:
        if len(data) >= _FAST_HEAD.size:
            dst, src, ethertype_le, mmv, mmtype, fmi, fmsn = _FAST_HEAD.unpack_from(data)
            cls = MESSAGES.get(mmtype)
            if (
                ethertype_le == _HPAV_LE
                and mmv == MMV_HPAV_1_1
                and cls is not None
                and (cls.MMV == MMV_HPAV_1_1)
            ):
                # the hot path: an HomePlug AV 1.1 message of a modelled, non-vendor type
                ethernet = object.__new__(EthernetHeader)
                ethernet.__dict__.update(
                    dst=fast_mac(dst), src=fast_mac(src), ethertype=ETH_TYPE_HPAV
                )
                homeplug = object.__new__(HomePlugHeader)
                homeplug.__dict__.update(mmv=mmv, mmtype=mmtype, fmi=fmi, fmsn=fmsn, oui=None)
                frame = object.__new__(Frame)
                frame.__dict__.update(
                    ethernet=ethernet,
                    homeplug=homeplug,
                    message=cls._decode(data, _FAST_HEAD.size),
                )
                return frame
        ethernet = EthernetHeader.unpack(data)
        if ethernet.ethertype != ETH_TYPE_HPAV:
            raise DecodeError(f"EtherType 0x{ethernet.ethertype:04X} is not HomePlug AV (0x88E1)")
        homeplug = HomePlugHeader.unpack(data, ETH_HEADER_LEN)
        start = ETH_HEADER_LEN + homeplug.length
        cls = MESSAGES.get(homeplug.mmtype)
        message: AnyMessage
        if cls is None or (homeplug.oui is not None and homeplug.oui != QUALCOMM_OUI):
            message = UnknownMessage(
                homeplug.mmtype, homeplug.mmv, bytes(data[start:]), homeplug.oui
            )
        else:
            message = cls._decode(data, start)
        frame = object.__new__(Frame)
        frame.__dict__.update(ethernet=ethernet, homeplug=homeplug, message=message)
        return frame
    except DecodeError:
        raise
    except Exception as exc:  # the decode contract: nothing but DecodeError escapes
        raise DecodeError(f"undecodable frame: {type(exc).__name__}: {exc}") from exc


def decode_message(frame: bytes) -> AnyMessage:
    """The message of a frame (see :func:`decode_frame`)."""
    return decode_frame(frame).message
