"""Every golden case must pass the daemon's own checker. A missing tool fails, never skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from haops import inventory
from haops.targets import get_target
from haops.targets.base import RenderContext
from haops.apply.validation import validate
from tests.test_golden import CASES, GOLDEN_DAY

pytestmark = pytest.mark.checker


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.parent.name}/{c.name}")
def test_golden_case_passes_real_checker(case: Path) -> None:
    target = get_target(case.parent.name)
    inv = inventory.load(case / "inventory.yml")
    results = validate(inv, [target], context=RenderContext(today=GOLDEN_DAY))
    assert results, "nothing was checked"
    for result in results:
        assert result.status == "ok", f"{result.host}/{result.target}: {result.status}\n{result.output}"
