"""A virtual powerline: one emulated GreenPHY modem per port, and the medium between them.

This module decides, without I/O, what happens to a frame a host hands its modem:

- sent to the modem itself (00:B0:52:00:00:01, or its own MAC): CM_SET_KEY.REQ sets the
  modem's network key and is confirmed (Result 0x01 as QCA modems, or as configured);
  VS_SW_VER.REQ (firmware string, device class), VS_PL_LINK_STATUS.REQ and VS_RD_MOD.REQ of
  the PIB (SLAC_EnableMode: 2 in the EVSE role, 1 in the EV role) are answered;
  VS_RS_DEV.REQ is confirmed and resets the modem (see restarts below);
- a HomePlug frame crosses the medium to every port that hears the sender (broadcast), or to
  the port whose host owns the destination (unicast; flooded while unknown);
- for every CM_MNBC_SOUND.IND, each EVSE-side modem that hears it sends its host a
  CM_ATTEN_PROFILE.IND: the port pair's attenuation, with jitter, for 58 groups;
- any other frame (IPv6, ...) crosses only between modems that hold the same NMK: the
  logical network that a successful match creates.

Modem knobs (:class:`Modem`): a silent modem (answers nothing: powered off, wedged, or no
modem on the cable), one without Qualcomm vendor answers, one that does not answer
VS_PL_LINK_STATUS or the PIB read, the CM_SET_KEY.CNF Result, the role (switchable: only an
EVSE-role modem measures sounds), profiles without data (NumGroups 0, as older QCA firmware).
:meth:`Medium.restart` restarts a modem (as a power glitch or a firmware crash would): it
forgets the key the host gave it, answers nothing for ``restart_time`` seconds, then tells
its host with VS_HOST_ACTION.IND (MACTION 0x00). A VS_RS_DEV.REQ does the same after its CNF.

Fault knobs: loss per message type (on every path, or on one path from a port to another), a
delay (with jitter, which also reorders), duplicated frames, cutting a port off the medium.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from slac.enums import (
    ETH_TYPE_HPAV,
    NUM_GROUPS,
    PIB_SLAC_ENABLE_MODE,
    PLC_LOCAL_MAC,
    RD_MOD_MODULE_PIB,
    SLAC_MODE_EVSE,
    SLAC_MODE_PEV,
    MMType,
    mmtype_name,
)
from slac.errors import DecodeError
from slac.layer_2_headers import HomePlugHeader
from slac.messages import (
    AttenProfileInd,
    Message,
    SetKeyCnf,
    SetKeyReq,
    VendorMessage,
    VsHostActionInd,
    VsHostActionRsp,
    VsPlLinkStatusCnf,
    VsPlLinkStatusReq,
    VsRdModCnf,
    VsRdModReq,
    VsRsDevCnf,
    VsRsDevReq,
    VsSwVerCnf,
    VsSwVerReq,
    decode_frame,
)
from slac.utils import MacAddress, fast_mac

EV = "ev"
EVSE = "evse"
_names: dict[int, str] = {}
#: jittered profiles drawn per pair of ports (see Medium._jittered)
PROFILE_POOL = 16
#: The firmware string of an emulated modem's VS_SW_VER.CNF (device class 0x22, QCA7000).
VIRTUAL_FIRMWARE = "MAC-QCA7000-1.2.5-virtual"
#: Size of an emulated modem's parameter block (PIB): a read beyond it is refused.
PIB_SIZE = 0x4000


@dataclass
class Modem:
    """The emulated modem of one port."""

    name: str
    #: EV or EVSE (switch it with Medium.set_role): only an EVSE-role modem measures sounds,
    #: and the PIB's SLAC_EnableMode says which (2 EVSE, 1 PEV)
    role: str
    mac: MacAddress
    nmk: bytes
    set_key_result: int = 0x01
    answer_set_key: bool = True
    cut: bool = False
    host_macs: set[bytes] = field(default_factory=set)
    keys_set: int = 0
    #: VS_SW_VER.CNF: the firmware string and MDEVICE_CLASS (0x22: QCA7000/QCA7005)
    firmware: str = VIRTUAL_FIRMWARE
    device_class: int = 0x22
    #: answers nothing the host asks (no CNF of any kind): powered off, wedged, not there
    silent: bool = False
    #: wedged firmware: answers vendor requests (VS_*) but not CM_SET_KEY, and forwards
    #: nothing between stations, until it restarts (VS_RS_DEV.REQ, a power cycle)
    wedged: bool = False
    #: answers Qualcomm vendor requests (VS_*); False: a modem of another vendor
    vendor_answers: bool = True
    answer_link_status: bool = True
    answer_pib_read: bool = True
    #: CM_ATTEN_PROFILE.IND with NUM_GROUPS values (True) or NumGroups 0 (older QCA firmware)
    profile_data: bool = True
    #: seconds a restart (or a VS_RS_DEV reset) keeps the modem from answering
    restart_time: float = 0.2
    #: tell the host with VS_HOST_ACTION.IND once restarted (as QCA firmware does)
    announce_restart: bool = True
    #: clock time until which the modem restarts (answers and forwards nothing)
    down_until: float = 0.0
    restarts: int = 0
    resets: int = 0
    #: requests the modem was asked, by name (VS_SW_VER.REQ, ...), answered or not
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def isolated(self) -> bool:
        """Hears and forwards nothing between stations (cut off, or wedged)."""
        return self.cut or self.wedged

    @property
    def slac_mode(self) -> int:
        """The PIB's SLAC_EnableMode: 2 in the EVSE role, 1 in the EV (PEV) role."""
        return SLAC_MODE_EVSE if self.role == EVSE else SLAC_MODE_PEV

    def pib(self, offset: int, length: int) -> Optional[bytes]:
        """``length`` bytes of the parameter block at ``offset``; None beyond its end."""
        if offset + length > PIB_SIZE:
            return None
        data = bytearray(length)
        if offset <= PIB_SLAC_ENABLE_MODE < offset + length:
            data[PIB_SLAC_ENABLE_MODE - offset] = self.slac_mode
        return bytes(data)

    @property
    def host_mac(self) -> MacAddress:
        """Where this modem's own messages go: its host, once it has sent anything."""
        for mac in self.host_macs:
            return MacAddress(mac)
        return MacAddress(b"\xff" * 6)


