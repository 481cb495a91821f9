"""The lab: real SSH hosts on one machine, made of Linux namespaces.

Each host is a network namespace (a veth on the lab bridge), a mount namespace (overlays
over /etc, /var, /srv and /root; fresh tmpfs /run and /tmp), a UTS namespace (its
hostname) and a PID namespace whose init is sshd. See docs/lab.md.
"""

from haops.lab.lab import Lab, LabError, LabHostStatus
from haops.lab.naming import DEFAULT_LAB_NAME
from haops.lab.network import DEFAULT_NETWORK, SAFETY_NET
from haops.lab.state import default_state_root
from haops.lab.topology import (
    LabHost,
    default_hosts,
    hosts_from_inventory,
    inventory_yaml,
)

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
