"""Protocol constants in one place: MMTYPE values, addresses, counts and ISO 15118-3 timers.

Values and their sources are documented in the project's wire-format reference
(HomePlug AV / Green PHY management messages used by ISO 15118-3).
"""

from __future__ import annotations

from enum import IntEnum

#: EtherType of HomePlug AV / Green PHY management messages.
ETH_TYPE_HPAV = 0x88E1

#: MAC management version of HomePlug AV 1.1 / Green PHY (5-byte header with FMI).
MMV_HPAV_1_1 = 0x01
#: MAC management version 1.0 (3-byte header, no FMI), used by Qualcomm vendor messages.
MMV_HPAV_1_0 = 0x00

#: Qualcomm Atheros (Intellon) organisationally unique identifier of vendor messages.
QUALCOMM_OUI = bytes.fromhex("00b052")

#: The QCA "localcast" address: the modem attached to this host answers it.
PLC_LOCAL_MAC = bytes.fromhex("00b052000001")
BROADCAST_MAC = b"\xff" * 6

#: Minimum Ethernet frame length without FCS; shorter frames are zero-padded to it.
ETH_MIN_FRAME_LEN = 60
ETH_HEADER_LEN = 14

#: Linux packet sockets (AF_PACKET): the protocol that takes frames of every EtherType (only
#: such a socket also sees what other programs on this host send), and the packet type
#: (``sll_pkttype``, the third field of ``recvfrom``'s address) of a frame this host sent.
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


class MMType(IntEnum):
    """Management message types (base | mode: REQ 0, CNF 1, IND 2, RSP 3)."""

    CM_SET_KEY_REQ = 0x6008
    CM_SET_KEY_CNF = 0x6009
    CM_AMP_MAP_REQ = 0x601C
    CM_AMP_MAP_CNF = 0x601D
    CM_NW_INFO_REQ = 0x6038
    CM_NW_INFO_CNF = 0x6039
    CM_SLAC_PARM_REQ = 0x6064
    CM_SLAC_PARM_CNF = 0x6065
    CM_START_ATTEN_CHAR_IND = 0x606A
    CM_ATTEN_CHAR_IND = 0x606E
    CM_ATTEN_CHAR_RSP = 0x606F
    CM_MNBC_SOUND_IND = 0x6076
    CM_VALIDATE_REQ = 0x6078
    CM_VALIDATE_CNF = 0x6079
    CM_SLAC_MATCH_REQ = 0x607C
    CM_SLAC_MATCH_CNF = 0x607D
    CM_ATTEN_PROFILE_IND = 0x6086
    VS_SW_VER_REQ = 0xA000
    VS_SW_VER_CNF = 0xA001
    VS_RS_DEV_REQ = 0xA01C
    VS_RS_DEV_CNF = 0xA01D
    VS_RD_MOD_REQ = 0xA024
    VS_RD_MOD_CNF = 0xA025
    VS_NW_INFO_REQ = 0xA038
    VS_NW_INFO_CNF = 0xA039
    VS_HOST_ACTION_IND = 0xA062
    VS_HOST_ACTION_RSP = 0xA063
    VS_OP_ATTRIBUTES_REQ = 0xA068
    VS_OP_ATTRIBUTES_CNF = 0xA069
    VS_PL_LINK_STATUS_REQ = 0xA0B8
    VS_PL_LINK_STATUS_CNF = 0xA0B9


def is_vendor_mmtype(mmtype: int) -> bool:
    """Manufacturer (0x8000-0x9FFF) and vendor (0xA000-0xBFFF) messages carry an OUI."""
    return 0x8000 <= mmtype <= 0xBFFF


def mmtype_name(mmtype: int) -> str:
    """``CM_SLAC_PARM.REQ`` for 0x6064; ``MMTYPE 0x1234`` for types this library does not name."""
    try:
        name = MMType(mmtype).name
    except ValueError:
        return f"MMTYPE 0x{mmtype:04X}"
    base, _, mode = name.rpartition("_")
    return f"{base}.{mode}"


# --- Field values of the ISO 15118-3 profile --------------------------------------------

APPLICATION_TYPE_PEV_EVSE = 0x00
SECURITY_TYPE_NONE = 0x00
SECURITY_TYPE_PUBLIC_KEY = 0x01
RESP_TYPE_OTHER_GP_STA = 0x01
KEY_TYPE_NMK = 0x01
PID_HLE = 0x04
NEW_EKS_NMK = 0x01
SET_KEY_NONCE = 0xAAAAAAAA
#: Number of OFDM carrier groups in CM_ATTEN_PROFILE.IND / CM_ATTEN_CHAR.IND.
NUM_GROUPS = 58
#: MatchVarField lengths of CM_SLAC_MATCH.REQ and .CNF.
MATCH_REQ_MVF_LENGTH = 0x3E
MATCH_CNF_MVF_LENGTH = 0x56
RUN_ID_LEN = 8
STATION_ID_LEN = 17
NID_LEN = 7
NMK_LEN = 16

