"""SSH to cluster hosts with Fabric, refusing unknown or changed host keys.

Fabric's Connection auto-adds unknown host keys and loads no known_hosts at all
(fabric/fabric#2071); here every connection loads known_hosts and rejects what is not
in it, exactly as `ssh -o StrictHostKeyChecking=yes` would. `trust_new_hosts` is the
opt-in trust-on-first-use: an unknown key is recorded, a *changed* key is still refused.
"""

from __future__ import annotations

import functools
import getpass
import io
import select
import shlex
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from haops import sshconfig
from haops.inventory.model import Host
from haops.sshconfig import Route, SshConfigFile, Wanted, user_ssh_config

if TYPE_CHECKING:
    from fabric import Connection

USER_KNOWN_HOSTS = Path("~/.ssh/known_hosts").expanduser()
# A command that has not answered by then is given up: a host that vanishes mid-run fails
# alone instead of holding the whole apply until TCP gives up (many minutes).
COMMAND_TIMEOUT_S = 120.0


class HostFailure(Exception):
    """Something went wrong on one host; the others carry on."""


SUDO_REFUSALS = ("a password is required", "a terminal is required", "incorrect password", "Sorry, try again",
                 "is not in the sudoers file", "is not allowed to run", "is not allowed to execute", "may not run sudo")
PASSWORD_FLAGS = "-S -k -p ''"  # the password from stdin, asked for every time, with no prompt text


@dataclass
class Become:
    """Root through sudo, for a login that is not root. sudo -n first: with NOPASSWD nothing more
    is needed. When the host's sudo asks for a password, the password is checked once on its own
    (so a wrong one is never retried against a command's input), then goes first on stdin of
    every command, each with -k: sudo then always reads it, even where a sudoers timestamp
    (timestamp_type=global, !tty_tickets) would let it skip the prompt and hand the password
    line to the script. sudo runs in the C locale, so its refusals read as SUDO_REFUSALS."""

    user: str
    host: str
    password: str | None = field(default=None, repr=False)
    with_password: bool = False
    settled: bool = False  # a command ran through sudo: it is known to answer

    def command(self, script: str, keep_agent: bool = False) -> str:
        flags = PASSWORD_FLAGS if self.with_password else "-n"
        # sudo resets the environment; the forwarded agent's socket is passed on by name
        agent = ' SSH_AUTH_SOCK="$SSH_AUTH_SOCK"' if keep_agent else ""
        # the C locale is for sudo's own words only: the script runs in the locale it would as root
        return f"env LC_ALL=C sudo {flags} -- env -u LC_ALL{agent} sh -c {shlex.quote(script)}"

    def stdin(self, data: bytes) -> bytes:
        if not self.with_password:
            return data
        assert self.password is not None
        return self.password.encode("utf-8") + b"\n" + data

    def refused(self, ran: Ran) -> bool:
        """True when sudo itself said no (so the script never ran): sudo's own words, not just any
        "sudo:" line (it also warns, e.g. "unable to resolve host", and then runs the script)."""
        lines = ran.stderr.splitlines()
        if ran.code == 127:
            return any(line.endswith(("sudo: not found", "sudo: command not found")) for line in lines)
        return ran.code == 1 and any(phrase in line for line in lines for phrase in SUDO_REFUSALS)

    def failure(self, ran: Ran) -> HostFailure:
        said = ran.stderr.strip().splitlines()[-1] if ran.stderr.strip() else f"exit {ran.code}"
        where = f"{self.user}@{self.host}"
        if ran.code == 127:
            return HostFailure(f"become sudo: sudo is not installed on {self.host} ({said})")
        if "not in the sudoers" in ran.stderr or "not allowed to" in ran.stderr:
            return HostFailure(f"become sudo: {where} may not run commands as root ({said}); nothing was changed")
        if "incorrect password" in ran.stderr or "try again" in ran.stderr.lower():
            return HostFailure(f"become sudo: sudo on {self.host} refused the password given for {self.user}")
        if "password is required" in ran.stderr and self.password is None:
            return HostFailure(f"become sudo: sudo on {self.host} asks {self.user} for a password (or does not allow "
                               f"{self.user} at all): run again with --ask-become-pass, or allow {self.user} NOPASSWD "
                               "sudo there")
        return HostFailure(f"become sudo: sudo on {self.host} refused {where}: {said}")


