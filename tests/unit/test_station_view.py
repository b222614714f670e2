"""The station view: what the EVSEs of one station heard of each EV."""

from __future__ import annotations

import pytest

from slac.fsm.station_view import MAX_EVS_PER_EVSE, StationView

A, B, C = b"\x02\x00\x00\x00\x00\x0a", b"\x02\x00\x00\x00\x00\x0b", b"\x02\x00\x00\x00\x00\x0c"
EV, EV2 = b"\x02\x00\x00\x00\x01\x01", b"\x02\x00\x00\x00\x01\x02"


def test_an_ev_heard_clearly_better_elsewhere_is_reported_with_the_best_evse() -> None:
    view = StationView()
    view.heard(A, EV, 20.0, now=1.0)
    view.heard(C, EV, 24.0, now=1.0)
    view.heard(B, EV, 30.0, now=1.1)
    better = view.better_elsewhere(B, EV, 30.0, margin=3.0, now=1.2)
    assert better is not None
    assert (better.evse, better.db, better.margin_db) == (A, 20.0, 10.0)
    # the best EVSE itself has nobody better; one within the margin neither
    assert view.better_elsewhere(A, EV, 20.0, margin=3.0, now=1.2) is None
    assert view.better_elsewhere(C, EV, 22.0, margin=3.0, now=1.2) is None


@pytest.mark.parametrize("margin", [0.0, -1.0])
def test_margin_zero_turns_it_off(margin: float) -> None:
    view = StationView()
    view.heard(A, EV, 20.0, now=0.0)
    assert view.better_elsewhere(B, EV, 40.0, margin=margin, now=0.0) is None


def test_measurements_expire_and_are_forgotten_when_their_evse_stops() -> None:
    view = StationView(memory=10.0)
    view.heard(A, EV, 20.0, now=0.0)
    assert view.better_elsewhere(B, EV, 30.0, margin=3.0, now=10.0) is not None
    assert view.better_elsewhere(B, EV, 30.0, margin=3.0, now=10.5) is None  # too old
    view.heard(A, EV, 20.0, now=11.0)
    view.forget(A)
    assert view.better_elsewhere(B, EV, 30.0, margin=3.0, now=11.0) is None


def test_an_evse_matched_with_another_ev_is_not_that_evs_own() -> None:
    view = StationView()
    view.heard(A, EV, 20.0, now=0.0)
    view.matched(A, EV2)
    assert view.better_elsewhere(B, EV, 30.0, margin=3.0, now=0.1) is None
    view.matched(A, EV)  # matched with this very EV: it is its own
    assert view.better_elsewhere(B, EV, 30.0, margin=3.0, now=0.1) is not None


def test_memory_per_evse_is_bounded() -> None:
    view = StationView()
    for i in range(MAX_EVS_PER_EVSE + 10):
        view.heard(A, i.to_bytes(6, "big"), 20.0, now=0.0)
    assert view.better_elsewhere(B, (0).to_bytes(6, "big"), 30.0, 3.0, now=0.0) is None
    last = (MAX_EVS_PER_EVSE + 9).to_bytes(6, "big")
    assert view.better_elsewhere(B, last, 30.0, 3.0, now=0.0) is not None


def test_the_evses_of_one_service_share_one_station_view() -> None:
    """``slac evse`` (EvseService) gives every session of its station file the same view,
    and each session's matcher uses it; a session made with its own view keeps it."""
    from slac.app.service import EvseService, service_session
    from slac.app.station import EvseSpec
    from slac.environment import Config
    from slac.session import SlacEvseSession

    own = StationView()

    def factory(evse_id: str, iface: str, config: Config) -> SlacEvseSession:
        if evse_id == "C":
            return SlacEvseSession(evse_id, iface, config, station_view=own)
        return service_session(evse_id, iface, config)

    service = EvseService(
        [EvseSpec("A", "nosuch0"), EvseSpec("B", "nosuch1"), EvseSpec("C", "nosuch2")],
        session_factory=factory,
    )
    a, b, c = (service.sessions[k] for k in "ABC")
    assert a.station_view is service.station_view and b.station_view is service.station_view
    assert c.station_view is own
