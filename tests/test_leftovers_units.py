"""Leftovers as data: the host's records parsed, what counts as left over, and the scripts that remove it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from haops import inventory as inventory_loader
from haops.apply.facts import parse_facts, parse_recorded, recorded_script
from haops.apply.prune import Leftover, leftovers, retire_script
from haops.targets import targets_by_host
from haops.targets.iptables import retire_script as iptables_retire

pytestmark = pytest.mark.unit
EXAMPLE = Path(__file__).resolve().parent.parent / "inventories" / "example.yml"


def test_recorded_lines_parse_and_facts_carry_them() -> None:
    output = "I none\nL apache\nP apache /etc/apache2/apache2.conf\nL iptables\nR iptables abc\n"
    assert parse_recorded(output) == {"apache": ["/etc/apache2/apache2.conf"], "iptables": []}
    assert parse_facts(output).recorded == parse_recorded(output)


def test_recorded_script_lists_records_and_their_files(tmp_path: Path) -> None:
    live = tmp_path / "live"
    live.mkdir()
    (live / "haproxy").write_text("digest\n")
    (live / "haproxy.files").write_text("/etc/haproxy/haproxy.cfg\n")
    (live / "bind").write_text("unproven\n")
    (live / "bind.new").write_text("x\n")
    script = recorded_script().replace("/var/lib/haops/live", str(live))
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout
    assert parse_recorded(out) == {"bind": [], "haproxy": ["/etc/haproxy/haproxy.cfg"]}
    empty = subprocess.run(["sh", "-c", recorded_script().replace("/var/lib/haops/live", str(tmp_path / "none"))],
                           capture_output=True, text=True, check=True).stdout
    assert empty == ""


def test_recorded_script_keeps_each_path_whole_with_builtins_only(tmp_path: Path) -> None:
    """Read with the shell's own read: backslashes, leading spaces and a last line without a
    newline come back as written, and no process (sed was one per record) runs for it."""
    live = tmp_path / "live"
    live.mkdir()
    (live / "nginx").write_text("digest\n")
    (live / "nginx.files").write_text("/etc/nginx/a\\b.conf\n  /etc/nginx/lead.conf\n/etc/nginx/last.conf")
    script = recorded_script().replace("/var/lib/haops/live", str(live))
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True, env={"PATH": ""}).stdout
    assert parse_recorded(out) == {"nginx": ["/etc/nginx/a\\b.conf", "  /etc/nginx/lead.conf", "/etc/nginx/last.conf"]}


def test_only_dropped_targets_and_files_are_leftovers() -> None:
    inv = inventory_loader.load(EXAMPLE)
    wanted = targets_by_host(inv)["lb1"]
    recorded = {"haproxy": ["/etc/haproxy/haproxy.cfg"], "bind": ["/etc/bind/named.conf"],
                "nginx": ["/etc/nginx/nginx.conf", "/etc/nginx/old.conf"]}
    assert leftovers(inv, "lb1", wanted, recorded) == [
        Leftover("lb1", "bind", ("/etc/bind/named.conf",), True),
        Leftover("lb1", "nginx", ("/etc/nginx/old.conf",), False),
    ]


def test_retire_stops_moves_and_forgets() -> None:
    script = retire_script(Leftover("lb1", "apache", ("/etc/apache2/apache2.conf",), True), "none", "/var/lib/haops/backup/r1")
    assert "mv -f /etc/apache2/apache2.conf /var/lib/haops/backup/r1/pruned/etc/apache2/apache2.conf" in script
    assert "rm -f /var/lib/haops/live/apache /var/lib/haops/live/apache.files" in script
    assert "kill" in script  # the daemon's stop, only while it runs
    partial = retire_script(Leftover("lb1", "nginx", ("/etc/nginx/old.conf",), False), "none", "/b")
    assert "kill" not in partial and "grep -vxF -e /etc/nginx/old.conf /var/lib/haops/live/nginx.files" in partial


def test_iptables_retire_removes_every_jump_then_the_chains() -> None:
    script = iptables_retire()
    for builtin in ("PREROUTING", "OUTPUT", "POSTROUTING"):
        assert f"while iptables -w -t nat -C {builtin} -j HAOPS-{builtin}" in script
    assert script.index("-D PREROUTING") < script.index(" -F $c") < script.index(" -X $c")