@dataclass(frozen=True)
class SshSettings:
    known_hosts: tuple[Path, ...] = ()
    identity: Path | None = None
    trust_new_hosts: bool = False
    record_new_keys_to: Path = USER_KNOWN_HOSTS
    connect_timeout_s: int = 10
    forced_user: str | None = None
    use_user_known_hosts: bool = True
    # sudo's password for hosts with `become: sudo`, asked for by --ask-become-pass; never shown.
    become_password: str | None = field(default=None, repr=False)
    # Host aliases, users, ports, keys and ProxyJump, read as ssh reads them (haops/sshconfig.py).
    ssh_config: Path | None = field(default_factory=user_ssh_config)


class _RecordNewKey:
    """paramiko policy for --trust-new-hosts: remember an unknown key, never a changed one."""

    def __init__(self, destination: Path) -> None:
        self.destination = destination

    def missing_host_key(self, client: Any, hostname: str, key: Any) -> None:
        self.destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self.destination.open("a", encoding="utf-8") as known:
            known.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        client.get_host_keys().add(hostname, key.get_name(), key)


def route(host: Host, settings: SshSettings) -> Route:
    """Where SSH to an inventory host goes: the inventory's settings, then the ssh config file."""
    own = (Path(host.ssh_key).expanduser(),) if host.ssh_key else ()
    forced = (settings.identity,) if settings.identity is not None and not own else ()
    known = (Path(host.ssh_known_hosts).expanduser(),) if host.ssh_known_hosts else ()
    wanted = Wanted(host.ssh_user, host.ssh_port, own or forced, identities_only=bool(forced), known_hosts=known)
    return sshconfig.resolve(host.name, str(host.address), host.ssh_host, wanted, config_file(settings.ssh_config))


def connect(host: Host, settings: SshSettings) -> Connection:
    """A connection to an inventory host (not opened yet), through its ProxyJump hops if any.
    With `become: sudo`, every command on it runs as root through sudo."""
    connection = connect_route(route(host, settings), settings)
    if host.through_sudo:
        connection.become = Become(connection.user, connection.host, settings.become_password)
    return connection


def connect_to(address: str, port: int | None, user: str | None, key: Path | None, settings: SshSettings,
               own_key: bool = False) -> Connection:
    """A connection to an address, without the ssh config file: only the given key, or the agent
    and default keys when none is given."""
    keys = (key,) if key is not None else ()
    alias = Route(address, address, port or 22, user, keys, identities_only=key is not None and not own_key)
    return connect_route(alias, settings)


def connect_route(target: Route, settings: SshSettings) -> Connection:
    """A Fabric connection for the route, each hop checking its host key against known_hosts."""
    gateway: Connection | None = None
    for hop in target.jumps:
        gateway = _hop(hop, settings, gateway)
    return _hop(target, settings, gateway)