@dataclass
class Faults:
    """Fault injection: loss probability per message name (or "*"); a delay in seconds, plus
    up to ``delay_jitter`` seconds drawn per delivery (which also shuffles the order in which
    ports hear the same frame).

    ``link_loss`` adds loss on one path only, keyed by (sending port, receiving port), with
    the same message names (e.g. a crosstalk path on which one EVSE's unicasts to a
    neighbour's car never arrive); it comes on top of ``loss``. ``link_drop`` loses the next
    so many frames of a name on one path (then none), e.g. only the first of a resent IND."""

    loss: dict[str, float] = field(default_factory=dict)
    delay: float = 0.0
    delay_jitter: float = 0.0
    #: share of HomePlug frames delivered twice
    duplicate: float = 0.0
    link_loss: dict[tuple[int, int], dict[str, float]] = field(default_factory=dict)
    link_drop: dict[tuple[int, int], dict[str, int]] = field(default_factory=dict)

    def duplicated(self, rng: random.Random) -> bool:
        return self.duplicate > 0 and rng.random() < self.duplicate

    def draw_delay(self, rng: random.Random) -> float:
        if self.delay_jitter <= 0:
            return self.delay
        return self.delay + rng.uniform(0.0, self.delay_jitter)

    def lost(self, name: str, rng: random.Random) -> bool:
        rate = self.loss.get(name, self.loss.get("*", 0.0))
        return rate > 0 and rng.random() < rate

    def lost_between(self, src: int, dst: int, name: str, rng: random.Random) -> bool:
        """Whether a frame from port ``src`` to port ``dst`` is lost: on that path, or as
        any frame of its name."""
        drops = self.link_drop.get((src, dst)) if self.link_drop else None
        if drops and drops.get(name, 0) > 0:
            drops[name] -= 1
            return True
        path = self.link_loss.get((src, dst)) if self.link_loss else None
        if path:
            rate = path.get(name, path.get("*", 0.0))
            if rate >= 1.0 or (rate > 0 and rng.random() < rate):
                return True
        return self.lost(name, rng)


