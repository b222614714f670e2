"""A virtual GreenPHY powerline for tests and demos without modems (needs root)."""

from slac.testing.powerline.medium import EV, EVSE, Delivery, Faults, Medium, Modem
from slac.testing.powerline.runner import Powerline
from slac.testing.powerline.topology import HostPort, Topology, site_medium

__all__ = [
    "EV",
    "EVSE",
    "Delivery",
    "Faults",
    "HostPort",
    "Medium",
    "Modem",
    "Powerline",
    "Topology",
    "site_medium",
]
