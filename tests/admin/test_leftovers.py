"""What haops made live and the inventory no longer asks for: iptables retired by apply, the rest by `haops prune`."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.apply.conftest import ROOT, Cluster

pytestmark = pytest.mark.lab


def without_service(text: str, name: str) -> str:
    trimmed = re.sub(rf"\n  {name}:\n(    .*\n)+", "\n", text)
    assert trimmed != text
    return trimmed


def haops(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "haops", *args, "-i", str(cluster.path)], capture_output=True, text=True,
                          timeout=180, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)


def nat(cluster: Cluster, host: str) -> str:
    return cluster.sh(host, "iptables-save -t nat")


def test_last_iptables_service_leaving_removes_chains_and_jumps(admin_applied: Cluster) -> None:
    assert "-A PREROUTING -j HAOPS-PREROUTING" in nat(admin_applied, "lb1")
    admin_applied.converge(without_service(admin_applied.path.read_text(), "nth"))
    for host in ("lb1", "lb2"):
        rules = nat(admin_applied, host)
        assert "HAOPS-" not in rules, rules
        assert admin_applied.sh(host, "ls /etc/haops/iptables.rules /var/lib/haops/live/iptables 2>&1 || true").count("No such file") == 2
    again = haops(admin_applied, "apply")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "retire" not in again.stdout


def test_prune_lists_then_removes_a_dropped_daemon(admin_applied: Cluster) -> None:
    admin_applied.converge(without_service(admin_applied.path.read_text(), "app"))  # the only Apache service
    assert admin_applied.sh("lb1", "pgrep -x apache2 >/dev/null && echo running || echo stopped").strip() == "running"
    applied = haops(admin_applied, "apply")
    assert "left over from an earlier inventory: apache; `haops prune` removes it" in applied.stdout + applied.stderr

    listed = haops(admin_applied, "prune", "--list")
    assert listed.returncode == 0, listed.stderr
    assert "lb1: apache (no longer on this host): /etc/apache2/apache2.conf" in listed.stdout
    assert "lb2: apache" in listed.stdout
    assert admin_applied.sh("lb1", "pgrep -x apache2 >/dev/null && echo running || echo stopped").strip() == "running"

    refused = subprocess.run([sys.executable, "-m", "haops", "prune", "-i", str(admin_applied.path)], input="n\n",
                             capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "remove these 2 leftover(s)?" in refused.stdout
    assert admin_applied.sh("lb1", "test -f /etc/apache2/apache2.conf && echo kept").strip() == "kept"

    removed = haops(admin_applied, "prune", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    for host in ("lb1", "lb2"):
        state = admin_applied.sh(host, "pgrep -x apache2 || echo none; ls /etc/apache2/apache2.conf /var/lib/haops/live/apache 2>&1 | grep -c 'No such'")
        assert state.split() == ["none", "2"], state
        assert admin_applied.sh(host, "ls /var/lib/haops/backup/*/pruned/etc/apache2/apache2.conf").strip()
    assert "nothing to prune" in haops(admin_applied, "prune", "--list").stdout
    # what stays wanted is untouched: the HAProxy service still answers on the VIP
    vip = admin_applied.inventory.services["www"].vip
    assert admin_applied.sh("client1", f"curl -s -o /dev/null -w '%{{http_code}}' http://{vip}/").strip() == "200"
