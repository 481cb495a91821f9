"""SSH to cluster hosts with Fabric, refusing unknown or changed host keys.

Fabric's Connection auto-adds unknown host keys and loads no known_hosts at all
(fabric/fabric#2071); here every connection loads known_hosts and rejects what is not
in it, exactly as `ssh -o StrictHostKeyChecking=yes` would. `trust_new_hosts` is the
opt-in trust-on-first-use: an unknown key is recorded, a *changed* key is still refused.
"""

from __future__ import annotations

import io
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haops.inventory.model import Host

if TYPE_CHECKING:
    from fabric import Connection

USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()
# A command that has not answered by then is given up: a host that vanishes mid-run fails
# alone instead of holding the whole apply until TCP gives up (many minutes).
COMMAND_TIMEOUT_S = 120.0


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
    use_user_known_hosts: bool = True


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
    """A connection to an inventory host: its own key, user and port, else the settings' ones."""
    key = Path(host.ssh_key).expanduser() if host.ssh_key else settings.identity
    return connect_to(host.connect_to, host.ssh_port, host.ssh_user or settings.forced_user, key,
                      settings, own_key=bool(host.ssh_key))


def connect_to(address: str, port: int | None, user: str | None, key: Path | None, settings: SshSettings,
               own_key: bool = False) -> Connection:
    """A Fabric connection that checks the host key against known_hosts (not opened yet).
    With the settings' identity (not the host's own key) no other key or agent is tried."""
    from fabric import Connection
    from paramiko import RejectPolicy

    if key is not None and not key.is_file():
        raise HostFailure(f"SSH key {key} does not exist or is not a file")
    kwargs: dict[str, Any] = {}
    if key is not None:
        kwargs = {"key_filename": str(key)}
        if not own_key:
            kwargs |= {"look_for_keys": False, "allow_agent": False}
    connection = Connection(address, user=user, port=port, connect_timeout=settings.connect_timeout_s,
                            connect_kwargs=kwargs)
    client = connection.client
    name = address if port in (None, 22) else f"[{address}]:{port}"  # as paramiko looks it up
    if settings.use_user_known_hosts:  # ~/.ssh/known_hosts as paramiko's system keys: they win
        for key_type, host_key in known_keys(USER_KNOWN_HOSTS, name).items():
            client.get_system_host_keys().add(name, key_type, host_key)
    for path in settings.known_hosts:
        for key_type, host_key in known_keys(path, name).items():
            client.get_host_keys().add(name, key_type, host_key)
    policy = _RecordNewKey(settings.record_new_keys_to) if settings.trust_new_hosts else RejectPolicy()
    client.set_missing_host_key_policy(policy)
    return connection


_KNOWN_HOSTS_CACHE: dict[tuple[Path, int, int], Any] = {}
_KNOWN_HOSTS_LOCK = threading.Lock()


def known_keys(path: Path, name: str) -> dict[str, Any]:
    """The keys known_hosts at `path` has for `name` (plain or hashed entries). The file is
    parsed once per run, not once per host: with many hosts, parsing it for each one cost
    more client CPU than the connection."""
    from paramiko import HostKeys

    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    cache_key = (path, stat.st_mtime_ns, stat.st_size)
    with _KNOWN_HOSTS_LOCK:
        parsed = _KNOWN_HOSTS_CACHE.get(cache_key)
        if parsed is None:
            parsed = _KNOWN_HOSTS_CACHE[cache_key] = HostKeys(str(path))
    return dict(parsed.lookup(name) or {})


def preload() -> None:
    """Import Fabric and paramiko here, in the calling (main) thread, before workers fan out:
    otherwise the first worker imports them while the others wait on the import lock, and
    `python -X importtime` cannot read it."""
    import fabric  # noqa: F401
    import paramiko  # noqa: F401


QUICKACK: int = getattr(socket, "TCP_QUICKACK", 0)  # Linux only


class QuickAckSocket(socket.socket):
    """Acknowledges what it receives at once (Linux TCP_QUICKACK, re-armed after every read,
    as the kernel clears it). sshd keeps Nagle on for a session without a terminal, so its
    reply to our first channel waits until we ACK the message it sent after login; a delayed
    ACK made every fresh connection's first command ~40 ms late."""

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data = super().recv(bufsize, flags)
        self.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
        return data



