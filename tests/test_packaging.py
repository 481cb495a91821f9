"""`pip install .` gives a working `haops` anywhere: the wheel carries every template."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.package
ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_every_template(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("haops-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    templates = {f"haops/templates/{p.relative_to(ROOT / 'templates').as_posix()}" for p in (ROOT / "templates").rglob("*.j2")}
    assert templates and templates <= shipped
    assert "haops/cli/__init__.py" in shipped and "haops/lab/lab.py" in shipped


def test_installed_command_renders_from_any_directory(tmp_path: Path) -> None:
    """scripts/setup.sh installs the wheel into this virtualenv; its `haops` must not need the checkout."""
    haops = Path(sys.executable).with_name("haops")
    assert haops.exists(), "run scripts/setup.sh: it installs haops into the virtualenv"
    done = subprocess.run([str(haops), "render", "haproxy", "-i", str(ROOT / "inventories/example.yml"), "--host", "lb1"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "backend www" in done.stdout
