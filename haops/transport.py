"""SSH to cluster hosts with Fabric, refusing unknown or changed host keys.

Fabric's Connection auto-adds unknown host keys and loads no known_hosts at all
(fabric/fabric#2071); here every connection loads known_hosts and rejects what is not
in it, exactly as `ssh -o StrictHostKeyChecking=yes` would. `trust_new_hosts` is the
opt-in trust-on-first-use: an unknown key is recorded, a *changed* key is still refused.
"""

from __future__ import annotations

import io
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haops.errors import UserError
from haops.model import Host, Inventory

if TYPE_CHECKING:
    from fabric import Connection

USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()


class HostFailure(Exception):
    """Something went wrong on one host; the others carry on."""


@dataclass(frozen=True)
class SshSettings:
    known_hosts: tuple[Path, ...] = ()
    identity: Path | None = None
    trust_new_hosts: bool = False
    record_new_keys_to: Path = USER_KNOWN_HOSTS
    connect_timeout_s: int = 10
    forced_user: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def settings_for(inventory: Inventory, trust_new_hosts: bool = False) -> SshSettings:
    """The lab's key and known_hosts when the inventory names a running lab; else ~/.ssh."""
    if inventory.lab is not None:
        from haops.lab import Lab, LabError

        try:
            lab = Lab.existing(inventory.lab.name)
        except LabError:
            lab = None
        if lab is not None:
            return SshSettings((lab.known_hosts,), lab.identity, trust_new_hosts, lab.known_hosts, forced_user="root")
    return SshSettings((), None, trust_new_hosts)


class _RecordNewKey:
    """paramiko policy for --trust-new-hosts: remember an unknown key, never a changed one."""

    def __init__(self, destination: Path) -> None:
        self.destination = destination

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self.destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.destination.open("a", encoding="utf-8") as known:
            known.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def connect(host: Host, settings: SshSettings) -> Connection:
    from fabric import Connection
    from paramiko import RejectPolicy

    kwargs: dict[str, Any] = {}
    if host.ssh_key or settings.identity:
        kwargs = {"key_filename": str(Path(host.ssh_key or str(settings.identity)).expanduser())}
        if settings.identity and not host.ssh_key:
            kwargs |= {"look_for_keys": False, "allow_agent": False}
    connection = Connection(
        host.connect_to,
        user=host.ssh_user or settings.forced_user,
        port=host.ssh_port,
        connect_timeout=settings.connect_timeout_s,
        connect_kwargs=kwargs,
    )
    client = connection.client
    if USER_KNOWN_HOSTS.exists():
        client.load_system_host_keys(str(USER_KNOWN_HOSTS))
    for path in settings.known_hosts:
        client.load_host_keys(str(path))
    policy = _RecordNewKey(settings.record_new_keys_to) if settings.trust_new_hosts else RejectPolicy()
    client.set_missing_host_key_policy(policy)
    return connection


def open_connection(host: Host, settings: SshSettings) -> Connection:
    """Connect now, turning SSH failures into a one-line HostFailure."""
    from paramiko import BadHostKeyException, SSHException

    connection = connect(host, settings)
    try:
        connection.open()
    except BadHostKeyException as exc:
        raise HostFailure(f"host key of {host.connect_to} CHANGED (got {exc.key.get_name()} "
                          f"{exc.key.get_fingerprint().hex()}); refusing to connect - if the host was rebuilt, "
                          f"remove its old key from known_hosts") from None
    except SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostFailure(f"unknown host key for {host.connect_to}: it is not in known_hosts; verify the "
                              f"host's fingerprint and add it, or run once with --trust-new-hosts") from None
        raise HostFailure(f"ssh to {host.connect_to}: {exc}") from None
    except OSError as exc:
        raise HostFailure(f"cannot reach {host.connect_to}:{host.ssh_port or 22}: {exc.strerror or exc}") from None
    return connection


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def run(connection: Connection, script: str, timeout_s: float = 120) -> Ran:
    """Run a POSIX sh script on the host; never raises for a non-zero exit."""
    from invoke.exceptions import CommandTimedOut

    try:
        result = connection.run(f"sh -c {shlex.quote(script)}", hide=True, warn=True, in_stream=False, timeout=timeout_s)
    except CommandTimedOut:
        raise HostFailure(f"no answer from {connection.host} within {timeout_s:.0f}s") from None
    except (OSError, EOFError) as exc:
        raise HostFailure(f"lost the connection to {connection.host}: {exc}") from None
    return Ran(result.exited, result.stdout, result.stderr)


def put_text(connection: Connection, text: str, remote_path: str) -> None:
    try:
        connection.put(io.BytesIO(text.encode("utf-8")), remote_path)
    except (OSError, EOFError) as exc:
        raise HostFailure(f"upload of {remote_path} to {connection.host} failed: {exc}") from None


def require_known(inventory: Inventory, names: list[str]) -> None:
    unknown = [name for name in names if name not in inventory.hosts]
    if unknown:
        raise UserError(f"unknown host {', '.join(unknown)}; hosts: {', '.join(inventory.hosts)}")
