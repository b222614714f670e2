"""EV simulator built on scapy: runs the whole EV side of SLAC and checks every answer.

    python examples/ev_slac_scapy.py --iface IFACE [--mode direct|powerline] [--ev-mac MAC]

Frames are built and read with scapy's HomePlug layers (scapy.contrib.homeplugav and
homepluggp), independently of this library's codecs. Every frame from the EVSE is checked:
message type, RunID, MAC addresses, field values, order and timing (ISO 15118-3 timers).
The run ends with PASS or FAIL and the reason; the exit code is 0 on PASS.

Modes:
- ``powerline``: a GreenPHY modem (or the virtual powerline) sits between EV and EVSE. The
  simulator sets its own modem's key (CM_SET_KEY) before and after matching.
- ``direct`` (default): a link straight to the EVSE host (a veth pair, or the same
  interface with ``--ev-mac`` set to another MAC). The simulator also plays the EVSE's
  modem: it confirms the EVSE's CM_SET_KEY.REQ and sends a CM_ATTEN_PROFILE.IND after every
  sound.

Raw sockets need root or CAP_NET_RAW (``sudo make run-ev-slac``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import select
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any, Optional

from scapy.contrib.homeplugav import HomePlugAV
from scapy.contrib.homepluggp import (
    CM_ATTEN_CHAR_IND,
    CM_ATTEN_CHAR_RSP,
    CM_ATTENUATION_CHARACTERISTICS_MME,
    CM_MNBC_SOUND_IND,
    CM_SET_KEY_CNF,
    CM_SET_KEY_REQ,
    CM_SLAC_MATCH_CNF,
    CM_SLAC_MATCH_REQ,
    CM_SLAC_PARM_CNF,
    CM_SLAC_PARM_REQ,
    CM_START_ATTEN_CHAR_IND,
    HPGP_GROUP,
    SLAC_varfield,
)
from scapy.layers.l2 import Ether

ETH_P_HPAV = 0x88E1
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003
BROADCAST = "ff:ff:ff:ff:ff:ff"
LOCALCAST = "00:b0:52:00:00:01"
FAKE_MODEM = "00:b0:52:5c:a9:01"

# ISO 15118-3 timers and counts (seconds)
TT_MATCH_RESPONSE = 0.2
TT_EV_ATTEN_RESULTS = 1.2
TP_EV_BATCH_MSG_INTERVAL = 0.02
C_EV_MATCH_RETRY = 2
NUM_SOUNDS = 10
NUM_GROUPS = 58


class Fail(Exception):
    """A check failed: the reason says what was expected and what came."""


def mac_text(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def hpav(mmtype: int, payload: Any, dst: str, src: str) -> bytes:
    frame = Ether(dst=dst, src=src, type=ETH_P_HPAV) / HomePlugAV(version=1, HPtype=mmtype)
    data = bytes(frame / payload)
    return data + bytes(max(0, 60 - len(data)))


def nid_of(nmk: bytes) -> bytes:
    """HomePlug AV NID of an NMK (security level 0), for checking CM_SLAC_MATCH.CNF."""
    import hashlib

    digest = hashlib.sha256(nmk).digest()
    for _ in range(4):
        digest = hashlib.sha256(digest).digest()
    return digest[:6] + bytes([digest[6] >> 4])


class Link:
    """A raw socket on the interface, with the EV's MAC and the modem emulation."""

    def __init__(self, iface: str, ev_mac: Optional[str], direct: bool, atten: int) -> None:
        # Every protocol (ETH_P_ALL): only such sockets see frames that another program sends
        # on this interface, which --ev-mac on the EVSE's own interface needs.
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise SystemExit(
                f"error: opening a raw socket on {iface} needs root or CAP_NET_RAW; "
                "try `sudo make run-ev-slac`"
            ) from None
        try:
            self.sock.bind((iface, ETH_P_ALL))
        except OSError as exc:
            raise SystemExit(f"error: cannot use interface {iface!r}: {exc.strerror}") from None
        self.iface_mac = mac_text(self.sock.getsockname()[4][:6])
        self.ev_mac = (ev_mac or self.iface_mac).lower()
        self.direct = direct
        self.atten = atten
        self.evse_mac: Optional[str] = None
        self.set_keys_answered = 0

    def send(self, data: bytes) -> None:
        self.sock.send(data)

    def recv(self, timeout: float) -> Optional[Any]:
        """The next HomePlug frame for the EV (None at the timeout); modem duties done inline."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], remaining)
            if not ready:
                return None
            data, address = self.sock.recvfrom(2048)
            if data[12:14] != ETH_P_HPAV.to_bytes(2, "big"):
                continue
            src = mac_text(data[6:12])
            if src == self.ev_mac or (address[2] == PACKET_OUTGOING and src == FAKE_MODEM):
                continue  # our own frames
            packet = Ether(data)
            if self.direct and packet.haslayer(CM_SET_KEY_REQ) and packet.dst == LOCALCAST:
                reply = CM_SET_KEY_CNF(Result=1, MyNonce=0, YourNonce=0xAAAAAAAA, PID=4)
                self.send(hpav(0x6009, reply, packet.src, FAKE_MODEM))
                self.set_keys_answered += 1
                continue
            if packet.dst.lower() not in (self.ev_mac, BROADCAST):
                continue
            return packet

    def profile_to_evse(self) -> None:
        if self.direct and self.evse_mac:
            groups = [HPGP_GROUP(group=self.atten) for _ in range(NUM_GROUPS)]
            profile = CM_ATTENUATION_CHARACTERISTICS_MME(EVMACAddress=self.ev_mac, Groups=groups)
            self.send(hpav(0x6086, profile, self.evse_mac, FAKE_MODEM))


def expect(link: Link, layer: Any, timeout: float, what: str) -> tuple[Any, float]:
    """The next frame carrying ``layer`` within ``timeout``; other SLAC frames are checked."""
    started = time.monotonic()
    while True:
        packet = link.recv(timeout - (time.monotonic() - started))
        if packet is None:
            raise Fail(f"no {what} within {timeout * 1000:.0f} ms")
        if packet.haslayer(layer):
            return packet, time.monotonic() - started
        if layer is not CM_SLAC_PARM_CNF and packet.haslayer(CM_SLAC_PARM_CNF):
            continue  # the EVSE confirms each CM_START_ATTEN_CHAR.IND again (CONFIRM_ON_START)
        if packet.haslayer(HomePlugAV) and packet.dst.lower() == link.ev_mac:
            raise Fail(f"expected {what}, got {packet[HomePlugAV].summary()}")


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Fail(message)


def set_own_key(link: Link, nmk: bytes, nid: bytes) -> None:
    request = CM_SET_KEY_REQ(
        KeyType=1, MyNonce=0xAAAAAAAA, PID=4, NetworkID=nid, NewEncKeySelect=1, NewKey=nmk
    )
    link.send(hpav(0x6008, request, LOCALCAST, link.ev_mac))
    expect(link, CM_SET_KEY_CNF, 1.0, "CM_SET_KEY.CNF from the EV's modem")


def run(link: Link, wait: float) -> str:
    """The EV's side of SLAC; returns a summary, raises Fail with the reason."""
    ev = link.ev_mac
    if not link.direct:
        nmk = secrets.token_bytes(16)
        set_own_key(link, nmk, nid_of(nmk))  # leave any logical network
    run_id = secrets.token_bytes(8)
    print(f"EV {ev}: RunID {run_id.hex()}, looking for an EVSE for up to {wait:.0f} s")

    # 1. CM_SLAC_PARM.REQ until an EVSE answers (an EVSE still starting up may miss some)
    give_up = time.monotonic() + wait
    cnf = None
    while cnf is None and time.monotonic() < give_up:
        link.send(hpav(0x6064, CM_SLAC_PARM_REQ(RunID=run_id), BROADCAST, ev))
        try:
            cnf, took = expect(link, CM_SLAC_PARM_CNF, TT_MATCH_RESPONSE, "CM_SLAC_PARM.CNF")
        except Fail:
            continue
    if cnf is None:
        raise Fail(f"no CM_SLAC_PARM.CNF within {wait:.0f} s")
    parm = cnf[CM_SLAC_PARM_CNF]
    link.evse_mac = cnf.src.lower()
    check(cnf.dst.lower() == ev, f"CM_SLAC_PARM.CNF sent to {cnf.dst}, not unicast to the EV")
    check(parm.RunID == run_id, f"CM_SLAC_PARM.CNF RunID {parm.RunID.hex()} != {run_id.hex()}")
    check(
        parm.MSoundTargetMAC.lower() == BROADCAST,
        f"M-SOUND_TARGET {parm.MSoundTargetMAC}, expected {BROADCAST}",
    )
    check(parm.NumberMSounds == NUM_SOUNDS, f"NUM_SOUNDS {parm.NumberMSounds}, expected 10")
    check(parm.TimeOut == 6, f"Time_Out {parm.TimeOut}, expected 6")
    check(parm.ResponseType == 1, f"RESP_TYPE {parm.ResponseType}, expected 1")
    check(parm.ForwardingSTA.lower() == ev, f"FORWARDING_STA {parm.ForwardingSTA} != EV {ev}")
    check(parm.ApplicationType == 0 and parm.SecurityType == 0, "application/security type")
    print(f"  CM_SLAC_PARM.CNF from EVSE {link.evse_mac} after {took * 1000:.1f} ms: ok")

    # 2. Three CM_START_ATTEN_CHAR.IND, then the sounds
    start = CM_START_ATTEN_CHAR_IND(
        NumberOfSounds=NUM_SOUNDS, TimeOut=6, ResponseType=1, ForwardingSTA=ev, RunID=run_id
    )
    first_start = time.monotonic()
    for _ in range(3):
        link.send(hpav(0x606A, start, BROADCAST, ev))
        time.sleep(TP_EV_BATCH_MSG_INTERVAL)
    for i in range(NUM_SOUNDS):
        sound = CM_MNBC_SOUND_IND(
            Countdown=NUM_SOUNDS - 1 - i, RunID=run_id, RandomValue=secrets.token_bytes(16)
        )
        link.send(hpav(0x6076, sound, BROADCAST, ev))
        link.profile_to_evse()
        time.sleep(TP_EV_BATCH_MSG_INTERVAL)
    print(f"  sent 3 CM_START_ATTEN_CHAR.IND and {NUM_SOUNDS} CM_MNBC_SOUND.IND")

    # 3. CM_ATTEN_CHAR.IND within TT_EV_atten_results of the first start indication
    left = TT_EV_ATTEN_RESULTS - (time.monotonic() - first_start)
    ind_packet, _ = expect(link, CM_ATTEN_CHAR_IND, max(left, 0.0), "CM_ATTEN_CHAR.IND")
    ind = ind_packet[CM_ATTEN_CHAR_IND]
    check(ind_packet.src.lower() == link.evse_mac, "CM_ATTEN_CHAR.IND from another EVSE")
    check(ind.RunID == run_id, f"CM_ATTEN_CHAR.IND RunID {ind.RunID.hex()} != {run_id.hex()}")
    check(ind.SourceAdress.lower() == ev, f"SOURCE_ADDRESS {ind.SourceAdress} != EV {ev}")
    check(1 <= ind.NumberOfSounds <= NUM_SOUNDS, f"NUM_SOUNDS {ind.NumberOfSounds}")
    check(ind.NumberOfGroups == NUM_GROUPS, f"NumGroups {ind.NumberOfGroups}, expected 58")
    aag = [g.group for g in ind.Groups]
    average = sum(aag) / len(aag)
    if link.direct:
        check(
            all(v == link.atten for v in aag),
            f"averages {sorted(set(aag))} differ from the {link.atten} dB sent",
        )
    elapsed = time.monotonic() - first_start
    print(
        f"  CM_ATTEN_CHAR.IND after {elapsed * 1000:.0f} ms: {ind.NumberOfSounds} sounds, "
        f"average {average:.1f} dB: ok"
    )
    rsp = CM_ATTEN_CHAR_RSP(SourceAdress=ev, RunID=run_id, Result=0)
    link.send(hpav(0x606F, rsp, link.evse_mac, ev))

    # 4. CM_SLAC_MATCH.REQ, resent up to C_EV_match_retry times
    request = CM_SLAC_MATCH_REQ(
        VariableField=SLAC_varfield(EVMAC=ev, EVSEMAC=link.evse_mac, RunID=run_id)
    )
    match = None
    for _ in range(1 + C_EV_MATCH_RETRY):
        link.send(hpav(0x607C, request, link.evse_mac, ev))
        try:
            match, took = expect(link, CM_SLAC_MATCH_CNF, TT_MATCH_RESPONSE, "CM_SLAC_MATCH.CNF")
            break
        except Fail as exc:
            last = exc
    if match is None:
        raise last
    field = match[CM_SLAC_MATCH_CNF].VariableField
    check(match.dst.lower() == ev, "CM_SLAC_MATCH.CNF not unicast to the EV")
    check(match[CM_SLAC_MATCH_CNF].MatchVariableFieldLen == 0x56, "MVFLength != 0x56")
    check(field.RunID == run_id, "CM_SLAC_MATCH.CNF RunID differs")
    check(
        field.EVMAC.lower() == ev and field.EVSEMAC.lower() == link.evse_mac,
        "CM_SLAC_MATCH.CNF MAC addresses differ",
    )
    check(len(field.NMK) == 16 and len(field.NetworkID) == 7, "NID/NMK sizes")
    check(nid_of(field.NMK) == field.NetworkID, "the NID is not the one of the NMK")
    print(f"  CM_SLAC_MATCH.CNF after {took * 1000:.1f} ms: NID {field.NetworkID.hex()}: ok")
    if not link.direct:
        set_own_key(link, field.NMK, field.NetworkID)
        print("  the EV's modem joined the EVSE's logical network")
    return f"matched EVSE {link.evse_mac} (average attenuation {average:.1f} dB)"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--iface",
        default=os.environ.get("EV_IFACE", "eth0"),
        help="interface to the EVSE or to the EV's modem (default eth0)",
    )
    parser.add_argument("--mode", choices=("direct", "powerline"), default="direct")
    parser.add_argument("--ev-mac", help="source MAC of the EV (default: the interface's)")
    parser.add_argument(
        "--attenuation",
        type=int,
        default=20,
        help="dB in the profiles sent in direct mode (default 20)",
    )
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to keep asking for an EVSE (default 30)"
    )
    args = parser.parse_args(argv)
    link = Link(args.iface, args.ev_mac, args.mode == "direct", args.attenuation)
    try:
        summary = run(link, args.wait)
    except Fail as exc:
        print(f"FAIL: {exc}")
        return 1
    except KeyboardInterrupt:
        print("FAIL: interrupted")
        return 130
    print(f"PASS: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
