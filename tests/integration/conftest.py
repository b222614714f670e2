"""Integration fixtures: a test host (a network namespace and a veth pair) and the scripted
peer (the EVSE's modem and an EV) on its far end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from slac.testing.netns import Netns, VethPair, can_create_namespaces
from slac.testing.peer import ScriptedPeer
from slac.utils import MacAddress

_CAN, _WHY = can_create_namespaces()


@dataclass
class Link:
    """A veth pair: ``evse_if`` in this namespace, ``peer_if`` inside ``netns``."""

    evse_if: str
    peer_if: str
    netns: Netns
    pair: VethPair
    ev_mac: MacAddress


def make_link(ev_mac: MacAddress) -> Link:
    netns = Netns().create()
    try:
        pair = VethPair(netns_b=netns, mac_b=str(ev_mac)).create()
    except BaseException:
        netns.delete()
        raise
    return Link(pair.name_a, pair.name_b, netns, pair, ev_mac)


def remove_link(link: Link) -> None:
    link.pair.delete()
    link.netns.delete()


@pytest.fixture
def link() -> Iterator[Link]:
    if not _CAN:
        pytest.skip(_WHY)
    created = make_link(MacAddress("02:00:00:00:10:01"))
    try:
        yield created
    finally:
        remove_link(created)


@pytest.fixture
async def peer(link: Link) -> AsyncIterator[ScriptedPeer]:
    scripted = await ScriptedPeer(link.netns, link.peer_if, link.ev_mac).start()
    try:
        yield scripted
    finally:
        scripted.close()
