"""Golden vectors, both ways, for every message; header and padding rules.

The expected bytes are written out by hand from the wire-format reference (payload offsets
of section 3), not produced by the code under test.
"""

from __future__ import annotations

import pytest

from slac.enums import MMType
from slac.errors import DecodeError, FieldError
from slac.layer_2_headers import EthernetHeader, HomePlugHeader
from slac.messages import (
    MESSAGES,
    AmpMapCnf,
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
    UnknownMessage,
    ValidateCnf,
    ValidateReq,
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
from slac.utils import MacAddress

EV = MacAddress("02:00:00:00:00:01")
EVSE = MacAddress("02:00:00:00:00:02")
PLC = MacAddress("00:b0:52:00:00:01")
RUN_ID = bytes.fromhex("0102030405060708")
NMK = bytes.fromhex("50D3E4933F855B7040784DF815AA8DB7")  # pass phrase HomePlugAV
NID = bytes.fromhex("B0F2E695666B03")
AAG = tuple(range(10, 68))  # 58 groups
Z17 = "00" * 17


def hx(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts).replace(" ", ""))


def eth(dst: MacAddress, src: MacAddress) -> str:
    return dst.hex() + src.hex() + "88e1"


def padded(frame: bytes) -> bytes:
    return frame + bytes(max(0, 60 - len(frame)))


