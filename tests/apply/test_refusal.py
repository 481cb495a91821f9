"""Reloads the daemon itself refuses, on real lab hosts: apply hears it from the daemon in a
few seconds, instead of waiting out the proof deadline, and rolls back.

Each refusal is real: the new configuration passes its checker (which binds nothing, or binds
in a network namespace of its own), then the reload cannot bind a port that another process
holds on lb1. Each test starts from the example cluster `applied` and edits the inventory.
"""

from __future__ import annotations

import shlex
import time
from collections import Counter

import pytest

from haops.apply.execute import PROOF_SECONDS
from haops.apply.run import ApplyOptions, HostOutcome, apply
from haops.targets import apache, haproxy, nginx
from tests.apply.conftest import Cluster
from tests.apply.test_apply import hashes, served_by, settings

pytestmark = pytest.mark.lab
DETECTED_WITHIN_S = 8  # PROOF_SECONDS is 15; loose enough for a loaded 2-core machine
REFUSED = "the daemon refused the new configuration"
WEB = {"web1", "web2", "web3"}

def apply_lb1(cluster: Cluster) -> tuple[HostOutcome, dict[str, float]]:
    """apply to lb1, and when each of its steps began (seconds since the start)."""
    started = time.monotonic()
    steps: dict[str, float] = {}

    def record(host: str, step: str) -> None:
        steps.setdefault(step, time.monotonic() - started)

    [outcome] = apply(cluster.inventory, ["lb1"], ApplyOptions(), settings(cluster), record)
    return outcome, steps


def refusal_seen_after(steps: dict[str, float], target: str) -> float:
    """From sending the reload to giving up on it: the wait for the proof that the refusal cut short."""
    return steps[f"{target}: rolling back"] - steps[f"{target}: reload"]


def log_size(cluster: Cluster, log: str) -> int:
    return int(cluster.sh("lb1", f"stat -c %s {log} 2>/dev/null || echo 0"))


def master_cli(cluster: Cluster) -> str:
    return cluster.sh("lb1", f"{haproxy.show_proc(haproxy.MASTER_SOCKET)} || true")


def assert_rolled_back(outcome: HostOutcome, target: str, *said: str) -> str:
    message = "\n".join(outcome.report.messages)
    assert not outcome.report.ok and outcome.report.rolled_back, message
    assert f"{target}: reload failed" in message and REFUSED in message, message
    assert "checker refused" not in message, "the checker passed: the daemon refused at reload"
    assert "old config restored and live again" in message, message
    for words in said:
        assert words in message, message
    return message


def test_haproxy_refusal_is_heard_from_its_master_cli(applied: Cluster) -> None:
    assert " master " in master_cli(applied), "lb1's HAProxy runs with its master CLI"
    before = hashes(applied)["lb1:/etc/haproxy/haproxy.cfg"]
    with applied.port_held("lb1", 8090):
        applied.rewrite("stats: {port: 8404", "stats: {port: 8090")
        outcome, steps = apply_lb1(applied)
    assert_rolled_back(outcome, "haproxy", "haproxy master: reload failed")
    assert refusal_seen_after(steps, "haproxy") < DETECTED_WITHIN_S < PROOF_SECONDS
    assert hashes(applied)["lb1:/etc/haproxy/haproxy.cfg"] == before
    assert served_by(applied, 80, 3) == Counter({"web1": 1, "web2": 1, "web3": 1})


def test_nginx_refusal_is_heard_from_its_error_log(applied: Cluster) -> None:
    before = hashes(applied)["lb1:/etc/nginx/nginx.conf"]
    with applied.port_held("lb1", 8091):
        applied.rewrite("port: 81\n", "port: 8091\n")
        outcome, steps = apply_lb1(applied)
    assert_rolled_back(outcome, "nginx", "bind() to 10.213.10.100:8091 failed (98: Address already in use)\nstill could not bind()")
    assert refusal_seen_after(steps, "nginx") < DETECTED_WITHIN_S
    assert hashes(applied)["lb1:/etc/nginx/nginx.conf"] == before
    assert set(served_by(applied, 81)) == WEB


