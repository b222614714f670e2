"""Network namespaces and veth pairs: test hosts on one Linux machine (needs root).

A raw socket belongs to the namespace it was created in, so :meth:`Netns.call` runs a
function in a thread that has entered the namespace (the library's own
:func:`~slac.sockets.namespace.call_in_netns`): sockets it opens stay there.
Everything created is removed by :meth:`Netns.delete` / :meth:`VethPair.delete` (or the
context managers), also after errors.
"""

from __future__ import annotations

import ctypes
import fcntl
import itertools
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Sequence
from typing import Callable, Optional, TypeVar

from slac.sockets.namespace import call_in_netns

T = TypeVar("T")

_counter = itertools.count()


def can_create_namespaces() -> tuple[bool, str]:
    """Whether this process can create namespaces and veth pairs, and if not, why."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces, veth pairs and raw sockets)"
    if shutil.which("ip") is None:
        return False, "needs the `ip` command (Debian package iproute2)"
    return True, ""


#: Set by a test that runs a program creating test hosts: the program's names carry this tag
#: (a letter and digits, at most 5 characters) instead of its process id, so the test can
#: tell its hosts from those of tests running beside it.
NETNS_TAG_VARIABLE = "SLAC_NETNS_TAG"


def unique_name(prefix: str) -> str:
    """A name no other test run uses at the same time (at most 15 characters)."""
    tag = os.environ.get(NETNS_TAG_VARIABLE, "")
    if not (1 <= len(tag) <= 5 and tag[0].isalpha() and tag[1:].isdigit()):
        tag = str(os.getpid() % 100000)
    return f"{prefix}{tag}x{next(_counter)}"[:15]


def ip(*args: str, netns: Optional[str] = None, check: bool = True) -> str:
    command = ["ip"] + (["-n", netns] if netns else []) + list(args)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise OSError(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return done.stdout


class Netns:
    """A network namespace, with its loopback up."""

    def __init__(self, name: Optional[str] = None) -> None:
        self.name = name or unique_name("slacns")
        self.created = False

    def create(self) -> Netns:
        ip("netns", "add", self.name)
        self.created = True
        ip("link", "set", "lo", "up", netns=self.name)
        return self

    def delete(self) -> None:
        if self.created:
            ip("netns", "delete", self.name, check=False)
            self.created = False

    def __enter__(self) -> Netns:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.delete()

    def call(self, func: Callable[[], T]) -> T:
        """Run ``func`` in a thread inside this namespace and return what it returns."""
        return call_in_netns(self.name, func)

    def command(self, args: Sequence[str]) -> list[str]:
        """``args`` run inside this namespace (for subprocess)."""
        return ["ip", "netns", "exec", self.name, *args]


class VethPair:
    """Two connected virtual Ethernet interfaces, each end optionally in a namespace."""

    def __init__(
        self,
        name_a: Optional[str] = None,
        name_b: Optional[str] = None,
        *,
        netns_a: Optional[Netns] = None,
        netns_b: Optional[Netns] = None,
        mac_a: Optional[str] = None,
        mac_b: Optional[str] = None,
        disable_ipv6: bool = True,
        ipv6_a: Optional[bool] = None,
        ipv6_b: Optional[bool] = None,
    ) -> None:
        self.name_a = name_a or unique_name("slva")
        self.name_b = name_b or unique_name("slvb")
        self.netns_a = netns_a
        self.netns_b = netns_b
        self.mac_a = mac_a
        self.mac_b = mac_b
        # IPv6 per end: off unless asked for (then without duplicate address detection, so
        # that the link-local address works at once)
        self.ipv6_a = (not disable_ipv6) if ipv6_a is None else ipv6_a
        self.ipv6_b = (not disable_ipv6) if ipv6_b is None else ipv6_b
        self.created = False

    def create(self) -> VethPair:
        args = ["link", "add", self.name_a]
        if self.mac_a:
            args += ["address", self.mac_a]
        if self.netns_a:
            args += ["netns", self.netns_a.name]
        args += ["type", "veth", "peer", "name", self.name_b]
        if self.mac_b:
            args += ["address", self.mac_b]
        if self.netns_b:
            args += ["netns", self.netns_b.name]
        ip(*args)
        self.created = True
        for name, ns, ipv6 in (
            (self.name_a, self.netns_a, self.ipv6_a),
            (self.name_b, self.netns_b, self.ipv6_b),
        ):
            nsname = ns.name if ns else None
            if ipv6:
                self._sysctl(f"net.ipv6.conf.{name}.accept_dad=0", nsname)
                self._sysctl(f"net.ipv6.conf.{name}.disable_ipv6=0", nsname)
            else:
                self._sysctl(f"net.ipv6.conf.{name}.disable_ipv6=1", nsname)
            ip("link", "set", name, "up", netns=nsname)
        return self

    @staticmethod
    def _sysctl(setting: str, netns: Optional[str]) -> None:
        command = ["sysctl", "-q", "-w", setting]
        if netns:
            command = ["ip", "netns", "exec", netns, *command]
        subprocess.run(command, capture_output=True, check=False)

    def set_up(self, end: str, up: bool) -> None:
        name, ns = (self.name_a, self.netns_a) if end == "a" else (self.name_b, self.netns_b)
        ip("link", "set", name, "up" if up else "down", netns=ns.name if ns else None)

    def delete(self) -> None:
        if self.created:
            ip(
                "link",
                "delete",
                self.name_a,
                netns=self.netns_a.name if self.netns_a else None,
                check=False,
            )
            self.created = False

    def __enter__(self) -> VethPair:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


_SIOCETHTOOL = 0x8946
_ETHTOOL_STXCSUM = 0x17  # set TX checksum offload


def disable_tx_checksum_offload(interface: str, netns: Optional[Netns] = None) -> None:
    """``ethtool -K <interface> tx off``: the kernel computes the TCP/UDP checksums of what
    the interface sends. Needed on the host ends of the virtual powerline: a veth pair hands
    the other end a frame whose checksum is left to the hardware, and the powerline, which
    moves raw frames from one modem end to another, would pass it on unfinished (the
    receiving host drops every UDP and TCP packet; ICMPv6, as ping sends it, is unaffected).
    OSError when the interface does not exist or this process may not change it."""

    def call() -> None:
        command = ctypes.create_string_buffer(struct.pack("II", _ETHTOOL_STXCSUM, 0))
        request = struct.pack("16sP", interface.encode(), ctypes.addressof(command))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock.fileno(), _SIOCETHTOOL, request)

    if netns is None:
        call()
    else:
        netns.call(call)
