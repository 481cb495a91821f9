"""Faults on a host's cable: cut, delay, loss.

The kernel this must run on may lack netem, so:
- cut   sets the machine's end of the veth down (the switch port);
- loss  drops a random fraction of the host's outgoing packets (iptables statistic);
- delay queues the host's outgoing packets to netfilter queue 0 of its network namespace,
        where haops/lab/delayer.py (a process the lab starts and kills by PID) holds each
        one for the delay. Both rules live in chain HAOPS-LAB of the host's mangle table.
"""

from __future__ import annotations

import os
import select
import sys
from dataclasses import dataclass
from pathlib import Path

from haops.lab import delayer, processes
from haops.lab.commands import LabError, run
from haops.lab.network import HOST_INTERFACE, interface_exists, netns_exists
from haops.lab.state import HostPaths

CHAIN = "HAOPS-LAB"
QUEUE = 0


@dataclass(frozen=True)
class LinkState:
    cut: bool = False
    delay_ms: int = 0
    loss_pct: float = 0.0


def apply(paths: HostPaths, netns: str, veth: str, state: LinkState) -> None:
    """Make the host's link match `state` (a no-op for the parts of a powered-off host)."""
    if interface_exists(veth):
        run(["ip", "link", "set", veth, "down" if state.cut else "up"])
    stop_delayer(paths)
    if not netns_exists(netns):
        return
    _clear_rules(netns)
    if state.delay_ms:
        start_delayer(paths, netns, state.delay_ms)
    if state.delay_ms or state.loss_pct:
        _install_rules(netns, state)


def _iptables(netns: str, *argv: str, stdin: str | None = None, check: bool = True) -> None:
    run(["nsenter", f"--net=/run/netns/{netns}", "--", *argv], stdin=stdin, check=check)


def _clear_rules(netns: str) -> None:
    _iptables(netns, "iptables", "-w", "-t", "mangle", "-D", "OUTPUT", "-o", HOST_INTERFACE,
              "-j", CHAIN, check=False)
    _iptables(netns, "iptables", "-w", "-t", "mangle", "-F", CHAIN, check=False)
    _iptables(netns, "iptables", "-w", "-t", "mangle", "-X", CHAIN, check=False)


def _install_rules(netns: str, state: LinkState) -> None:
    rules = ["*mangle", f":{CHAIN} - [0:0]", f"-A OUTPUT -o {HOST_INTERFACE} -j {CHAIN}"]
    if state.loss_pct:
        rules.append(f"-A {CHAIN} -m statistic --mode random --probability "
                     f"{state.loss_pct / 100:.4f} -j DROP")
    if state.delay_ms:
        rules.append(f"-A {CHAIN} -j NFQUEUE --queue-num {QUEUE} --queue-bypass")
    _iptables(netns, "iptables-restore", "-w", "--noflush", stdin="\n".join(rules + ["COMMIT", ""]))


def delayer_pid_file(paths: HostPaths) -> Path:
    return paths.root / "delayer.pid"


def start_delayer(paths: HostPaths, netns: str, delay_ms: int, timeout: float = 5) -> None:
    """Start the delayer in the host's network namespace and wait until it holds the queue."""
    ready_read, ready_write = os.pipe()
    argv = ["nsenter", f"--net=/run/netns/{netns}", "--",
            sys.executable, "-I", delayer.__file__, str(QUEUE), str(delay_ms)]
    actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, ready_write, 1),
               (os.POSIX_SPAWN_OPEN, 2, str(paths.root / "delayer.log"),
                os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)]
    try:
        pid = os.posix_spawnp("nsenter", argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                              file_actions=actions, setsid=True)
        os.close(ready_write)
        record = processes.record(pid)
        if record is not None:
            processes.save(delayer_pid_file(paths), record)
        if not select.select([ready_read], [], [], timeout)[0] or not os.read(ready_read, 16):
            raise LabError(f"link delayer did not start; see {paths.root / 'delayer.log'}")
    finally:
        os.close(ready_read)


def stop_delayer(paths: HostPaths) -> None:
    record = processes.load(delayer_pid_file(paths))
    if record is None:
        return
    record.kill()
    processes.wait_until_dead([record])
    processes.reap_if_child(record.pid)
    delayer_pid_file(paths).unlink(missing_ok=True)