def nodelay_socket(address: str, port: int, timeout_s: float) -> socket.socket:
    """A TCP connection with Nagle off: SSH's small exchanges then do not wait ~40 ms for a
    delayed ACK (the handshake, every channel request and every short answer)."""
    # An ASCII name as bytes: a str would make the resolver load the idna codec (~12 ms).
    host: str | bytes = address.encode("ascii") if address.isascii() else address
    sock = socket.create_connection((host, port), timeout=timeout_s)  # type: ignore[arg-type]  # bytes work
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not QUICKACK:
        return sock
    quick = QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    quick.settimeout(timeout_s)
    return quick


def ensure_open(connection: Connection) -> None:
    """Open the connection if it is not (Fabric reopens a closed one on use; so does run()),
    each time on a fresh socket of our own."""
    if connection.is_connected:
        return
    if connection.gateway is None:  # through a gateway, the socket is the gateway's channel
        connection.connect_kwargs["sock"] = nodelay_socket(connection.host, connection.port, connection.connect_timeout or 10)
    try:
        connection.open()
    finally:
        connection.connect_kwargs.pop("sock", None)


def open_connection(host: Host, settings: SshSettings) -> Connection:
    """Connect now, turning SSH failures into a one-line HostFailure."""
    from paramiko import BadHostKeyException, SSHException

    connection = connect(host, settings)
    try:
        ensure_open(connection)
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


@contextmanager
def deadline(connection: Connection, seconds: float, doing: str) -> Iterator[None]:
    """Give up on `doing` after `seconds`: the connection is closed under it, which wakes every
    wait paramiko has (opening a channel or an SFTP session has no timeout of its own)."""
    from paramiko import SSHException

    fired = threading.Event()

    def give_up() -> None:
        fired.set()
        connection.close()

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        yield
    except (OSError, EOFError, SSHException) as exc:
        if fired.is_set():
            raise HostFailure(f"no answer from {connection.host} within {seconds:.0f}s while {doing}") from None
        raise HostFailure(f"lost the connection to {connection.host} while {doing}: {exc or type(exc).__name__}") from None
    finally:
        timer.cancel()
    if fired.is_set():
        raise HostFailure(f"no answer from {connection.host} within {seconds:.0f}s while {doing}")


def run(connection: Connection, script: str, timeout_s: float | None = None, stdin: bytes = b"") -> Ran:
    """Run a POSIX sh script on the host, `stdin` as its input; never raises for a non-zero exit.

    One SSH channel on the connection's paramiko transport, read here in the calling thread
    (Fabric's run starts three threads and polls; this is the hot path of every apply)."""
    timeout_s = min(timeout_s or COMMAND_TIMEOUT_S, COMMAND_TIMEOUT_S)
    with deadline(connection, timeout_s + 5, "running a command"):
        ensure_open(connection)  # after a lost connection, as Fabric's run would
        # No timeout of its own: `deadline` closes the connection under it, as for every wait.
        channel = connection.client.get_transport().open_session()
        try:
            channel.exec_command(f"sh -c {shlex.quote(script)}")
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            stdout, stderr = read_until_eof(channel, time.monotonic() + timeout_s, connection.host)
            code = channel.recv_exit_status()
        finally:
            channel.close()
    return Ran(code, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))


def read_until_eof(channel: Any, give_up_at: float, host: str) -> tuple[bytes, bytes]:
    """Everything the channel sends on stdout and stderr until the host closes it (both read as
    they come, so neither can fill the window and stall the other)."""
    out: list[bytes] = []
    err: list[bytes] = []
    while True:
        if channel.recv_ready():
            out.append(channel.recv(65536))
        elif channel.recv_stderr_ready():
            err.append(channel.recv_stderr(65536))
        elif channel.eof_received or channel.closed:
            return b"".join(out), b"".join(err)
        else:
            left = give_up_at - time.monotonic()
            if left <= 0:
                raise HostFailure(f"no answer from {host} within the command's time limit")
            select.select([channel], [], [], min(left, 1.0))


