"""verify in the lab: every balancer kind and algorithm measured, and broken clusters caught.

Each test starts from the example cluster applied (the `applied` fixture of
tests/apply/conftest.py) or applies the inventory it needs itself; none relies on an earlier test.
"""

from __future__ import annotations

import base64
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from haops import inventory
from haops.cli import main
from haops.session import running_lab, settings_for
from haops.verify import behaviour
from haops.verify.context import VerifyContext
from haops.verify.result import FAIL, PASS, SKIP
from haops.verify.run import verify
from tests.apply.conftest import Cluster, example_for_lab

pytestmark = pytest.mark.lab


def context(path: Path) -> VerifyContext:
    inv = inventory.load(path)
    return VerifyContext(inv, settings_for(inv), running_lab(inv), faults=True)


def test_verify_passes_on_the_example_cluster_for_every_balancer_kind(applied: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["verify", "-i", str(applied.path), "--json", "--junit", str(applied.path.with_suffix(".xml"))])
    results = json.loads(capsys.readouterr().out)
    failed = [r for r in results if r["status"] != PASS]
    assert exit_.value.code == 0 and failed == []
    measured = {(r["check"], r["subject"]) for r in results}
    assert {("split", "www"), ("least connections", "api"), ("split", "app"), ("split", "nth")} <= measured
    assert {("sticky cookie", "www"), ("sticky cookie", "app"), ("dead backend", "www"), ("dead backend", "api"),
            ("dead backend", "app"), ("DNS round robin", "www.example.test @dns1")} <= measured
    assert "<testsuite" in applied.path.with_suffix(".xml").read_text()


# --- every algorithm ---------------------------------------------------------------------------------

ALGORITHMS = [
    ("haproxy", {"algorithm": "roundrobin", "weights": [2, 1, 1]}, "split"),
    ("haproxy", {"algorithm": "static-rr"}, "split"),
    ("haproxy", {"algorithm": "leastconn"}, "least connections"),
    ("haproxy", {"algorithm": "source"}, "affinity"),
    ("haproxy", {"algorithm": "uri"}, "affinity"),
    ("haproxy", {"algorithm": "hdr", "hash_key": "header:X-User"}, "affinity"),
    ("nginx", {"algorithm": "roundrobin", "weights": [1, 2, 1]}, "split"),
    ("nginx", {"algorithm": "least_conn"}, "least connections"),
    ("nginx", {"algorithm": "ip_hash"}, "affinity"),
    ("nginx", {"algorithm": "hash", "hash_key": "cookie:sid"}, "affinity"),
    ("nginx", {"algorithm": "random"}, "spread"),
    ("apache", {"algorithm": "byrequests", "weights": [1, 1, 2]}, "split"),
    ("apache", {"algorithm": "bytraffic"}, "spread"),
    ("apache", {"algorithm": "bybusyness"}, "least connections"),
    ("iptables", {"algorithm": "nth", "weights": [3, 1, 2]}, "split"),
]


def with_probe_service(base: str, balancer: str, settings: dict[str, Any]) -> str:
    data = yaml.safe_load(base)
    weights = settings.get("weights", [1, 1, 1])
    service: dict[str, Any] = {
        "vip": data["services"]["www"]["vip"], "port": 90, "balancer": balancer, "hosts": "lb",
        "algorithm": settings["algorithm"],
        "backends": [{"host": f"web{i + 1}", "port": 8080, "weight": w} for i, w in enumerate(weights)],
    }
    if "hash_key" in settings:
        service["hash_key"] = settings["hash_key"]
    data["services"]["probe"] = service
    return yaml.safe_dump(data, sort_keys=False)


@pytest.mark.parametrize("balancer, settings, check", ALGORITHMS, ids=[f"{b}-{s['algorithm']}" for b, s, _ in ALGORITHMS])
def test_every_algorithm_behaves_as_promised(cluster: Cluster, balancer: str, settings: dict[str, Any], check: str) -> None:
    """The example cluster plus a probe service on port 90, applied in one go from whatever state the hosts are in."""
    cluster.converge(with_probe_service(example_for_lab(), balancer, settings))
    ctx = context(cluster.path)
    try:
        result = behaviour.distribution(ctx, ctx.inventory.services["probe"])
    finally:
        ctx.close()
    assert (result.check, result.status) == (check, PASS), f"expected {result.expected}; observed {result.observed}"


# --- broken clusters verify must catch -------------------------------------------------------------------


def break_live(cluster: Cluster, host: str, path: str, sed: str, reload: str) -> None:
    before = cluster.sh(host, f"sha256sum {path}")
    cluster.sh(host, f"sed -i {shlex.quote(sed)} {path} && {reload}")
    assert cluster.sh(host, f"sha256sum {path}") != before, f"the sed changed nothing in {path}"


