"""MAC addresses and HomePlug AV key derivations (NID from NMK, NMK from a pass phrase)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Callable, Union

from slac.enums import (
    NID_LEN,
    NMK_LEN,
    SECURITY_LEVEL_SECURE,
    SECURITY_LEVEL_SIMPLE_CONNECT,
)
from slac.errors import FieldError

#: The salt of HomePlug AV's NMK-from-pass-phrase derivation (HPAVKeyNMK).
NMK_SALT = bytes.fromhex("08856DAF7CF58186")


class MacAddress(bytes):
    """Six bytes that print as ``02:00:00:00:00:01``.

    Built from bytes (``MacAddress(b"...")``) or text (``MacAddress("02:00:00:00:00:01")``,
    ``-`` or no separator also accepted). It compares equal to the plain bytes.
    """

    __slots__ = ()

    def __new__(cls, value: Union[bytes, bytearray, str, MacAddress]) -> MacAddress:
        kind = type(value)
        if kind is MacAddress:
            return value  # type: ignore[return-value]
        if kind is bytes and len(value) == 6:  # the hot path: fields read from frames
            return bytes.__new__(cls, value)  # type: ignore[arg-type]
        if isinstance(value, str):
            digits = value.replace(":", "").replace("-", "").strip()
            try:
                raw = bytes.fromhex(digits)
            except ValueError:
                raise FieldError(f"not a MAC address: {value!r}") from None
        elif isinstance(value, (bytes, bytearray)):
            raw = bytes(value)
        else:
            raise FieldError(f"a MAC address is bytes or text, not {type(value).__name__}")
        if len(raw) != 6:
            raise FieldError(f"a MAC address has 6 bytes, got {len(raw)}: {value!r}")
        return bytes.__new__(cls, raw)

    def __str__(self) -> str:
        return self.hex(":")

    def __repr__(self) -> str:
        return f"MacAddress('{self}')"

    @property
    def is_broadcast(self) -> bool:
        return self == b"\xff" * 6

    @property
    def is_multicast(self) -> bool:
        return bool(self[0] & 0x01)


def fast_mac(raw: bytes) -> MacAddress:
    """A MacAddress from exactly 6 bytes, without checks (for decoders that sliced 6 bytes)."""
    return bytes.__new__(MacAddress, raw)


def mac_to_str(mac: bytes) -> str:
    return bytes(mac).hex(":")


def nid_from_nmk(nmk: bytes, security_level: int = SECURITY_LEVEL_SIMPLE_CONNECT) -> bytes:
    """The 7-byte Network ID of a 16-byte NMK (HomePlug AV HPAVKeyNID).

    Five SHA-256 passes; the first 52 bits of the digest, then the 2-bit security level in
    bits 4-5 of the last byte.
    """
    if len(nmk) != NMK_LEN:
        raise FieldError(f"an NMK has {NMK_LEN} bytes, got {len(nmk)}")
    if security_level not in (SECURITY_LEVEL_SIMPLE_CONNECT, SECURITY_LEVEL_SECURE):
        raise FieldError(f"security level is 0 or 1, got {security_level}")
    digest = hashlib.sha256(nmk).digest()
    for _ in range(4):
        digest = hashlib.sha256(digest).digest()
    return digest[: NID_LEN - 1] + bytes([(security_level << 4) | (digest[NID_LEN - 1] >> 4)])


def nmk_from_passphrase(passphrase: str) -> bytes:
    """The NMK of a HomePlug AV pass phrase (HPAVKeyNMK): 1000 salted SHA-256 passes.

    HomePlug tools ask for 12 to 64 characters; the derivation itself takes any length (the
    factory default ``HomePlugAV`` has 10).
    """
    if any(not 0x20 <= ord(c) <= 0x7E for c in passphrase):
        raise FieldError("a pass phrase has only printable ASCII characters")
    data = passphrase.encode("ascii")
    digest = hashlib.sha256(data + NMK_SALT).digest()
    for _ in range(999):
        digest = hashlib.sha256(digest).digest()
    return digest[:NMK_LEN]


def generate_nmk(token_bytes: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """A fresh random NMK (from :mod:`secrets` unless another source is injected)."""
    nmk = token_bytes(NMK_LEN)
    if len(nmk) != NMK_LEN:
        raise FieldError(f"the random source gave {len(nmk)} bytes, not {NMK_LEN}")
    return nmk
