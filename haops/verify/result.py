"""One verification's outcome: what was expected, what was observed, and whether they agree."""

from __future__ import annotations

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
