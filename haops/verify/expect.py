"""What the observed traffic must look like for each algorithm: pure functions, unit-tested."""

from __future__ import annotations

from collections import Counter
from functools import reduce
from math import gcd

def cycle(weights: dict[str, int]) -> int:
    """Requests in one full round of a weighted round robin (weights in lowest terms)."""
    divisor = reduce(gcd, weights.values())
    return sum(w // divisor for w in weights.values())


def exact_split(weights: dict[str, int], requests: int) -> dict[str, int]:
    """The per-backend counts an exact weighted split gives over `requests` (a whole number of cycles)."""
    divisor = reduce(gcd, weights.values())
    rounds = requests // cycle(weights)
    return {backend: weight // divisor * rounds for backend, weight in weights.items()}


def describe(counts: dict[str, int] | Counter[str]) -> str:
    return " ".join(f"{backend}={count}" for backend, count in sorted(counts.items())) or "nothing"


def split_matches(weights: dict[str, int], observed: Counter[str], requests: int, tolerance: int = 0) -> bool:
    expected = exact_split(weights, requests)
    if set(observed) - set(expected) or sum(observed.values()) != requests:
        return False
    return all(abs(observed.get(b, 0) - n) <= tolerance for b, n in expected.items())


def affinity_holds(per_client: dict[str, Counter[str]]) -> bool:
    """Every client stayed on exactly one backend."""
    return all(len(counts) == 1 for counts in per_client.values())


def spread(per_client: dict[str, Counter[str]]) -> int:
    """How many distinct backends the clients landed on."""
    return len({backend for counts in per_client.values() for backend in counts})


def slow_backend_avoided(observed: Counter[str], slow: str, backends: list[str]) -> bool:
    """The slow backend got fewer than its fair share, and every idle one more than the slow one."""
    total = sum(observed.values())
    fair = total / len(backends)
    return observed.get(slow, 0) < fair and all(observed.get(b, 0) > observed.get(slow, 0) for b in backends if b != slow)


def rotation_seen(answers: list[tuple[str, ...]], records: set[str]) -> bool:
    """Every answer holds every record, and the first record rotates through all of them."""
    return bool(answers) and all(set(a) == records for a in answers) and {a[0] for a in answers} == records
