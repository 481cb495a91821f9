"""How fast the lab comes up and goes down: 7 hosts, target up <= 3 s, down <= 2 s.

    sudo .venv/bin/python bench/lab_updown.py [--runs N]

Uses its own lab name and /24 so a developer's lab is untouched. Prints the figures; it
is a benchmark, not a test, so it never fails on time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from ipaddress import IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haops.lab import Lab

UP_TARGET_S, DOWN_TARGET_S = 3.0, 2.0


def one_run(lab: Lab) -> tuple[float, float]:
    started = time.perf_counter()
    lab.up()
    up_s = time.perf_counter() - started
    assert all(s.up and s.ssh for s in lab.status()), "a host is not reachable over SSH"
    started = time.perf_counter()
    lab.down()
    return up_s, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    lab = Lab("habench", IPv4Network("10.213.9.0/24"))
    lab.down()
    try:
        results = [one_run(lab) for _ in range(runs)]
    finally:
        lab.down()
    for label, values, target in (("up", [r[0] for r in results], UP_TARGET_S),
                                  ("down", [r[1] for r in results], DOWN_TARGET_S)):
        median = statistics.median(values)
        verdict = "ok" if median <= target else "SLOW"
        print(f"lab {label:4} 7 hosts: median {median:.2f} s, min {min(values):.2f} s, "
              f"max {max(values):.2f} s over {runs} runs (target <= {target:.0f} s: {verdict})")


if __name__ == "__main__":
    main()
