"""AF_PACKET raw sockets for asyncio: HomePlug AV frames (EtherType 0x88E1) on one interface.

One :class:`RawSocket` per EVSE, open for the session's lifetime. Receiving is driven by the
event loop (``add_reader``): every frame that arrives is handed to a callback at once, or
queued (a bounded queue: under a flood the oldest frames go, memory stays flat) for
:meth:`RawSocket.recv`. Frames this socket's interface sends with its own MAC are not looped
back; frames another program sends on the same interface (an EV simulator sharing it) are.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import fcntl
import logging
import os
import socket
import struct
from typing import Callable, Optional

from slac.enums import ETH_P_ALL, ETH_TYPE_HPAV, PACKET_OUTGOING
from slac.errors import TransportError
from slac.sockets import bpf
from slac.sockets.namespace import call_in_netns
from slac.utils import MacAddress

logger = logging.getLogger(__name__)

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
MAX_FRAME = 1518
#: Frames kept for recv() when nobody reads them (about 1.5 MB at most).
DEFAULT_QUEUE_LIMIT = 1024
#: Send errors that say "not now" rather than "never": the kernel had no room for this frame
#: (ENOBUFS: a full or dropping transmit queue; ENOMEM). The frame is dropped with a warning;
#: SLAC's own retries (the EV's requests, the EVSE's resent indications) make up for it.
TRANSIENT_SEND_ERRORS = frozenset({errno.ENOBUFS, errno.ENOMEM})
#: At most one warning about dropped frames this often (seconds); the others go to DEBUG.
DROP_WARNING_INTERVAL = 1.0

ReceiveCallback = Callable[[bytes, float], None]


def interface_is_up(interface: str) -> bool:
    """Whether the interface has IFF_UP (administratively up)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        request = struct.pack("16sH14x", interface.encode()[:15], 0)
        try:
            result = fcntl.ioctl(probe.fileno(), SIOCGIFFLAGS, request)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise TransportError(_no_such_interface(interface)) from None
            raise
    flags = struct.unpack_from("16sH", result)[1]
    return bool(flags & IFF_UP)


def interface_unavailable(interface: str) -> Optional[str]:
    """Why ``interface`` cannot be opened now, if it is a valid name that is missing or down
    (it may come: ``slac evse`` waits for it); None when it exists and is up, or when the name
    itself is bad (no waiting helps)."""
    if not isinstance(interface, str) or not 0 < len(interface) < 16 or "/" in interface:
        return None
    try:
        up = interface_is_up(interface)
    except TransportError as exc:
        return str(exc)
    except OSError:
        return None
    return None if up else f"network interface {interface} is down"


def _no_such_interface(interface: str) -> str:
    try:
        known = ", ".join(sorted(os.listdir("/sys/class/net")))
    except OSError:
        known = "see `ip link`"
    return f"network interface {interface!r} does not exist (interfaces here: {known})"


def _permission_hint(interface: str, sudo_hint: Optional[str]) -> str:
    """The error for a missing CAP_NET_RAW, with the caller's advice (how to run it as root)."""
    message = f"opening a raw socket on {interface} needs root or CAP_NET_RAW"
    return f"{message}; try {sudo_hint}" if sudo_hint else message


