"""The lab: real SSH hosts on one machine, made of Linux namespaces.

Each host is a network namespace (a veth on the lab bridge), a mount namespace (overlays
over /etc, /var, /srv and /root; fresh tmpfs /run and /tmp), a UTS namespace (its
hostname) and a PID namespace whose init is sshd. See docs/lab.md.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from haops.lab.lab import Lab, LabError, LabHostStatus
    from haops.lab.naming import DEFAULT_LAB_NAME
    from haops.lab.network import DEFAULT_NETWORK, SAFETY_NET
    from haops.lab.state import default_state_root
    from haops.lab.topology import LabHost, default_hosts, hosts_from_inventory, inventory_yaml

# Loaded on first use, so that reading a lab's files (haops.lab.state) does not import it all.
_HOMES = {"Lab": "lab", "LabError": "lab", "LabHostStatus": "lab", "DEFAULT_LAB_NAME": "naming",
          "DEFAULT_NETWORK": "network", "SAFETY_NET": "network", "default_state_root": "state",
          "LabHost": "topology", "default_hosts": "topology", "hosts_from_inventory": "topology",
          "inventory_yaml": "topology"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"haops.lab.{_HOMES[name]}"), name)


__all__ = [
    "DEFAULT_LAB_NAME",
    "DEFAULT_NETWORK",
    "SAFETY_NET",
    "Lab",
    "LabError",
    "LabHost",
    "LabHostStatus",
    "default_hosts",
    "default_state_root",
    "hosts_from_inventory",
    "inventory_yaml",
]
