"""A real listener on loopback, held by a process of its own for a set time, for the tests of
the shell tests apply runs against ss."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

# Listens on a free port of argv[2] (loopback, or 0.0.0.0: every address), prints the port, and
# closes the listener after argv[1] seconds.
HOLDER = """
import socket, sys, time
s = socket.socket(); s.bind((sys.argv[2], 0)); s.listen()
print(s.getsockname()[1], flush=True)
time.sleep(float(sys.argv[1])); s.close(); time.sleep(30)
"""


def holder(seconds: float, address: str = "127.0.0.1") -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(seconds), address], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        yield process, int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()