HAPROXY_RELOAD = 'kill -USR2 "$(cat /run/haproxy.pid)"; sleep 1.5'


def check_of(cluster: Cluster, run: Any) -> Any:
    ctx = context(cluster.path)
    try:
        return run(ctx, ctx.inventory)
    finally:
        ctx.close()


def test_catches_a_skewed_iptables_split(applied: Cluster) -> None:
    """The old `--every 3 --packet i` recipe, whose per-rule counters skew the split."""
    rules = applied.sh("lb1", "cat /etc/haops/iptables.rules")
    naive = rules.replace("--every 2 --packet 0", "--every 3 --packet 1")
    assert naive != rules
    encoded = base64.b64encode(naive.encode()).decode()
    applied.sh("lb1", f"echo {encoded} | base64 -d > /tmp/naive.rules && iptables-restore -w --noflush /tmp/naive.rules")
    try:
        result = check_of(applied, lambda ctx, inv: behaviour.distribution(ctx, inv.services["nth"]))
    finally:
        # The rules file is unchanged, so the next apply would not load it again.
        applied.sh("lb1", "iptables-restore -w --noflush /etc/haops/iptables.rules")
    assert result.status == FAIL, result.observed


def test_catches_wrong_weights(applied: Cluster) -> None:
    break_live(applied, "lb1", "/etc/haproxy/haproxy.cfg", "s/server web1 \\(.*\\) weight 1/server web1 \\1 weight 3/", HAPROXY_RELOAD)
    result = check_of(applied, lambda ctx, inv: behaviour.distribution(ctx, inv.services["www"]))
    assert result.status == FAIL and "web1=" in result.observed, result.observed


def test_catches_a_backend_missing_from_the_pool(applied: Cluster) -> None:
    break_live(applied, "lb1", "/etc/haproxy/haproxy.cfg", "/server web3 /d", HAPROXY_RELOAD)
    result = check_of(applied, lambda ctx, inv: behaviour.distribution(ctx, inv.services["www"]))
    assert result.status == FAIL and "web3" not in result.observed, result.observed


def test_catches_a_zone_with_a_missing_record(applied: Cluster) -> None:
    break_live(applied, "dns1", "/etc/bind/haops/db.example.test", "/^www .*10.213.10.23$/d; s/\\([0-9]\\{10\\}\\) ; serial/2099123199 ; serial/",
               "rndc reload >/dev/null; sleep 1")
    inv = inventory.load(applied.path)
    [result] = check_of(applied, lambda ctx, _: behaviour.dns_rotation(ctx, inv.zones["example.test"], "dns1"))
    assert result.status == FAIL, result.observed


def test_catches_stickiness_turned_off(applied: Cluster) -> None:
    break_live(applied, "lb1", "/etc/haproxy/haproxy.cfg", "/cookie SERVERID insert/d", HAPROXY_RELOAD)
    result = check_of(applied, lambda ctx, inv: behaviour.stickiness(ctx, inv.services["www"]))
    assert result.status == FAIL, result.observed


def test_catches_a_dead_backend_without_health_checks(applied: Cluster) -> None:
    break_live(applied, "lb1", "/etc/haproxy/haproxy.cfg", "s/ check cookie/ cookie/; /option redispatch/d; s/retries 2/retries 0/", HAPROXY_RELOAD)
    result = check_of(applied, lambda ctx, inv: behaviour.health(ctx, inv.services["www"]))
    assert result.status == FAIL and "failed" in result.observed, result.observed


def test_state_check_catches_a_hand_edited_config(applied: Cluster) -> None:
    break_live(applied, "lb2", "/etc/haproxy/haproxy.cfg", "s/maxconn 4096/maxconn 4095/", "true")
    inv = inventory.load(applied.path)
    results = verify(inv, settings_for(inv), faults=False)
    config = [r for r in results if (r.check, r.subject) == ("config", "lb2 haproxy")]
    assert [r.status for r in config] == [FAIL] and "/etc/haproxy/haproxy.cfg" in config[0].observed
    assert all(r.status in (PASS, SKIP) for r in results if r is not config[0])


def test_pytest_mode_runs_the_same_checks_as_a_suite(applied: Cluster, tmp_path: Path) -> None:
    import subprocess
    import sys

    report = tmp_path / "verify.xml"
    done = subprocess.run([sys.executable, "-m", "haops", "verify", "-i", str(applied.path), "--pytest", "--no-faults",
                           "--", f"--junitxml={report}"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
    assert 'name="test_check[split:www]"' in report.read_text()
