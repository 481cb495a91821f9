"""apply over real SSH into lab hosts: plan, check, install, reload, prove, roll back, lock.

Each test asks a fixture of tests/apply/conftest.py for the state it starts from, on the
lab they share: `bare` hosts, the example cluster `applied`, or a `fresh_inventory`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import haops.transport
from haops.apply import run as apply_module
from haops.apply.run import ApplyOptions, HostOutcome, apply
from haops.apply.lock import HostLock
from haops.cli import main
from haops.session import settings_for
from haops.targets.base import RenderContext
from haops.targets.daemon import PLAIN
from haops.targets.haproxy import CONFIG as HAPROXY_CONFIG, DAEMON as HAPROXY, HaproxyTarget
from haops.transport import HostFailure, SshSettings, open_connection
from tests.apply.conftest import Cluster

pytestmark = pytest.mark.lab
MANAGED = {
    "lb1": ["/etc/haproxy/haproxy.cfg", "/etc/nginx/nginx.conf", "/etc/apache2/apache2.conf",
            "/etc/keepalived/keepalived.conf", "/etc/haops/iptables.rules", "/etc/sysctl.d/60-haops.conf"],
    "web1": ["/etc/haops/responder/nginx.conf"],
    "dns1": ["/etc/bind/named.conf", "/etc/bind/haops/db.example.test"],
}
DAEMONS = ("haproxy", "nginx", "apache2", "keepalived", "named")
PORTS = {80: "haproxy", 81: "nginx", 82: "apache", 83: "iptables"}


def settings(cluster: Cluster, **changes: object) -> SshSettings:
    return dataclasses.replace(settings_for(cluster.inventory), connect_timeout_s=3, **changes)


def run_apply(cluster: Cluster, hosts: list[str] | None = None, **options: object) -> dict[str, HostOutcome]:
    inv = cluster.inventory
    outcomes = apply(inv, hosts or list(inv.hosts), ApplyOptions(**options), settings(cluster), lambda host, step: None)
    return {o.report.host: o for o in outcomes}


def all_ok(outcomes: dict[str, HostOutcome]) -> bool:
    return all(o.report.ok for o in outcomes.values())


def hashes(cluster: Cluster) -> dict[str, str]:
    found = {}
    for host, paths in MANAGED.items():
        for line in cluster.sh(host, f"sha256sum {' '.join(paths)} 2>/dev/null || true").splitlines():
            digest, path = line.split()
            found[f"{host}:{path}"] = digest
    return found


def daemon_pids(cluster: Cluster) -> dict[str, str]:
    found = {}
    for host in ("lb1", "lb2", "dns1", "web1"):
        listing = cluster.sh(host, "ps -eo pid=,comm=")
        for line in listing.splitlines():
            pid, name = line.split(None, 1)
            if name.strip() in DAEMONS:
                found.setdefault(f"{host}:{name.strip()}", []).append(pid)
    return {key: " ".join(sorted(pids)) for key, pids in found.items()}


def with_retries(cluster: Cluster, retries: int) -> None:
    """A one-line change that only lb1 and lb2 see: HAProxy's retries for www (the example keeps the default, 2)."""
    cluster.rewrite("port: 80\n    balancer: haproxy", f"port: 80\n    retries: {retries}\n    balancer: haproxy")


def served_by(cluster: Cluster, port: int, requests: int = 6) -> Counter[str]:
    """Bounded: `requests` requests from client1 to the VIP, 2 s each at most."""
    vip = cluster.inventory.services["www"].vip
    script = f"for i in $(seq {requests}); do curl -s -m 2 http://{vip}:{port}/ || echo failed; done"
    return Counter(cluster.sh("client1", script, timeout=requests * 3 + 5).split())


# --- before anything is live ----------------------------------------------------------------------------


def test_check_plans_everything_and_changes_nothing(bare: Cluster) -> None:
    before_hashes, before_pids = hashes(bare), daemon_pids(bare)
    outcomes = run_apply(bare, check=True)
    assert all_ok(outcomes), [o.report.messages for o in outcomes.values()]
    assert "/etc/haproxy/haproxy.cfg" in outcomes["lb1"].report.changed
    assert "haproxy:start" in outcomes["lb1"].report.reloads
    assert (hashes(bare), daemon_pids(bare)) == (before_hashes, before_pids)
    assert "haops-candidate" not in bare.sh("lb1", "ls -A /tmp"), "the candidate tree is removed"