# (message, dst, src, whole frame as written from the reference)
# fmt: off
GOLDEN: list[tuple[Message, MacAddress, MacAddress, bytes]] = [
    (
        SetKeyReq(nid=NID, new_key=NMK),
        PLC, EVSE,
        padded(hx(eth(PLC, EVSE), "01 0860 00 00",
                  "01 aaaaaaaa 00000000 04 0000 00 00", NID.hex(), "01", NMK.hex())),
    ),
    (
        SetKeyCnf(result=1),
        EVSE, PLC,
        padded(hx(eth(EVSE, PLC), "01 0960 00 00", "01 00000000 aaaaaaaa 04 0000 00 00")),
    ),
    (
        SlacParmReq(run_id=RUN_ID),
        MacAddress("ff:ff:ff:ff:ff:ff"), EV,
        padded(hx(eth(MacAddress("ff:ff:ff:ff:ff:ff"), EV), "01 6460 00 00",
                  "00 00", RUN_ID.hex())),
    ),
    (
        SlacParmCnf(forwarding_sta=EV, run_id=RUN_ID),
        EV, EVSE,
        padded(hx(eth(EV, EVSE), "01 6560 00 00",
                  "ffffffffffff 0a 06 01", EV.hex(), "00 00", RUN_ID.hex())),
    ),
    (
        StartAttenCharInd(forwarding_sta=EV, run_id=RUN_ID),
        MacAddress("ff:ff:ff:ff:ff:ff"), EV,
        padded(hx(eth(MacAddress("ff:ff:ff:ff:ff:ff"), EV), "01 6a60 00 00",
                  "00 00 0a 06 01", EV.hex(), RUN_ID.hex())),
    ),
    (
        MnbcSoundInd(remaining_sounds=9, run_id=RUN_ID, random=bytes(range(16))),
        MacAddress("ff:ff:ff:ff:ff:ff"), EV,
        hx(eth(MacAddress("ff:ff:ff:ff:ff:ff"), EV), "01 7660 00 00",
           "00 00", Z17, "09", RUN_ID.hex(), "00" * 8, bytes(range(16)).hex()),
    ),
    (
        AttenProfileInd(pev_mac=EV, aag=AAG),
        EVSE, MacAddress("00:b0:52:12:34:56"),
        hx(eth(EVSE, MacAddress("00:b0:52:12:34:56")), "01 8660 00 00",
           EV.hex(), "3a 00", bytes(AAG).hex()),
    ),
    (
        AttenCharInd(source_address=EV, run_id=RUN_ID, num_sounds=10, aag=AAG),
        EV, EVSE,
        hx(eth(EV, EVSE), "01 6e60 00 00", "00 00", EV.hex(), RUN_ID.hex(), Z17, Z17,
           "0a 3a", bytes(AAG).hex()),
    ),
    (
        AttenCharRsp(source_address=EV, run_id=RUN_ID),
        EVSE, EV,
        hx(eth(EVSE, EV), "01 6f60 00 00", "00 00", EV.hex(), RUN_ID.hex(), Z17, Z17, "00"),
    ),
    (
        ValidateReq(timer=0, result=1),
        EVSE, EV,
        padded(hx(eth(EVSE, EV), "01 7860 00 00", "00 00 01")),
    ),
    (
        ValidateCnf(result=3),
        EV, EVSE,
        padded(hx(eth(EV, EVSE), "01 7960 00 00", "00 00 03")),
    ),
    (
        SlacMatchReq(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID),
        EVSE, EV,
        hx(eth(EVSE, EV), "01 7c60 00 00", "00 00 3e00", Z17, EV.hex(), Z17, EVSE.hex(),
           RUN_ID.hex(), "00" * 8),
    ),
    (
        SlacMatchCnf(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID, nid=NID, nmk=NMK),
        EV, EVSE,
        hx(eth(EV, EVSE), "01 7d60 00 00", "00 00 5600", Z17, EV.hex(), Z17, EVSE.hex(),
           RUN_ID.hex(), "00" * 8, NID.hex(), "00", NMK.hex()),
    ),
    (
        AmpMapReq(amplitudes=(1, 2, 3, 4, 5)),
        EV, EVSE,
        padded(hx(eth(EV, EVSE), "01 1c60 00 00", "0500 21 43 05")),
    ),
    (
        AmpMapCnf(result=0),
        EVSE, EV,
        padded(hx(eth(EVSE, EV), "01 1d60 00 00", "00")),
    ),
    (
        VsSwVerReq(),
        PLC, EVSE,
        padded(hx(eth(PLC, EVSE), "00 00a0 00b052")),
    ),
    (
        VsSwVerCnf(version="MAC-QCA7000-1.1.0.730", device_class=0x22),
        EVSE, PLC,
        hx(eth(EVSE, PLC), "00 01a0 00b052", "00 22 16",
           b"MAC-QCA7000-1.1.0.730\x00".ljust(64, b"\x00").hex(), "00"),
    ),
    (
        VsPlLinkStatusReq(),
        PLC, EVSE,
        padded(hx(eth(PLC, EVSE), "00 b8a0 00b052")),
    ),
    (
        VsPlLinkStatusCnf(link_status=1),
        EVSE, PLC,
        padded(hx(eth(EVSE, PLC), "00 b9a0 00b052", "00 01")),
    ),
    (
        VsRsDevReq(),
        PLC, EVSE,
        padded(hx(eth(PLC, EVSE), "00 1ca0 00b052")),
    ),
    (
        VsRsDevCnf(status=0),
        EVSE, PLC,
        padded(hx(eth(EVSE, PLC), "00 1da0 00b052", "00")),
    ),
    (
        VsHostActionInd(action=0, major_version=1, minor_version=2),
        EVSE, PLC,
        padded(hx(eth(EVSE, PLC), "00 62a0 00b052", "00 01 02")),
    ),
    (
        VsHostActionRsp(),
        PLC, EVSE,
        padded(hx(eth(PLC, EVSE), "00 63a0 00b052", "00")),
    ),
    (  # one byte of the PIB: SLAC_EnableMode at 0x1653 (LE offset 53 16 00 00)
        VsRdModReq(length=1, offset=0x1653),
        PLC, EVSE,
        padded(hx(eth(PLC, EVSE), "00 24a0 00b052", "02 00 0100 53160000", "00" * 16)),
    ),
    (
        VsRdModCnf(offset=0x1653, data=b"\x02", checksum=0xFFFFFFFD),
        EVSE, PLC,
        padded(hx(eth(EVSE, PLC), "00 25a0 00b052", "00 000000 02 00 0100 53160000 fdffffff 02")),
    ),
]
# fmt: on


