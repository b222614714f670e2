"""Open sockets inside a named network namespace (``ip netns add NAME``): a socket belongs to
the namespace of the thread that created it, so :func:`call_in_netns` runs a function in a
thread that has entered the namespace and hands back what it returns (or raises)."""

from __future__ import annotations

import ctypes
import os
import threading
from typing import Callable, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000


def call_in_netns(name: str, func: Callable[[], T]) -> T:
    """Run ``func`` in a thread inside network namespace ``name`` and return what it returns."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns({name}): {os.strerror(errno)}")
            finally:
                os.close(fd)
            box["value"] = func()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