ATTEN_CHAR_RESULT_SUCCESS = 0x00


class ValidateResult(IntEnum):
    """CM_VALIDATE.CNF Result."""

    NOT_READY = 0x00
    READY = 0x01
    SUCCESS = 0x02
    FAILURE = 0x03
    NOT_REQUIRED = 0x04


#: Security level of a NID: Simple Connect (what every SLAC stack uses).
SECURITY_LEVEL_SIMPLE_CONNECT = 0
SECURITY_LEVEL_SECURE = 1

# --- ISO 15118-3 counts -------------------------------------------------------------------

#: C_EV_match_MNBC: number of M-sounds.
C_EV_MATCH_MNBC = 10
#: C_EV_start_atten_char_inds: copies of CM_START_ATTEN_CHAR.IND the EV sends.
C_EV_START_ATTEN_CHAR_INDS = 3
#: C_EV_match_retry: resends of a request or indication that got no answer.
C_EV_MATCH_RETRY = 2
#: C_conn_max_match: matching attempts before giving up (ISO: at least 3).
C_CONN_MAX_MATCH = 3
#: C_EVSE_match_parallel: EV runs one EVSE serves at the same time.
C_EVSE_MATCH_PARALLEL = 5

# --- ISO 15118-3 timers, in seconds ------------------------------------------------------------

#: TT_EVSE_SLAC_init: wait for CM_SLAC_PARM.REQ after plug-in (ISO: 20 s to 50 s).
TT_EVSE_SLAC_INIT = 50.0
TT_EVSE_SLAC_INIT_MIN = 20.0
TT_EVSE_SLAC_INIT_MAX = 50.0
#: TT_EV_atten_results: the EV collects CM_ATTEN_CHAR.IND this long (max 1200 ms).
TT_EV_ATTEN_RESULTS = 1.2
#: TT_EVSE_match_MNBC: the EVSE's sounding window (sent as Time_Out = 6, in 100 ms).
TT_EVSE_MATCH_MNBC = 0.6
TIME_OUT_UNIT = 0.1
#: TT_match_sequence: between the messages of one sequence.
TT_MATCH_SEQUENCE = 0.4
#: TT_match_response: answer to a request or indication.
TT_MATCH_RESPONSE = 0.2
#: TT_match_join: the EV joins the AVLN after CM_SLAC_MATCH.CNF (max 12 s).
TT_MATCH_JOIN = 12.0
#: TT_EVSE_match_session: CM_SLAC_MATCH.REQ / CM_VALIDATE.REQ after CM_ATTEN_CHAR.RSP.
TT_EVSE_MATCH_SESSION = 10.0
#: TT_matching_rate: pause between two matching attempts.
TT_MATCHING_RATE = 0.4
#: TT_matching_repetition: a whole matching process.
TT_MATCHING_REPETITION = 10.0
#: TP_EV_batch_msg_interval: between two sounds (20 ms to 50 ms).
TP_EV_BATCH_MSG_INTERVAL = 0.02
TP_EV_BATCH_MSG_INTERVAL_MAX = 0.05
#: TP_match_response: the performance time of an answer to a request (ISO 15118-5: 100 ms).
TP_MATCH_RESPONSE = 0.1

#: CM_SET_KEY.CNF Result values: HomePlug says 0 is success, QCA modems send 1 on success.
SET_KEY_RESULT_HPGP_SUCCESS = 0x00
SET_KEY_RESULT_QCA_SUCCESS = 0x01

# --- Qualcomm modem parameters (PIB) read with VS_RD_MOD ----------------------------------------

#: VS_RD_MOD MODULEID of the parameter block (PIB).
RD_MOD_MODULE_PIB = 0x02
#: PIB offset of SLAC_EnableMode (one byte): 0 SLAC off, 1 PEV (the car's modem), 2 EVSE.
PIB_SLAC_ENABLE_MODE = 0x1653
SLAC_MODE_OFF = 0
SLAC_MODE_PEV = 1
SLAC_MODE_EVSE = 2
#: VS_HOST_ACTION.IND MACTION values, as Qualcomm's open-plc-utils names them.
HOST_ACTIONS = {
    0x00: "start device",
    0x01: "store firmware",
    0x02: "store parameters",
    0x03: "update host",
    0x04: "config memory",
    0x05: "restore defaults",
}
#: QCA device classes of VS_SW_VER.CNF (MDEVICE_CLASS), as open-plc-utils names them.
DEVICE_CLASSES = {
    0x01: "INT6000",
    0x02: "INT6300",
    0x03: "INT6400",
    0x04: "AR7400",
    0x05: "AR6405",
    0x06: "Panther/Lynx",
    0x07: "QCA7450",
    0x08: "QCA7451",
    0x09: "QCA7452",
    0x20: "QCA7420",
    0x21: "QCA6410/QCA6411/QCA7006AQ",
    0x22: "QCA7000/QCA7005",
    0x30: "QCA7500",
}
