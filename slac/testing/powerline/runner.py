"""The virtual powerline's I/O: one raw socket (all EtherTypes) per modem end of a veth pair."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Optional

from slac.enums import ETH_P_ALL, PACKET_OUTGOING
from slac.testing.netns import Netns
from slac.testing.powerline.medium import Delivery, Medium

logger = logging.getLogger(__name__)


class Powerline:
    """Moves frames between the modem ends of the ports, as :class:`Medium` decides."""

    def __init__(self, medium: Medium, interfaces: list[str], netns: Optional[Netns] = None):
        if len(interfaces) != len(medium.modems):
            raise ValueError("one interface per port of the medium")
        self.medium = medium
        self.interfaces = interfaces
        self.netns = netns
        self._sockets: list[socket.socket] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def start(self) -> Powerline:
        self._loop = asyncio.get_running_loop()

        def open_all() -> list[socket.socket]:
            sockets = []
            for name in self.interfaces:
                sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                sock.bind((name, ETH_P_ALL))
                sock.setblocking(False)
                sockets.append(sock)
            return sockets

        self._sockets = self.netns.call(open_all) if self.netns else open_all()
        for port, sock in enumerate(self._sockets):
            self._loop.add_reader(sock.fileno(), self._readable, port)
        logger.info("virtual powerline up: %d ports", len(self._sockets))
        return self

    def close(self) -> None:
        for sock in self._sockets:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []

    async def __aenter__(self) -> Powerline:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def inject(self, deliveries: list[Delivery]) -> None:
        """Hand frames the medium made up itself (a restart's VS_HOST_ACTION.IND) to hosts."""
        for delivery in deliveries:
            if delivery.delay > 0 and self._loop is not None:
                self._loop.call_later(delivery.delay, self._deliver, delivery)
            else:
                self._deliver(delivery)

    def restart_modem(self, port: int) -> None:
        """Restart the modem of ``port`` (see :meth:`Medium.restart`): it loses its key,
        is away for its restart time, then sends its host VS_HOST_ACTION.IND."""
        self.inject(self.medium.restart(port))

    def power_cycle_modem(self, port: int) -> None:
        """A hardware reset of the modem of ``port``: a wedged (silent) modem comes back too."""
        self.inject(self.medium.power_cycle(port))

    def _readable(self, port: int) -> None:
        sock = self._sockets[port]
        for _ in range(64):
            try:
                data, address = sock.recvfrom(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("port %s: %s", self.interfaces[port], exc)
                return
            if address[2] == PACKET_OUTGOING:
                continue
            self.inject(self.medium.from_host(port, data))

    def _deliver(self, delivery: Delivery) -> None:
        if delivery.port >= len(self._sockets):
            return
        try:
            self._sockets[delivery.port].send(delivery.frame)
        except OSError as exc:  # a host side that went down: the frame is lost, as on a wire
            logger.debug("port %s: %s", self.interfaces[delivery.port], exc)