def test_first_apply_serves_traffic_through_every_balancer_kind(bare: Cluster) -> None:
    outcomes = run_apply(bare)
    assert all_ok(outcomes), [o.report.messages for o in outcomes.values()]
    assert outcomes["client1"].report.messages == ["nothing for haops to manage on this host"]
    for port in PORTS:
        assert served_by(bare, port) == Counter({"web1": 2, "web2": 2, "web3": 2}), f"port {port} ({PORTS[port]})"
    assert sorted(bare.sh("client1", "dig +short @10.213.10.31 www.example.test A").split()) == [
        "10.213.10.21", "10.213.10.22", "10.213.10.23"]


# --- changes to a live cluster -------------------------------------------------------------------------


def test_second_apply_changes_nothing_and_keeps_every_pid(applied: Cluster) -> None:
    before_hashes, before_pids = hashes(applied), daemon_pids(applied)
    outcomes = run_apply(applied)
    assert all_ok(outcomes)
    assert [(h, o.report.changed, o.report.reloads) for h, o in outcomes.items() if o.report.changed or o.report.reloads] == []
    assert (hashes(applied), daemon_pids(applied)) == (before_hashes, before_pids)


def test_one_line_change_reloads_only_its_daemon_gracefully(applied: Cluster) -> None:
    before = daemon_pids(applied)
    with_retries(applied, 3)
    outcomes = run_apply(applied)
    assert all_ok(outcomes)
    assert {h: o.report.reloads for h, o in outcomes.items() if o.report.reloads} == {
        "lb1": ["haproxy:reload"], "lb2": ["haproxy:reload"]}
    after = daemon_pids(applied)
    assert after["lb1:haproxy"] != before["lb1:haproxy"], "new workers took over"
    assert {k: v for k, v in after.items() if "haproxy" not in k} == {k: v for k, v in before.items() if "haproxy" not in k}
    assert "retries 3" in applied.sh("lb1", "cat /etc/haproxy/haproxy.cfg")


def test_zone_change_bumps_the_serial_and_named_serves_it(applied: Cluster) -> None:
    serial = int(applied.sh("client1", "dig +short @10.213.10.31 example.test SOA").split()[2])
    applied.rewrite("      lb: 10.213.10.100", "      lb: 10.213.10.100\n      extra: 10.213.10.21")
    assert all_ok(run_apply(applied, hosts=["dns1"]))
    assert int(applied.sh("client1", "dig +short @10.213.10.31 example.test SOA").split()[2]) == serial + 1
    assert applied.sh("client1", "dig +short @10.213.10.31 extra.example.test A").strip() == "10.213.10.21"
    assert run_apply(applied, hosts=["dns1"])["dns1"].report.changed == [], "same content keeps its serial"


# --- faults ---------------------------------------------------------------------------------------------


