"""The socket of a test station: HomePlug frames (EtherType 0x88E1) on an interface inside a
test host's network namespace, read with the kernel's receive times (SO_TIMESTAMPNS), so that
a busy machine does not turn a timely frame into a late one."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

from slac.enums import ETH_TYPE_HPAV, PACKET_OUTGOING
from slac.testing.netns import Netns
from slac.tools.capture import SO_TIMESTAMPNS, kernel_time

_CMSG_SPACE = socket.CMSG_SPACE(16)
MAX_FRAME = 2048


def open_station_socket(netns: Netns, interface: str) -> socket.socket:
    """A non-blocking packet socket for HomePlug frames on ``interface`` inside ``netns``,
    with kernel receive timestamps."""

    def open_socket() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_TYPE_HPAV))
        try:
            sock.bind((interface, ETH_TYPE_HPAV))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    return netns.call(open_socket)


def received_frames(sock: socket.socket) -> Iterator[tuple[bytes, float]]:
    """Every frame the socket holds now, except those this host sent, with the time the
    kernel received it (seconds since the epoch; the time of reading where it has none)."""
    while True:
        try:
            data, ancillary, _flags, address = sock.recvmsg(MAX_FRAME, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        if address[2] == PACKET_OUTGOING:
            continue
        yield data, kernel_time(ancillary) or time.time()
