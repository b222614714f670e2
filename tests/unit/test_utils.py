"""Key derivations reproduce the reference's vectors; MAC address helper."""

from __future__ import annotations

import pytest

from slac.errors import FieldError
from slac.utils import MacAddress, generate_nmk, nid_from_nmk, nmk_from_passphrase


@pytest.mark.parametrize(
    ("passphrase", "nmk", "nid", "nid_sl1"),
    [
        ("HomePlugAV", "50D3E4933F855B7040784DF815AA8DB7", "B0F2E695666B03", "B0F2E695666B13"),
        ("HomePlugAV0123", "B59319D7E8157BA001B018669CCEE30D", "026BCBA5354E08", "026BCBA5354E18"),
    ],
)
def test_reference_key_vectors(passphrase: str, nmk: str, nid: str, nid_sl1: str) -> None:
    derived = nmk_from_passphrase(passphrase)
    assert derived.hex().upper() == nmk
    assert nid_from_nmk(derived).hex().upper() == nid
    assert nid_from_nmk(derived, security_level=1).hex().upper() == nid_sl1


def test_nid_top_bits_are_zero_and_level_sits_in_bits_4_and_5() -> None:
    for level in (0, 1):
        nid = nid_from_nmk(bytes(range(16)), level)
        assert nid[6] >> 6 == 0
        assert (nid[6] >> 4) & 0b11 == level


def test_nid_rejects_wrong_key_size_and_level() -> None:
    with pytest.raises(FieldError):
        nid_from_nmk(bytes(15))
    with pytest.raises(FieldError):
        nid_from_nmk(bytes(16), security_level=2)


def test_passphrase_must_be_printable_ascii() -> None:
    with pytest.raises(FieldError):
        nmk_from_passphrase("HomePlugAV\x01")


def test_generate_nmk_uses_the_injected_source_and_checks_its_size() -> None:
    assert generate_nmk(lambda n: b"\x07" * n) == b"\x07" * 16
    assert generate_nmk() != generate_nmk()
    with pytest.raises(FieldError):
        generate_nmk(lambda n: b"\x00")


def test_mac_address_parses_text_and_bytes() -> None:
    mac = MacAddress("02:00:00:00:00:01")
    assert mac == b"\x02\x00\x00\x00\x00\x01"
    assert MacAddress("020000000001") == mac
    assert MacAddress(bytearray(mac)) == mac
    assert repr(mac) == "MacAddress('02:00:00:00:00:01')"
    assert MacAddress("ff:ff:ff:ff:ff:ff").is_broadcast
    assert not mac.is_multicast
    for bad in ("02:00:00:00:00", "zz:00:00:00:00:01", b"\x00" * 7):
        with pytest.raises(FieldError):
            MacAddress(bad)