@pytest.mark.parametrize(
    ("message", "dst", "src", "frame"), GOLDEN, ids=[g[0].name for g in GOLDEN]
)
def test_golden_vector_encodes_to_reference_bytes(
    message: Message, dst: MacAddress, src: MacAddress, frame: bytes
) -> None:
    assert message.to_frame(dst, src).hex() == frame.hex()


@pytest.mark.parametrize(
    ("message", "dst", "src", "frame"), GOLDEN, ids=[g[0].name for g in GOLDEN]
)
def test_golden_vector_decodes_to_message(
    message: Message, dst: MacAddress, src: MacAddress, frame: bytes
) -> None:
    decoded = decode_frame(frame)
    assert decoded.message == message
    assert decoded.dst == dst
    assert decoded.src == src
    assert str(decoded.src) == str(src)


def test_every_modelled_message_has_a_golden_vector() -> None:
    assert {type(m) for m, *_ in GOLDEN} == set(MESSAGES.values())


def test_frames_are_padded_to_60_bytes_and_padding_is_ignored() -> None:
    frame = SlacParmReq(run_id=RUN_ID).to_frame(EVSE, EV)
    assert len(frame) == 60
    assert decode_frame(frame + b"\xaa" * 20).message == SlacParmReq(run_id=RUN_ID)


def test_opu_style_atten_char_with_255_byte_buffer_decodes() -> None:
    """open-plc-utils sends 326-byte CM_ATTEN_CHAR.IND: zeros after the 58 AAG values."""
    frame = AttenCharInd(source_address=EV, run_id=RUN_ID, num_sounds=10, aag=AAG).to_frame(
        EV, EVSE
    )
    long_frame = frame + bytes(326 - len(frame))
    assert decode_frame(long_frame).message.aag == AAG  # type: ignore[union-attr]


@pytest.mark.parametrize("cut", [0, 5, 13, 16, 18])
def test_truncated_headers_raise_decode_error(cut: int) -> None:
    frame = SlacParmReq(run_id=RUN_ID).to_frame(EVSE, EV)
    with pytest.raises(DecodeError):
        decode_frame(frame[:cut])


def test_truncated_payload_raises_decode_error_naming_the_message() -> None:
    frame = SlacMatchReq(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID).to_frame(EVSE, EV)
    with pytest.raises(DecodeError, match="CM_SLAC_MATCH.REQ"):
        decode_frame(frame[:70])


def test_atten_profile_announcing_more_groups_than_sent_is_rejected() -> None:
    frame = bytearray(AttenProfileInd(pev_mac=EV, aag=AAG).to_frame(EVSE, EV))
    frame[19 + 6] = 200
    with pytest.raises(DecodeError, match="announces 200"):
        decode_frame(bytes(frame))


def test_other_ethertype_is_rejected() -> None:
    frame = bytearray(SlacParmReq(run_id=RUN_ID).to_frame(EVSE, EV))
    frame[12:14] = b"\x86\xdd"
    with pytest.raises(DecodeError, match="not HomePlug"):
        decode_frame(bytes(frame))


def test_unknown_vendor_message_is_a_value_not_an_error() -> None:
    frame = padded(hx(eth(EVSE, PLC), "00 b0a0 00b052", "0102030405"))
    message = decode_frame(frame).message
    assert isinstance(message, UnknownMessage)
    assert message.mmtype == 0xA0B0
    assert message.oui == bytes.fromhex("00b052")
    assert message.payload.startswith(bytes.fromhex("0102030405"))
    assert message.name == "unknown MMTYPE 0xA0B0 (vendor)"


def test_vendor_message_of_another_vendor_is_unknown() -> None:
    frame = padded(hx(eth(EVSE, PLC), "00 b9a0 001122", "0001"))
    assert isinstance(decode_frame(frame).message, UnknownMessage)


