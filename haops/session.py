"""Which key and known_hosts a run uses: a running lab's own, or the user's ~/.ssh.

It sits above transport and the lab, so that transport knows nothing of labs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from haops.inventory.model import Inventory
from haops.transport import SshSettings

if TYPE_CHECKING:
    from haops.lab import Lab


class LabKeys(Protocol):
    """A lab's SSH files: a Lab, or just its paths on disk."""

    @property
    def known_hosts(self) -> Path: ...

    @property
    def identity(self) -> Path: ...

    @property
    def ssh_config(self) -> Path: ...


def running_lab(inventory: Inventory) -> Lab | None:
    """The running lab the inventory names, if any."""
    if inventory.lab is None:
        return None
    from haops.lab import Lab, LabError

    try:
        return Lab.existing(inventory.lab.name)
    except LabError:
        return None


def running_lab_keys(inventory: Inventory) -> LabKeys | None:
    """The SSH files of the running lab the inventory names: only its state on disk is read,
    so an apply does not import the lab package (its network and key-making code)."""
    if inventory.lab is None:
        return None
    from haops.lab.state import LabPaths, default_state_root

    paths = LabPaths(default_state_root().absolute(), inventory.lab.name)
    return paths if paths.record.exists() else None


def lab_settings(lab: LabKeys, trust_new_hosts: bool = False) -> SshSettings:
    # Only the lab's own known_hosts: a stale ~/.ssh entry for a lab address must not refuse it.
    # The lab's own ssh_config too: it routes hosts behind the lab's bastion through it.
    return SshSettings((lab.known_hosts,), lab.identity, trust_new_hosts, lab.known_hosts,
                       forced_user="root", use_user_known_hosts=False, ssh_config=lab.ssh_config)


def settings_for(inventory: Inventory, trust_new_hosts: bool = False) -> SshSettings:
    """The lab's key and known_hosts when the inventory names a running lab; else ~/.ssh."""
    lab = running_lab_keys(inventory)
    if lab is None:
        return SshSettings((), None, trust_new_hosts)
    return lab_settings(lab, trust_new_hosts)
