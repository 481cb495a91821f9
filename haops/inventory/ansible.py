"""An Ansible inventory as a haops inventory skeleton.

Two readers give the same thing, the JSON of `ansible-inventory -i PATH --list`:
  - ansible-inventory itself when it is installed (dynamic inventories and plugins work exactly
    as Ansible reads them);
  - otherwise read_static(): static INI and YAML inventories, with host ranges (web[1:3],
    [a:c], zero-padded [01:10], strides), `:children`, `:vars` and inline host vars, and
    variables flattened per host as Ansible does (all < parent < child < host; groups of one
    depth by ansible_group_priority, then name).
skeleton() turns that JSON into haops YAML, every decision written beside it as a comment.
"""

from __future__ import annotations

import ast
import ipaddress
import json
import re
import shutil
import string
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from haops.errors import UserError

# Ansible's connection variables and the haops host variable each one becomes.
CARRIED = {"ansible_port": "ssh_port", "ansible_user": "ssh_user", "ansible_ssh_private_key_file": "ssh_key"}
NOT_CARRIED_WHY = {
    "ansible_become_password": "haops never stores passwords; run with --ask-become-pass",
    "ansible_become_pass": "haops never stores passwords; run with --ask-become-pass",
    "ansible_password": "haops authenticates with keys and the agent only",
    "ansible_ssh_pass": "haops authenticates with keys and the agent only",
    "ansible_connection": "haops always connects over SSH",
    "ansible_python_interpreter": "haops runs no Python on the hosts",
    "ansible_ssh_common_args": "set SSH options in ~/.ssh/config, which haops reads",
    "ansible_ssh_extra_args": "set SSH options in ~/.ssh/config, which haops reads",
}
BECOME_VARS = ("ansible_become", "ansible_become_method", "ansible_become_user")
GROUP_NOT_CARRIED = {"all": "every haops host is in it anyway", "ungrouped": "a haops host may be in no group"}
RANGE = re.compile(r"\[([^\]:]+):([^\]:]+)(?::(\d+))?\]")
LABEL_BAD = re.compile(r"[^a-z0-9-]+")
DNS_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


# --- reading ------------------------------------------------------------------------------------------


def read(path: Path, use_ansible: bool | None = None) -> tuple[dict[str, Any], str]:
    """The `ansible-inventory --list` JSON of PATH, and which reader made it."""
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    tool = shutil.which("ansible-inventory")
    if use_ansible is None:
        use_ansible = tool is not None
    if use_ansible:
        if tool is None:
            raise UserError("ansible-inventory is not installed (Debian: apt install ansible-core); drop --ansible-inventory")
        return ansible_inventory_list(tool, path), "ansible-inventory --list"
    return read_static(path), "haops' own reader of static INI and YAML inventories"


