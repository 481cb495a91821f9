"""verify's pure parts (expectations per algorithm, the probe output parsers), and the HTTP probe run here against loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from haops.verify import expect
from haops.verify.probes import by_backend, http_loop, parse_answers, parse_responses

pytestmark = pytest.mark.unit


def test_cycle_and_exact_split_use_weights_in_lowest_terms() -> None:
    assert expect.cycle({"a": 2, "b": 4}) == 3
    assert expect.exact_split({"a": 2, "b": 4}, 6) == {"a": 2, "b": 4}
    assert expect.exact_split({"a": 3, "b": 1, "c": 2}, 12) == {"a": 6, "b": 2, "c": 4}


@pytest.mark.parametrize("observed, requests, tolerance, ok", [
    (Counter(a=4, b=4, c=4), 12, 0, True),
    (Counter(a=2, b=2, c=2), 6, 0, True),
    (Counter(a=5, b=4, c=3), 12, 0, False),
    (Counter(a=5, b=4, c=3), 12, 1, True),
    (Counter(a=6, b=6), 12, 1, False),
    (Counter(a=4, b=4, c=3), 12, 0, False),
    (Counter(a=4, b=4, c=3), 12, 1, False),
    (Counter(a=4, b=4, c=4), 15, 1, False),
    (Counter(a=4, b=4, c=4, d=1), 13, 1, False),
])
def test_split_matches(observed: Counter[str], requests: int, tolerance: int, ok: bool) -> None:
    assert expect.split_matches({"a": 1, "b": 1, "c": 1}, observed, requests, tolerance) is ok


def test_affinity_and_spread() -> None:
    stuck = {"c1": Counter(a=4), "c2": Counter(b=4)}
    assert expect.affinity_holds(stuck) and expect.spread(stuck) == 2
    assert not expect.affinity_holds({"c1": Counter(a=3, b=1)})


def test_slow_backend_avoided() -> None:
    assert expect.slow_backend_avoided(Counter(a=16, b=17, c=3), "c", ["a", "b", "c"])
    assert not expect.slow_backend_avoided(Counter(a=12, b=12, c=12), "c", ["a", "b", "c"])


def test_rotation_needs_every_record_in_every_answer_and_each_first() -> None:
    records = {"1", "2", "3"}
    assert expect.rotation_seen([("1", "2", "3"), ("2", "3", "1"), ("3", "1", "2")], records)
    assert not expect.rotation_seen([("1", "2", "3")] * 3, records), "fixed order"
    assert not expect.rotation_seen([("1", "2"), ("2", "1"), ("3", "1")], records), "a record missing"


def test_response_parsing_counts_only_successes() -> None:
    output = "200|web1|0.003\n200|web2|0.002\n000||0\n503||0.010\nnoise\n"
    responses = parse_responses(output)
    assert [r.code for r in responses] == [200, 200, 0, 503]
    assert by_backend(responses) == Counter(web1=1, web2=1)


def test_answers_keep_the_servers_order() -> None:
    assert parse_answers("10.0.0.1,10.0.0.2\n10.0.0.2,10.0.0.1\n\n") == [("10.0.0.1", "10.0.0.2"), ("10.0.0.2", "10.0.0.1")]


def test_http_loop_is_bounded_and_quotes_its_arguments() -> None:
    script = http_loop("http://10.213.0.100:80/a b", 7, curl_args=("-H", "X-User: k1"), parallel=2)
    assert script.count("$(seq 7)") == 2 and "-m 3" in script
    assert "'http://10.213.0.100:80/a b'" in script and "'X-User: k1'" in script


@pytest.mark.parametrize("output, serial", [
    ("dns1.example.test. hostmaster.example.test. 2026112801 3600 600 1209600 60\n", 2026112801),
    (";; communications error to 10.213.0.31#53: timed out\n;; no servers could be reached\n", None),
    ("", None),
])
def test_serial_parsing_refuses_dig_error_text(output: str, serial: int | None) -> None:
    from haops.verify.probes import parse_serial

    assert parse_serial(output) == serial


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Backend(BaseHTTPRequestHandler):
    """200 with an X-Backend header, or 503 without one for /down."""

    def do_GET(self) -> None:
        down = self.path == "/down"
        self.send_response(503 if down else 200)
        if not down:
            self.send_header("X-Backend", "local")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def run_here(script: str, home: Path) -> str:
    """The probe script as the client host runs it; no proxy variables and no ~/.curlrc, so curl goes to 127.0.0.1 only."""
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("parallel", [1, 2])
def test_a_failed_request_is_counted_once(backend: str, tmp_path: Path, parallel: int) -> None:
    refused = f"http://127.0.0.1:{free_port()}/"
    script = "\n".join([http_loop(f"{backend}/", 4, parallel=parallel), http_loop(f"{backend}/down", 1, parallel=parallel),
                        http_loop(refused, 3, parallel=parallel)])
    responses = parse_responses(run_here(script, tmp_path))
    assert Counter((r.code, r.backend) for r in responses) == {
        (200, "local"): 4 * parallel, (503, "-"): 1 * parallel, (0, "-"): 3 * parallel}
    assert by_backend(responses) == Counter(local=4 * parallel)


class AnsweringContext:
    """A VerifyContext stand-in whose hosts answer a shell test with `answer`, or cannot be reached."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer

    def sh(self, host: str, script: str, timeout_s: float = 120) -> str:
        from haops.transport import HostFailure

        if self.answer is None:
            raise HostFailure(f"{host}: connection refused")
        return self.answer + "\n"


@pytest.mark.parametrize("answer, status", [("yes", None), ("no", "skip"), (None, "fail")])
def test_lvs_traffic_is_measured_skipped_without_ipvs_and_failed_when_unreachable(answer: str | None, status: str | None) -> None:
    from haops import inventory
    from haops.verify.behaviour import promised
    from haops.verify.run import cannot_measure
    from tests.conftest import GOLDEN

    service = inventory.load(GOLDEN / "lvs" / "ipvsadm-director-dr" / "inventory.yml").services["app"]
    result = cannot_measure(AnsweringContext(answer), service, promised(service))  # type: ignore[arg-type]
    assert (result and result.status) == status
    if status == "fail":
        assert result is not None and "connection refused" in result.observed