def _hop(target: Route, settings: SshSettings, gateway: Connection | None) -> Connection:
    from fabric import Config
    from paramiko import RejectPolicy, SSHConfig

    from haops.sshkeys import OfferKeys

    for key in target.identities:
        if not key.is_file():
            raise HostFailure(f"SSH key {key} does not exist or is not a file")
    user = target.user or settings.forced_user or getpass.getuser()
    identities = target.identities or sshconfig.default_identities()
    strategy = OfferKeys(user, identities, use_agent=not target.identities_only)
    # An empty SSHConfig: haops read the file itself; Fabric must not add its own lookups or gateways.
    connection = _hop_class()(target.hostname, user=user, port=target.port, config=Config(ssh_config=SSHConfig()),
                      connect_timeout=target.connect_timeout_s or settings.connect_timeout_s,
                      gateway=gateway if gateway is not None else False,
                      connect_kwargs={"auth_strategy": strategy, "transport_factory": _transport_class()})
    client = connection.client
    name = target.hostname if target.port in (None, 22) else f"[{target.hostname}]:{target.port}"  # as paramiko looks it up
    # ~/.ssh/known_hosts as paramiko's system keys (they win), unless the host names its own file,
    # which replaces it as UserKnownHostsFile does for ssh.
    if settings.use_user_known_hosts and not target.known_hosts:
        for key_type, host_key in known_keys(USER_KNOWN_HOSTS, name).items():
            client._system_host_keys.add(name, key_type, host_key)  # what load_system_host_keys fills; no public getter
    # Known_hosts given to the run win over the config's UserKnownHostsFile, as the inventory wins over it.
    for path in settings.known_hosts or target.known_hosts:
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
    if not connection.gateway:  # through a gateway, the socket is the gateway's channel
        connection.connect_kwargs["sock"] = nodelay_socket(connection.host, connection.port, connection.connect_timeout or 10)
    try:
        connection.open()
    finally:
        connection.connect_kwargs.pop("sock", None)


AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


@functools.cache
def _transport_class() -> type[Any]:
    from paramiko import Transport

    class AeadFirst(Transport):
        """Offers AES-GCM first. paramiko checks the HMAC of the other ciphers in Python, byte by
        byte, on every packet (about 1 ms of client CPU per connection); GCM's tag is checked
        inside cryptography. The rest of paramiko's ciphers are still offered, after these."""

        _preferred_ciphers = AEAD_CIPHERS + tuple(c for c in Transport._preferred_ciphers if c not in AEAD_CIPHERS)

    return AeadFirst


@functools.cache
def _hop_class() -> type[Connection]:
    from fabric import Connection

    class Hop(Connection):
        """A Fabric connection whose jump channel has a timeout and which closes its jump hosts with it."""

        def open_gateway(self) -> Any:
            self.gateway.open()
            return self.gateway.transport.open_channel("direct-tcpip", (self.host, int(self.port)), ("", 0),
                                                       timeout=self.connect_timeout)

        def close(self) -> None:
            super().close()
            if self.gateway:
                self.gateway.close()

    return Hop


_PARSING = threading.Lock()


def config_file(path: Path | None) -> SshConfigFile:
    """The parsed ssh config, read again only when the file changes."""
    try:
        stamp = path.stat().st_mtime_ns if path is not None else 0
    except OSError:
        stamp = -1
    with _PARSING:  # once: every host's thread asks at the same moment
        return _parsed(path, stamp)


@functools.lru_cache(maxsize=8)
def _parsed(path: Path | None, stamp: int) -> SshConfigFile:
    return SshConfigFile(path)


def open_connection(host: Host, settings: SshSettings) -> Connection:
    """Connect now, turning SSH failures into a one-line HostFailure naming the hop that failed."""
    return open_route(connect(host, settings))


def open_route(connection: Connection) -> Connection:
    hops = _chain(connection)
    for index, hop in enumerate(hops):
        _open_hop(hop, hops[index - 1] if index else None)
    return connection


def _chain(connection: Connection) -> list[Connection]:
    chain = [connection]
    while chain[0].gateway:
        chain.insert(0, chain[0].gateway)
    return chain


