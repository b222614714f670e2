"""Ethernet II and HomePlug AV management message headers; frame padding.

A frame is ``Ethernet header (14) | HomePlug header | payload``. The HomePlug header is
5 bytes for MMV 0x01 (MMV, MMTYPE little-endian, two fragmentation bytes) and 3 bytes for
MMV 0x00 (no fragmentation bytes). Vendor and manufacturer messages (MMTYPE 0x8000-0xBFFF)
carry a 3-byte OUI right after the header. Frames are zero-padded to 60 bytes on the way
out; padding is ignored on the way in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from slac.enums import (
    ETH_HEADER_LEN,
    ETH_MIN_FRAME_LEN,
    ETH_TYPE_HPAV,
    MMV_HPAV_1_0,
    MMV_HPAV_1_1,
    QUALCOMM_OUI,
    is_vendor_mmtype,
    mmtype_name,
)
from slac.errors import DecodeError, FieldError
from slac.utils import MacAddress, fast_mac

_ETH = struct.Struct("!6s6sH")
_HP_V0 = struct.Struct("<BH")
_HP_V1 = struct.Struct("<BHBB")
OUI_LEN = 3


@dataclass(frozen=True)
class EthernetHeader:
    """Ethernet II header: destination, source, EtherType (big-endian on the wire)."""

    dst: MacAddress
    src: MacAddress
    ethertype: int = ETH_TYPE_HPAV

    def __post_init__(self) -> None:
        object.__setattr__(self, "dst", MacAddress(self.dst))
        object.__setattr__(self, "src", MacAddress(self.src))
        if not 0 <= self.ethertype <= 0xFFFF:
            raise FieldError(f"ethertype must fit in 16 bits, got {self.ethertype}")

    def pack(self) -> bytes:
        return _ETH.pack(self.dst, self.src, self.ethertype)

    @classmethod
    def unpack(cls, data: bytes) -> EthernetHeader:
        if len(data) < ETH_HEADER_LEN:
            raise DecodeError(f"frame of {len(data)} bytes is shorter than an Ethernet header")
        dst, src, ethertype = _ETH.unpack_from(data)
        header = object.__new__(cls)
        header.__dict__.update(dst=fast_mac(dst), src=fast_mac(src), ethertype=ethertype)
        return header

    @staticmethod
    def build(dst: bytes, src: bytes, ethertype: int = ETH_TYPE_HPAV) -> bytes:
        """The 14 header bytes, checking only what :meth:`pack` would (the hot path)."""
        if len(dst) != 6 or len(src) != 6:
            raise FieldError("MAC addresses have 6 bytes")
        return _ETH.pack(dst, src, ethertype)


@dataclass(frozen=True)
class HomePlugHeader:
    """HomePlug AV management message header (and the vendor OUI where there is one).

    ``fmi`` and ``fmsn`` are the two fragmentation bytes of MMV 0x01 (both 0 for SLAC);
    MMV 0x00 has none. ``oui`` is set exactly for vendor/manufacturer message types.
    """

    mmv: int
    mmtype: int
    fmi: int = 0
    fmsn: int = 0
    oui: Optional[bytes] = None

    def __post_init__(self) -> None:
        if not 0 <= self.mmv <= 0xFF:
            raise FieldError(f"MMV must fit in a byte, got {self.mmv}")
        if not 0 <= self.mmtype <= 0xFFFF:
            raise FieldError(f"MMTYPE must fit in 16 bits, got {self.mmtype}")
        if not (0 <= self.fmi <= 0xFF and 0 <= self.fmsn <= 0xFF):
            raise FieldError("fragmentation bytes must fit in a byte each")
        if self.mmv == MMV_HPAV_1_0 and (self.fmi or self.fmsn):
            raise FieldError("MMV 0x00 headers have no fragmentation bytes")
        vendor = is_vendor_mmtype(self.mmtype)
        if vendor and (self.oui is None or len(self.oui) != OUI_LEN):
            raise FieldError(f"{mmtype_name(self.mmtype)} needs a 3-byte OUI")
        if not vendor and self.oui is not None:
            raise FieldError(f"{mmtype_name(self.mmtype)} carries no OUI")

    @property
    def length(self) -> int:
        """Bytes of header (and OUI) before the message payload."""
        return (3 if self.mmv == MMV_HPAV_1_0 else 5) + (OUI_LEN if self.oui is not None else 0)

    def pack(self) -> bytes:
        if self.mmv == MMV_HPAV_1_0:
            head = _HP_V0.pack(self.mmv, self.mmtype)
        else:
            head = _HP_V1.pack(self.mmv, self.mmtype, self.fmi, self.fmsn)
        return head + self.oui if self.oui is not None else head

    @classmethod
    def unpack(cls, data: bytes, offset: int = ETH_HEADER_LEN) -> HomePlugHeader:
        """Read the header at ``offset``; raises :class:`DecodeError` when it is cut short."""
        if len(data) < offset + 3:
            raise DecodeError("frame ends inside the HomePlug header")
        if data[offset] != MMV_HPAV_1_0:
            if len(data) < offset + 5:
                raise DecodeError("frame ends inside the HomePlug header")
            mmv, mmtype, fmi, fmsn = _HP_V1.unpack_from(data, offset)
            pos = offset + 5
        else:
            mmv, mmtype = _HP_V0.unpack_from(data, offset)
            fmi = fmsn = 0
            pos = offset + 3
        oui: Optional[bytes] = None
        if is_vendor_mmtype(mmtype):
            if len(data) < pos + OUI_LEN:
                raise DecodeError(f"{mmtype_name(mmtype)} ends before its OUI")
            oui = bytes(data[pos : pos + OUI_LEN])
        header = object.__new__(cls)
        header.__dict__.update(mmv=mmv, mmtype=mmtype, fmi=fmi, fmsn=fmsn, oui=oui)
        return header

    @classmethod
    def for_mmtype(cls, mmtype: int, mmv: int = MMV_HPAV_1_1) -> HomePlugHeader:
        return cls(mmv, mmtype, oui=QUALCOMM_OUI if is_vendor_mmtype(mmtype) else None)


def pad_frame(frame: bytes) -> bytes:
    """Zero-pad a frame to the 60-byte Ethernet minimum (without FCS)."""
    if len(frame) < ETH_MIN_FRAME_LEN:
        return frame + bytes(ETH_MIN_FRAME_LEN - len(frame))
    return frame
