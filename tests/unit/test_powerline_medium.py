"""The virtual powerline's rules, without sockets."""

from __future__ import annotations

from slac.enums import PIB_SLAC_ENABLE_MODE, PLC_LOCAL_MAC
from slac.messages import (
    AttenProfileInd,
    Message,
    MnbcSoundInd,
    SetKeyCnf,
    SetKeyReq,
    SlacParmCnf,
    SlacParmReq,
    VsHostActionInd,
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
from slac.testing.powerline.medium import EV, EVSE, Medium, pib_checksum
from slac.utils import MacAddress

EV_HOST = MacAddress("02:00:00:00:0e:01")
EVSE_HOSTS = [MacAddress(f"02:00:00:00:05:0{i}") for i in range(3)]
BROADCAST = MacAddress("ff:ff:ff:ff:ff:ff")
NMK = bytes(range(16))


def medium_with(n_evses: int = 2, **kwargs: object) -> Medium:
    medium = Medium(seed=7, **kwargs)  # type: ignore[arg-type]
    medium.add_port("ev", EV)
    for i in range(n_evses):
        medium.add_port(f"evse{i}", EVSE)
        # each EVSE host introduces itself (a frame to its modem)
        medium.from_host(i + 1, VsSwVerReq().to_frame(PLC_LOCAL_MAC, EVSE_HOSTS[i]))
    medium.from_host(0, VsSwVerReq().to_frame(PLC_LOCAL_MAC, EV_HOST))
    return medium


def test_set_key_is_confirmed_by_the_modem_and_sets_its_key() -> None:
    medium = medium_with()
    (reply,) = medium.from_host(
        1, SetKeyReq(nid=bytes(7), new_key=NMK).to_frame(PLC_LOCAL_MAC, EVSE_HOSTS[0])
    )
    frame = decode_frame(reply.frame)
    assert reply.port == 1
    assert frame.message == SetKeyCnf(result=1)
    assert frame.src == medium.modems[1].mac
    assert frame.dst == EVSE_HOSTS[0]
    assert medium.modems[1].nmk == NMK


def test_set_key_result_is_configurable_and_silence_too() -> None:
    medium = medium_with()
    medium.modems[1].set_key_result = 0
    (reply,) = medium.from_host(
        1, SetKeyReq(nid=bytes(7), new_key=NMK).to_frame(PLC_LOCAL_MAC, EVSE_HOSTS[0])
    )
    assert decode_frame(reply.frame).message == SetKeyCnf(result=0)
    medium.modems[1].answer_set_key = False
    assert (
        medium.from_host(
            1, SetKeyReq(nid=bytes(7), new_key=NMK).to_frame(PLC_LOCAL_MAC, EVSE_HOSTS[0])
        )
        == []
    )


def test_sw_version_and_link_status_follow_the_shared_key() -> None:
    medium = medium_with()
    (version,) = medium.from_host(0, VsSwVerReq().to_frame(PLC_LOCAL_MAC, EV_HOST))
    assert isinstance(decode_frame(version.frame).message, VsSwVerCnf)
    request = VsPlLinkStatusReq().to_frame(PLC_LOCAL_MAC, EV_HOST)
    assert decode_frame(medium.from_host(0, request)[0].frame).message == VsPlLinkStatusCnf(
        link_status=0
    )
    medium.modems[0].nmk = medium.modems[2].nmk
    assert decode_frame(medium.from_host(0, request)[0].frame).message == VsPlLinkStatusCnf(
        link_status=1
    )
    medium.modems[2].cut = True
    assert decode_frame(medium.from_host(0, request)[0].frame).message == VsPlLinkStatusCnf(
        link_status=0
    )


def test_broadcast_reaches_every_port_that_hears_the_sender() -> None:
    medium = medium_with(3)
    medium.set_attenuation(0, 3, None)  # EVSE 2 is out of reach
    frame = SlacParmReq(run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)
    assert sorted(d.port for d in medium.from_host(0, frame)) == [1, 2]
    medium.modems[2].cut = True
    assert [d.port for d in medium.from_host(0, frame)] == [1]


def test_unicast_goes_to_the_owner_of_the_destination() -> None:
    medium = medium_with(2)
    frame = SlacParmCnf(forwarding_sta=EV_HOST, run_id=bytes(8)).to_frame(EV_HOST, EVSE_HOSTS[1])
    assert [d.port for d in medium.from_host(2, frame)] == [0]


def test_each_sound_gives_every_evse_that_hears_it_a_profile_from_the_matrix() -> None:
    medium = medium_with(2, jitter=2.0)
    medium.set_attenuation(0, 1, 20)
    medium.set_attenuation(0, 2, 50)
    deliveries = medium.from_host(
        0, MnbcSoundInd(remaining_sounds=9, run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)
    )
    profiles = {}
    for d in deliveries:
        message = decode_frame(d.frame).message
        if isinstance(message, AttenProfileInd):
            profiles[d.port] = (message, decode_frame(d.frame))
    assert set(profiles) == {1, 2}
    for port, centre in ((1, 20), (2, 50)):
        message, frame = profiles[port]
        assert message.pev_mac == EV_HOST
        assert len(message.aag) == 58
        assert all(centre - 2 <= v <= centre + 2 for v in message.aag)
        assert frame.dst == EVSE_HOSTS[port - 1]
        assert frame.src == medium.modems[port].mac
    # the sound itself reaches the EVSE hosts too
    assert sorted(d.port for d in deliveries if d.frame[15:17] == b"\x76\x60") == [1, 2]


def test_ip_frames_cross_only_inside_one_logical_network() -> None:
    medium = medium_with(2)
    ipv6 = EVSE_HOSTS[0] + EV_HOST + b"\x86\xdd" + bytes(60)
    assert medium.from_host(0, ipv6) == []
    medium.modems[0].nmk = medium.modems[1].nmk
    assert [d.port for d in medium.from_host(0, ipv6)] == [1]


def test_loss_knob_drops_the_named_message_only() -> None:
    medium = medium_with(1)
    medium.faults.loss["CM_SLAC_PARM.REQ"] = 1.0
    assert medium.from_host(0, SlacParmReq(run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)) == []
    sound = MnbcSoundInd(remaining_sounds=0, run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)
    assert len(medium.from_host(0, sound)) == 2
    assert medium.counters["lost CM_SLAC_PARM.REQ"] == 1


def test_path_loss_drops_the_named_message_on_that_path_only() -> None:
    medium = medium_with(2)
    medium.faults.link_loss[(0, 1)] = {"CM_SLAC_PARM.REQ": 1.0}
    parm = SlacParmReq(run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)
    assert [d.port for d in medium.from_host(0, parm)] == [2]
    # the other direction, and other messages on that path, still cross
    cnf = SlacParmCnf(forwarding_sta=EV_HOST, run_id=bytes(8)).to_frame(EV_HOST, EVSE_HOSTS[0])
    assert [d.port for d in medium.from_host(1, cnf)] == [0]
    sound = MnbcSoundInd(remaining_sounds=0, run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)
    assert sorted({d.port for d in medium.from_host(0, sound)}) == [1, 2]
    assert medium.counters["lost CM_SLAC_PARM.REQ"] == 1


def test_without_a_default_attenuation_ports_hear_only_where_told() -> None:
    medium = Medium(default_attenuation=None, seed=1)
    for name, role in (("ev", EV), ("evse0", EVSE), ("evse1", EVSE)):
        medium.add_port(name, role)
    medium.set_attenuation(0, 2, 30.0)
    assert medium.audible(0) == [2]
    assert medium.audible(1) == []
    parm = SlacParmReq(run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)
    assert [d.port for d in medium.from_host(0, parm)] == [2]


def test_delay_and_jitter_are_applied_per_delivery() -> None:
    medium = medium_with(2)
    medium.faults.delay = 0.01
    medium.faults.delay_jitter = 0.005
    delays = [
        d.delay
        for d in medium.from_host(0, SlacParmReq(run_id=bytes(8)).to_frame(BROADCAST, EV_HOST))
    ]
    assert all(0.01 <= d <= 0.015 for d in delays)


# --- the modem emulation's vendor answers, restarts, resets and role (hand-moved clock) ---------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _ask(medium: Medium, port: int, message: Message) -> list[Message]:
    host = EVSE_HOSTS[port - 1]
    replies = medium.from_host(port, message.to_frame(PLC_LOCAL_MAC, host))
    out = []
    for reply in replies:
        decoded = decode_frame(reply.frame).message
        assert isinstance(decoded, Message)
        out.append(decoded)
    return out


def test_vs_sw_ver_answers_the_configured_firmware_and_device_class() -> None:
    medium = medium_with()
    medium.modems[1].firmware = "MAC-QCA7005-3.3.0"
    medium.modems[1].device_class = 0x20
    assert _ask(medium, 1, VsSwVerReq()) == [
        VsSwVerCnf(version="MAC-QCA7005-3.3.0", device_class=0x20)
    ]


def test_the_pib_read_tells_the_role_and_follows_a_role_switch() -> None:
    medium = medium_with()
    read = VsRdModReq(length=1, offset=PIB_SLAC_ENABLE_MODE)
    ((cnf,),) = [_ask(medium, 1, read)]
    assert isinstance(cnf, VsRdModCnf) and cnf.status == 0 and cnf.data == bytes([2])
    medium.set_role(1, EV)
    (cnf,) = _ask(medium, 1, read)
    assert isinstance(cnf, VsRdModCnf) and cnf.data == bytes([1])
    (beyond,) = _ask(medium, 1, VsRdModReq(length=16, offset=0x3FF8))
    assert isinstance(beyond, VsRdModCnf) and beyond.status != 0


def _profiles(medium: Medium, frame: bytes) -> list[AttenProfileInd]:
    messages = [decode_frame(d.frame).message for d in medium.from_host(0, frame)]
    return [m for m in messages if isinstance(m, AttenProfileInd)]


def test_a_modem_switched_to_the_ev_role_measures_no_sounds() -> None:
    medium = medium_with(n_evses=1)
    sound = MnbcSoundInd(remaining_sounds=9, run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)
    assert len(_profiles(medium, sound)) == 1
    medium.set_role(1, EV)
    assert _profiles(medium, sound) == []


def test_profiles_without_data_have_numgroups_0() -> None:
    medium = medium_with(n_evses=1)
    medium.modems[1].profile_data = False
    sound = MnbcSoundInd(remaining_sounds=9, run_id=bytes(8)).to_frame(BROADCAST, EV_HOST)
    (profile,) = _profiles(medium, sound)
    assert profile.aag == ()


def test_a_silent_modem_answers_nothing_but_counts_what_it_was_asked() -> None:
    medium = medium_with()
    medium.modems[1].silent = True
    for message in (VsSwVerReq(), VsPlLinkStatusReq(), SetKeyReq(nid=bytes(7), new_key=NMK)):
        assert _ask(medium, 1, message) == []
    assert medium.modems[1].requests["VS_SW_VER.REQ"] == 2  # once from medium_with
    assert medium.modems[1].nmk != NMK


def test_vendor_answers_can_be_off_while_cm_set_key_is_still_confirmed() -> None:
    medium = medium_with()
    medium.modems[1].vendor_answers = False
    assert _ask(medium, 1, VsSwVerReq()) == []
    assert _ask(medium, 1, SetKeyReq(nid=bytes(7), new_key=NMK)) == [SetKeyCnf(result=1)]


def test_a_restart_loses_the_key_keeps_the_modem_away_then_announces_it() -> None:
    clock = Clock()
    medium = medium_with(clock=clock)
    _ask(medium, 1, SetKeyReq(nid=bytes(7), new_key=NMK))
    medium.modems[1].restart_time = 2.0
    (announce,) = medium.restart(1)
    assert medium.modems[1].nmk != NMK and medium.modems[1].restarts == 1
    assert announce.port == 1 and announce.delay == 2.0
    frame = decode_frame(announce.frame)
    assert frame.message == VsHostActionInd(action=0)
    assert frame.dst == EVSE_HOSTS[0] and frame.src == medium.modems[1].mac
    clock.now += 1.9
    assert _ask(medium, 1, VsSwVerReq()) == []  # still restarting
    clock.now += 0.2
    assert len(_ask(medium, 1, VsSwVerReq())) == 1
    medium.modems[1].announce_restart = False
    assert medium.restart(1) == []


def test_vs_rs_dev_is_confirmed_then_the_modem_restarts() -> None:
    clock = Clock()
    medium = medium_with(clock=clock)
    replies = medium.from_host(1, VsRsDevReq().to_frame(PLC_LOCAL_MAC, EVSE_HOSTS[0]))
    assert [decode_frame(r.frame).message for r in replies] == [
        VsRsDevCnf(status=0),
        VsHostActionInd(action=0),
    ]
    assert [r.delay for r in replies] == [0.0, medium.modems[1].restart_time]
    assert medium.modems[1].resets == 1 and medium.down(1)
    clock.now += medium.modems[1].restart_time
    assert not medium.down(1)


def test_pib_checksum_is_the_inverted_xor_of_the_words() -> None:
    assert pib_checksum(b"") == 0xFFFFFFFF
    assert pib_checksum(bytes([2])) == 0xFFFFFFFD
    assert pib_checksum(bytes([1, 0, 0, 0, 1])) == ~(1 ^ 1) & 0xFFFFFFFF
