"""The apache2 checker really runs, on the candidate tree only, without leaving traces."""

from __future__ import annotations

import dataclasses
import subprocess
import tempfile
from pathlib import Path

import pytest

from haops import inventory
from haops.inventory.model import Inventory
from haops.targets import get_target
from haops.targets.base import RenderContext, RenderedFile
from haops.apply.validation import check_files, write_tree
from tests.conftest import GOLDEN

pytestmark = pytest.mark.checker
STICKY = GOLDEN / "apache" / "byrequests-sticky-hcheck" / "inventory.yml"
RUNTIME_DIR = Path("/run/apache2")


def rendered(path: Path) -> tuple[Inventory, RenderedFile]:
    inv = inventory.load(path)
    [file] = get_target("apache").render(inv, "lb1", RenderContext())
    return inv, file


def test_apache_rejects_out_of_range_loadfactor() -> None:
    inv, good = rendered(STICKY)
    bad = dataclasses.replace(good, text=good.text.replace("loadfactor=1 route=web2", "loadfactor=101 route=web2", 1))
    result = check_files(get_target("apache"), inv, "lb1", [bad])
    assert result.status == "failed"
    assert "LoadFactor must be a number between 1..100" in result.output
    assert "/etc/apache2/apache2.conf" in result.output, "checker output names the host path, not the temp tree"


def test_apache_rejects_health_interval_below_its_floor() -> None:
    """review() refuses intervals under 100ms because mod_proxy_hcheck does; prove it does."""
    inv, good = rendered(STICKY)
    bad = dataclasses.replace(good, text=good.text.replace("hcinterval=500ms", "hcinterval=50ms"))
    result = check_files(get_target("apache"), inv, "lb1", [bad])
    assert result.status == "failed"
    assert "Interval must be a positive value greater than 100ms" in result.output


def test_check_needs_no_live_config_and_no_runtime_dir() -> None:
    """Hide /etc/apache2 and /run: the check still passes on the candidate tree alone."""
    inv, good = rendered(STICKY)
    [check] = get_target("apache").checks(inv, "lb1", Path("/candidate"))
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp), [good])
        argv = [part.replace("/candidate", tmp) for part in check.argv]
        hide = "for d in /etc/apache2 /run; do [ ! -d $d ] || mount -t tmpfs hidden $d; done; exec \"$@\""
        done = subprocess.run(["unshare", "--mount", "sh", "-c", hide, "hide", *argv], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Syntax OK" in done.stdout + done.stderr


def test_check_leaves_the_machine_run_directory_alone() -> None:
    existed = RUNTIME_DIR.exists()
    inv, good = rendered(STICKY)
    assert check_files(get_target("apache"), inv, "lb1", [good]).status == "ok"
    assert RUNTIME_DIR.exists() == existed, "the check created or removed /run/apache2"
