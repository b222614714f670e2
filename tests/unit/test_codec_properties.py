"""Property tests: round trips, and the decode contract (a message or DecodeError)."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slac.enums import ETH_TYPE_HPAV
from slac.errors import DecodeError
from slac.messages import MESSAGES, Message, UnknownMessage, decode_frame
from slac.utils import MacAddress

from .strategies import any_message, macs


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(any_message)
def test_unpack_of_pack_is_identity(message: Message) -> None:
    assert type(message).unpack(message.pack()) == message


@settings(max_examples=300)
@given(any_message, macs, macs)
def test_decode_of_frame_is_identity(message: Message, dst: MacAddress, src: MacAddress) -> None:
    frame = decode_frame(message.to_frame(dst, src))
    assert frame.message == message
    assert (frame.dst, frame.src) == (dst, src)


@settings(max_examples=2000)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_a_message_or_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode_frame(data)


hpav_frames = st.builds(
    lambda head, mmv, mmtype, body: (
        head + ETH_TYPE_HPAV.to_bytes(2, "big") + bytes([mmv]) + mmtype.to_bytes(2, "little") + body
    ),
    st.binary(min_size=12, max_size=12),
    st.sampled_from([0, 1, 2]),
    st.sampled_from(sorted(MESSAGES)) | st.integers(0, 0xFFFF),
    st.binary(max_size=300),
)


@settings(max_examples=3000)
@given(hpav_frames)
def test_homeplug_frames_with_garbage_payload_give_a_message_or_decode_error(data: bytes) -> None:
    try:
        message = decode_frame(data).message
    except DecodeError:
        return
    assert isinstance(message, (Message, UnknownMessage))
