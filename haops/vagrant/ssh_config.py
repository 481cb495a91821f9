"""`vagrant ssh-config` output turned into inventory SSH settings for the same hosts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from haops.errors import UserError


@dataclass(frozen=True)
class VagrantHost:
    name: str
    hostname: str
    user: str
    port: int
    identity: str | None


def parse_ssh_config(text: str) -> dict[str, VagrantHost]:
    """Parse `vagrant ssh-config` output: Host blocks with HostName, User, Port, IdentityFile."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        key, value = key.lower(), value.strip().strip('"')
        if key == "host":
            current = blocks.setdefault(value, {})
        elif current is None:
            raise UserError(f"ssh-config line {number}: {key!r} before any 'Host' line; is this `vagrant ssh-config` output?")
        else:
            current.setdefault(key, value)
    if not blocks:
        raise UserError("no 'Host' blocks found; give the output of `vagrant ssh-config`")
    return {name: _host(name, block) for name, block in blocks.items()}


def _host(name: str, block: dict[str, str]) -> VagrantHost:
    try:
        return VagrantHost(name, block["hostname"], block.get("user", "vagrant"), int(block.get("port", "22")), block.get("identityfile"))
    except KeyError:
        raise UserError(f"ssh-config host {name!r} has no HostName; is the VM up?") from None
    except ValueError:
        raise UserError(f"ssh-config host {name!r} has a Port that is not a number") from None


def merge_into_inventory(inventory_text: str, vagrant_hosts: dict[str, VagrantHost]) -> str:
    """The inventory YAML with each host's ssh_host, ssh_port, ssh_user and ssh_key set."""
    data: dict[str, Any] = yaml.safe_load(inventory_text)
    hosts: dict[str, Any] = data["hosts"]
    unknown = sorted(set(vagrant_hosts) - set(hosts))
    missing = sorted(set(hosts) - set(vagrant_hosts))
    if unknown:
        raise UserError(f"ssh-config names hosts the inventory lacks: {', '.join(unknown)}")
    if missing:
        raise UserError(f"no ssh-config for {', '.join(missing)}: run `vagrant up` for them first")
    for name, vm in vagrant_hosts.items():
        spec = hosts[name] if isinstance(hosts[name], dict) else {"address": hosts[name]}
        variables = spec.get("vars") or {}
        if not isinstance(variables, dict):
            raise UserError(f"host {name}: vars must be a mapping, not {type(variables).__name__}")
        spec["vars"] = variables
        variables.update({"ssh_host": vm.hostname, "ssh_port": vm.port, "ssh_user": vm.user})
        if vm.identity:
            variables["ssh_key"] = vm.identity
        hosts[name] = spec
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
