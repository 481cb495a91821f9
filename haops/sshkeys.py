"""Which keys an SSH login offers, in OpenSSH's order: the agent's (unless IdentitiesOnly), then the
identity files. An encrypted identity file is unlocked once per run, its passphrase asked on the
terminal (never echoed); without a terminal haops says how to proceed instead of hanging."""

from __future__ import annotations

import getpass
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from paramiko import Agent, PKey
from paramiko.auth_strategy import AuthResult, AuthStrategy, InMemoryPrivateKey

PASSPHRASE_TRIES = 3


class KeyError_(Exception):
    """A key cannot be used: unreadable, or encrypted with no way to ask its passphrase."""


Prompt = Callable[[str], str | None]


def terminal_prompt(text: str) -> str | None:
    """Ask on the controlling terminal, without echo; None when there is no terminal."""
    try:
        descriptor = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    os.close(descriptor)
    return getpass.getpass(text)  # reads /dev/tty itself, echo off


class KeyRing:
    """Identity files loaded once per run and shared by every connection (threads included)."""

    def __init__(self, prompt: Prompt = terminal_prompt) -> None:
        self.prompt = prompt
        self.loaded: dict[tuple[Path, int, int], PKey] = {}
        self.lock = threading.Lock()

    def key(self, path: Path) -> PKey:
        with self.lock:  # one prompt at a time, and each key asked for once
            try:
                stat = path.stat()
                version = (path, stat.st_ino, stat.st_mtime_ns)
            except OSError as exc:
                raise KeyError_(f"cannot read SSH key {path}: {exc.strerror or exc}") from None
            if version not in self.loaded:  # a key file replaced at the same path is read again
                self.loaded[version] = self._load(path)
            return self.loaded[version]

    def _load(self, path: Path) -> PKey:
        try:
            return PKey.from_path(path)
        except TypeError:  # paramiko's way of saying "password-protected"
            return self._unlock(path)
        except (OSError, ValueError) as exc:
            raise KeyError_(f"cannot read SSH key {path}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - paramiko's many key-format errors
            raise KeyError_(f"cannot read SSH key {path}: {exc}") from None

    def _unlock(self, path: Path) -> PKey:
        for _ in range(PASSPHRASE_TRIES):
            passphrase = self.prompt(f"Enter passphrase for key '{path}': ")
            if passphrase is None:
                raise KeyError_(f"SSH key {path} is encrypted and there is no terminal to ask its passphrase: "
                                f"load it into ssh-agent (`ssh-add {path}`) and run again, or run haops from a terminal")
            try:
                return PKey.from_path(path, passphrase.encode())
            except (ValueError, TypeError):
                continue
        raise KeyError_(f"SSH key {path}: wrong passphrase ({PASSPHRASE_TRIES} tries)")


KEYRING = KeyRing()


class OfferKeys(AuthStrategy):
    """paramiko auth: agent keys first (when allowed), then each identity file."""

    def __init__(self, user: str, identities: tuple[Path, ...], use_agent: bool, keyring: KeyRing = KEYRING) -> None:
        super().__init__(ssh_config=None)
        self.user, self.identities, self.use_agent, self.keyring = user, identities, use_agent, keyring
        self.agent: Agent | None = None

    def get_sources(self) -> Iterator[InMemoryPrivateKey]:
        if self.use_agent and os.environ.get("SSH_AUTH_SOCK"):
            self.agent = Agent()
            for agent_key in self.agent.get_keys():
                yield InMemoryPrivateKey(self.user, agent_key)
        for path in self.identities:
            yield InMemoryPrivateKey(self.user, self.keyring.key(path))

    def authenticate(self, transport: Any) -> AuthResult:
        try:
            return super().authenticate(transport)
        finally:
            if self.agent is not None:
                self.agent.close()
                self.agent = None


def tried(result: AuthResult) -> str:
    """What a failed login offered, without any secret: 'agent key ED25519 SHA256:..., /root/.ssh/id (...)'."""
    names = []
    for source, _ in result:
        key = getattr(source, "pkey", None)
        names.append(f"{key.algorithm_name} {key.fingerprint}" if key is not None else type(source).__name__)
    return ", ".join(names) or "no key at all (no agent, no identity file)"
