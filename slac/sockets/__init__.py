"""Raw layer-2 sockets for asyncio."""

from slac.sockets.async_linux_socket import RawSocket, interface_is_up

__all__ = ["RawSocket", "interface_is_up"]
