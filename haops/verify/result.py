"""One verification's outcome: what was expected, what was observed, and whether they agree."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class CheckResult:
    check: str
    subject: str
    expected: str
    observed: str
    status: str
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status == FAIL


def verdict(passed: bool) -> str:
    return PASS if passed else FAIL


def timed(check: str, subject: str, probe: Callable[[], tuple[str, str, str]]) -> CheckResult:
    """Run one check; whatever goes wrong inside it becomes a failed row, not a lost report."""
    started = time.monotonic()
    try:
        expected, observed, status = probe()
    except Exception as exc:  # noqa: BLE001 - ssh, testinfra (AssertionError) and probe failures alike
        expected, observed, status = "the check runs", f"could not check: {str(exc).strip()[:200]}", FAIL
    return CheckResult(check, subject, expected, observed, status, time.monotonic() - started)
