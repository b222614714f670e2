"""ISO 15118-3 SLAC for asyncio."""

__version__ = "0.1.0"
