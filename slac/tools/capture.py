"""Capture HomePlug frames with the kernel's timestamps (``slac capture``, benchmarks).

A packet socket for every protocol (ETH_P_ALL: only those see what the host sends,
PACKET_OUTGOING) with a kernel filter for EtherType 0x88E1 sees both directions of SLAC on
an interface; SO_TIMESTAMPNS gives each frame the time the kernel saw it pass, whatever the
reader's delay. Unbound (``interface=None``), it sees every interface of
its network namespace, which the benchmarks use to time the EVSE's answers.
"""

from __future__ import annotations

import errno
import select
import signal
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Optional, Union

from slac.enums import ETH_P_ALL, ETH_TYPE_HPAV, PACKET_OUTGOING
from slac.errors import TransportError
from slac.sockets import bpf
from slac.sockets.async_linux_socket import _no_such_interface, _permission_hint, interface_is_up
from slac.tools.pcap import PcapWriter

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
_CMSG_SPACE = socket.CMSG_SPACE(16)


@dataclass(frozen=True)
class Captured:
    """One frame: kernel time (s since the epoch), interface, whether this host sent it."""

    timestamp: float
    interface: str
    outgoing: bool
    data: bytes


def kernel_time(ancillary: list[tuple[int, int, bytes]]) -> Optional[float]:
    """The SO_TIMESTAMPNS stamp of a recvmsg() answer (None when absent)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return float(sec) + float(nsec) / 1e9
    return None


class CaptureSocket:
    """A blocking-or-not packet socket that returns :class:`Captured` frames."""

    def __init__(
        self,
        interface: Optional[str],
        *,
        ethertype: int = ETH_TYPE_HPAV,
        buffer_bytes: int = 32 * 1024 * 1024,
        sudo_hint: str = "`sudo slac capture ...`",
    ) -> None:
        self.interface = interface
        self.ethertype = ethertype
        label = interface or "every interface"
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise TransportError(_permission_hint(label, sudo_hint)) from None
        try:
            bpf.attach(sock, bpf.ethertype_only(ethertype))
            if interface is not None:
                sock.bind((interface, ETH_P_ALL))
                if not interface_is_up(interface):
                    raise TransportError(
                        f"network interface {interface} is down; bring it up with "
                        f"`ip link set {interface} up`"
                    )
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            try:  # root may exceed net.core.rmem_max: bursts of 128 EVs must not overflow
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer_bytes)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        except OSError as exc:
            sock.close()
            if isinstance(exc, TransportError):
                raise
            if exc.errno == errno.ENODEV:
                raise TransportError(_no_such_interface(str(interface))) from None
            raise TransportError(f"cannot capture on {label}: {exc}") from exc
        self.sock = sock
        self._ethertype_bytes = struct.pack("!H", ethertype)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> CaptureSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def receive(self, timeout: Optional[float] = None) -> Optional[Captured]:
        """The next frame, or None when ``timeout`` (seconds) passes without one."""
        while True:
            if timeout is not None:
                ready, _, _ = select.select([self.sock], [], [], timeout)
                if not ready:
                    return None
            data, ancillary, _flags, address = self.sock.recvmsg(65535, _CMSG_SPACE)
            if data[12:14] == self._ethertype_bytes:
                break
            # queued before the kernel filter was attached: skip
            timeout = 0 if timeout is not None else None
        stamp = kernel_time(ancillary)
        return Captured(
            stamp if stamp is not None else time.time(),
            address[0],
            address[2] == PACKET_OUTGOING,
            data,
        )

    def drain(self) -> list[Captured]:
        """Every frame queued now, without waiting."""
        frames: list[Captured] = []
        while True:
            item = self.receive(timeout=0)
            if item is None:
                return frames
            frames.append(item)


def capture_to_pcap(
    interface: str,
    path: Union[str, Path],
    *,
    count: Optional[int] = None,
    duration: Optional[float] = None,
    announce: bool = True,
) -> int:
    """Write the interface's SLAC frames (both directions) to ``path`` until ``count``
    frames, ``duration`` seconds, SIGINT or SIGTERM. Returns the number written."""
    stop = False

    def on_signal(_signum: int, _frame: Optional[FrameType]) -> None:
        nonlocal stop
        stop = True

    with CaptureSocket(interface) as capture, open(path, "wb") as stream:
        writer = PcapWriter(stream)
        stream.flush()
        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        if announce:
            print(f"capturing SLAC frames on {interface} to {path} (Ctrl-C stops)", flush=True)
        written = 0
        end = None if duration is None else time.monotonic() + duration
        try:
            while not stop and (count is None or written < count):
                wait = 0.2 if end is None else min(0.2, end - time.monotonic())
                if wait <= 0:
                    break
                try:
                    item = capture.receive(timeout=wait)
                except InterruptedError:
                    continue
                if item is None:
                    continue
                writer.write(item.data, item.timestamp)
                writer.flush()
                written += 1
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return written