@dataclass(frozen=True)
class Delivery:
    """A frame to hand to the host of port ``port`` (after ``delay`` seconds)."""

    port: int
    frame: bytes
    delay: float = 0.0


class Medium:
    """The ports, who hears whom (and how well), and the forwarding rules.

    ``default_attenuation`` applies to every pair of ports not given one with
    :meth:`set_attenuation`; None: such ports do not hear each other."""

    def __init__(
        self,
        *,
        default_attenuation: Optional[float] = 20.0,
        jitter: float = 1.0,
        seed: Optional[int] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.modems: list[Modem] = []
        #: the time of restarts (Modem.down_until); the runner's loop uses the same clock
        self.clock = clock
        self.attenuation: dict[tuple[int, int], Optional[float]] = {}
        self.default_attenuation = default_attenuation
        self.jitter = jitter
        self.faults = Faults()
        self.rng = random.Random(seed)
        self.counters: dict[str, int] = {}
        self.last_error = ""
        #: who each port can hear at all (before cuts); rebuilt after topology changes
        self._audible: dict[int, list[int]] = {}
        #: jittered attenuation profiles per (sounding port, measuring port, dB): drawn once,
        #: then picked at random (a car park's worth of sounds costs little CPU)
        self._profile_pool: dict[tuple[int, int, float], list[tuple[int, ...]]] = {}

    def add_port(self, name: str, role: str, *, mac: Optional[MacAddress] = None) -> int:
        if role not in (EV, EVSE):
            raise ValueError(f"a port is {EV!r} or {EVSE!r}, not {role!r}")
        index = len(self.modems)
        modem_mac = mac or MacAddress(bytes([0x00, 0xB0, 0x52, 0xF0, index >> 8, index & 0xFF]))
        self.modems.append(Modem(name, role, modem_mac, nmk=self.rng.randbytes(16)))
        self._audible.clear()
        return index

    def set_role(self, port: int, role: str) -> None:
        """Switch a modem between the EVSE and the EV role (as rewriting its PIB would)."""
        if role not in (EV, EVSE):
            raise ValueError(f"a modem's role is {EV!r} or {EVSE!r}, not {role!r}")
        self.modems[port].role = role

    def restart(self, port: int) -> list[Delivery]:
        """Restart the modem of ``port``: it forgets the key its host gave it (back to a key
        of its own), answers and forwards nothing for its ``restart_time``, then sends its
        host VS_HOST_ACTION.IND (unless ``announce_restart`` is off). Returns that frame,
        delayed by the restart time, for the runner to deliver."""
        modem = self.modems[port]
        modem.nmk = self.rng.randbytes(16)
        modem.wedged = False
        modem.restarts += 1
        modem.down_until = self.clock() + modem.restart_time
        self._count("modem restart")
        if not modem.announce_restart:
            return []
        frame = VsHostActionInd(action=0x00).to_frame(modem.host_mac, modem.mac)
        return [Delivery(port, frame, modem.restart_time)]

    def power_cycle(self, port: int) -> list[Delivery]:
        """A hardware reset (the reset line, or power): also a wedged (silent) modem comes
        back, after a restart (see :meth:`restart`)."""
        self.modems[port].silent = False
        return self.restart(port)

    def down(self, port: int) -> bool:
        """Whether the modem of ``port`` is restarting now."""
        until = self.modems[port].down_until
        return until > 0 and self.clock() < until

    def set_attenuation(self, a: int, b: int, db: Optional[float]) -> None:
        """Attenuation between two ports in dB (symmetric); None: they do not hear each other."""
        self.attenuation[(a, b)] = db
        self.attenuation[(b, a)] = db
        self._audible.clear()

    def attenuation_between(self, a: int, b: int) -> Optional[float]:
        return self.attenuation.get((a, b), self.default_attenuation)

    def hears(self, a: int, b: int) -> bool:
        if a == b or self.modems[a].isolated or self.modems[b].isolated:
            return False
        return self.attenuation_between(a, b) is not None

    def audible(self, port: int) -> list[int]:
        """The ports that hear ``port`` now (cut modems excluded)."""
        heard = self._audible.get(port)
        if heard is None:
            heard = [
                p
                for p in range(len(self.modems))
                if p != port and self.attenuation_between(port, p) is not None
            ]
            self._audible[port] = heard
        if self.modems[port].isolated:
            return []
        modems = self.modems
        return [p for p in heard if not modems[p].isolated]

    def linked(self, port: int) -> bool:
        """Whether this modem shares its network key with another modem it hears."""
        me = self.modems[port]
        return any(self.modems[other].nmk == me.nmk for other in self.audible(port))

    def _count(self, what: str) -> None:
        self.counters[what] = self.counters.get(what, 0) + 1

    # --- a frame from the host of ``port`` --------------------------------------------------

    def from_host(self, port: int, data: bytes) -> list[Delivery]:
        if len(data) < 14:
            return []
        modem = self.modems[port]
        src = data[6:12]
        if not src[0] & 1:
            modem.host_macs.add(bytes(src))
        if int.from_bytes(data[12:14], "big") != ETH_TYPE_HPAV:
            return self._data_frame(port, data)
        if modem.down_until and self.down(port):
            self._count("lost: modem restarting")
            return []
        dst = fast_mac(data[0:6])
        if dst == PLC_LOCAL_MAC or dst == modem.mac:  # to this modem: the only frames it reads
            try:
                frame = decode_frame(data)
            except DecodeError as exc:
                self._count("undecodable")
                self.last_error = str(exc)
                return []
            return self._local_request(port, frame.message, frame.src)
        # Between stations the medium reads only the header, as a modem forwards what it
        # does not understand.
        try:
            mmtype = HomePlugHeader.unpack(data).mmtype
        except DecodeError as exc:
            self._count("undecodable")
            self.last_error = str(exc)
            return []
        if modem.isolated:
            return []
        name = _names.get(mmtype) or _names.setdefault(mmtype, mmtype_name(mmtype))
        deliveries: list[Delivery] = []
        targets = self._targets(port, dst)
        sound = mmtype == MMType.CM_MNBC_SOUND_IND and modem.role == EV
        heard = []
        for target in targets:
            if self.faults.lost_between(port, target, name, self.rng):
                self._count(f"lost {name}")
                continue  # a lost sound is not measured either
            heard.append(target)
            for _ in range(2 if self.faults.duplicated(self.rng) else 1):
                deliveries.append(Delivery(target, data, self.faults.draw_delay(self.rng)))
        if sound:
            deliveries.extend(self._profiles(port, fast_mac(data[6:12]), heard))
        self._count(name)
        return deliveries

    def _targets(self, port: int, dst: MacAddress) -> list[int]:
        others = self.audible(port)
        if dst.is_multicast:
            return others
        owners = [p for p in others if bytes(dst) in self.modems[p].host_macs]
        return owners or others

    def _profiles(self, port: int, pev_mac: MacAddress, heard: list[int]) -> list[Delivery]:
        out = []
        for target in heard:
            modem = self.modems[target]
            if modem.role != EVSE or modem.silent or (modem.down_until and self.down(target)):
                continue
            if self.faults.lost("CM_ATTEN_PROFILE.IND", self.rng):
                self._count("lost CM_ATTEN_PROFILE.IND")
                continue
            base = self.attenuation_between(port, target)
            assert base is not None
            aag = self._jittered(port, target, base) if modem.profile_data else ()
            profile = AttenProfileInd(pev_mac=pev_mac, aag=aag)
            frame = profile.to_frame(modem.host_mac, modem.mac)
            out.append(Delivery(target, frame, self.faults.draw_delay(self.rng)))
        return out

    def _jittered(self, port: int, target: int, base: float) -> tuple[int, ...]:
        """One of PROFILE_POOL profiles around ``base`` dB, each group jittered by up to
        ``jitter`` dB."""
        key = (port, target, base)
        pool = self._profile_pool.get(key)
        if pool is None:
            pool = [
                tuple(
                    max(0, min(255, round(base + self.rng.uniform(-self.jitter, self.jitter))))
                    for _ in range(NUM_GROUPS)
                )
                for _ in range(PROFILE_POOL)
            ]
            self._profile_pool[key] = pool
        return pool[self.rng.randrange(PROFILE_POOL)]

    def _data_frame(self, port: int, data: bytes) -> list[Delivery]:
        """Non-HomePlug traffic crosses only inside a logical network (same NMK)."""
        modem = self.modems[port]
        if modem.isolated:
            return []
        dst = data[0:6]
        targets = [p for p in self.audible(port) if self.modems[p].nmk == modem.nmk]
        if not dst[0] & 1:
            owners = [p for p in targets if bytes(dst) in self.modems[p].host_macs]
            targets = owners or targets
        self._count("data" if targets else "data dropped (no logical network)")
        return [Delivery(p, data, self.faults.draw_delay(self.rng)) for p in targets]

    def _local_request(self, port: int, message: object, host: MacAddress) -> list[Delivery]:
        modem = self.modems[port]
        if not isinstance(message, Message):
            return []
        modem.requests[message.name] = modem.requests.get(message.name, 0) + 1
        if modem.silent:
            self._count("unanswered (silent modem)")
            return []
        if isinstance(message, VendorMessage) and not modem.vendor_answers:
            return []
        after: list[Delivery] = []
        reply: Optional[Message]
        if isinstance(message, SetKeyReq):
            if not modem.answer_set_key or modem.wedged:
                return []
            modem.nmk = message.new_key
            modem.keys_set += 1
            self._count("CM_SET_KEY.REQ")
            reply = SetKeyCnf(result=modem.set_key_result)
        elif isinstance(message, VsSwVerReq):
            reply = VsSwVerCnf(version=modem.firmware, device_class=modem.device_class)
        elif isinstance(message, VsPlLinkStatusReq):
            if not modem.answer_link_status:
                return []
            reply = VsPlLinkStatusCnf(link_status=1 if self.linked(port) else 0)
        elif isinstance(message, VsRdModReq):
            reply = self._pib_read(modem, message)
        elif isinstance(message, VsRsDevReq):
            modem.resets += 1
            reply = VsRsDevCnf(status=0)
            after = self.restart(port)
        elif isinstance(message, VsHostActionRsp):
            self._count("VS_HOST_ACTION.RSP")
            reply = None
        else:
            reply = None
        out = [] if reply is None else [Delivery(port, reply.to_frame(host, modem.mac))]
        return out + after

    def _pib_read(self, modem: Modem, request: VsRdModReq) -> Optional[Message]:
        if not modem.answer_pib_read:
            return None
        data = modem.pib(request.offset, request.length)
        if request.module_id != RD_MOD_MODULE_PIB or data is None:
            return VsRdModCnf(
                status=0x14, module_id=request.module_id, offset=request.offset, data=b""
            )
        return VsRdModCnf(offset=request.offset, data=data, checksum=pib_checksum(data))


def pib_checksum(data: bytes) -> int:
    """The 32-bit checksum of a PIB block as Qualcomm's tools compute it: the XOR of the
    little-endian 32-bit words (zero-padded), inverted."""
    padded = data + bytes(-len(data) % 4)
    value = 0
    for i in range(0, len(padded), 4):
        value ^= int.from_bytes(padded[i : i + 4], "little")
    return ~value & 0xFFFFFFFF
