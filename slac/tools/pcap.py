"""Minimal pcap writer and pcap/pcapng reader for Ethernet frames (no dependencies)."""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, Optional, Union

from slac.errors import DecodeError

LINKTYPE_ETHERNET = 1
_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_PCAPNG_SHB = 0x0A0D0D0A


@dataclass(frozen=True)
class Packet:
    """One captured frame and when it was captured (seconds since the epoch)."""

    timestamp: float
    data: bytes


class PcapWriter:
    """Writes Ethernet frames to a classic pcap file (microsecond timestamps)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        stream.write(struct.pack("<IHHiIII", _PCAP_MAGIC_US, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))

    def write(self, data: bytes, timestamp: Optional[float] = None) -> None:
        ts = time.time() if timestamp is None else timestamp
        sec = int(ts)
        usec = min(round((ts - sec) * 1_000_000), 999_999)
        self._stream.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)

    def flush(self) -> None:
        self._stream.flush()


class SharedPcap:
    """One pcap file written by every session of a process that names it (``PCAP_FILE``):
    opened (and truncated) by the first :meth:`acquire`, closed after the last
    :meth:`release`. Each frame is flushed at once, so the file is whole after a crash."""

    _files: ClassVar[dict[str, SharedPcap]] = {}

    def __init__(self, path: str) -> None:
        self.path = path
        self._stream = open(path, "wb")  # noqa: SIM115 - closed by the last release()
        self._writer: Optional[PcapWriter] = PcapWriter(self._stream)
        self._stream.flush()
        self.users = 0

    @classmethod
    def acquire(cls, path: Union[str, Path]) -> SharedPcap:
        """The writer for ``path`` (OSError when it cannot be created)."""
        key = str(Path(path).resolve())
        shared = cls._files.get(key)
        if shared is None:
            shared = cls._files[key] = cls(str(path))
        shared.users += 1
        return shared

    def write(self, data: bytes) -> None:
        if self._writer is None:
            return
        try:
            self._writer.write(data)
            self._writer.flush()
        except OSError as exc:  # a full disk must not stop charging: stop capturing
            logging.getLogger(__name__).error("pcap capture to %s stopped: %s", self.path, exc)
            self._writer = None

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self._files.pop(str(Path(self.path).resolve()), None)
            self._stream.close()


def write_pcap(path: Union[str, Path], frames: Iterable[Union[bytes, Packet]]) -> None:
    with open(path, "wb") as stream:
        writer = PcapWriter(stream)
        for item in frames:
            if isinstance(item, Packet):
                writer.write(item.data, item.timestamp)
            else:
                writer.write(item)


def read_packets(path: Union[str, Path]) -> Iterator[Packet]:
    """Ethernet frames of a pcap or pcapng file, in file order. Raises ``DecodeError``."""
    data = Path(path).read_bytes()
    if len(data) < 4:
        raise DecodeError(f"{path}: too short for a capture file")
    magic_le = struct.unpack_from("<I", data)[0]
    if magic_le == _PCAPNG_SHB:
        return _read_pcapng(data, str(path))
    return _read_pcap(data, str(path))


def _read_pcap(data: bytes, name: str) -> Iterator[Packet]:
    for endian in ("<", ">"):
        magic = struct.unpack_from(endian + "I", data)[0]
        if magic in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS):
            break
    else:
        raise DecodeError(f"{name}: not a pcap or pcapng file")
    if len(data) < 24:
        raise DecodeError(f"{name}: truncated pcap header")
    scale = 1e-6 if magic == _PCAP_MAGIC_US else 1e-9
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise DecodeError(f"{name}: link type {linktype} is not Ethernet")
    record = struct.Struct(endian + "IIII")

    def frames() -> Iterator[Packet]:
        pos = 24
        while pos + 16 <= len(data):
            sec, frac, caplen, _origlen = record.unpack_from(data, pos)
            pos += 16
            if pos + caplen > len(data):
                raise DecodeError(f"{name}: truncated packet record")
            yield Packet(sec + frac * scale, data[pos : pos + caplen])
            pos += caplen

    return frames()


def _read_pcapng(data: bytes, name: str) -> Iterator[Packet]:
    def frames() -> Iterator[Packet]:
        pos = 0
        endian = "<"
        interfaces: list[tuple[int, float]] = []  # (linktype, timestamp unit in seconds)
        while pos + 12 <= len(data):
            block_type = struct.unpack_from(endian + "I", data, pos)[0]
            if block_type == _PCAPNG_SHB:
                bom = data[pos + 8 : pos + 12]
                endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                interfaces = []
            length = struct.unpack_from(endian + "I", data, pos + 4)[0]
            if length < 12 or pos + length > len(data):
                raise DecodeError(f"{name}: malformed pcapng block at offset {pos}")
            body = data[pos + 8 : pos + length - 4]
            if block_type == 0x00000001:  # interface description
                linktype = struct.unpack_from(endian + "H", body)[0]
                interfaces.append((linktype, _if_tsresol(body[8:], endian)))
            elif block_type == 0x00000006:  # enhanced packet
                iface, ts_hi, ts_lo, caplen = struct.unpack_from(endian + "IIII", body)
                linktype, unit = interfaces[iface] if iface < len(interfaces) else (1, 1e-6)
                if linktype == LINKTYPE_ETHERNET:
                    yield Packet(((ts_hi << 32) | ts_lo) * unit, bytes(body[20 : 20 + caplen]))
            elif block_type == 0x00000003:  # simple packet
                yield Packet(0.0, bytes(body[4:]))
            pos += length

    return frames()


def _if_tsresol(options: bytes, endian: str) -> float:
    pos = 0
    while pos + 4 <= len(options):
        code, length = struct.unpack_from(endian + "HH", options, pos)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = options[pos + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        pos += 4 + ((length + 3) & ~3)
    return 1e-6