class RawSocket:
    """A non-blocking AF_PACKET socket bound to ``interface`` and EtherType 0x88E1.

    ``sudo_hint``: how the caller's program runs with the permission (a command), added to
    the error when the socket may not be opened; None: the error says what is missing only.
    """

    def __init__(
        self,
        interface: str,
        *,
        ethertype: int = ETH_TYPE_HPAV,
        sudo_hint: Optional[str] = None,
        queue_limit: int = DEFAULT_QUEUE_LIMIT,
        netns: Optional[str] = None,
    ) -> None:
        self.interface = interface
        #: Open the socket inside this network namespace (test hosts); None: this one.
        self.netns = netns
        self.ethertype = ethertype
        self._sudo_hint = sudo_hint
        self._sock: Optional[socket.socket] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._callback: Optional[ReceiveCallback] = None
        self._queue: collections.deque[tuple[bytes, float]] = collections.deque(maxlen=queue_limit)
        self._waiter: Optional[asyncio.Future[None]] = None
        self._send_buffer: collections.deque[bytes] = collections.deque()
        self.mac: MacAddress = MacAddress(bytes(6))
        self.dropped = 0
        self.received = 0
        self.sent = 0
        #: frames the kernel refused for now (TRANSIENT_SEND_ERRORS), dropped
        self.send_dropped = 0
        self._drop_warned_at: Optional[float] = None
        self.closed_reason: Optional[BaseException] = None
        self._own_filter = False

    # --- life cycle -------------------------------------------------------------------------

    def open(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> RawSocket:
        """Open and bind the socket; raises :class:`TransportError` in plain words."""
        if self._sock is not None:
            return self
        if not isinstance(self.interface, str) or not 0 < len(self.interface) < 16:
            raise TransportError(f"{self.interface!r} is not a network interface name")
        if self.netns is not None:
            sock = call_in_netns(self.netns, self._open_socket)
        else:
            sock = self._open_socket()
        sock.setblocking(False)
        self.mac = MacAddress(sock.getsockname()[4][:6])
        self._sock = sock
        self._loop = loop or asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._on_readable)
        logger.debug("raw socket open on %s (%s)", self.interface, self.mac)
        return self

    def _open_socket(self) -> socket.socket:
        """Create and bind the socket, in the calling thread's network namespace.

        Bound to every protocol with a kernel filter (EtherType 0x88E1, both directions, not
        our own frames), so that another program's frames on this interface are seen too and
        our own never wake us; bound to 0x88E1 alone where filters are refused.
        """
        try:
            # protocol 0: nothing is queued until the filter is in place
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise TransportError(_permission_hint(self.interface, self._sudo_hint)) from None
        try:
            sock.bind((self.interface, 0))
            mac = sock.getsockname()[4][:6]
            try:
                bpf.attach(sock, bpf.ethertype_not_own(self.ethertype, mac))
                sock.bind((self.interface, ETH_P_ALL))
                self._own_filter = True
            except OSError as exc:
                logger.debug("no socket filter on %s (%s)", self.interface, exc)
                sock.bind((self.interface, self.ethertype))
                self._own_filter = False
        except OSError as exc:
            sock.close()
            if exc.errno == errno.ENODEV:
                raise TransportError(_no_such_interface(self.interface)) from None
            if exc.errno in (errno.EPERM, errno.EACCES):
                raise TransportError(_permission_hint(self.interface, self._sudo_hint)) from None
            raise TransportError(f"cannot bind a raw socket to {self.interface}: {exc}") from exc
        if not interface_is_up(self.interface):
            sock.close()
            raise TransportError(
                f"network interface {self.interface} is down; bring it up with "
                f"`ip link set {self.interface} up`"
            )
        return sock

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(sock.fileno())
            if self._send_buffer:
                self._loop.remove_writer(sock.fileno())
        self._send_buffer.clear()
        sock.close()
        self._wake(TransportError(f"the raw socket on {self.interface} was closed"))

    def fileno(self) -> int:
        return -1 if self._sock is None else self._sock.fileno()

    # --- receiving --------------------------------------------------------------------------

    def set_callback(self, callback: Optional[ReceiveCallback]) -> None:
        """Hand every received frame (and its arrival time, loop clock) to ``callback``."""
        self._callback = callback

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        loop = self._loop
        assert loop is not None
        own_filter = self._own_filter
        for _ in range(64):  # bounded, so one busy interface cannot starve the loop
            try:
                if own_filter:  # the kernel dropped our own frames: no address needed
                    data = sock.recv(MAX_FRAME)
                else:
                    data, address = sock.recvfrom(MAX_FRAME)
                    if address[2] == PACKET_OUTGOING and data[6:12] == self.mac:
                        continue  # our own frame; another program's still counts
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._fail(exc)
                return
            self.received += 1
            now = loop.time()
            if self._callback is not None:
                self._callback(data, now)
            else:
                if len(self._queue) == self._queue.maxlen:
                    self.dropped += 1
                self._queue.append((data, now))
                self._wake(None)

    def _fail(self, exc: OSError) -> None:
        """The interface went away (deleted, or down): close and tell whoever waits."""
        reason = TransportError(f"network interface {self.interface} failed: {exc.strerror}")
        logger.warning("%s", reason)
        self.closed_reason = reason
        self.close()

    def _wake(self, error: Optional[BaseException]) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def recv(self) -> tuple[bytes, float]:
        """The next received frame and its arrival time (when no callback is set)."""
        while not self._queue:
            if self._sock is None:
                raise self.closed_reason or TransportError(
                    f"the raw socket on {self.interface} is closed"
                )
            loop = self._loop or asyncio.get_running_loop()
            self._waiter = loop.create_future()
            await self._waiter
        return self._queue.popleft()

    def drain_queue(self) -> None:
        self._queue.clear()

    # --- sending ------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Send a frame now; if the socket buffer is full it goes out when there is room.

        A frame the kernel has no room for at all (ENOBUFS, ENOMEM: a full or dropping
        transmit queue) is dropped with a warning, not raised: one lost frame must not end
        a plug-in. The interface gone raises :class:`TransportError` (and closes the socket).
        """
        sock = self._sock
        if sock is None:
            raise self.closed_reason or TransportError(
                f"the raw socket on {self.interface} is closed"
            )
        if not self._send_buffer:
            try:
                sock.send(frame)
                self.sent += 1
                return
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                if exc.errno in TRANSIENT_SEND_ERRORS:
                    self._dropped_on_send(exc)
                    return
                if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    self._fail(exc)
                    raise self.closed_reason or TransportError(str(exc)) from exc
                raise TransportError(f"sending on {self.interface} failed: {exc}") from exc
            assert self._loop is not None
            self._loop.add_writer(sock.fileno(), self._on_writable)
        self._send_buffer.append(frame)

    def _on_writable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while self._send_buffer:
            try:
                sock.send(self._send_buffer[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in TRANSIENT_SEND_ERRORS:
                    self._fail(exc)
                    return
                self._dropped_on_send(exc)
            else:
                self.sent += 1
            self._send_buffer.popleft()
        assert self._loop is not None
        self._loop.remove_writer(sock.fileno())

    def _dropped_on_send(self, exc: OSError) -> None:
        """One frame the kernel had no room for: dropped, and said so (not too often)."""
        self.send_dropped += 1
        now = self._loop.time() if self._loop is not None else 0.0
        quiet = (
            self._drop_warned_at is not None and now - self._drop_warned_at < DROP_WARNING_INTERVAL
        )
        if not quiet:
            self._drop_warned_at = now
        logger.log(
            logging.DEBUG if quiet else logging.WARNING,
            "sending on %s failed for now (%s): frame dropped, %d so far; the protocol's "
            "retries make up for it",
            self.interface,
            exc.strerror or exc,
            self.send_dropped,
        )
