"""The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802, RFC 7677).

The primary gets only the verifier, never the password. The salt is derived from the password
and role, so the rendered file depends only on the desired state (a second apply changes nothing)."""

from __future__ import annotations

import base64
import hashlib
import hmac

ITERATIONS = 4096  # PostgreSQL's scram_iterations default


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def verifier(password: str, role: str, iterations: int = ITERATIONS) -> str:
    salt = hmac.new(password.encode(), f"haops scram salt for {role}".encode(), hashlib.sha256).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"