def test_apache_refusal_is_heard_from_its_parent_exiting(applied: Cluster) -> None:
    before = hashes(applied)["lb1:/etc/apache2/apache2.conf"]
    with applied.port_held("lb1", 8092):
        applied.rewrite("port: 82\n", "port: 8092\n")
        outcome, steps = apply_lb1(applied)
    assert_rolled_back(outcome, "apache", "could not bind to address 10.213.10.100:8092",
                       "apache2 stopped: its parent exits when a graceful restart fails")
    assert refusal_seen_after(steps, "apache") < DETECTED_WITHIN_S
    assert hashes(applied)["lb1:/etc/apache2/apache2.conf"] == before
    assert set(served_by(applied, 82)) == WEB, "the rollback started Apache again"


def test_reloads_that_take_are_not_refused_for_earlier_refusals(applied: Cluster) -> None:
    """Earlier refusals stay on record: HAProxy's master counts a failed reload until one takes,
    and nginx's and Apache's logs keep their lines. The next good reload is proven, not refused."""
    with applied.port_held("lb1", 8090):
        failed_by_hand(applied, "bind :8404", "bind :8090")
    applied.sh("lb1", f"echo '2026/01/01 00:00:00 [emerg] 1#1: still could not bind()' >> {nginx.ERROR_LOG}; "
                      f"echo '[Thu Jan 01 00:00:00.000000 2026] [:emerg] [pid 1:tid 1] AH00019: Unable to open logs, exiting' >> {apache.ERROR_LOG}")
    applied.rewrite("port: 80\n    balancer: haproxy", "port: 80\n    retries: 3\n    balancer: haproxy")
    applied.rewrite("algorithm: least_conn", "algorithm: roundrobin")
    applied.rewrite("algorithm: byrequests", "algorithm: bybusyness")
    outcome, _ = apply_lb1(applied)
    assert outcome.report.ok, outcome.report.messages
    assert sorted(outcome.report.reloads) == ["apache:reload", "haproxy:reload", "nginx:reload"]
    assert "[failed: 0]" in master_cli(applied)


def failed_by_hand(cluster: Cluster, old: str, new: str) -> None:
    """A reload of lb1's HAProxy fails and nothing reloads it again (as after an apply that died
    before its rollback); then its file is put back as it was."""
    config = shlex.quote(haproxy.CONFIG)
    cluster.sh("lb1", f"cp -p {config} /tmp/haproxy.cfg.good && sed -i 's/{old}/{new}/' {config} && "
                      'kill -USR2 "$(cat /run/haproxy.pid)"')
    try:
        cluster.sh("lb1", f"for i in $(seq 50); do {haproxy.show_proc(haproxy.MASTER_SOCKET)} | grep -qF '[failed: 1]' && exit 0; "
                          "sleep 0.2; done; exit 1")
    finally:
        cluster.sh("lb1", f"cp -p /tmp/haproxy.cfg.good {config}")


def test_nginx_reload_that_waits_for_its_port_is_not_refused(applied: Cluster) -> None:
    """A slow reload that takes: nginx logs [emerg] for a port in use, then binds it on a retry."""
    logged_before = log_size(applied, nginx.ERROR_LOG)
    with applied.port_held("lb1", 8091, log=nginx.ERROR_LOG, until="8091 failed (98: "):
        applied.rewrite("port: 81\n", "port: 8091\n")
        outcome, _ = apply_lb1(applied)
    assert outcome.report.ok, outcome.report.messages
    assert outcome.report.reloads == ["nginx:reload"]
    logged = applied.sh("lb1", f"tail -c +{logged_before + 1} {nginx.ERROR_LOG}")
    assert "[emerg]" in logged and "bind() to 10.213.10.100:8091 failed (98: Address already in use)" in logged
    assert "still could not bind()" not in logged
    assert set(served_by(applied, 8091)) == WEB
