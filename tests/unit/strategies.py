"""Hypothesis strategies for every message class."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hypothesis import strategies as st

from slac.messages import (
    MESSAGES,
    AmpMapReq,
    AttenCharInd,
    AttenProfileInd,
    Message,
    MnbcSoundInd,
    SlacParmCnf,
    SlacParmReq,
    VsRdModCnf,
    VsSwVerCnf,
)
from slac.utils import MacAddress

_INT = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF}
macs = st.binary(min_size=6, max_size=6).map(MacAddress)
byte_lists = st.lists(st.integers(0, 255), max_size=255).map(tuple)


def _layout_strategy(code: str) -> st.SearchStrategy[Any]:
    if code == "mac":
        return macs
    if code in _INT:
        return st.integers(0, _INT[code])
    size = int(code[:-1])
    return st.binary(min_size=size, max_size=size)


def _extra(cls: type[Message]) -> dict[str, st.SearchStrategy[Any]]:
    if cls in (AttenProfileInd, AttenCharInd):
        return {"aag": byte_lists}
    if cls is MnbcSoundInd:
        return {"random": st.binary(min_size=16, max_size=16)}
    if cls is AmpMapReq:
        return {"amplitudes": st.lists(st.integers(0, 15), max_size=1200).map(tuple)}
    if cls is VsSwVerCnf:
        text = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=63)
        return {"version": text, "upgradable": st.integers(0, 255)}
    return {}


@st.composite
def _parm(draw: st.DrawFn, cls: type[Message]) -> Message:
    security = draw(st.sampled_from([0, 1]))
    kwargs: dict[str, Any] = {
        name: draw(_layout_strategy(code)) for name, code in cls._LAYOUT if name != "security_type"
    }
    kwargs["security_type"] = security
    if cls is SlacParmReq and security == 1:
        kwargs["cipher_suites"] = tuple(draw(st.lists(st.integers(0, 0xFFFF), max_size=8)))
    if cls is SlacParmCnf and security == 1:
        kwargs["cipher_suite"] = draw(st.integers(0, 0xFFFF))
    return cls(**kwargs)


def message_strategy(cls: type[Message]) -> st.SearchStrategy[Message]:
    if cls in (SlacParmReq, SlacParmCnf):
        return _parm(cls)
    if cls is VsRdModCnf:  # the length is the data's
        kwargs = {name: _layout_strategy(code) for name, code in cls._LAYOUT if name != "length"}
        kwargs["status"] = st.just(0)  # a refusal's data is padding (see the codec)
        return st.builds(cls, data=st.binary(max_size=1024), **kwargs)
    kwargs = {name: _layout_strategy(code) for name, code in cls._LAYOUT}
    kwargs.update(_extra(cls))
    names = {f.name for f in fields(cls)}
    assert set(kwargs) <= names, (cls, set(kwargs) - names)
    return st.builds(cls, **kwargs)


any_message = st.sampled_from(sorted(MESSAGES.values(), key=lambda c: c.MMTYPE)).flatmap(
    message_strategy
)
