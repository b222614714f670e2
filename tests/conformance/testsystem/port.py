"""The test system's side of the wire: one raw socket in the tester's network namespace.

A :class:`Port` owns the socket and its kernel receive timestamps; :class:`Station` is one
address the test system answers to (an EV, an EVSE, a modem). A station sees what a real
one would: frames sent to its MAC address and broadcasts. Time is the kernel's
(``SO_TIMESTAMPNS``, seconds since the epoch): a frame counts as received when the kernel saw
it, whatever the delay of this process, so a busy machine does not turn a timely answer into
a late one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Callable, Optional, Union

from slac.enums import mmtype_name
from slac.errors import DecodeError
from slac.messages import AnyMessage, Frame, Message, decode_frame
from slac.testing.netns import Netns
from slac.testing.wire import open_station_socket, received_frames
from slac.utils import MacAddress

BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")


@dataclass(frozen=True)
class Received:
    """A frame the SUT sent, as the kernel timestamped it."""

    at: float
    raw: bytes
    frame: Optional[Frame]
    error: Optional[str] = None

    @property
    def message(self) -> Optional[AnyMessage]:
        return self.frame.message if self.frame is not None else None

    @property
    def src(self) -> MacAddress:
        return MacAddress(self.raw[6:12])

    @property
    def dst(self) -> MacAddress:
        return MacAddress(self.raw[0:6])

    @property
    def name(self) -> str:
        if self.frame is not None:
            return self.frame.message.name
        mmtype = int.from_bytes(self.raw[15:17], "little") if len(self.raw) >= 17 else 0
        return f"undecodable {mmtype_name(mmtype)}"

    def is_a(self, kind: Union[type, tuple[type, ...]]) -> bool:
        return self.frame is not None and isinstance(self.frame.message, kind)


@dataclass(frozen=True)
class Logged:
    at: float
    direction: str  # "rx" or "tx"
    station: str
    raw: bytes
    text: str


class Port:
    """A raw socket on the tester's end of the veth pair, in the tester's namespace."""

    def __init__(self, netns: Netns, interface: str) -> None:
        self.netns = netns
        self.interface = interface
        self.stations: list[Station] = []
        #: called with every received frame before the stations see it; a handler that
        #: returns True has consumed the frame (the emulated modems answer here)
        self.handlers: list[Callable[[Received], bool]] = []
        self.log: collections.deque[Logged] = collections.deque(maxlen=400)
        self.started_at = time.time()
        self._sock: Optional[socket.socket] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def start(self) -> Port:
        self._sock = open_station_socket(self.netns, self.interface)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self.poll)
        self.started_at = time.time()
        return self

    def close(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    def station(self, mac: Union[str, bytes], name: str, *also: Union[str, bytes]) -> Station:
        """A new address of the test system; ``also``: further addresses it answers to."""
        created = Station(self, MacAddress(mac), name, [MacAddress(a) for a in also])
        self.stations.append(created)
        return created

    # --- wire -----------------------------------------------------------------------------

    def send_raw(self, frame: bytes, station: str) -> float:
        """Send a whole frame; returns the time taken just before the send."""
        assert self._sock is not None, "start() first"
        sent = time.time()
        self._sock.send(frame)
        self.log.append(Logged(sent, "tx", station, frame, _describe_raw(frame)))
        return sent

    def poll(self) -> None:
        """Read every frame the socket holds now (the event loop calls it when readable)."""
        if self._sock is None:
            return
        for data, at in received_frames(self._sock):
            try:
                received = Received(at, data, decode_frame(data))
            except DecodeError as exc:
                received = Received(at, data, None, str(exc))
            self._dispatch(received)

    def _dispatch(self, received: Received) -> None:
        takers = [s for s in self.stations if s.accepts(received.dst)]
        self.log.append(
            Logged(
                received.at,
                "rx",
                ",".join(s.name for s in takers) or "-",
                received.raw,
                _describe(received),
            )
        )
        for handler in self.handlers:
            if handler(received):
                return
        for station in takers:
            station.put(received)

    # --- diagnostics ----------------------------------------------------------------------

    def note(self, text: str) -> None:
        """An event of the test that is not a frame (a control-pilot change), for the trace."""
        self.log.append(Logged(time.time(), "--", "tester", b"", text))

    def trace(self, last: int = 60) -> str:
        """The last frames in and out, with times relative to the test's start."""
        lines = []
        for item in list(self.log)[-last:]:
            arrow = {"rx": "<-", "tx": "->"}.get(item.direction, "==")
            lines.append(
                f"  {item.at - self.started_at:9.3f} s {arrow} {item.station:<10} {item.text}"
            )
        return "\n".join(lines) if lines else "  (no frames)"

    def since_start(self, at: float) -> float:
        return at - self.started_at


class Station:
    """One address of the test system and the frames the SUT sent to it (or broadcast)."""

    def __init__(
        self, port: Port, mac: MacAddress, name: str, also: Iterable[MacAddress] = ()
    ) -> None:
        self.port = port
        self.mac = mac
        self.name = name
        self.addresses = {bytes(mac), *(bytes(a) for a in also)}
        self._queue: collections.deque[Received] = collections.deque()
        self._arrived: Optional[asyncio.Event] = None

    def accepts(self, dst: MacAddress) -> bool:
        return bytes(dst) in self.addresses or dst.is_multicast

    def _event(self) -> asyncio.Event:
        if self._arrived is None:
            self._arrived = asyncio.Event()
        return self._arrived

    def put(self, received: Received) -> None:
        self._queue.append(received)
        self._event().set()

    @property
    def pending(self) -> int:
        """Frames received and not taken yet."""
        return len(self._queue)

    def clear(self) -> None:
        """Forget the frames received so far (the catalogue's ``port.clear``)."""
        self.port.poll()
        self._queue.clear()

    async def receive(self, until: float) -> Optional[Received]:
        """The next frame the kernel received before ``until`` (epoch seconds), or None once
        ``until`` has passed without one. Later frames stay queued."""
        arrived = self._event()
        while True:
            if self._queue:
                if self._queue[0].at <= until:
                    return self._queue.popleft()
                return None
            left = until - time.time()
            if left <= 0:
                self.port.poll()  # frames the kernel holds but the loop has not read yet
                if self._queue:
                    continue
                return None
            arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(arrived.wait(), left)

    def send(self, message: Message, dst: Union[str, bytes]) -> float:
        """Send a message from this station; returns the time just before the send."""
        return self.port.send_raw(message.to_frame(MacAddress(dst), self.mac), self.name)

    def send_raw(self, frame: bytes) -> float:
        return self.port.send_raw(frame, self.name)


def _describe(received: Received) -> str:
    if received.frame is None:
        return f"{received.name} from {received.src} to {received.dst}: {received.error}"
    return _describe_raw(received.raw)


def _describe_raw(raw: bytes) -> str:
    src, dst = MacAddress(raw[6:12]), MacAddress(raw[0:6])
    try:
        message = decode_frame(raw).message
    except DecodeError as exc:
        return f"undecodable from {src} to {dst}: {exc}"
    text = str(message)
    if len(text) > 150:
        text = text[:147] + "..."
    return f"{src} -> {dst} {text}"
