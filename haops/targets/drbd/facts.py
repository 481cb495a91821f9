"""What a DRBD node has now: one shell script per host and a pure parser of its tagged lines.

  K loaded <first line of /proc/drbd> | K loadable <modinfo version> | K missing <why>
  U 0|1              drbdadm is installed
  C 0|1              the resource's configuration names this host (`drbdadm dump RES`)
  B 0|1              the backing disk is a block device
  M <line>           `drbdadm dump-md RES` output, filtered; `M rc N` its exit code
  S <line>           `blkid -p -o export DISK`: the signature found on the backing disk; `S rc N`
  E <line>           `drbdsetup events2 --now --statistics RES` (only when the module is loaded)
  A <line>           `drbdadm status RES`, read instead when events2 fails
  L <line>           kernel log lines about RES (split brain, connection changes, verify)

The module check follows drbdsetup's own (user/v9/drbdsetup_linux.c, modprobe_drbd): /proc/drbd
exists once the module is loaded; else drbdsetup runs `/sbin/modprobe drbd` and gives up with
exit 20. Here `modprobe -n` asks the same question without loading anything, and haops never
runs drbdsetup on a host without the module, so a read never loads it as a side effect.

`drbdmeta dump-md` (user/shared/drbdmeta.c) exits 0 after printing valid metadata and non-zero
with "No valid meta data found" when there is none; "unclean" metadata is refused with "Found
meta data is \"unclean\", please apply-al first". blkid -p exits 2 when it finds no signature.

A DRBD 8.4 resource is read with drbdadm-84 and drbdsetup-84 (v84.py). Its metadata is v08,
whose dump has one line of UUIDs, `    0xCURRENT; 0xBITMAP; 0xHISTORY1; 0xHISTORY2;`, instead
of v09's current-uuid, bitmap-uuid and history-uuids (drbdmeta.c, meta_dump_md).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from haops.inventory.model import DrbdResource
from haops.targets.drbd import v84
from haops.targets.drbd.status import (
    KernelLog,
    ResourceState,
    parse_drbdadm_status,
    parse_events2,
    parse_kernel_log,
    with_kernel_log,
)

# UUID_JUST_CREATED in drbdmeta.c: a current UUID of 4 is metadata that never held data.
JUST_CREATED = 0x4
KERNEL_LOG_LINES = 400
DUMP_MD_KEEP = r"^(current-uuid|node-id|    bitmap-uuid|        0x|    0x|No valid meta data found|Found meta data is)"
V08_UUIDS = re.compile(r"^    0x([0-9A-Fa-f]{16}); 0x([0-9A-Fa-f]{16}); 0x([0-9A-Fa-f]{16}); 0x([0-9A-Fa-f]{16});", re.M)


@dataclass(frozen=True)
class Module:
    state: str  # loaded, loadable, missing
    detail: str

    @property
    def version(self) -> str | None:
        match = re.search(r"(\d+\.\d+[.\d]*)", self.detail)
        return match[1] if match else None


@dataclass(frozen=True)
class Metadata:
    """What `drbdadm dump-md` found on the backing disk."""

    valid: bool
    current_uuid: int | None = None
    history: tuple[int, ...] = ()  # every non-zero bitmap and history UUID
    message: str = ""

    @property
    def has_history(self) -> bool:
        """The disk has held replicated data: a generated current UUID, or any bitmap or history UUID."""
        return self.valid and ((self.current_uuid or 0) & ~1 not in (0, JUST_CREATED) or bool(self.history))


@dataclass(frozen=True)
class NodeFacts:
    host: str
    module: Module
    utils: bool
    configured: bool = False
    block_device: bool = False
    metadata: Metadata | None = None
    signature: dict[str, str] = field(default_factory=dict)
    state: ResourceState | None = None  # None: the resource is not up on this host
    kernel_log: KernelLog = KernelLog()


def module_script(drbdadm: str = "drbdadm") -> str:
    return "\n".join([
        "PATH=$PATH:/usr/sbin:/sbin",
        'if [ -r /proc/drbd ]; then echo "K loaded $(head -n1 /proc/drbd)"',
        'elif ! command -v modprobe >/dev/null 2>&1; then echo "K missing no /proc/drbd, and no modprobe to load '
        'the drbd module (kmod is not installed)"',
        'elif why=$(modprobe -n drbd 2>&1); then echo "K loadable $(modinfo -F version drbd 2>/dev/null)"',
        'else echo "K missing $(printf %s "$why" | head -n1)"; fi',
        f'if command -v {drbdadm} >/dev/null 2>&1; then echo "U 1"; else echo "U 0"; fi',
    ])


def fact_script(resource: DrbdResource, disk: str, inspect_disk: bool) -> str:
    """Everything the lifecycle commands decide on, for one host of `resource`."""
    name, device = shlex.quote(resource.name), shlex.quote(disk)
    drbdadm, drbdsetup = v84.drbdadm(resource), v84.drbdsetup(resource)
    about = " ".join(f"-e {shlex.quote(prefix)}" for prefix in v84.kernel_log_prefixes(resource))
    lines = [module_script(drbdadm),
             f'if {drbdadm} dump {name} >/dev/null 2>&1; then echo "C 1"; else echo "C 0"; fi',
             f'if [ -b {device} ]; then echo "B 1"; else echo "B 0"; fi']
    if inspect_disk:
        lines += [f"{{ {drbdadm} dump-md {name} 2>&1; echo \"rc $?\"; }} | grep -E '{DUMP_MD_KEEP}|^rc ' | sed 's/^/M /'",
                  f"{{ blkid -p -o export {device} 2>&1; echo \"rc $?\"; }} | grep -v '^DEVNAME=' | sed 's/^/S /'"]
    lines += [f"if [ -r /proc/drbd ]; then if out=$({drbdsetup} events2 --now --statistics {name} 2>&1); "
              f"then printf '%s\\n' \"$out\" | sed 's/^/E /'; else {drbdadm} status {name} 2>&1 | sed 's/^/A /'; fi; fi",
              f"{{ dmesg 2>/dev/null || journalctl -k -o cat --no-pager 2>/dev/null; }} | grep -F {about} "
              f"| tail -n {KERNEL_LOG_LINES} | sed 's/^/L /'",
              "true"]
    return "\n".join(lines)


def tagged(output: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        if len(tag) == 1:
            found.setdefault(tag, []).append(rest)
    return found


def parse_module(lines: list[str]) -> Module:
    state, _, detail = (lines[0] if lines else "missing no answer from the module check").partition(" ")
    return Module(state, detail.strip())


def parse_metadata(lines: list[str]) -> Metadata | None:
    if not lines:
        return None
    text = "\n".join(lines)
    rc = next((int(line[3:]) for line in lines if line.startswith("rc ") and line[3:].isdigit()), None)
    if "No valid meta data found" in text:
        return Metadata(False, message="no valid DRBD metadata")
    uuids = _uuids(text)
    if rc != 0 or not uuids:
        return Metadata(True, message=f"dump-md could not read it (exit {rc}): {text[:200]}")
    others = tuple(u for u in uuids[1:] if u)
    return Metadata(True, uuids[0], others, "unclean" if "unclean" in text else "")


def _uuids(text: str) -> list[int]:
    """The current UUID first, then the bitmap and history UUIDs; v08 or v09 metadata."""
    v08 = V08_UUIDS.search(text)
    if v08:
        return [int(u, 16) for u in v08.groups()]
    if not re.search(r"^current-uuid 0x([0-9A-Fa-f]+);", text, re.M):
        return []
    return [int(u, 16) for u in re.findall(r"0x([0-9A-Fa-f]{16})", text)]


def _only_peer(resource: DrbdResource | None, host: str) -> str | None:
    if resource is None or not v84.is_84(resource):
        return None
    return next((n.host for n in resource.nodes if n.host != host), None)


def parse_signature(lines: list[str]) -> dict[str, str]:
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    return {k: v for k, v in values.items() if k in ("TYPE", "USAGE", "LABEL", "UUID", "VERSION", "PTTYPE")}


def parse_node_facts(host: str, output: str, resource: DrbdResource | None = None) -> NodeFacts:
    """The facts `fact_script` printed on `host`; an 8.4 `resource` has its one connection
    named after the other node, as DRBD 9 names its connections."""
    found = tagged(output)
    module = parse_module(found.get("K", []))
    peer = _only_peer(resource, host)
    log_text = "\n".join(found.get("L", []))
    log = v84.parse_kernel_log(log_text, resource, peer) if resource and peer else parse_kernel_log(log_text)
    events = "\n".join(found.get("E", []))
    states = parse_events2(events) if module.state == "loaded" else []
    if module.state == "loaded" and not states and found.get("A"):
        states = parse_drbdadm_status("\n".join(found["A"]))
    if peer:
        states = [v84.with_peer_named(s, peer) for s in states]
    state = with_kernel_log(states[0], log) if states else None
    return NodeFacts(host, module, found.get("U") == ["1"], found.get("C") == ["1"], found.get("B") == ["1"],
                     parse_metadata(found.get("M", [])), parse_signature(found.get("S", [])), state, log)
