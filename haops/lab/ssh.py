"""How the machine reaches lab hosts: ssh_config, known_hosts, a client key, probes."""

from __future__ import annotations

import ctypes
import os
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address
from pathlib import Path

from haops.lab.topology import LabHost

CLONE_NEWNET = 0x40000000
LIBC = ctypes.CDLL(None, use_errno=True)


def known_hosts_text(host_keys: dict[LabHost, str]) -> str:
    return "".join(f"{host.name},{host.address} {key}\n" for host, key in host_keys.items())


def ssh_config_text(hosts: Sequence[LabHost], identity: Path, known_hosts: Path, lab: str,
                    jumps: Mapping[str, str] | None = None) -> str:
    """Each host by name; `jumps` (host -> bastion): hosts reachable only through a bastion."""
    jumps = jumps or {}
    blocks = [f"# haops lab {lab!r}: ssh -F {identity.parent / 'ssh_config'} HOST\n"]
    blocks += [f"Host {h.name}\n    HostName {h.address}\n" + (f"    ProxyJump {jumps[h.name]}\n" if h.name in jumps else "")
               for h in hosts]
    blocks += [f"Host {h.address}\n    ProxyJump {jumps[h.name]}\n" for h in hosts if h.name in jumps]
    patterns = " ".join([h.name for h in hosts] + [str(h.address) for h in hosts])
    blocks.append(
        f"Host {patterns}\n"
        "    User root\n"
        "    Port 22\n"
        f"    IdentityFile {identity}\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {known_hosts}\n"
        "    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n"
        "    UpdateHostKeys no\n"
        "    BatchMode yes\n"
        "    ConnectTimeout 5\n"
        "    LogLevel ERROR\n"
    )
    return "\n".join(blocks)


def ssh_argv(ssh_config: Path, host: str, command: Sequence[str] = ()) -> list[str]:
    """`ssh` to a lab host; `command` is an argv, quoted so the remote shell sees it unchanged."""
    remote = [shlex.join(command)] if command else []
    return ["ssh", "-F", str(ssh_config), "--", host, *remote]


def run_ssh(ssh_config: Path, host: str, command: Sequence[str], timeout: float = 60,
            capture: bool = True, forward_stdin: bool = False) -> subprocess.CompletedProcess[str]:
    """`forward_stdin` hands ssh our own standard input, as `ssh host cmd < file` does: bytes reach
    the remote command unchanged and its end of file is theirs. Otherwise stdin is /dev/null."""
    stdin = None if forward_stdin else subprocess.DEVNULL
    return subprocess.run(ssh_argv(ssh_config, host, command), capture_output=capture, text=True,
                          timeout=timeout, stdin=stdin, check=False)


def ssh_works(ssh_config: Path, host: str, timeout: float = 5) -> bool:
    try:
        return run_ssh(ssh_config, host, ["true"], timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def sshd_answers(address: IPv4Address, timeout: float = 0.5) -> bool:
    """True when something at address:22 sends an SSH banner."""
    try:
        with socket.create_connection((str(address), 22), timeout=timeout) as sock:
            return sock.recv(8).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(address: IPv4Address, timeout: float = 10, netns: str | None = None) -> bool:
    """Wait for the banner; from inside `netns` for a host the machine has no route to."""
    if netns is not None:
        return in_netns(netns, lambda: wait_for_sshd(address, timeout))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sshd_answers(address):
            return True
        time.sleep(0.01)
    return False


def in_netns(netns: str, probe: Callable[[], bool]) -> bool:
    """Run `probe` in a thread of its own that has entered the network namespace (setns moves only
    the calling thread; that thread then ends, so no other code ever runs in the namespace)."""
    answer: list[bool] = []

    def enter_and_probe() -> None:
        descriptor = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        try:
            if LIBC.setns(descriptor, CLONE_NEWNET) != 0:
                answer.append(False)
                return
        finally:
            os.close(descriptor)
        answer.append(probe())

    thread = threading.Thread(target=enter_and_probe, name=f"netns-{netns}", daemon=True)
    thread.start()
    thread.join()
    return bool(answer and answer[0])
