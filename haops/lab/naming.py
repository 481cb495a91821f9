"""Names of a lab's kernel objects, all keyed on the lab name so two labs never collide.

bridge  <lab>-br       (lab names never contain '_', so it cannot match a veth)
        <lab>-pb       the private network's bridge: hosts behind the bastion, no machine address
veth    <lab>_<host>   (machine side; a short digest when that exceeds 15 characters)
netns   <lab>_<host>
"""

from __future__ import annotations

import hashlib
import re

from haops.lab.commands import LabError
from haops.inventory.values import LAB_NAME

DEFAULT_LAB_NAME = "haops"
INTERFACE_NAME_MAX = 15
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def check_lab_name(name: str) -> str:
    if not LAB_NAME.fullmatch(name):
        raise LabError(f"lab name must be a lowercase letter then up to 11 letters, digits "
                       f"or '-' (it names interfaces, at most 15 characters); got {name!r}")
    return name


def check_host_name(name: str) -> str:
    if not HOST_NAME.fullmatch(name):
        raise LabError(f"lab host name must be lowercase letters, digits and '-'; got {name!r}")
    return name


def bridge_name(lab: str) -> str:
    return f"{lab}-br"


def private_bridge_name(lab: str) -> str:
    return f"{lab}-pb"


def private_veth_name(lab: str, host: str) -> str:
    """The bastion's second cable ('.' is in no host name, so it never names another host's veth)."""
    return veth_name(lab, f"{host}.p")


def veth_name(lab: str, host: str) -> str:
    name = f"{lab}_{host}"
    if len(name) <= INTERFACE_NAME_MAX:
        return name
    room = INTERFACE_NAME_MAX - len(lab) - 1
    return f"{lab}_{hashlib.sha1(host.encode()).hexdigest()[:room]}"


def mac_address(lab: str, host: str = "") -> str:
    """A stable, locally administered MAC: a host keeps its MAC across crash and boot,
    so its neighbours' ARP caches stay right, as with real hardware."""
    digest = hashlib.sha1(f"{lab}/{host}".encode()).digest()[:5]
    return ":".join(["02", *(f"{b:02x}" for b in digest)])


def netns_name(lab: str, host: str) -> str:
    return f"{lab}_{host}"


def netns_prefix(lab: str) -> str:
    return f"{lab}_"
