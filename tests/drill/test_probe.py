"""The probe for real on loopback: open-model arrivals, per-request outcomes, an early stop on SIGTERM."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from haops.drill import record
from haops.drill.run import PROBE_SCRIPT

pytestmark = pytest.mark.unit

SLOW_SERVER = """
import http.server, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(float(sys.argv[2]))
        self.send_response(200); self.send_header("X-Backend", "slow"); self.send_header("Content-Length", "2")
        self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def slow_server(tmp_path: Path) -> Iterator[int]:
    """An HTTP server on loopback that takes 0.3 s per answer."""
    port = free_port()
    script = tmp_path / "slow.py"
    script.write_text(SLOW_SERVER)
    server = subprocess.Popen([sys.executable, str(script), str(port), "0.3"])
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield port
    finally:
        server.kill()
        server.wait(timeout=5)


def probe(*args: str, timeout: float = 30) -> list[dict[str, object]]:
    done = subprocess.run([sys.executable, "-I", str(PROBE_SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_arrivals_keep_their_rate_while_the_server_is_slow(slow_server: int) -> None:
    lines = probe("127.0.0.1", str(slow_server), "--http", "/", "--rate", "100", "--duration", "1")
    requests = [line for line in lines if "outcome" in line]
    assert len(requests) == 100 and lines[-1]["done"]
    assert {r["outcome"] for r in requests} == {record.OK} and {r["backend"] for r in requests} == {"slow"}
    starts = sorted(float(r["t"]) for r in requests)  # type: ignore[arg-type]
    # A closed loop would send about 1 / 0.3 s = 3 requests in this second; the open model sends 100, 10 ms apart.
    assert starts[-1] - starts[0] < 1.2
    assert min(float(r["latency"]) for r in requests) >= 0.29  # type: ignore[arg-type]


def test_a_closed_port_is_refused_and_a_short_timeout_times_out(slow_server: int) -> None:
    refused = probe("127.0.0.1", str(free_port()), "--rate", "50", "--duration", "0.2")
    assert [r["outcome"] for r in refused if "outcome" in r] == [record.REFUSED] * 10
    slow = probe("127.0.0.1", str(slow_server), "--http", "/", "--rate", "20", "--duration", "0.2", "--timeout", "0.1")
    assert [r["outcome"] for r in slow if "outcome" in r] == [record.TIMEOUT] * 4


def test_sigterm_stops_the_stream_and_still_prints_what_was_sent(slow_server: int) -> None:
    running = subprocess.Popen([sys.executable, "-I", str(PROBE_SCRIPT), "127.0.0.1", str(slow_server), "--http", "/",
                                "--rate", "100", "--duration", "60"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    running.send_signal(signal.SIGTERM)
    stdout, _ = running.communicate(timeout=10)
    lines = [json.loads(line) for line in stdout.splitlines()]
    sent = [line for line in lines if "outcome" in line]
    assert lines[-1]["done"] and 20 <= len(sent) <= 150
    assert {r["outcome"] for r in sent} == {record.OK}


def test_the_probe_refuses_unbounded_runs() -> None:
    done = subprocess.run([sys.executable, "-I", str(PROBE_SCRIPT), "127.0.0.1", "1", "--duration", "100000"],
                          capture_output=True, text=True, timeout=10)
    assert done.returncode == 2 and "duration" in done.stderr