def put_text(connection: Connection, text: str, remote_path: str) -> None:
    with deadline(connection, COMMAND_TIMEOUT_S, f"uploading {remote_path}"):
        connection.put(io.BytesIO(text.encode("utf-8")), remote_path)


class Connections:
    """One connection per host, opened on first use and shared until close(): apply's hosts,
    then its VIP wait, or every read of `haops status`. A host that could not be reached is not
    tried again; the same failure is raised at once."""

    def __init__(self, hosts: Mapping[str, Host], settings: SshSettings) -> None:
        self.hosts, self.settings = hosts, settings
        self.open: dict[str, Connection] = {}
        self.failed: dict[str, HostFailure] = {}
        self.lock = threading.Lock()

    def get(self, name: str) -> Connection:
        with self.lock:
            if name in self.failed:
                raise self.failed[name]
            if name in self.open:
                return self.open[name]
        try:
            connection = open_connection(self.hosts[name], self.settings)
        except HostFailure as exc:
            with self.lock:
                self.failed[name] = exc
            raise
        with self.lock:
            self.open[name] = connection
        return connection

    def unreachable(self, name: str) -> bool:
        with self.lock:
            return name in self.failed

    def runner(self, name: str) -> Callable[[str], Ran]:
        """Run scripts on the host; the first one connects (a HostFailure if it cannot)."""
        return lambda script: run(self.get(name), script)

    def drop(self, name: str) -> None:
        """Close the host's connection, or forget that it could not be reached; the next get() tries again."""
        with self.lock:
            self.failed.pop(name, None)
            connection = self.open.pop(name, None)
        if connection is not None:
            connection.close()

    def close(self) -> None:
        with self.lock:
            opened, self.open = list(self.open.values()), {}
        for connection in opened:
            connection.close()


def stream(connection: Connection, script: str, on_output: Callable[[str], None], timeout_s: float,
           prepare: Callable[[Any], None] | None = None) -> Ran:
    """Run a POSIX sh script on an open connection, handing stdout to `on_output` piece by piece
    (split at \\r and \\n, as progress lines arrive) while it runs; stderr is collected.
    `prepare` sees the channel before the command starts (to ask for agent forwarding).
    After `timeout_s` the channel is closed and HostFailure raised."""
    import time

    transport = connection.transport
    if transport is None or not transport.is_active():
        raise HostFailure(f"no open connection to {connection.host}")
    with deadline(connection, min(timeout_s, 30.0), "opening a channel"):
        channel = transport.open_session(timeout=min(timeout_s, 30.0))
    try:
        if prepare is not None:
            prepare(channel)
        channel.exec_command(f"sh -c {shlex.quote(script)}")
        channel.settimeout(0.2)
        ends = time.monotonic() + timeout_s
        pending, errors = "", []
        while True:
            if time.monotonic() > ends:
                raise HostFailure(f"no end from {connection.host} within {timeout_s:.0f}s")
            chunk = _receive(channel.recv)
            if channel.recv_stderr_ready():
                errors.append(channel.recv_stderr(65536).decode("utf-8", "replace"))
            if chunk:
                pending = _pieces(pending + chunk.decode("utf-8", "replace"), on_output)
            elif chunk == b"":
                if channel.exit_status_ready():
                    break
                time.sleep(0.05)
            elif not transport.is_active():
                raise HostFailure(f"lost the connection to {connection.host}")
        if pending.strip():
            on_output(pending)
        while channel.recv_stderr_ready():
            errors.append(channel.recv_stderr(65536).decode("utf-8", "replace"))
        return Ran(channel.recv_exit_status(), "", "".join(errors))
    finally:
        channel.close()


def _receive(recv: Callable[[int], bytes]) -> bytes | None:
    """A chunk, b"" at end of stream, None when nothing came within the channel's timeout."""
    import socket

    try:
        return recv(65536)
    except socket.timeout:
        return None


def _pieces(text: str, on_output: Callable[[str], None]) -> str:
    """Hand every complete piece (ended by \\r or \\n) to on_output; return the unfinished rest."""
    import re

    parts = re.split(r"[\r\n]", text)
    for part in parts[:-1]:
        if part.strip():
            on_output(part)
    return parts[-1]