@pytest.fixture
def broken_haproxy(applied: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """HAProxy renders a file its checker refuses (apply's local check is bypassed by calling the API).
    Asks for `applied` so the cluster is applied before the render breaks."""
    from haops.targets.haproxy import HaproxyTarget

    original = HaproxyTarget.render

    def render(self: HaproxyTarget, *args: object, **kwargs: object) -> list:
        return [dataclasses.replace(f, text=f.text.replace("balance roundrobin", "balance nosuch")) for f in original(self, *args, **kwargs)]

    monkeypatch.setattr(HaproxyTarget, "render", render)


def candidate_trees(cluster: Cluster, host: str) -> list[str]:
    """An apply whose connection was cut cannot remove its tree; an earlier test may have left one."""
    return cluster.sh(host, "ls -d /tmp/haops-candidate.* 2>/dev/null || true").split()


def test_checker_refusal_here_uploads_nothing(applied: Cluster, broken_haproxy: None) -> None:
    before_hashes, before_pids, before_trees = hashes(applied), daemon_pids(applied), candidate_trees(applied, "lb1")
    outcome = run_apply(applied, hosts=["lb1"])["lb1"]
    assert not outcome.report.ok
    assert "refused the new config here; nothing was uploaded" in outcome.report.messages[0]
    assert "balance only supports" in outcome.report.messages[0]
    assert (hashes(applied), daemon_pids(applied)) == (before_hashes, before_pids)
    assert candidate_trees(applied, "lb1") == before_trees


def test_checker_refusal_on_the_host_leaves_live_files_and_daemons_alone(
        applied: Cluster, broken_haproxy: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """As when this machine lacks the checker: the host's own checker still stops the change."""
    monkeypatch.setattr(apply_module, "check_here", lambda *args: None)
    before_hashes, before_pids = hashes(applied), daemon_pids(applied)
    outcome = run_apply(applied, hosts=["lb1"])["lb1"]
    assert not outcome.report.ok
    assert "checker refused the new config; live files untouched" in outcome.report.messages[0]
    assert "balance only supports" in outcome.report.messages[0]
    assert (hashes(applied), daemon_pids(applied)) == (before_hashes, before_pids)
    assert applied.sh("lb1", "ls -A /etc/haproxy") .split() == ["errors", "haproxy.cfg"], "no temp files left"


@pytest.fixture
def squatter(applied: Cluster) -> Iterator[int]:
    """A process holding port 8090 on lb1, so a HAProxy that wants it cannot bind."""
    with applied.port_held("lb1", 8090):
        yield 8090


def restart_haproxy(cluster: Cluster, start: str) -> None:
    stop = 'm=$(cat /run/haproxy.pid); kill "$m"; while kill -0 "$m" 2>/dev/null; do sleep 0.1; done'
    cluster.sh("lb1", f"{stop}; {start} </dev/null >/dev/null 2>&1")


@pytest.fixture
def haproxy_without_master_cli(applied: Cluster) -> Iterator[None]:
    """lb1's HAProxy started as an older haops started it: with no master CLI, it cannot say
    that a reload failed (a reload keeps the master's command line, so it stays without one)."""
    restart_haproxy(applied, f"haproxy -W -D -p /run/haproxy.pid -f {HAPROXY_CONFIG}")
    yield
    restart_haproxy(applied, HAPROXY.start_command(PLAIN))


def test_reload_that_does_not_take_effect_is_rolled_back(applied: Cluster, haproxy_without_master_cli: None, squatter: int) -> None:
    """When the daemon cannot tell, apply waits out the proof deadline before it rolls back."""
    before = hashes(applied)["lb1:/etc/haproxy/haproxy.cfg"]
    applied.rewrite("stats: {port: 8404", f"stats: {{port: {squatter}")
    outcome = run_apply(applied, hosts=["lb1"])["lb1"]
    assert not outcome.report.ok and outcome.report.rolled_back
    assert "did not become live" in outcome.report.messages[0] and "old config restored" in outcome.report.messages[0]
    assert hashes(applied)["lb1:/etc/haproxy/haproxy.cfg"] == before
    assert served_by(applied, 80, 3) == Counter({"web1": 1, "web2": 1, "web3": 1})


@pytest.mark.parametrize("whole_host", [True, False], ids=["host-rollback", "no-host-rollback"])
def test_a_failed_target_rolls_back_the_host_it_failed_on(applied: Cluster, squatter: int, whole_host: bool) -> None:
    """iptables goes live before HAProxy; when HAProxy's reload fails, iptables is undone too."""
    before = hashes(applied)["lb1:/etc/haops/iptables.rules"]
    original = applied.path.read_text()
    applied.rewrite("stats: {port: 8404", f"stats: {{port: {squatter}")
    applied.rewrite("    port: 83\n", "    port: 84\n")
    try:
        outcome = run_apply(applied, hosts=["lb1"], host_rollback=whole_host)["lb1"]
    finally:
        applied.path.write_text(original)
    messages = "\n".join(outcome.report.messages)
    assert not outcome.report.ok and "haproxy: reload failed" in messages
    if whole_host:
        assert "iptables: rolled back with the host: old config restored" in messages
        assert hashes(applied)["lb1:/etc/haops/iptables.rules"] == before
        assert "--dport 84" not in applied.sh("lb1", "iptables-save -t nat")
    else:
        assert "left live (--no-host-rollback): sysctl, iptables" in messages or "left live (--no-host-rollback): iptables" in messages
        assert hashes(applied)["lb1:/etc/haops/iptables.rules"] != before
    assert run_apply(applied, hosts=["lb1"])["lb1"].report.ok, "the original inventory converges again"


def test_a_reload_lost_by_an_earlier_run_is_made_up(applied: Cluster) -> None:
    """The new haproxy.cfg in place but never reloaded, as an apply that died after install leaves it:
    the next apply sees the file matches, and reloads all the same because it was never proven live."""
    assert all_ok(run_apply(applied))
    before = daemon_pids(applied)["lb1:haproxy"]
    original = applied.path.read_text()
    applied.rewrite("stats: {port: 8404", "stats: {port: 8405")
    try:
        [new] = HaproxyTarget().render(applied.inventory, "lb1", RenderContext())
        encoded = base64.b64encode(new.text.encode()).decode()
        applied.sh("lb1", f"echo {encoded} | base64 -d > /etc/haproxy/haproxy.cfg")
        outcome = run_apply(applied, hosts=["lb1"])["lb1"]
        assert outcome.report.ok and outcome.report.changed == []
        assert outcome.report.reloads == ["haproxy:reload (pending from an earlier run)"]
        assert daemon_pids(applied)["lb1:haproxy"] != before, "new workers took over"
        assert applied.sh("lb1", "ss -ltnH 'sport = :8405' | wc -l").strip() == "1"
        assert run_apply(applied, hosts=["lb1"])["lb1"].report.reloads == [], "made up once, then quiet"
    finally:
        applied.path.write_text(original)
    assert all_ok(run_apply(applied))


def test_connection_lost_before_install_leaves_the_old_file(applied: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """lb1's cable is cut when apply reports haproxy's install step, before the install command is sent."""
    monkeypatch.setattr(haops.transport, "COMMAND_TIMEOUT_S", 6.0)
    before = hashes(applied)["lb1:/etc/haproxy/haproxy.cfg"]
    with_retries(applied, 3)
    cut_at: list[str] = []

    def cut_lb1_when_it_installs(host: str, step: str) -> None:
        if host == "lb1" and step.startswith("haproxy: installing"):
            applied.lab.cut("lb1")
            cut_at.append(step)

    try:
        [outcome] = apply(applied.inventory, ["lb1"], ApplyOptions(), settings(applied), cut_lb1_when_it_installs)
    finally:
        applied.lab.heal("lb1")
    assert cut_at == ["haproxy: installing 1 file(s)"]
    assert not outcome.report.ok and outcome.report.changed == []
    assert "no answer from" in outcome.report.messages[0], outcome.report.messages
    assert hashes(applied)["lb1:/etc/haproxy/haproxy.cfg"] == before
    assert applied.sh("lb1", "ls -A /etc/haproxy").split() == ["errors", "haproxy.cfg"]
    applied.wait_for_lock("lb1")
    assert all_ok(run_apply(applied, hosts=["lb1"])), "once the cable is back, the next apply finishes the job"
    assert "retries 3" in applied.sh("lb1", "cat /etc/haproxy/haproxy.cfg")


def test_unreachable_host_fails_alone(applied: Cluster) -> None:
    with_retries(applied, 3)
    applied.lab.cut("lb2")
    try:
        outcomes = run_apply(applied, hosts=["lb1", "lb2", "web1"])
    finally:
        applied.lab.heal("lb2")
    assert outcomes["lb1"].report.ok and outcomes["web1"].report.ok
    assert outcomes["lb1"].report.reloads == ["haproxy:reload"]
    message = outcomes["lb2"].report.messages[0]
    assert not outcomes["lb2"].report.ok and str(applied.lab.host("lb2").address) in message
    assert "cannot reach" in message or "no answer from" in message, message
    assert all_ok(run_apply(applied, hosts=["lb2"]))


def test_host_lost_mid_run_fails_alone_within_the_command_timeout(applied: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """lb2's cable is cut after its facts were read, while it uploads: it fails, the others finish."""
    monkeypatch.setattr(haops.transport, "COMMAND_TIMEOUT_S", 6.0)
    with_retries(applied, 3)
    cut_at: list[str] = []

    def cut_lb2_when_it_uploads(host: str, step: str) -> None:
        if host == "lb2" and step.startswith("uploading"):
            applied.lab.cut("lb2")
            cut_at.append(step)

    try:
        outcomes = {o.report.host: o for o in apply(applied.inventory, ["lb1", "lb2", "web1"], ApplyOptions(), settings(applied), cut_lb2_when_it_uploads)}
    finally:
        applied.lab.heal("lb2")
    assert cut_at == ["uploading candidate"]
    assert outcomes["lb1"].report.ok and outcomes["web1"].report.ok
    assert not outcomes["lb2"].report.ok and outcomes["lb2"].report.seconds < 40
    assert any(word in outcomes["lb2"].report.messages[0] for word in ("no answer", "lost the connection", "upload"))
    applied.wait_for_lock("lb2")
    assert all_ok(run_apply(applied, hosts=["lb2"])), "once the cable is back, the next apply finishes the job"


def test_serial_batches_stop_after_max_fail(fresh_inventory: Cluster) -> None:
    fresh_inventory.lab.cut("lb1")
    try:
        outcomes = run_apply(fresh_inventory, hosts=["lb1", "lb2", "web1"], serial=1, max_fail=0)
    finally:
        fresh_inventory.lab.heal("lb1")
    assert not outcomes["lb1"].report.ok
    assert "not started" in outcomes["lb2"].report.messages[0] and "not started" in outcomes["web1"].report.messages[0]


def test_a_second_apply_is_locked_out_and_a_dead_holder_frees_the_lock(fresh_inventory: Cluster) -> None:
    inv = fresh_inventory.inventory
    holder = open_connection(inv.hosts["web1"], settings(fresh_inventory))
    lock = HostLock(holder, "web1").__enter__()
    outcome = run_apply(fresh_inventory, hosts=["web1"])["web1"]
    assert not outcome.report.ok and "another apply is running on web1" in outcome.report.messages[0]
    assert "pid" in outcome.report.messages[0], "names the holder"
    holder.client.get_transport().close()  # the holder dies without releasing anything
    del lock
    fresh_inventory.wait_for_lock("web1")  # its shell ends once sshd sees the connection gone
    assert all_ok(run_apply(fresh_inventory, hosts=["web1"]))


def test_concurrent_applies_on_one_host_never_both_run(applied: Cluster) -> None:
    with_retries(applied, 3)
    results: list[HostOutcome] = []
    threads = [threading.Thread(target=lambda: results.append(run_apply(applied, hosts=["lb1"])["lb1"])) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r.report.ok for r in results) in ([False, True], [True, True])
    locked = [r for r in results if not r.report.ok]
    assert all("another apply is running" in r.report.messages[0] for r in locked)


def test_unknown_host_key_is_refused_before_any_command(fresh_inventory: Cluster, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = fresh_inventory.inventory
    with pytest.raises(HostFailure, match="unknown host key"):
        open_connection(inv.hosts["web1"], settings(fresh_inventory, known_hosts=(empty,)))
    other = fresh_inventory.lab.known_hosts.read_text().splitlines()
    web2_key = next(line.split(" ", 1)[1] for line in other if line.startswith("web2,"))
    forged = tmp_path / "forged"
    forged.write_text(f"{inv.hosts['web1'].address} {web2_key}\n")
    with pytest.raises(HostFailure, match="CHANGED"):
        open_connection(inv.hosts["web1"], settings(fresh_inventory, known_hosts=(forged,)))


def test_trust_new_hosts_records_an_unknown_key(fresh_inventory: Cluster, tmp_path: Path) -> None:
    record = tmp_path / "known_hosts"
    record.write_text("")
    inv = fresh_inventory.inventory
    connection = open_connection(inv.hosts["web1"], settings(fresh_inventory, known_hosts=(record,), trust_new_hosts=True, record_new_keys_to=record))
    connection.close()
    assert str(inv.hosts["web1"].address) in record.read_text()
    open_connection(inv.hosts["web1"], settings(fresh_inventory, known_hosts=(record,))).close()


def test_cli_json_and_diff_never_show_secrets(applied: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    applied.rewrite("password: change-me", "password: new-secret")
    try:
        main(["apply", "-i", str(applied.path), "--check", "--diff", "--json", "--limit", "lb1"])
    except SystemExit as exit_:
        assert exit_.code == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    text = captured.out + captured.err
    assert "new-secret" not in text and "change-me" not in text and "s3cret" not in text
    diff = "".join(data[0]["diffs"])
    assert "-    stats auth admin:******** (old value)" in diff and "+    stats auth admin:********" in diff


def test_cli_apply_limit_by_group_and_exit_codes(fresh_inventory: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["apply", "-i", str(fresh_inventory.path), "--limit", "web"])
    assert exit_.value.code == 0
    assert "3 hosts" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["apply", "-i", str(fresh_inventory.path), "--limit", "nosuch*"])
    assert exit_.value.code == 2