def ansible_inventory_list(tool: str, path: Path) -> dict[str, Any]:
    done = subprocess.run([tool, "-i", str(path), "--list"], capture_output=True, text=True, timeout=120, check=False,
                          env={"ANSIBLE_NOCOLOR": "1", "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
                               "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(Path.home())})
    if done.returncode != 0:
        raise UserError(f"ansible-inventory could not read {path}:\n{done.stderr.strip()[-2000:]}")
    data: dict[str, Any] = json.loads(done.stdout)
    return data


@dataclass
class Group:
    name: str
    hosts: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    vars: dict[str, Any] = field(default_factory=dict)


@dataclass
class StaticInventory:
    groups: dict[str, Group] = field(default_factory=dict)
    hostvars: dict[str, dict[str, Any]] = field(default_factory=dict)

    def group(self, name: str) -> Group:
        return self.groups.setdefault(name, Group(name))

    def add_host(self, group: str, host: str, variables: dict[str, Any]) -> None:
        members = self.group(group).hosts
        if host not in members:
            members.append(host)
        self.hostvars.setdefault(host, {}).update(variables)

    def add_child(self, parent: str, child: str) -> None:
        self.group(child)
        if child not in self.group(parent).children:
            self.group(parent).children.append(child)


def read_static(path: Path) -> dict[str, Any]:
    text = path.read_text()
    inventory = StaticInventory()
    inventory.group("all")
    if path.suffix in (".yml", ".yaml") or _looks_like_yaml(text):
        _read_yaml(text, path, inventory)
    else:
        _read_ini(text, path, inventory)
    return as_list_json(inventory)


def _looks_like_yaml(text: str) -> bool:
    try:
        return isinstance(yaml.safe_load(text), dict)
    except yaml.YAMLError:
        return False


def expand_range(pattern: str) -> list[str]:
    """web[1:3] -> web1 web2 web3; [01:10] keeps the zero padding; [a:c] letters; [1:9:2] a stride."""
    found = RANGE.search(pattern)
    if not found:
        return [pattern]
    start, end, stride = found.group(1), found.group(2), int(found.group(3) or 1)
    head, tail = pattern[: found.start()], pattern[found.end():]
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") and len(start) > 1 else 0
        items = [str(n).zfill(width) for n in range(int(start), int(end) + 1, stride)]
    elif start in string.ascii_letters and end in string.ascii_letters:
        items = [chr(c) for c in range(ord(start), ord(end) + 1, stride)]
    else:
        raise UserError(f"host range {pattern!r}: [{start}:{end}] is neither numeric nor single letters")
    return [name for item in items for name in expand_range(head + item + tail)]


def _ini_value(text: str) -> Any:
    """Values are Python literals where they parse as one (as Ansible's INI plugin reads them), else strings."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _read_ini(text: str, path: Path, inventory: StaticInventory) -> None:
    import shlex

    section, kind = "ungrouped", "hosts"
    defined: set[str] = {"all", "ungrouped"}
    children: dict[str, tuple[int, str]] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            name, _, kind = line[1:-1].partition(":")
            kind = kind or "hosts"
            if kind not in ("hosts", "children", "vars"):
                raise UserError(f"{path}:{number}: section [{line[1:-1]}]: only :children and :vars are known")
            section = name
            defined.add(name)
            inventory.group(name)
            if name != "all" and kind != "vars":
                inventory.add_child("all", name) if name != "ungrouped" else None
            continue
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise UserError(f"{path}:{number}: expected key=value in [{section}:vars]")
            inventory.group(section).vars[key.strip()] = _ini_value(value.strip())
        elif kind == "children":
            inventory.add_child(section, line.split()[0])
            children.setdefault(line.split()[0], (number, section))
        else:
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                raise UserError(f"{path}:{number}: {exc}") from None
            _ini_host(inventory, section, words, f"{path}:{number}")
    for child, (number, parent) in children.items():
        if child not in defined:  # Ansible refuses these too
            raise UserError(f"{path}:{number}: section [{parent}:children] includes undefined group: {child}")


def _ini_host(inventory: StaticInventory, group: str, words: list[str], where: str) -> None:
    pattern, *assignments = words
    variables: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep:
            raise UserError(f"{where}: expected key=value after the host, got {assignment!r}")
        variables[key] = _ini_value(value)
    for name, port in _host_and_port(pattern):
        inventory.add_host(group, name, ({"ansible_port": port} if port else {}) | variables)


def _host_and_port(pattern: str) -> list[tuple[str, int | None]]:
    """badwolf.example.com:5309 -> the port; an IPv6 address or a range keeps its colons."""
    head, sep, tail = pattern.rpartition(":")
    if sep and tail.isdigit() and "[" not in tail and head.count(":") == 0 and not head.endswith("]"):
        return [(name, int(tail)) for name in expand_range(head)]
    return [(name, None) for name in expand_range(pattern)]


def _read_yaml(text: str, path: Path, inventory: StaticInventory) -> None:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: an Ansible YAML inventory is a mapping of groups")
    for name, body in data.items():
        _yaml_group(inventory, str(name), body, None, path)


def _yaml_group(inventory: StaticInventory, name: str, body: Any, parent: str | None, path: Path) -> None:
    inventory.group(name)
    if parent is not None:
        inventory.add_child(parent, name)
    elif name not in ("all", "ungrouped"):
        inventory.add_child("all", name)
    if body is None:
        return
    if not isinstance(body, dict):
        raise UserError(f"{path}: group {name!r}: expected hosts, vars and children")
    for pattern, variables in (body.get("hosts") or {}).items():
        for host, port in _host_and_port(str(pattern)):
            inventory.add_host(name, host, ({"ansible_port": port} if port else {}) | dict(variables or {}))
    inventory.group(name).vars.update(body.get("vars") or {})
    for child, child_body in (body.get("children") or {}).items():
        _yaml_group(inventory, str(child), child_body, name, path)


def as_list_json(inventory: StaticInventory) -> dict[str, Any]:
    """The shape of `ansible-inventory --list`: groups with hosts and children, vars flattened per host."""
    groups = inventory.groups
    inventory.group("ungrouped")
    grouped = {h for g in groups.values() if g.name not in ("all", "ungrouped") for h in g.hosts}
    ungrouped = groups["ungrouped"]
    ungrouped.hosts = [h for h in ungrouped.hosts if h not in grouped]
    for host in inventory.hostvars:
        if host not in grouped and host not in ungrouped.hosts:
            ungrouped.hosts.append(host)
    # `all` keeps as children only the groups nobody else is the parent of, as Ansible lists them.
    others = {child for g in groups.values() if g.name != "all" for child in g.children}
    groups["all"].children = ["ungrouped", *(g for g in groups if g not in ("all", "ungrouped") and g not in others)]
    parents = {name: [g.name for g in groups.values() if name in g.children] for name in groups}
    depth = {name: _depth(name, parents) for name in groups}
    result: dict[str, Any] = {"_meta": {"hostvars": {}}}
    for host, own in inventory.hostvars.items():
        flat: dict[str, Any] = {}
        for name in sorted(_groups_of(host, groups, parents), key=lambda g: (depth[g], _priority(groups[g]), g)):
            flat.update({k: v for k, v in groups[name].vars.items() if k != "ansible_group_priority"})
        flat.update(own)
        if flat:
            result["_meta"]["hostvars"][host] = flat
    for group in groups.values():
        entry: dict[str, Any] = {}
        if group.hosts:
            entry["hosts"] = list(group.hosts)
        if group.children:
            entry["children"] = list(group.children)
        if entry or group.name == "all":
            result[group.name] = entry
    return result


def _depth(name: str, parents: dict[str, list[str]], seen: frozenset[str] = frozenset()) -> int:
    if name == "all" or name in seen:
        return 0
    return 1 + max((_depth(p, parents, seen | {name}) for p in parents[name]), default=0)


def _priority(group: Group) -> int:
    return int(group.vars.get("ansible_group_priority", 1))


def _groups_of(host: str, groups: dict[str, Group], parents: dict[str, list[str]]) -> set[str]:
    found = {"all"}
    pending = [g.name for g in groups.values() if host in g.hosts]
    while pending:
        name = pending.pop()
        if name not in found:
            found.add(name)
            pending += parents[name]
    return found


# --- the haops skeleton -------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostDraft:
    ansible: str
    name: str
    address: str | None
    variables: dict[str, Any]
    notes: list[str]


def members(data: dict[str, Any], group: str, seen: frozenset[str] = frozenset()) -> list[str]:
    """Every host of a group, its children's included, in the order Ansible lists them."""
    if group in seen:
        return []
    entry = data.get(group) or {}
    hosts = list(entry.get("hosts", []))
    for child in entry.get("children", []):
        hosts += members(data, child, seen | {group})
    return list(dict.fromkeys(hosts))


def all_hosts(data: dict[str, Any]) -> list[str]:
    hosts = members(data, "all") + list(data.get("_meta", {}).get("hostvars", {}))
    return list(dict.fromkeys(hosts))


def label(text: str) -> str:
    return LABEL_BAD.sub("-", text.lower()).strip("-")[:63] or "host"


def host_names(hosts: Iterable[str]) -> dict[str, str]:
    """A DNS label per Ansible host: the first label of the name when that is unique, else the whole name."""
    hosts = list(hosts)
    short = {h: label(h if _is_ip(h) else h.split(".")[0]) for h in hosts}
    counts: dict[str, int] = {}
    for name in short.values():
        counts[name] = counts.get(name, 0) + 1
    return {h: short[h] if counts[short[h]] == 1 else label(h) for h in hosts}


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def become_from(hostvars: dict[str, Any]) -> tuple[str | None, list[str]]:
    """haops' `become` from Ansible's: sudo to root is carried, any other method or user is not."""
    wanted = hostvars.get("ansible_become")
    method = str(hostvars.get("ansible_become_method", "sudo"))
    user = str(hostvars.get("ansible_become_user", "root"))
    if wanted is None or str(wanted).lower() not in ("true", "yes", "1", "on"):
        extra = [k for k in ("ansible_become_method", "ansible_become_user") if k in hostvars]
        return None, [f"not carried over: {k} (ansible_become is not on)" for k in extra]
    if method != "sudo" or user != "root":
        return None, [f"not carried over: ansible_become with method {method!r} to user {user!r} (haops becomes "
                      "root through sudo only)"]
    return "sudo", ["become: sudo, from ansible_become"]


def draft_host(ansible: str, name: str, hostvars: dict[str, Any]) -> HostDraft:
    notes: list[str] = []
    variables: dict[str, Any] = {}
    target = hostvars.get("ansible_host", ansible)
    address = str(target) if _is_ip(str(target)) else None
    if address is None:
        notes.append(f"MISSING address: {target!r} is not an IP address; write the cluster address here "
                     "(haops does not resolve names)")
        if DNS_NAME.match(str(target)):
            variables["ssh_host"] = str(target)
            notes.append(f"ssh_host: {target!r} from {'ansible_host' if 'ansible_host' in hostvars else 'the Ansible host name'}")
        else:
            notes.append(f"no ssh_host: {target!r} is not a host name SSH could connect to")
    elif "ansible_host" in hostvars:
        notes.append(f"address: ansible_host {address}")
    if name != ansible:
        notes.append(f"named {name!r} (haops host names are DNS labels); Ansible calls it {ansible!r}")
    become, become_notes = become_from(hostvars)
    if become:
        variables["become"] = become
    notes += become_notes
    for key, value in sorted(hostvars.items()):
        if key == "ansible_host" or key in BECOME_VARS:
            continue
        if key in CARRIED:
            variables[CARRIED[key]] = int(value) if key == "ansible_port" else str(value)
            notes.append(f"{CARRIED[key]}: from {key}")
        elif key in NOT_CARRIED_WHY:
            notes.append(f"not carried over: {key} ({NOT_CARRIED_WHY[key]})")
        else:
            notes.append(f"not carried over: {key} (haops has no such host variable)")
    return HostDraft(ansible, name, address, variables, notes)


def skeleton(data: dict[str, Any], source: str, reader: str, group_map: dict[str, str]) -> str:
    """haops inventory YAML with a comment for each decision."""
    hostvars = data.get("_meta", {}).get("hostvars", {})
    hosts = all_hosts(data)
    names = host_names(hosts)
    drafts = [draft_host(h, names[h], hostvars.get(h, {})) for h in hosts]
    groups, group_notes = _groups(data, names, group_map)
    shared = _shared_vars(drafts)
    missing = [d.name for d in drafts if d.address is None]
    lines = [f"# haops inventory skeleton from the Ansible inventory {source}, read by {reader}.",
             "# Variables are flattened per host as Ansible does (all < parent < child < host); haops has no",
             "# nested groups and merges groups by name, so each host carries its own values. Values every",
             "# host shares are in `vars`. Groups with children list every host of their children.",
             "# Next: add services (see docs/inventory.md), then `haops inventory check -i THIS_FILE`."]
    if missing:
        lines.append(f"# MISSING before it loads: an IP address for {', '.join(missing)}.")
    lines.append("")
    if shared:
        lines += ["vars:", *(f"  {k}: {_scalar(v)}" for k, v in shared.items()), ""]
    lines.append("hosts:")
    for draft in drafts:
        lines += _host_lines(draft, groups, shared)
    lines.append("")
    lines += group_notes
    if groups:
        lines.append("groups:")
        for group, members_ in groups.items():
            lines.append(f"  {group}: {{hosts: [{', '.join(members_)}]}}")
    else:
        lines.append("groups: {}")
    lines += ["", "services: {}   # fill in: which hosts balance what, to which backends"]
    return "\n".join(lines) + "\n"


def _host_lines(draft: HostDraft, groups: dict[str, list[str]], shared: dict[str, Any]) -> list[str]:
    own = {k: v for k, v in draft.variables.items() if shared.get(k) != v}
    member_of = [g for g, hosts in groups.items() if draft.name in hosts]
    fields = [f"address: {draft.address if draft.address else 'null'}"]
    if member_of:
        fields.append(f"groups: [{', '.join(member_of)}]")
    if own:
        fields.append("vars: {" + ", ".join(f"{k}: {_scalar(v)}" for k, v in own.items()) + "}")
    return [*(f"  # {note}" for note in draft.notes), f"  {draft.name}: {{{', '.join(fields)}}}"]


def _scalar(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else str(value)


def _shared_vars(drafts: list[HostDraft]) -> dict[str, Any]:
    if len(drafts) < 2:
        return {}
    first = drafts[0].variables
    return {k: v for k, v in first.items() if k != "ssh_host" and all(d.variables.get(k) == v for d in drafts)}


def _groups(data: dict[str, Any], names: dict[str, str], group_map: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    groups: dict[str, list[str]] = {}
    notes: list[str] = []
    for group in sorted(k for k in data if k != "_meta"):
        if group in GROUP_NOT_CARRIED:
            notes.append(f"# group {group}: not carried over ({GROUP_NOT_CARRIED[group]})")
            continue
        haops = group_map.get(group, label(group))
        hosts = [names[h] for h in members(data, group)]
        children = (data.get(group) or {}).get("children", [])
        why = f" Ansible {group!r}, mapped by --group-map" if group in group_map else (
            f" Ansible {group!r} (group names are DNS labels)" if haops != group else "")
        if children:
            why += f"; its children {', '.join(children)} are flattened into it"
        if why:
            notes.append(f"# group {haops}:{why}")
        groups[haops] = list(dict.fromkeys(groups.get(haops, []) + hosts))
    for wanted in group_map:
        if wanted not in data:
            raise UserError(f"--group-map {wanted}={group_map[wanted]}: the Ansible inventory has no group {wanted!r}")
    return dict(sorted(groups.items())), notes


def parse_group_map(items: list[str]) -> dict[str, str]:
    mapping = {}
    for item in items:
        ansible, sep, haops = item.partition("=")
        if not sep or not ansible or not haops:
            raise UserError(f"--group-map {item!r}: expected ANSIBLE_GROUP=HAOPS_GROUP, e.g. webservers=web")
        if label(haops) != haops:
            raise UserError(f"--group-map {item!r}: {haops!r} is not a haops group name (lowercase letters, digits, -)")
        mapping[ansible] = haops
    return mapping
