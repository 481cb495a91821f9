"""The nginx checker really runs, on the candidate tree only, without leaving traces."""

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
WEIGHTED = GOLDEN / "nginx" / "weighted-backup" / "inventory.yml"
PLUS = GOLDEN / "nginx" / "plus-least-time" / "inventory.yml"
PID_FILE = Path("/run/nginx.pid")
NONLOCAL_BIND = Path("/proc/sys/net/ipv4/ip_nonlocal_bind")


def rendered(path: Path) -> tuple[Inventory, RenderedFile]:
    inv = inventory.load(path)
    [file] = get_target("nginx").render(inv, "lb1", RenderContext())
    return inv, file


def test_nginx_rejects_unknown_directive() -> None:
    inv, good = rendered(WEIGHTED)
    bad = dataclasses.replace(good, text=good.text.replace("proxy_pass http://www;", "proxy_pass_to http://www;"))
    result = check_files(get_target("nginx"), inv, "lb1", [bad])
    assert result.status == "failed"
    assert 'unknown directive "proxy_pass_to"' in result.output
    assert "/etc/nginx/nginx.conf:" in result.output, "checker output names the host path, not the temp tree"


def test_nginx_itself_refuses_backup_with_ip_hash() -> None:
    """review() refuses backup with hash methods because nginx does; prove nginx does."""
    inv, good = rendered(PLUS)
    text = good.text.replace("weight=1;  # web2\n    }\n\n    server {\n        listen 10.213.0.100:8002;",
                             "weight=1 backup;  # web2\n    }\n\n    server {\n        listen 10.213.0.100:8002;")
    text = text.replace("least_conn;", "ip_hash;")
    assert text.count("backup;") == 2
    result = check_files(get_target("nginx"), inv, "lb1", [dataclasses.replace(good, text=text)])
    assert result.status == "failed"
    assert 'balancing method does not support parameter "backup"' in result.output


def test_plus_file_is_checked_by_open_source_nginx_with_true_line_numbers() -> None:
    inv, good = rendered(PLUS)
    lines = good.text.splitlines(keepends=True)
    broken_line = next(i for i, line in enumerate(lines) if "ip_hash;" in line) + 1
    lines[broken_line - 1] = lines[broken_line - 1].replace("ip_hash;", "ip_hash on;")
    result = check_files(get_target("nginx"), inv, "lb1", [dataclasses.replace(good, text="".join(lines))])
    assert result.status == "failed"
    assert f"/etc/nginx/nginx.conf:{broken_line}" in result.output
    assert "oss-view" not in result.output


def test_check_needs_no_live_config_no_pid_and_no_local_vip() -> None:
    """Hide /etc/nginx and /run: the check still passes, on VIPs this machine does not have."""
    inv, good = rendered(WEIGHTED)
    [check] = get_target("nginx").checks(inv, "lb1", Path("/candidate"))
    with tempfile.TemporaryDirectory() as tmp:
        write_tree(Path(tmp), [good])
        argv = [part.replace("/candidate", tmp) for part in check.argv]
        hide = "for d in /etc/nginx /run; do [ ! -d $d ] || mount -t tmpfs hidden $d; done; exec \"$@\""
        done = subprocess.run(["unshare", "--mount", "sh", "-c", hide, "hide", *argv], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_check_leaves_the_machine_pid_file_and_sysctl_alone() -> None:
    pid_before = PID_FILE.stat() if PID_FILE.exists() else None
    nonlocal_before = NONLOCAL_BIND.read_text()
    inv, good = rendered(WEIGHTED)
    assert check_files(get_target("nginx"), inv, "lb1", [good]).status == "ok"
    pid_after = PID_FILE.stat() if PID_FILE.exists() else None
    if pid_before is None:
        assert pid_after is None, "the check created /run/nginx.pid"
    else:
        assert pid_after is not None and (pid_after.st_mtime_ns, pid_after.st_size) == (pid_before.st_mtime_ns, pid_before.st_size)
    assert NONLOCAL_BIND.read_text() == nonlocal_before, "the check changed the machine's ip_nonlocal_bind"