def test_mmv1_vendor_header_puts_oui_after_fragmentation_bytes() -> None:
    header = HomePlugHeader(1, MMType.VS_SW_VER_REQ, oui=bytes.fromhex("00b052"))
    assert header.pack().hex() == "0100a0000000b052"
    frame = EthernetHeader(PLC, EVSE).pack() + header.pack()
    assert isinstance(decode_frame(padded(frame)).message, VsSwVerReq)


def test_security_type_1_parm_req_carries_cipher_suites() -> None:
    message = SlacParmReq(run_id=RUN_ID, security_type=1, cipher_suites=(0x0001, 0x0203))
    assert message.pack().hex() == "0001" + RUN_ID.hex() + "02" + "0100" + "0302"
    assert SlacParmReq.unpack(message.pack()) == message


def test_security_type_1_parm_cnf_carries_cipher_suite() -> None:
    message = SlacParmCnf(forwarding_sta=EV, run_id=RUN_ID, security_type=1, cipher_suite=7)
    assert message.pack()[-2:] == b"\x07\x00"
    assert SlacParmCnf.unpack(message.pack()) == message


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: SlacParmReq(run_id=b"short"), "run_id must be 8 bytes"),
        (lambda: SlacParmCnf(forwarding_sta=EV, run_id=RUN_ID, num_sounds=256), "num_sounds"),
        (lambda: SlacParmCnf(forwarding_sta=b"\x01\x02", run_id=RUN_ID), "6 bytes"),  # type: ignore[arg-type]
        (lambda: SetKeyReq(nid=NID, new_key=b"\x00" * 15), "new_key must be 16 bytes"),
        (lambda: AttenProfileInd(pev_mac=EV, aag=(300,)), "aag entry"),
        (lambda: AmpMapReq(amplitudes=(16,)), "amplitudes entry"),
        (lambda: SlacParmReq(run_id=RUN_ID, cipher_suites=(1,)), "security_type 1"),
        (lambda: VsSwVerCnf(version="x" * 64), "version"),
        (lambda: MnbcSoundInd(remaining_sounds=-1, run_id=RUN_ID), "remaining_sounds"),
    ],
)
def test_construction_validates_sizes_and_ranges(build: object, match: str) -> None:
    with pytest.raises(FieldError, match=match):
        build()  # type: ignore[operator]


def test_mac_addresses_print_with_colons() -> None:
    message = SlacParmCnf(forwarding_sta=MacAddress("02-00-00-00-00-01"), run_id=RUN_ID)
    assert str(message.forwarding_sta) == "02:00:00:00:00:01"
    assert "forwarding_sta=02:00:00:00:00:01" in str(message)


def test_text_form_of_key_messages_never_shows_the_key() -> None:
    cnf = SlacMatchCnf(pev_mac=EV, evse_mac=EVSE, run_id=RUN_ID, nid=NID, nmk=NMK)
    req = SetKeyReq(nid=NID, new_key=NMK)
    for text in (str(cnf), repr(cnf), str(req), repr(req)):
        assert NMK.hex() not in text.lower()
        assert NMK.hex().upper() not in text


def test_message_names_follow_the_standard() -> None:
    assert SlacParmReq(run_id=RUN_ID).name == "CM_SLAC_PARM.REQ"
    assert VsPlLinkStatusCnf(link_status=0).name == "VS_PL_LINK_STATUS.CNF"
    assert not VsPlLinkStatusCnf(link_status=0).linked


def test_opu_pev_sound_with_cut_off_random_field_decodes() -> None:
    """open-plc-utils' PEV sends 64-byte CM_MNBC_SOUND.IND frames (45 payload bytes)."""
    full = MnbcSoundInd(remaining_sounds=3, run_id=RUN_ID, random=bytes(range(1, 17)))
    frame = full.to_frame(MacAddress("ff:ff:ff:ff:ff:ff"), EV)[:64]
    message = decode_frame(frame).message
    assert isinstance(message, MnbcSoundInd)
    assert (message.remaining_sounds, message.run_id) == (3, RUN_ID)
    assert message.random == bytes(range(1, 10)) + bytes(7)
