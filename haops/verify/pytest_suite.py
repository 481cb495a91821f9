"""`haops verify --pytest`: the same checks as a pytest suite, one test per check.

Run by haops with HAOPS_VERIFY_INVENTORY set; pytest's options (-v, --junitxml, -k) apply.
"""

from __future__ import annotations

import os

import pytest

from haops.verify.result import FAIL, SKIP, CheckResult


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "result" not in metafunc.fixturenames:
        return
    from haops import inventory
    from haops.session import settings_for
    from haops.verify.run import verify

    inv = inventory.load(os.environ["HAOPS_VERIFY_INVENTORY"])
    faults = {"1": True, "0": False}.get(os.environ.get("HAOPS_VERIFY_FAULTS", ""))
    results = verify(inv, settings_for(inv), faults, source=os.environ.get("HAOPS_VERIFY_FROM") or None)
    metafunc.parametrize("result", results, ids=[f"{r.check}:{r.subject}" for r in results])


def test_check(result: CheckResult) -> None:
    if result.status == SKIP:
        pytest.skip(result.observed)
    assert result.status != FAIL, f"expected {result.expected}; observed {result.observed}"
