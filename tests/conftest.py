"""Shared pytest settings: where golden files live and how to refresh them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="rewrite tests/golden from the current templates")
    parser.addoption("--keep-vms", action="store_true", help="VM tier: leave the VMs up at the end, and reuse them")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The VM tier boots VMs for minutes: it runs only when -m names it (scripts/test-vm.sh),
    never as part of `-m "not lab"` or a plain run."""
    if "vm" in re.findall(r"\w+", str(config.getoption("markexpr") or "")):
        return
    vm_tier = [item for item in items if item.get_closest_marker("vm") is not None]
    if vm_tier:
        config.hook.pytest_deselected(items=vm_tier)
        items[:] = [item for item in items if item.get_closest_marker("vm") is None]
