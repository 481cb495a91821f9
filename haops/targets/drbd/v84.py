"""What differs for a DRBD 8.4 resource (the module in stock Linux kernels), in one place.

drbd-utils 9 ships the 8.4 tools as /lib/drbd/drbdadm-84 and /lib/drbd/drbdsetup-84; the
`drbdadm` wrapper execs them when /proc/drbd (or `modinfo drbd`) says 8.4
(user/v9/drbdadm_usage_cnt.c, maybe_exec_legacy_drbdadm). haops calls them by path, so an
8.4 resource is never handled by the DRBD 9 tools, whatever the wrapper decides:
drbdadm-84 writes v08 metadata (`drbdmeta MINOR v08 ...`), the DRBD 9 drbdadm v09.

An 8.4 resource has one connection, and drbdsetup-84 names it `peer` in `status` and
`conn-name:peer peer-node-id:0` in events2 (user/v84/drbdsetup.c, connection_status and
event_key): haops renames it to the other node's host name, so the rest reads both versions
alike. Its kernel messages name the device (`block drbd0: ...`; `drbd r0/0 drbd0: ...` from
Linux 6.2) or the resource (`drbd r0: ...`), never the peer (the kernel's drbd_int.h in Linux,
drbd_printk).
"""

from __future__ import annotations

import re
from dataclasses import replace

from haops.inventory.model import DrbdResource
from haops.targets.drbd.status import KernelLog, ResourceState

VERSION = "8.4"
DRBDADM = "/lib/drbd/drbdadm-84"
DRBDSETUP = "/lib/drbd/drbdsetup-84"
UNRESOLVED = "Split-Brain detected but unresolved"
RECONNECTED = re.compile(r"conn\( \S+ -> Connected \)|Split-Brain detected, manually solved")
# drbd_worker.c in Linux (8.4): drbd_alert(device, "Online verify found %lu %dk block out of sync!")
VERIFY_FOUND = re.compile(r"Online verify found (\d+) (\d+)k block out of sync")


def is_84(resource: DrbdResource) -> bool:
    return resource.version == VERSION


def quietly(resource: DrbdResource, script: str) -> str:
    """The script without the 8.4 tools' warning at every call ("DRBD module version: 8.4.11,
    userland version: 9.22.0, mixing different major numbers will not work!"): haops runs the
    8.4 tools on purpose, so the warning is noise in every message it shows."""
    return f"export DRBD_DONT_WARN_ON_VERSION_MISMATCH=1\n{script}" if is_84(resource) else script


def drbdadm(resource: DrbdResource) -> str:
    return DRBDADM if is_84(resource) else "drbdadm"


def drbdsetup(resource: DrbdResource) -> str:
    return DRBDSETUP if is_84(resource) else "drbdsetup"


def kernel_log_prefixes(resource: DrbdResource) -> tuple[str, ...]:
    """The kernel log lines about the resource start with one of these."""
    if is_84(resource):
        # Linux 6.2 and later name a device `drbd r0/0 drbd0: ` ("drbd: introduce dynamic debug")
        return f"drbd {resource.name}: ", f"block drbd{resource.minor}: ", f"drbd {resource.name}/"
    return (f"drbd {resource.name}",)


def parse_kernel_log(text: str, resource: DrbdResource, peer: str) -> KernelLog:
    """An 8.4 kernel log: split brain and verify results of the resource's one connection, to `peer`."""
    split = False
    found = 0
    for line in text.splitlines():
        if not any(prefix in line for prefix in kernel_log_prefixes(resource)):
            continue
        if UNRESOLVED in line:
            split = True
        elif RECONNECTED.search(line):
            split = False
        verified = VERIFY_FOUND.search(line)
        if verified:
            found += int(verified[1]) * int(verified[2])
    key = (resource.name, peer)
    return KernelLog(frozenset([key]) if split else frozenset(), ((key, found),) if found else ())


def with_peer_named(state: ResourceState, peer: str) -> ResourceState:
    """The state with its one connection named after the peer host (8.4 calls it `peer`)."""
    return replace(state, connections=tuple(replace(c, peer=peer) for c in state.connections[:1]))
