"""Bounded traffic from a client host: shell scripts to run there, and pure parsers of their output.

Every loop has a fixed count and every request a time limit, so a probe always ends.
Each curl is a new process, so each request is a new TCP connection (what balancers and
nth DNAT count), unless a cookie jar ties requests together for stickiness.
"""

from __future__ import annotations

import shlex
from collections import Counter
from dataclasses import dataclass

REQUEST_TIMEOUT_S = 3
FORMAT = "%{http_code}|%header{x-backend}|%{time_total}\\n"


@dataclass(frozen=True)
class Response:
    code: int
    backend: str
    seconds: float

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 400


def http_loop(url: str, count: int, jar: str | None = None, parallel: int = 1, pause_s: float = 0.0,
              curl_args: tuple[str, ...] = ()) -> str:
    """`parallel` loops of `count` requests each, printing one line per request."""
    cookies = f"-b {shlex.quote(jar)} -c {shlex.quote(jar)} " if jar else ""
    extra = "".join(f"{shlex.quote(arg)} " for arg in curl_args)
    # curl prints its -w line (code 000) even when the request fails; `|| true` keeps the loop going.
    literal = "-g " if "[" in url else ""  # an IPv6 address in brackets, not a curl glob
    request = f"curl -s -o /dev/null -m {REQUEST_TIMEOUT_S} {cookies}{extra}{literal}-w '{FORMAT}' {shlex.quote(url)} || true"
    pause = f"; sleep {pause_s}" if pause_s else ""
    loop = f"for i in $(seq {count}); do {request}{pause}; done"
    if parallel == 1:
        return loop
    return "\n".join([f"( {loop} ) > /tmp/haops-probe.$$.{n} &" for n in range(parallel)]
                     + ["wait", "cat /tmp/haops-probe.$$.* && rm -f /tmp/haops-probe.$$.*"])


def parse_responses(output: str) -> list[Response]:
    responses = []
    for line in output.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3 and parts[0].isdigit():
            responses.append(Response(int(parts[0]), parts[1].strip() or "-", float(parts[2] or 0)))
    return responses


def by_backend(responses: list[Response]) -> Counter[str]:
    return Counter(r.backend for r in responses if r.ok)


def dig_loop(server: str, name: str, count: int, rtype: str = "A") -> str:
    """`count` queries, one answer set per line (records in the order the server gave them)."""
    query = f"dig +short +time=1 +tries=1 @{shlex.quote(server)} {shlex.quote(name)} {shlex.quote(rtype)} | paste -sd, -"
    return f"for i in $(seq {count}); do {query}; done"


def parse_answers(output: str) -> list[tuple[str, ...]]:
    return [tuple(line.split(",")) for line in output.splitlines() if line.strip()]


def soa_serial(server: str, zone: str) -> str:
    return f"dig +short +time=1 +tries=1 @{shlex.quote(server)} {shlex.quote(zone)} SOA"


def parse_serial(output: str) -> int | None:
    """The serial of a `dig +short SOA` answer; None for no answer or dig's error text."""
    fields = output.split()
    return int(fields[2]) if len(fields) == 7 and fields[2].isdigit() else None
