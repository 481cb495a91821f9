"""Ed25519 keys made in-process (no ssh-keygen round trips), in OpenSSH formats."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@dataclass(frozen=True)
class KeyPair:
    private_openssh: bytes
    public_line: str  # "ssh-ed25519 AAAA..." without comment

    def write(self, private_path: Path, comment: str) -> None:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        private_path.touch(mode=0o600)
        private_path.chmod(0o600)
        private_path.write_bytes(self.private_openssh)
        private_path.with_name(private_path.name + ".pub").write_text(f"{self.public_line} {comment}\n")


def generate() -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH)
    return KeyPair(private, public.decode())


def read_public_line(private_path: Path) -> str:
    """The 'type base64' part of the .pub file next to `private_path`."""
    fields = private_path.with_name(private_path.name + ".pub").read_text().split()
    return f"{fields[0]} {fields[1]}"


def ensure(private_path: Path, comment: str) -> str:
    """Keep an existing key (idempotent `up`), else make one; return its public line."""
    if not private_path.exists():
        generate().write(private_path, comment)
    return read_public_line(private_path)
