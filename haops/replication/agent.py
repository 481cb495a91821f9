"""An SSH agent inside haops, forwarded to the source host for one sync run.

rsync on the source host logs in to each destination over SSH. Its key is never copied
there: the source's ssh asks this agent, through the forwarded channel of haops' own SSH
session, to sign. The agent holds only the run's keys, answers only `list` and `sign`
(never add, remove or lock), signs at most `max_signatures` times, and stops answering when
the run closes it. There is no agent process or socket on this machine to leave behind, and
the forwarding dies with haops' session.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from haops.errors import UserError

if TYPE_CHECKING:
    from paramiko import Channel

REQUEST_IDENTITIES, IDENTITIES_ANSWER = 11, 12
SIGN_REQUEST, SIGN_RESPONSE = 13, 14
FAILURE = 5
RSA_SHA2_256, RSA_SHA2_512 = 2, 4
MAX_MESSAGE = 256 * 1024
DEFAULT_KEY_FILES = ("id_ed25519", "id_ecdsa", "id_rsa")


class SigningKey(Protocol):
    def asbytes(self) -> bytes: ...

    def get_name(self) -> str: ...

    def sign_ssh_data(self, data: bytes, algorithm: str | None = None) -> Any: ...


def load_keys(paths: Sequence[Path]) -> list[SigningKey]:
    """The keys the run may use: the given files, else the user's unencrypted default keys,
    else the keys of the user's own running agent (SSH_AUTH_SOCK), relayed sign by sign."""
    from paramiko import Agent, PKey
    from paramiko.ssh_exception import PasswordRequiredException, SSHException

    keys: list[SigningKey] = []
    for path in paths:
        try:
            keys.append(PKey.from_path(path))
        except PasswordRequiredException:
            raise UserError(f"SSH key {path} has a passphrase; load it into your ssh-agent and "
                            f"leave it out of the inventory") from None
        except (OSError, SSHException) as exc:
            raise UserError(f"cannot read SSH key {path}: {exc}") from None
    if keys:
        return keys
    for name in DEFAULT_KEY_FILES:
        default = Path("~/.ssh", name).expanduser()
        try:
            keys.append(PKey.from_path(default))
        except (OSError, SSHException):
            continue
    if keys:
        return keys
    keys.extend(Agent().get_keys())
    if not keys:
        raise UserError("sync needs a key for the destinations: set ssh_key in the inventory, keep an "
                        "unencrypted ~/.ssh/id_ed25519, or run ssh-agent with your key loaded")
    return keys


class RunAgent:
    """Serves the run's keys on every agent channel the source host opens back to haops."""

    def __init__(self, keys: Sequence[SigningKey], max_signatures: int) -> None:
        self.keys = list(keys)
        self.max_signatures = max_signatures
        self.signed = 0
        self.closed = threading.Event()
        self.lock = threading.Lock()

    def attach(self, channel: Channel) -> None:
        """Ask for agent forwarding on this session channel (before its command starts)."""
        channel.request_forward_agent(self.serve_in_thread)

    def close(self) -> None:
        self.closed.set()

    def serve_in_thread(self, channel: Channel) -> None:
        # Called in paramiko's transport thread, which must not block.
        threading.Thread(target=self.serve, args=(channel,), daemon=True, name="haops-agent").start()

    def serve(self, channel: Channel) -> None:
        try:
            while not self.closed.is_set():
                request = read_message(channel)
                if request is None:
                    return
                channel.sendall(frame(self.answer(request)))
        except OSError:
            return
        finally:
            channel.close()

    def answer(self, request: bytes) -> bytes:
        if self.closed.is_set() or not request:
            return bytes([FAILURE])
        if request[0] == REQUEST_IDENTITIES:
            blobs = [ssh_string(key.asbytes()) + ssh_string(b"haops sync") for key in self.keys]
            return bytes([IDENTITIES_ANSWER]) + struct.pack(">I", len(blobs)) + b"".join(blobs)
        if request[0] == SIGN_REQUEST:
            try:
                return self.sign(request[1:])
            except ValueError:
                return bytes([FAILURE])
        return bytes([FAILURE])

    def sign(self, body: bytes) -> bytes:
        blob, rest = take_string(body)
        data, rest = take_string(rest)
        flags = struct.unpack(">I", rest[:4])[0] if len(rest) >= 4 else 0
        key = next((k for k in self.keys if k.asbytes() == blob), None)
        with self.lock:
            if key is None or self.signed >= self.max_signatures:
                return bytes([FAILURE])
            self.signed += 1
        signature = key.sign_ssh_data(data, algorithm_for(key, flags))
        raw = signature.asbytes() if hasattr(signature, "asbytes") else bytes(signature)
        return bytes([SIGN_RESPONSE]) + ssh_string(raw)


def algorithm_for(key: SigningKey, flags: int) -> str | None:
    if key.get_name() != "ssh-rsa":
        return None
    if flags & RSA_SHA2_512:
        return "rsa-sha2-512"
    if flags & RSA_SHA2_256:
        return "rsa-sha2-256"
    return None


def ssh_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def take_string(data: bytes) -> tuple[bytes, bytes]:
    if len(data) < 4:
        raise ValueError("short agent message")
    size = struct.unpack(">I", data[:4])[0]
    if len(data) < 4 + size:
        raise ValueError("short agent message")
    return data[4:4 + size], data[4 + size:]


def frame(payload: bytes) -> bytes:
    return ssh_string(payload)


def read_exactly(channel: Channel, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = channel.recv(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(channel: Channel) -> bytes | None:
    header = read_exactly(channel, 4)
    if header is None:
        return None
    size = struct.unpack(">I", header)[0]
    if size > MAX_MESSAGE:
        return None
    return read_exactly(channel, size)
