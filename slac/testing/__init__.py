"""The test bed: test hosts without modems or cars, for tests, benchmarks and demos (most of
it needs root). The library and the tools never import it; the application only runs the
virtual powerline for ``slac powerline``.

- :mod:`slac.testing.netns`: network namespaces and veth pairs (test hosts);
- :mod:`slac.testing.powerline`: the virtual GreenPHY powerline (modems, crosstalk, faults)
  and :mod:`slac.testing.powerline.carpark`, a car park on one hand-moved clock;
- :mod:`slac.testing.peer`: a scripted peer (the EVSE's modem and an EV) on a veth pair;
- :func:`fast_config`: the library's settings, made fast where an emulated modem allows it.
"""

from slac.testing.config import fast_config

__all__ = ["fast_config"]