def _open_hop(hop: Connection, via: Connection | None) -> None:
    from paramiko import AuthenticationException, BadHostKeyException, ChannelException, SSHException
    from paramiko.auth_strategy import AuthFailure

    from haops.sshkeys import KeyError_, tried

    name = f"{hop.host}:{hop.port}"
    role = "" if via is None else f" (through {via.host})"
    try:
        ensure_open(hop)
    except BadHostKeyException as exc:
        raise HostFailure(f"host key of {name}{role} CHANGED (got {exc.key.get_name()} "
                          f"{exc.key.get_fingerprint().hex()}); refusing to connect - if the host was rebuilt, "
                          f"remove its old key from known_hosts") from None
    except KeyError_ as exc:
        raise HostFailure(str(exc)) from None
    except AuthFailure as exc:
        raise HostFailure(f"authentication as {hop.user} refused by {name}{role}; offered: {tried(exc.result)}") from None
    except AuthenticationException as exc:
        raise HostFailure(f"authentication as {hop.user} refused by {name}{role}: {exc}") from None
    except ChannelException as exc:
        assert via is not None
        raise HostFailure(f"{via.host} cannot reach {name}: {exc.text} (the jump host connected; the target did "
                          f"not answer it)") from None
    except SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise HostFailure(f"unknown host key for {hop.host}{role}: it is not in known_hosts; verify the "
                              f"host's fingerprint and add it, or run once with --trust-new-hosts") from None
        if via is not None and "opening channel" in str(exc):
            raise HostFailure(f"{via.host} cannot reach {name} within {hop.connect_timeout}s (the jump host "
                              f"connected; the target did not answer it)") from None
        if "timeout" in str(exc).lower() or "banner" in str(exc).lower():
            raise HostFailure(f"no SSH answer from {name}{role} within {hop.connect_timeout}s: {exc}") from None
        raise HostFailure(f"ssh to {name}{role}: {exc}") from None
    except (TimeoutError, socket.timeout):
        raise HostFailure(f"no answer from {name}{role} within {hop.connect_timeout}s (timed out)") from None
    except OSError as exc:
        raise HostFailure(f"cannot reach {name}{role}: {exc.strerror or exc}") from None


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
    """Run a POSIX sh script on the host, `stdin` as its input; never raises for a non-zero exit
    (but raises HostFailure when the host's sudo will not run it, for a `become: sudo` host)."""
    become = become_of(connection)
    if become is None:
        return run_command(connection, f"sh -c {shlex.quote(script)}", timeout_s, stdin)
    ran = run_command(connection, become.command(script), timeout_s, become.stdin(stdin))
    if become.refused(ran):
        learn_password(connection, become, ran)
        ran = run_command(connection, become.command(script), timeout_s, become.stdin(stdin))
    become.settled = True
    return ran


def become_of(connection: Connection) -> Become | None:
    become: Become | None = getattr(connection, "become", None)
    return become


def learn_password(connection: Connection, become: Become, refusal: Ran) -> None:
    """sudo -n was refused: the password, checked once on its own, is used from now on; or
    HostFailure says why sudo will not do."""
    if become.with_password or become.password is None or "password is required" not in refusal.stderr:
        raise become.failure(refusal)
    check = run_command(connection, f"env LC_ALL=C sudo {PASSWORD_FLAGS} -- true", None, become.password.encode("utf-8") + b"\n")
    if check.code != 0:
        raise become.failure(check)
    become.with_password = True


def shell_command(connection: Connection, script: str, keep_agent: bool = False) -> tuple[str, bytes]:
    """The command line that runs `script` on the host (through sudo for a `become: sudo` host,
    which must have run a command already, so that sudo is known to answer), and what must go
    first on its standard input."""
    become = become_of(connection)
    if become is None:
        return f"sh -c {shlex.quote(script)}", b""
    if not become.settled:
        run(connection, "true")
    return become.command(script, keep_agent), become.stdin(b"")


def run_command(connection: Connection, command: str, timeout_s: float | None, stdin: bytes) -> Ran:
    """One SSH channel on the connection's paramiko transport, read here in the calling thread
    (Fabric's run starts three threads and polls; this is the hot path of every apply)."""
    timeout_s = min(timeout_s or COMMAND_TIMEOUT_S, COMMAND_TIMEOUT_S)
    with deadline(connection, timeout_s + 5, "running a command"):
        ensure_open(connection)  # after a lost connection, as Fabric's run would
        # No timeout of its own: `deadline` closes the connection under it, as for every wait.
        channel = connection.client.get_transport().open_session()
        try:
            channel.exec_command(command)
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
        command, first = shell_command(connection, script, keep_agent=True)
        channel.exec_command(command)
        if first:
            channel.sendall(first)
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
