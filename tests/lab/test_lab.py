"""The lab against the real kernel: SSH with strict host keys, isolation, faults, teardown."""

from __future__ import annotations

import re
import subprocess
import time
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import paramiko
import pytest
import yaml
from typer.testing import CliRunner

from haops.cli.lab import app
from haops.errors import UserError
from haops.lab import Lab, LabHost
from haops.lab.naming import netns_prefix

from .conftest import TEST_LAB, leftovers, processes_in

pytestmark = pytest.mark.lab

DEFAULT_NAMES = ["lb1", "lb2", "web1", "web2", "web3", "dns1", "client1"]


def ping(address: IPv4Address, count: int, interval: float = 0.2, wait: int = 1) -> tuple[float, float | None]:
    """(loss fraction, average RTT in ms or None) of a bounded ping run."""
    out = subprocess.run(["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(wait),
                          str(address)], check=False, capture_output=True, text=True, timeout=count * interval + wait + 10).stdout
    sent, received = map(int, re.search(r"(\d+) packets transmitted, (\d+) received", out).groups())
    rtt = re.search(r"= [\d.]+/([\d.]+)/", out)
    return 1 - received / sent, float(rtt.group(1)) if rtt else None


def plain_ssh(lab: Lab, host: str, *command: str, known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", "-F", str(lab.ssh_config), "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"]
    if known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={known_hosts}"]
    return subprocess.run(argv + [host, *command], check=False, capture_output=True, text=True, timeout=30)


# --- building ----------------------------------------------------------------------


def test_default_topology_and_inventory(lab: Lab) -> None:
    assert [h.name for h in lab.hosts] == DEFAULT_NAMES
    assert lab.host("lb1").address == IPv4Address("10.213.7.11")
    data = yaml.safe_load(lab.inventory_path.read_text())
    assert data["lab"] == {"name": TEST_LAB, "network": "10.213.7.0/24"}
    assert data["hosts"]["client1"] == {"address": "10.213.7.41", "groups": ["client"]}
    from haops.inventory import load

    assert set(load(lab.inventory_path).hosts) == set(DEFAULT_NAMES)


def test_safety_route_is_installed(lab: Lab) -> None:
    routes = subprocess.run(["ip", "route", "show", "10.213.0.0/16"], check=False, capture_output=True, text=True).stdout
    assert "unreachable 10.213.0.0/16" in routes


def test_up_again_changes_nothing(lab: Lab) -> None:
    inits = {h.name: lab.init_process(h.name) for h in lab.hosts}
    known_hosts = lab.known_hosts.read_text()
    lab.up()
    assert {h.name: lab.init_process(h.name) for h in lab.hosts} == inits
    assert lab.known_hosts.read_text() == known_hosts


def test_status_reports_every_host_up_and_reachable(lab: Lab) -> None:
    assert [(s.name, s.up, s.ssh) for s in lab.status()] == [(n, True, True) for n in DEFAULT_NAMES]


# --- SSH with strict host keys ---------------------------------------------------------


@pytest.mark.parametrize("host", DEFAULT_NAMES)
def test_plain_ssh_reaches_each_host_by_name(lab: Lab, host: str) -> None:
    result = plain_ssh(lab, host, "hostname")
    assert (result.returncode, result.stdout.strip()) == (0, host)


def test_plain_ssh_by_address_uses_the_same_known_hosts(lab: Lab) -> None:
    result = plain_ssh(lab, "10.213.7.12", "hostname")
    assert (result.returncode, result.stdout.strip()) == (0, "lb2")


def test_fabric_connects_with_strict_host_keys(lab: Lab) -> None:
    for host in ("lb1", "web3"):
        with lab.connection(host) as connection:
            assert connection.run("hostname", hide=True, in_stream=False).stdout.strip() == host


def test_unknown_host_key_is_refused_by_ssh(lab: Lab, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    result = plain_ssh(lab, "lb1", "true", known_hosts=empty)
    assert result.returncode == 255
    assert "Host key verification failed" in result.stderr


def test_wrong_host_key_is_refused_by_ssh(lab: Lab, tmp_path: Path) -> None:
    lb2_key = next(line for line in lab.known_hosts.read_text().splitlines() if line.startswith("lb2,"))
    lying = tmp_path / "known_hosts"
    lying.write_text(lb2_key.replace("lb2,10.213.7.12", "lb1,10.213.7.11") + "\n")
    result = plain_ssh(lab, "lb1", "true", known_hosts=lying)
    assert result.returncode == 255
    assert "HOST IDENTIFICATION HAS CHANGED" in result.stderr


def test_unknown_host_key_is_refused_by_fabric(lab: Lab, tmp_path: Path) -> None:
    connection = lab.connection("lb1")
    connection.client._host_keys.clear()  # what a fresh machine without the lab's known_hosts has
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        connection.open()
    connection.close()


def test_each_host_has_its_own_host_key(lab: Lab) -> None:
    keys = [line.split()[2] for line in lab.known_hosts.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == len(DEFAULT_NAMES)


# --- isolation ------------------------------------------------------------------------


@pytest.mark.parametrize("directory", ["/etc/haproxy", "/var/lib/haops-test", "/srv/haops-test"])
def test_files_written_on_one_host_stay_there(lab: Lab, directory: str) -> None:
    path = f"{directory}/lab-isolation-{TEST_LAB}"
    assert lab.exec("lb1", ["sh", "-c", f"mkdir -p {directory} && echo lb1 > {path}"]).returncode == 0
    assert lab.exec("lb1", ["cat", path]).stdout == "lb1\n"
    assert lab.exec("lb2", ["test", "-e", path]).returncode == 1
    assert not Path(path).exists()


def test_run_tmp_and_root_home_are_private(lab: Lab) -> None:
    lab.exec("web1", ["sh", "-c", "echo x > /tmp/web1-only; echo x > /run/web1-only; echo x > /root/web1-only"])
    assert lab.exec("web2", ["ls", "/tmp/web1-only", "/run/web1-only", "/root/web1-only"]).returncode != 0
    assert not any(Path(p).exists() for p in ("/tmp/web1-only", "/run/web1-only", "/root/web1-only"))


def test_lab_state_is_hidden_from_hosts(lab: Lab) -> None:
    assert lab.exec("web1", ["ls", "-A", str(lab.paths.root)]).stdout == ""


def test_host_sees_only_its_own_processes(lab: Lab) -> None:
    listing = lab.exec("dns1", ["ps", "-e", "-o", "pid=,comm="]).stdout.split("\n")
    processes = {int(pid): comm for pid, comm in (line.split() for line in listing if line.strip())}
    assert processes[1] == "sshd"
    assert set(processes.values()) <= {"sshd", "bash", "sh", "ps"}
    assert len(processes) < 8


def test_host_has_only_its_own_address(lab: Lab) -> None:
    out = lab.exec("web2", ["ip", "-4", "-o", "addr", "show"]).stdout
    assert re.findall(r"\d+: (\S+)\s+inet (\S+)", out) == [("lo", "127.0.0.1/8"), ("eth0", "10.213.7.22/24")]


def test_hosts_reach_each_other_by_name(lab: Lab) -> None:
    result = lab.exec("client1", ["ping", "-c", "1", "-W", "2", "lb1"])
    assert result.returncode == 0
    assert "10.213.7.11" in result.stdout


def test_host_cannot_route_beyond_the_lab(lab: Lab) -> None:
    result = lab.exec("client1", ["ip", "route", "get", "192.0.2.1"])
    assert result.returncode != 0
    assert "unreachable" in result.stderr.lower()


# --- detached daemons -------------------------------------------------------------------


def test_detached_daemon_returns_promptly_and_lives_in_the_host(lab: Lab) -> None:
    started = time.monotonic()
    result = lab.exec("web3", ["sh", "-c", "setsid -f sleep 1000 >/dev/null 2>&1 </dev/null"], timeout=15)
    assert result.returncode == 0
    assert time.monotonic() - started < 5
    inside = lab.exec("web3", ["pgrep", "-x", "sleep"]).stdout.split()
    assert len(inside) == 1
    init = lab.init_process("web3")
    assert init is not None
    sleepers = [pid for pid in processes_in({init.namespace("pid") or "?"})
                if Path(f"/proc/{pid}/cmdline").read_bytes() == b"sleep\x001000\x00"]
    assert len(sleepers) == 1
    lab.exec("web3", ["pkill", "-x", "sleep"])


# --- faults -----------------------------------------------------------------------------


def test_crash_kills_everything_and_boot_starts_clean(lab: Lab) -> None:
    setup = "echo disk > /etc/crash-marker; echo gone > /tmp/crash-marker; setsid -f sleep 1000 >/dev/null 2>&1 </dev/null"
    assert lab.exec("lb2", ["sh", "-c", setup]).returncode == 0
    init = lab.init_process("lb2")
    assert init is not None
    namespace = init.namespace("pid")
    assert len(processes_in({namespace})) >= 2

    lab.crash("lb2")
    assert lab.init_process("lb2") is None
    assert processes_in({namespace}) == []
    assert plain_ssh(lab, "lb2", "true").returncode == 255
    assert ping(lab.host("lb2").address, count=1)[0] == 1.0
    assert [s.up for s in lab.status() if s.name == "lb2"] == [False]

    lab.boot("lb2")
    inside = lab.exec("lb2", ["sh", "-c", "cat /etc/crash-marker; ls -A /tmp; ps -e -o comm="]).stdout.split()
    assert inside[0] == "disk"
    assert "crash-marker" not in inside
    assert "sleep" not in inside and inside.count("sshd") >= 1 and set(inside[1:]) <= {"sshd", "sh", "bash", "ps"}


def test_boot_refuses_a_running_host(lab: Lab) -> None:
    with pytest.raises(UserError, match="already running"):
        lab.boot("lb1")


def test_cut_and_heal(lab: Lab) -> None:
    address = lab.host("web1").address
    assert ping(address, count=1)[0] == 0.0
    lab.cut("web1")
    try:
        assert ping(address, count=2)[0] == 1.0
        assert lab.exec("client1", ["ping", "-c", "1", "-W", "1", str(address)]).returncode != 0
        assert plain_ssh(lab, "web1", "-o", "ConnectTimeout=2", "true").returncode == 255
    finally:
        lab.heal("web1")
    assert ping(address, count=1, wait=2)[0] == 0.0
    assert plain_ssh(lab, "web1", "true").returncode == 0


def test_delay_adds_round_trip_time_and_zero_clears_it(lab: Lab) -> None:
    address = lab.host("web2").address
    baseline = ping(address, count=5)[1]
    lab.delay("web2", 100)
    try:
        loss, delayed = ping(address, count=5)
        assert loss == 0.0 and delayed is not None and baseline is not None
        assert 90 <= delayed - baseline <= 160
        assert lab.exec("web2", ["true"]).returncode == 0  # SSH still works, only slower
    finally:
        lab.delay("web2", 0)
    assert ping(address, count=5)[1] < baseline + 20


def test_loss_drops_about_the_given_fraction(lab: Lab) -> None:
    address = lab.host("dns1").address
    lab.loss("dns1", 30)
    try:
        loss, _ = ping(address, count=300, interval=0.005)
        assert 0.18 <= loss <= 0.42
    finally:
        lab.loss("dns1", 0)
    assert ping(address, count=50, interval=0.005)[0] == 0.0


def test_link_faults_survive_crash_and_boot(lab: Lab) -> None:
    lab.delay("client1", 60)
    lab.crash("client1")
    lab.boot("client1")
    try:
        assert ping(lab.host("client1").address, count=3)[1] >= 55
    finally:
        lab.delay("client1", 0)


# --- safety and refusals ------------------------------------------------------------------


def test_refuses_addresses_outside_the_lab_network(tmp_path: Path) -> None:
    outsider = Lab("hafar", IPv4Network("10.213.9.0/24"), tmp_path / "state")
    with pytest.raises(UserError, match="not a usable address"):
        outsider.up([LabHost("x1", IPv4Address("192.168.1.5"))])
    assert leftovers("hafar", outsider.paths.lab_dir, set()) == []


@pytest.mark.parametrize("network", ["192.168.50.0/24", "10.214.0.0/24", "10.213.0.0/16"])
def test_refuses_networks_outside_the_lab_range(network: str) -> None:
    with pytest.raises(UserError, match="inside 10.213.0.0/16"):
        Lab("hafar", IPv4Network(network))


@pytest.mark.parametrize("root", ["/var/lib/haops-lab", "/etc/haops", "/srv/lab", "/"])
def test_refuses_a_state_root_overlayfs_cannot_use(root: str) -> None:
    with pytest.raises(UserError, match="cannot be inside or above"):
        Lab("hafar", IPv4Network("10.213.9.0/24"), Path(root))


def test_refuses_a_network_another_lab_uses(lab: Lab, tmp_path: Path) -> None:
    twin = Lab("hatwin", lab.network, tmp_path / "state")
    with pytest.raises(UserError, match="overlaps"):
        twin.up()
    assert leftovers("hatwin", twin.paths.lab_dir, set()) == []


def test_cli_user_error_is_one_clean_screen_with_exit_2(lab: Lab) -> None:
    result = CliRunner().invoke(app, ["exec", "--name", TEST_LAB, "nosuchhost", "--", "true"])
    assert result.exit_code == 2
    assert "no host 'nosuchhost'" in result.output
    assert "Traceback" not in result.output


def test_cli_exec_passes_the_exit_code_through(lab: Lab) -> None:
    result = subprocess.run([".venv/bin/python", "-m", "haops.cli.lab", "exec", "--name", TEST_LAB, "lb1", "--",
                             "sh", "-c", "echo hello; exit 7"], check=False, capture_output=True, text=True, timeout=30,
                            cwd=Path(__file__).parents[2])
    assert (result.returncode, result.stdout) == (7, "hello\n")


def test_cli_inventory_and_status(lab: Lab) -> None:
    runner = CliRunner()
    inventory = runner.invoke(app, ["inventory", "--name", TEST_LAB])
    assert inventory.exit_code == 0
    assert yaml.safe_load(inventory.output)["lab"]["name"] == TEST_LAB
    status = runner.invoke(app, ["status", "--name", TEST_LAB])
    assert status.exit_code == 0
    assert status.output.count("yes") == 2 * len(DEFAULT_NAMES)


# --- a second lab next to the first, and a clean teardown ------------------------------------


def test_second_lab_from_inventory_coexists_and_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text("lab: {name: hadown, network: 10.213.8.0/24}\n"
                         "hosts:\n  a1: {address: 10.213.8.11, groups: [web]}\n"
                         "  a2: {address: 10.213.8.12}\n")
    up = CliRunner().invoke(app, ["up", "-i", str(inventory)])
    assert up.exit_code == 0, up.output
    second = Lab.existing("hadown")
    try:
        assert second.exec("a1", ["hostname"]).stdout == "a1\n"
        assert lab.exec("lb1", ["hostname"]).stdout == "lb1\n"
        assert lab.exec("lb1", ["ping", "-c", "1", "-W", "1", "10.213.8.11"]).returncode != 0
        namespaces = {ns for h in second.hosts if (i := second.init_process(h.name)) and (ns := i.namespace("pid"))}
        assert len(namespaces) == 2
    finally:
        down = CliRunner().invoke(app, ["down", "--name", "hadown"])
    assert down.exit_code == 0, down.output
    assert leftovers("hadown", second.paths.lab_dir, namespaces) == []
    assert "unreachable 10.213.0.0/16" in subprocess.run(["ip", "route"], check=False, capture_output=True, text=True).stdout
    assert [s.ssh for s in lab.status()] == [True] * len(DEFAULT_NAMES)
    assert not any(n.startswith(netns_prefix("hadown")) for n in subprocess.run(
        ["ip", "netns", "list"], check=False, capture_output=True, text=True).stdout.split())
