"""Test hosts around a virtual powerline: namespaces and veth pairs for N EVs and M EVSEs.

    with Topology(evs=3, evses=3) as topo:
        topo.evse_interfaces   # EVSE host ends, in this namespace (one EVSE process serves all)
        topo.ev_netns[i]       # each EV host in its own namespace, interface topo.ev_interface
        topo.plc_netns         # the modem ends, where the powerline runs

Everything is removed by :meth:`Topology.delete`, also when creation failed half-way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Optional

from slac.testing.netns import Netns, VethPair, disable_tx_checksum_offload, ip, unique_name
from slac.testing.powerline.medium import EV, EVSE, Medium
from slac.utils import MacAddress


@dataclass(frozen=True)
class HostPort:
    role: str
    host_interface: str
    host_netns: Optional[Netns]
    modem_interface: str
    host_mac: MacAddress

    def link_local(self) -> str:
        """The host's IPv6 link-local address (EUI-64 from its MAC)."""
        mac = bytearray(self.host_mac)
        mac[0] ^= 0x02
        eui = mac[:3] + b"\xff\xfe" + mac[3:]
        groups = [f"{eui[i] << 8 | eui[i + 1]:x}" for i in range(0, 8, 2)]
        return "fe80::" + ":".join(groups)


class Topology:
    """EVSE host interfaces (in this namespace or ``evse_netns``), one namespace per EV."""

    ev_interface = "plc0"

    def __init__(self, evs: int, evses: int, *, evse_netns: bool = False) -> None:
        self.n_evs = evs
        self.n_evses = evses
        self.use_evse_netns = evse_netns
        self.plc_netns = Netns(unique_name("slacplc"))
        self.evse_netns: Optional[Netns] = Netns(unique_name("slacevse")) if evse_netns else None
        self.ev_netns = [Netns(unique_name("slacev")) for _ in range(evs)]
        self.pairs: list[VethPair] = []
        self.ports: list[HostPort] = []

    @property
    def evse_ports(self) -> list[HostPort]:
        return [p for p in self.ports if p.role == EVSE]

    @property
    def ev_ports(self) -> list[HostPort]:
        return [p for p in self.ports if p.role == EV]

    @property
    def evse_interfaces(self) -> list[str]:
        return [p.host_interface for p in self.evse_ports]

    def create(self) -> Topology:
        try:
            self.plc_netns.create()
            if self.evse_netns:
                self.evse_netns.create()
            for ns in self.ev_netns:
                ns.create()
            for j in range(self.n_evses):
                mac = MacAddress(bytes([0x02, 0x00, 0x00, 0xE5, 0x00, j]))
                name = unique_name("se") if self.evse_netns is None else f"evse{j}"
                self._add(EVSE, name, self.evse_netns, f"mse{j}", mac)
            for i, ns in enumerate(self.ev_netns):
                mac = MacAddress(bytes([0x02, 0x00, 0x00, 0xEF, 0x00, i]))
                self._add(EV, self.ev_interface, ns, f"mev{i}", mac)
        except BaseException:
            self.delete()
            raise
        return self

    def _add(
        self, role: str, host_if: str, host_ns: Optional[Netns], modem_if: str, mac: MacAddress
    ) -> None:
        pair = VethPair(
            host_if,
            modem_if,
            netns_a=host_ns,
            netns_b=self.plc_netns,
            mac_a=str(mac),
            ipv6_a=True,
            ipv6_b=False,
        )
        self.pairs.append(pair)
        pair.create()
        # the powerline moves raw frames between modem ends: a checksum left to the hardware
        # would arrive unfinished and the receiving host would drop every UDP and TCP packet
        disable_tx_checksum_offload(host_if, host_ns)
        ip("link", "set", modem_if, "promisc", "on", netns=self.plc_netns.name)
        self.ports.append(HostPort(role, host_if, host_ns, modem_if, mac))

    def medium(
        self,
        *,
        attenuation: float = 20.0,
        crosstalk: Optional[float] = None,
        cluster: Optional[int] = None,
        jitter: float = 1.0,
        seed: Optional[int] = None,
    ) -> Medium:
        """A medium with one port per host; see :func:`site_medium`."""
        return site_medium(
            [p.role for p in self.ports],
            attenuation=attenuation,
            crosstalk=crosstalk,
            cluster=cluster,
            jitter=jitter,
            seed=seed,
        )

    def modem_interfaces(self) -> list[str]:
        return [p.modem_interface for p in self.ports]

    async def run_in_ev(self, i: int, args: list[str], timeout: float = 30.0) -> tuple[int, str]:
        """Run a command on EV host ``i`` (inside its namespace) without blocking the loop
        (the powerline may run in the same loop). Returns the exit code and the output."""
        process = await asyncio.create_subprocess_exec(
            *self.ev_netns[i].command(args),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            raise
        return process.returncode if process.returncode is not None else -1, output.decode()

    async def ping_evse(self, ev: int, evse: int, count: int = 2) -> bool:
        """Whether EV host ``ev`` reaches EVSE host ``evse`` over IPv6 link-local."""
        address = f"{self.evse_ports[evse].link_local()}%{self.ev_interface}"
        code, _ = await self.run_in_ev(ev, ["ping", "-6", "-c", str(count), "-W", "1", address])
        return code == 0

    def delete(self) -> None:
        for pair in self.pairs:
            if pair.netns_a is None:
                pair.delete()
        self.pairs = []
        for ns in [*self.ev_netns, self.plc_netns, self.evse_netns]:
            if ns is not None:
                ns.delete()

    def __enter__(self) -> Topology:
        return self.create()

    def __exit__(self, *exc_info: object) -> None:
        self.delete()


def site_medium(
    roles: list[str],
    *,
    attenuation: float = 20.0,
    crosstalk: Optional[float] = None,
    cluster: Optional[int] = None,
    jitter: float = 1.0,
    seed: Optional[int] = None,
) -> Medium:
    """A medium for ports of the given roles (EV or EVSE, in port order). The i-th EV and
    the i-th EVSE hear each other at ``attenuation`` dB; another EV/EVSE pair at
    ``crosstalk`` dB (None: not at all).

    With ``cluster``, a charge point's EVSE and EV are in group i // cluster; an EV hears
    only the EVSEs of its group (its own at ``attenuation``, the others at ``crosstalk``),
    and hosts of the same role do not hear each other (a car park of separate feeds, where
    crosstalk couples neighbouring charge cables)."""
    medium = Medium(default_attenuation=attenuation, jitter=jitter, seed=seed)
    for port, role in enumerate(roles):
        medium.add_port(f"port{port}", role)
    evse_index = [i for i, role in enumerate(roles) if role == EVSE]
    ev_index = [i for i, role in enumerate(roles) if role == EV]
    if cluster is not None:  # nothing crosses between clusters, whatever the roles
        group = {port: n // cluster for n, port in enumerate(evse_index)}
        group.update({port: n // cluster for n, port in enumerate(ev_index)})
        for p in range(len(roles)):
            for q in range(p + 1, len(roles)):
                if group[p] != group[q] or roles[p] == roles[q]:
                    medium.set_attenuation(p, q, None)
    for a, ev in enumerate(ev_index):
        for b, evse in enumerate(evse_index):
            if a == b:
                continue
            neighbours = cluster is None or a // cluster == b // cluster
            medium.set_attenuation(ev, evse, crosstalk if neighbours else None)
    return medium
