"""A virtual GreenPHY powerline for tests and demos without modems (needs root)."""

from slac.powerline.medium import EV, EVSE, Delivery, Faults, Medium, Modem
from slac.powerline.runner import Powerline
from slac.powerline.topology import HostPort, Topology, site_medium

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
