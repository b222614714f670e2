"""ModemHost's ordering of frames and its one timer (no root: the socket is never opened)."""

from __future__ import annotations

import asyncio
import logging

from slac.host import ModemHost
from slac.messages import Frame, SlacParmReq
from slac.utils import MacAddress

OWN = MacAddress("02:00:00:00:00:01")
PEER = MacAddress("02:00:00:00:00:02")


async def test_a_deadline_that_came_before_the_frame_is_handled_first() -> None:
    """The loop reads a socket before it runs the timers that came due meanwhile: a frame
    that arrived after the machine's deadline must not be handled as if it had been in time
    (ISO 15118-5 sends its late CM_ATTEN_CHAR.IND exactly when TT_EV_atten_results ends)."""
    seen: list[str] = []

    def on_frame(frame: Frame, now: float) -> None:
        seen.append(f"frame {frame.message.name}")

    host = ModemHost("unused0", on_frame, logging.getLogger("test"))
    loop = asyncio.get_running_loop()
    host.loop, host.mac = loop, OWN
    deadline = loop.time() + 0.010
    host.arm_timer(deadline, lambda: seen.append("deadline"))
    frame = SlacParmReq(run_id=bytes(8)).to_frame(OWN, PEER)
    host._on_raw_frame(frame, deadline + 0.005)
    assert seen == ["deadline", "frame CM_SLAC_PARM.REQ"]
    await asyncio.sleep(0.03)
    assert seen == ["deadline", "frame CM_SLAC_PARM.REQ"], "the timer fired twice"


async def test_a_frame_before_the_deadline_leaves_the_timer_armed() -> None:
    seen: list[str] = []
    host = ModemHost("unused0", lambda f, n: seen.append("frame"), logging.getLogger("test"))
    loop = asyncio.get_running_loop()
    host.loop, host.mac = loop, OWN
    deadline = loop.time() + 0.020
    host.arm_timer(deadline, lambda: seen.append("deadline"))
    host._on_raw_frame(SlacParmReq(run_id=bytes(8)).to_frame(OWN, PEER), deadline - 0.010)
    assert seen == ["frame"]
    await asyncio.sleep(0.04)
    assert seen == ["frame", "deadline"]
