"""verify's pure parts: expectations per algorithm and the probe scripts' output parsers."""

from __future__ import annotations

from collections import Counter

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


def test_a_failed_request_is_counted_once() -> None:
    assert "|| true" in http_loop("http://10.213.0.100/", 1) and "000||0" not in http_loop("http://10.213.0.100/", 1)
