"""Classic BPF socket filters: the kernel drops what a packet socket need not see, before it
is queued (no wake-up, no copy, no system call for it)."""

from __future__ import annotations

import ctypes
import socket
import struct

from slac.enums import PACKET_OUTGOING

SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
#: BPF ancillary load: the packet's type (PACKET_HOST, ..., PACKET_OUTGOING)
_SKF_AD_PKTTYPE = 0xFFFFF000 + 4

_LD_W_ABS = 0x20
_LD_H_ABS = 0x28
_JEQ_K = 0x15
_RET_K = 0x06
_ACCEPT = 0x40000

Instruction = tuple[int, int, int, int]


def attach(sock: socket.socket, program: list[Instruction]) -> None:
    """Attach ``program`` (code, jt, jf, k) to ``sock`` (OSError when the kernel refuses)."""
    code = b"".join(struct.pack("HBBI", *op) for op in program)
    buffer = ctypes.create_string_buffer(code, len(code))
    # struct sock_fprog {unsigned short len; struct sock_filter *filter;}: the kernel copies
    # the program during setsockopt, so the buffer may go afterwards
    fprog = struct.pack("@HP", len(program), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def ethertype_only(ethertype: int) -> list[Instruction]:
    """Frames of one EtherType (for a socket that must take ETH_P_ALL to see both ways)."""
    return [
        (_LD_H_ABS, 0, 0, 12),
        (_JEQ_K, 0, 1, ethertype),
        (_RET_K, 0, 0, _ACCEPT),
        (_RET_K, 0, 0, 0),
    ]


def ethertype_not_own(ethertype: int, mac: bytes) -> list[Instruction]:
    """Frames of one EtherType, in both directions, except those sent with source ``mac``
    (this host's own frames, which a socket taking every protocol would see again). Frames
    another program sends on the same interface (an EV simulator sharing it) still count."""
    word, half = struct.unpack("!IH", bytes(mac))
    return [
        (_LD_H_ABS, 0, 0, 12),
        (_JEQ_K, 0, 7, ethertype),  # another EtherType: drop
        (_LD_W_ABS, 0, 0, _SKF_AD_PKTTYPE),
        (_JEQ_K, 0, 4, PACKET_OUTGOING),  # received: accept
        (_LD_W_ABS, 0, 0, 6),  # sent: source MAC, first 4 bytes
        (_JEQ_K, 0, 2, word),
        (_LD_H_ABS, 0, 0, 10),  # source MAC, last 2 bytes
        (_JEQ_K, 1, 0, half),  # our own: drop
        (_RET_K, 0, 0, _ACCEPT),
        (_RET_K, 0, 0, 0),
    ]
