"""Independent readers agree with our codecs: scapy's HomePlug layers and Wireshark's dissector.

scapy decodes what we build and we decode what scapy builds. Every SLAC message we build is
written to a pcap and dissected by ``tshark`` (Debian package ``tshark``; CI installs it),
which must name the message and read the same field values.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slac.messages import (
    AmpMapReq,
    AttenCharInd,
    AttenCharRsp,
    AttenProfileInd,
    Message,
    MnbcSoundInd,
    SetKeyCnf,
    SetKeyReq,
    SlacMatchCnf,
    SlacMatchReq,
    SlacParmCnf,
    SlacParmReq,
    StartAttenCharInd,
    ValidateCnf,
    ValidateReq,
    VsHostActionInd,
    VsHostActionRsp,
    VsRdModCnf,
    VsRdModReq,
    VsRsDevCnf,
    VsRsDevReq,
    VsSwVerCnf,
    decode_frame,
)
from slac.tools.pcap import write_pcap
from slac.utils import MacAddress

scapy_all = pytest.importorskip("scapy.all", reason="scapy is not installed (dev dependency)")
hpav = pytest.importorskip("scapy.contrib.homeplugav")
hpgp = pytest.importorskip("scapy.contrib.homepluggp")

EV = MacAddress("02:00:00:00:00:01")
EVSE = MacAddress("02:00:00:00:00:02")
RUN_ID = bytes.fromhex("a1b2c3d4e5f60718")
NMK = bytes(range(0x30, 0x40))
NID = bytes.fromhex("0102030405060f")
AAG = tuple((7 * i + 3) % 90 for i in range(58))
SENDER_ID = bytes(range(1, 18))
RANDOM = bytes(range(100, 116))

SLAC_MESSAGES: list[Message] = [
    SetKeyReq(nid=NID, new_key=NMK),
    SetKeyCnf(result=1),
    SlacParmReq(run_id=RUN_ID),
    SlacParmCnf(forwarding_sta=EV, run_id=RUN_ID),
    StartAttenCharInd(forwarding_sta=EV, run_id=RUN_ID),
    MnbcSoundInd(remaining_sounds=7, run_id=RUN_ID, sender_id=SENDER_ID, random=RANDOM),
    AttenProfileInd(pev_mac=EV, aag=AAG),
    AttenCharInd(source_address=EV, run_id=RUN_ID, num_sounds=9, aag=AAG),
    AttenCharRsp(source_address=EV, run_id=RUN_ID, result=0),
    SlacMatchReq(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID, pev_id=SENDER_ID),
    SlacMatchCnf(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID, nid=NID, nmk=NMK),
]


def _scapy(message: Message) -> Any:
    return scapy_all.Ether(message.to_frame(EVSE, EV))


def _mac(value: Any) -> str:
    return str(value).lower()


# --- scapy reads ours ----------------------------------------------------------------------------


def test_scapy_reads_set_key() -> None:
    req = _scapy(SLAC_MESSAGES[0])[hpgp.CM_SET_KEY_REQ]
    assert (req.KeyType, req.PID, req.ProtoRunNumber, req.NewEncKeySelect) == (1, 4, 0, 1)
    # scapy reads the nonce big-endian; 0xAAAAAAAA is the same both ways
    assert req.MyNonce == 0xAAAAAAAA
    assert req.NetworkID == NID
    assert req.NewKey == NMK
    cnf = _scapy(SLAC_MESSAGES[1])[hpgp.CM_SET_KEY_CNF]
    assert cnf.Result == 1


def test_scapy_reads_slac_parm() -> None:
    req = _scapy(SLAC_MESSAGES[2])[hpgp.CM_SLAC_PARM_REQ]
    assert (req.ApplicationType, req.SecurityType, req.RunID) == (0, 0, RUN_ID)
    cnf = _scapy(SLAC_MESSAGES[3])[hpgp.CM_SLAC_PARM_CNF]
    assert _mac(cnf.MSoundTargetMAC) == "ff:ff:ff:ff:ff:ff"
    assert (cnf.NumberMSounds, cnf.TimeOut, cnf.ResponseType) == (10, 6, 1)
    assert _mac(cnf.ForwardingSTA) == str(EV)
    assert cnf.RunID == RUN_ID


def test_scapy_reads_start_atten_char_and_sound() -> None:
    start = _scapy(SLAC_MESSAGES[4])[hpgp.CM_START_ATTEN_CHAR_IND]
    assert (start.NumberOfSounds, start.TimeOut, start.ResponseType) == (10, 6, 1)
    assert _mac(start.ForwardingSTA) == str(EV)
    assert start.RunID == RUN_ID
    sound = _scapy(SLAC_MESSAGES[5])[hpgp.CM_MNBC_SOUND_IND]
    assert (sound.Countdown, sound.RunID, sound.SenderID) == (7, RUN_ID, SENDER_ID)
    assert sound.RSVD == bytes(8)
    assert sound.RandomValue == RANDOM


def test_scapy_reads_atten_profile_and_atten_char() -> None:
    profile = _scapy(SLAC_MESSAGES[6])[hpgp.CM_ATTENUATION_CHARACTERISTICS_MME]
    assert _mac(profile.EVMACAddress) == str(EV)
    assert profile.NumberOfGroups == 58
    assert tuple(g.group for g in profile.Groups) == AAG
    ind = _scapy(SLAC_MESSAGES[7])[hpgp.CM_ATTEN_CHAR_IND]
    assert _mac(ind.SourceAdress) == str(EV)
    assert (ind.RunID, ind.NumberOfSounds, ind.NumberOfGroups) == (RUN_ID, 9, 58)
    assert tuple(g.group for g in ind.Groups) == AAG
    rsp = _scapy(SLAC_MESSAGES[8])[hpgp.CM_ATTEN_CHAR_RSP]
    assert (rsp.RunID, rsp.Result) == (RUN_ID, 0)
    assert _mac(rsp.SourceAdress) == str(EV)


def test_scapy_reads_slac_match() -> None:
    req = _scapy(SLAC_MESSAGES[9])[hpgp.CM_SLAC_MATCH_REQ]
    assert req.MatchVariableFieldLen == 62
    field = req.VariableField
    assert (_mac(field.EVMAC), _mac(field.EVSEMAC)) == (str(EV), str(EVSE))
    assert (field.EVID, field.RunID, field.RSVD) == (SENDER_ID, RUN_ID, bytes(8))
    cnf = _scapy(SLAC_MESSAGES[10])[hpgp.CM_SLAC_MATCH_CNF]
    assert cnf.MatchVariableFieldLen == 86
    field = cnf.VariableField
    assert (field.RunID, field.NetworkID, field.NMK) == (RUN_ID, NID, NMK)


def test_scapy_reads_vendor_sw_version() -> None:
    frame = scapy_all.Ether(VsSwVerCnf(version="MAC-QCA7000-1.1.0.730").to_frame(EVSE, EV))
    layer = frame[hpav.GetDeviceVersion]
    assert layer.DeviceID == 0x22
    assert layer.DeviceVersion.rstrip(b"\x00") == b"MAC-QCA7000-1.1.0.730"


def test_scapy_reads_vendor_reset_host_action_and_pib_read() -> None:
    """VS_RS_DEV, VS_HOST_ACTION.IND and VS_RD_MOD as scapy's HomePlug AV layers read them
    (an oracle for the layouts doctor and the modem emulation use)."""
    reset = scapy_all.Ether(VsRsDevCnf(status=0).to_frame(EVSE, EV))
    assert reset[hpav.HomePlugAV].HPtype == 0xA01D
    assert reset[hpav.ResetDeviceConfirmation].Status == 0
    assert scapy_all.Ether(VsRsDevReq().to_frame(EV, EVSE))[hpav.HomePlugAV].HPtype == 0xA01C
    action = scapy_all.Ether(VsHostActionInd(action=0x02).to_frame(EVSE, EV))
    assert action[hpav.HostActionRequired].ActionRequired == 0x02
    request = scapy_all.Ether(VsRdModReq(length=1, offset=0x1653).to_frame(EV, EVSE))
    read = request[hpav.ReadModuleDataRequest]
    assert (read.ModuleID, read.Length, read.Offset) == (0x02, 1, 0x1653)
    answer = VsRdModCnf(offset=0x1653, data=b"\x02", checksum=0xFFFFFFFD)
    confirm = scapy_all.Ether(answer.to_frame(EVSE, EV))[hpav.ReadModuleDataConfirmation]
    assert (confirm.Status, confirm.ModuleID, confirm.DataLen, confirm.Offset) == (0, 2, 1, 0x1653)
    assert (confirm.checksum, confirm.ModuleData) == (0xFFFFFFFD, b"\x02")


# --- we read scapy's ----------------------------------------------------------------------------


def _scapy_frame(mmtype: int, layer: Any) -> bytes:
    ether = scapy_all.Ether(dst=str(EVSE), src=str(EV), type=0x88E1)
    return bytes(ether / hpav.HomePlugAV(version=1, HPtype=mmtype) / layer)


def test_we_read_scapy_built_slac_frames() -> None:
    cases: list[tuple[bytes, Message]] = [
        (
            _scapy_frame(0x6064, hpgp.CM_SLAC_PARM_REQ(RunID=RUN_ID)),
            SlacParmReq(run_id=RUN_ID),
        ),
        (
            _scapy_frame(
                0x6065,
                hpgp.CM_SLAC_PARM_CNF(
                    MSoundTargetMAC="ff:ff:ff:ff:ff:ff",
                    NumberMSounds=10,
                    TimeOut=6,
                    ResponseType=1,
                    ForwardingSTA=str(EV),
                    RunID=RUN_ID,
                ),
            ),
            SlacParmCnf(forwarding_sta=EV, run_id=RUN_ID),
        ),
        (
            _scapy_frame(
                0x606A,
                hpgp.CM_START_ATTEN_CHAR_IND(
                    NumberOfSounds=10,
                    TimeOut=6,
                    ResponseType=1,
                    ForwardingSTA=str(EV),
                    RunID=RUN_ID,
                ),
            ),
            StartAttenCharInd(forwarding_sta=EV, run_id=RUN_ID),
        ),
        (
            _scapy_frame(
                0x6076,
                hpgp.CM_MNBC_SOUND_IND(
                    SenderID=SENDER_ID, Countdown=3, RunID=RUN_ID, RandomValue=RANDOM
                ),
            ),
            MnbcSoundInd(remaining_sounds=3, run_id=RUN_ID, sender_id=SENDER_ID, random=RANDOM),
        ),
        (
            _scapy_frame(
                0x6086,
                hpgp.CM_ATTENUATION_CHARACTERISTICS_MME(
                    EVMACAddress=str(EV), Groups=[hpgp.HPGP_GROUP(group=g) for g in AAG]
                ),
            ),
            AttenProfileInd(pev_mac=EV, aag=AAG),
        ),
        (
            _scapy_frame(
                0x606E,
                hpgp.CM_ATTEN_CHAR_IND(
                    SourceAdress=str(EV),
                    RunID=RUN_ID,
                    NumberOfSounds=10,
                    Groups=[hpgp.HPGP_GROUP(group=g) for g in AAG],
                ),
            ),
            AttenCharInd(source_address=EV, run_id=RUN_ID, num_sounds=10, aag=AAG),
        ),
        (
            _scapy_frame(0x606F, hpgp.CM_ATTEN_CHAR_RSP(SourceAdress=str(EV), RunID=RUN_ID)),
            AttenCharRsp(source_address=EV, run_id=RUN_ID),
        ),
        (
            _scapy_frame(
                0x607C,
                hpgp.CM_SLAC_MATCH_REQ(
                    VariableField=hpgp.SLAC_varfield(EVMAC=str(EV), EVSEMAC=str(EVSE), RunID=RUN_ID)
                ),
            ),
            SlacMatchReq(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID),
        ),
        (
            _scapy_frame(
                0x607D,
                hpgp.CM_SLAC_MATCH_CNF(
                    VariableField=hpgp.SLAC_varfield_cnf(
                        EVMAC=str(EV), EVSEMAC=str(EVSE), RunID=RUN_ID, NetworkID=NID, NMK=NMK
                    )
                ),
            ),
            SlacMatchCnf(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID, nid=NID, nmk=NMK),
        ),
        (
            _scapy_frame(
                0x6008,
                hpgp.CM_SET_KEY_REQ(
                    KeyType=1,
                    MyNonce=0xAAAAAAAA,
                    PID=4,
                    NetworkID=NID,
                    NewEncKeySelect=1,
                    NewKey=NMK,
                ),
            ),
            SetKeyReq(nid=NID, new_key=NMK),
        ),
    ]
    for frame, expected in cases:
        assert decode_frame(frame).message == expected, expected.name


# --- Wireshark's dissector ------------------------------------------------------------------------

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(
    TSHARK is None, reason="tshark is not installed (Debian package tshark; .ci/run installs it)"
)


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def _fields(layer: Any) -> dict[str, Any]:
    return {key: value for key, value in _walk(layer) if not isinstance(value, dict)}


def _colon_hex(data: bytes) -> str:
    return ":".join(f"{b:02x}" for b in data)


@pytest.fixture(scope="module")
def dissected(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    if TSHARK is None:
        pytest.skip("tshark is not installed (Debian package tshark; .ci/run installs it)")
    path: Path = tmp_path_factory.mktemp("tshark") / "ours.pcap"
    extra: list[Message] = [
        ValidateReq(timer=0, result=1),
        ValidateCnf(result=3),
        AmpMapReq(amplitudes=(1, 2, 3)),
        VsSwVerCnf(version="MAC-QCA7000-1.1.0.730"),
    ]
    write_pcap(path, [m.to_frame(EVSE, EV) for m in SLAC_MESSAGES + extra])
    out = subprocess.run(
        [
            TSHARK,
            "-r",
            str(path),
            "-T",
            "json",
            "--no-duplicate-keys",
            "-e",
            "_ws.col.Info",
            "-e",
            "_ws.expert",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = [
        json.loads(out)[i]["_source"]["layers"].get("_ws.col.Info", [""])[0]
        for i in range(len(SLAC_MESSAGES) + len(extra))
    ]
    full = subprocess.run(
        [TSHARK, "-r", str(path), "-T", "json", "--no-duplicate-keys"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packets = json.loads(full)
    result = []
    for text, packet in zip(info, packets):
        layers = packet["_source"]["layers"]
        fields = _fields(layers.get("homeplug-av", {}))
        fields["info"] = text
        fields["malformed"] = "_ws.malformed" in json.dumps(layers)
        result.append(fields)
    return result


@needs_tshark
def test_tshark_names_every_message_and_finds_nothing_malformed(
    dissected: list[dict[str, Any]],
) -> None:
    expected = [m.name for m in SLAC_MESSAGES] + [
        "CM_VALIDATE.REQ",
        "CM_VALIDATE.CNF",
        "CM_AMP_MAP.REQ",
        "GET_SW.CNF",
    ]
    for fields, name in zip(dissected, expected):
        assert name in fields["info"], (name, fields["info"])
        assert not fields["malformed"], name


@needs_tshark
def test_tshark_reads_our_field_values(dissected: list[dict[str, Any]]) -> None:
    run = _colon_hex(RUN_ID)
    gp = "homeplug_av.gp."
    (
        set_key,
        set_key_cnf,
        parm_req,
        parm_cnf,
        start,
        sound,
        profile,
        char_ind,
        char_rsp,
        match_req,
        match_cnf,
    ) = dissected[: len(SLAC_MESSAGES)]
    assert set_key["homeplug_av.nw_info.key_type"] == "0x01"
    assert set_key["homeplug_av.nw_info.my_nonce"] == "0xaaaaaaaa"
    assert set_key["homeplug_av.nw_info.pid"] == "0x04"
    assert set_key["homeplug_av.nw_info.nid"] == _colon_hex(NID)
    assert set_key["homeplug_av.nw_info.peks"] == "0x01"
    assert set_key["homeplug_av.cm_set_key_req.nw_key"] == _colon_hex(NMK)
    assert set_key_cnf["homeplug_av.cm_set_key_cnf.result"] == "0x01"

    assert parm_req[gp + "cm_slac_parm.apptype"] == "0x00"
    assert parm_req[gp + "cm_slac_parm.sectype"] == "0x00"
    assert parm_req[gp + "cm_slac_parm.runid"] == run
    assert parm_cnf[gp + "cm_slac_parm.sound_target"] == "ff:ff:ff:ff:ff:ff"
    assert int(parm_cnf[gp + "cm_slac_parm.sound_count"], 0) == 10
    assert int(parm_cnf[gp + "cm_slac_parm.time_out"], 0) == 6
    assert int(parm_cnf[gp + "cm_slac_parm.resptype"], 0) == 1
    assert parm_cnf[gp + "cm_slac_parm.forwarding_sta"] == str(EV)
    assert parm_cnf[gp + "cm_slac_parm.runid"] == run

    assert int(start[gp + "cm_start_atten_char.sounds_count"], 0) == 10
    assert int(start[gp + "cm_start_atten_char.time_out"], 0) == 6
    assert int(start[gp + "cm_start_atten_char.resptype"], 0) == 1
    assert start[gp + "cm_start_atten_char.sound_forwarding_sta"] == str(EV)
    assert start[gp + "cm_start_atten_char.runid"] == run

    assert int(sound[gp + "cm_mnbc_sound.countdown"], 0) == 7
    assert sound[gp + "cm_mnbc_sound.runid"] == run
    assert sound[gp + "cm_mnbc_sound.sender_id"] == _colon_hex(SENDER_ID)
    assert sound[gp + "cm_mnbc_sound.rnd"] == _colon_hex(RANDOM)

    assert profile[gp + "cm_atten_profile_ind.pev_mac"] == str(EV)
    assert int(profile[gp + "cm_atten_profile_ind.groups_count"], 0) == 58
    assert [int(v) for v in profile[gp + "cm_atten_profile_ind.aag"]] == list(AAG)

    assert char_ind[gp + "cm_atten_char.source_mac"] == str(EV)
    assert char_ind[gp + "cm_atten_char.runid"] == run
    assert int(char_ind[gp + "cm_atten_char.sounds_count"], 0) == 9
    assert int(char_ind[gp + "cm_atten_char.groups_count"], 0) == 58
    assert [int(v) for v in char_ind[gp + "cm_atten_char.aag"]] == list(AAG)
    assert char_rsp[gp + "cm_atten_char.runid"] == run
    assert int(char_rsp[gp + "cm_atten_char.result"], 0) == 0

    for match in (match_req, match_cnf):
        assert match[gp + "cm_slac_match.pev_mac"] == str(EV)
        assert match[gp + "cm_slac_match.evse_mac"] == str(EVSE)
        assert match[gp + "cm_slac_match.runid"] == run
    assert int(match_req[gp + "cm_slac_match.length"], 0) == 62
    assert match_req[gp + "cm_slac_match.pev_id"] == _colon_hex(SENDER_ID)
    assert int(match_cnf[gp + "cm_slac_match.length"], 0) == 86
    assert match_cnf[gp + "cm_slac_match.nid"] == _colon_hex(NID)
    assert match_cnf[gp + "cm_slac_match.nmk"] == _colon_hex(NMK)

    validate_req, validate_cnf, _amp, sw = dissected[len(SLAC_MESSAGES) :]
    assert int(validate_req[gp + "cm_validate.result"], 0) == 1
    assert int(validate_cnf[gp + "cm_validate.result"], 0) == 3
    assert sw["homeplug_av.get_sw_cnf.ver_str"] == "MAC-QCA7000-1.1.0.730"
    assert int(sw["homeplug_av.get_sw_cnf.dev_id"], 0) == 0x22


@needs_tshark
def test_tshark_reads_the_vendor_messages_doctor_and_the_modem_emulation_use(
    tmp_path: Path,
) -> None:
    messages: list[Message] = [
        VsRsDevReq(),
        VsRsDevCnf(status=0),
        VsHostActionInd(action=0x05),
        VsHostActionRsp(),
        VsRdModReq(length=1, offset=0x1653),
        VsRdModCnf(offset=0x1653, data=b"\x02", checksum=0xFFFFFFFD),
    ]
    path = tmp_path / "vendor.pcap"
    write_pcap(path, [m.to_frame(EVSE, EV) for m in messages])
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-T", "json", "--no-duplicate-keys", "-e", "_ws.col.Info"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    info = [p["_source"]["layers"]["_ws.col.Info"][0] for p in json.loads(out)]
    names = ["RS_DEV.REQ", "RS_DEV.CNF", "HOST_ACTION.IND", "HOST_ACTION.RSP", "RD_MOD.REQ"]
    for text, name in zip(info, [*names, "RD_MOD.CNF"]):
        assert name in text, (name, text)
    full = subprocess.run(
        [TSHARK, "-r", str(path), "-T", "json", "--no-duplicate-keys"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    packets = [p["_source"]["layers"] for p in json.loads(full)]
    assert not any("_ws.malformed" in json.dumps(p) for p in packets)
    fields = [_fields(p["homeplug-av"]) for p in packets]
    assert int(fields[1]["homeplug_av.rs_dev_cnf.status"], 0) == 0
    assert int(fields[2]["homeplug_av.host_action_ind.action"], 0) == 0x05
    for read in (fields[4], fields[5]):
        assert int(read["homeplug_av.module_id"], 0) == 0x02
        assert int(read["homeplug_av.mem.offset"], 0) == 0x1653
    assert int(fields[5]["homeplug_av.rd_mod_cnf.status"], 0) == 0
    assert int(fields[5]["homeplug_av.mem.checksum"], 0) == 0xFFFFFFFD
