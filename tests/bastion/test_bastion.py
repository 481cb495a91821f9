"""A cluster reachable only through a bastion: lab wiring, apply, verify, drills' SSH, and the
~/.ssh/config an admin would write for it (ProxyJump, agent, encrypted keys, every failure)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from haops import inventory
from haops.apply.vips import routable
from haops.lab import Lab
from haops.errors import UserError
from haops.session import settings_for
from haops.transport import HostFailure, SshSettings, open_connection
from haops.verify.result import FAIL
from haops.verify.run import verify
from tests.apply.conftest import ROOT, Cluster
from tests.bastion.conftest import BASTION, PRIVATE_NETWORK

pytestmark = pytest.mark.lab
PASSPHRASE = "correct horse battery"


def test_the_private_network_is_reached_only_through_the_bastion(bastion_cluster: Cluster) -> None:
    lab = bastion_cluster.lab
    lb1 = lab.host("lb1")
    assert lb1.address in PRIVATE_NETWORK and not routable(str(lb1.address)), "no route from this machine"
    with pytest.raises(OSError):
        socket.create_connection((str(lb1.address), 22), timeout=1).close()
    assert "eth1" in bastion_cluster.sh("bastion", "ip -br addr")
    assert bastion_cluster.sh("lb1", "hostname").strip() == "lb1", "the lab's own ssh goes through the bastion"
    assert "ProxyJump bastion" in lab.ssh_config.read_text()
    again = Lab.existing(lab.name)  # as every later command sees it: from the lab's record
    assert again.private == lab.private
    for host in ("bastion", "web3"):  # both cables of the bastion, and a host behind it, come back after a crash
        again.crash(host)
        again.boot(host)
    assert bastion_cluster.sh("web3", "hostname").strip() == "web3"
    assert [h.name for h in lab.status() if not h.ssh] == []


def test_apply_and_verify_through_the_bastion(bastion_cluster: Cluster) -> None:
    bastion_cluster.converge(bastion_cluster.path.read_text())
    inv = bastion_cluster.inventory
    results = verify(inv, settings_for(inv), faults=False)
    failed = [r for r in results if r.status == FAIL]
    splits = [r for r in results if r.check == "split"]
    assert failed == [] and splits and all("web1=4 web2=4 web3=4" in r.observed for r in splits), failed or splits
    with pytest.raises(UserError, match=r"--from local: this machine has no route to .*--from client1"):
        verify(inv, settings_for(inv), faults=False, source="local")


# --- the same cluster as a real one: no lab section, the admin's ~/.ssh -----------------------


def admin_home(tmp_path: Path, cluster: Cluster, identity: str | None, known: bool = True,
               bastion_address: str = str(BASTION.address)) -> dict[str, str]:
    """A HOME with .ssh/config (bastion + ProxyJump), known_hosts, and the inventory without `lab:`."""
    ssh = tmp_path / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    key = f"    IdentityFile {identity}\n" if identity else ""
    names = " ".join(h for h in cluster.inventory.hosts)
    # ssh expands ~ from the passwd entry, not $HOME: this test's known_hosts is named in full.
    (ssh / "config").write_text(f"Host bastion\n    HostName {bastion_address}\n    User root\n{key}\n"
                                f"Host {names}\n    ProxyJump bastion\n    User root\n{key}\n"
                                f"Host *\n    UserKnownHostsFile {ssh / 'known_hosts'}\n")
    (ssh / "known_hosts").write_text(cluster.lab.known_hosts.read_text() if known else "")
    data = yaml.safe_load(cluster.path.read_text())
    data.pop("lab")
    (tmp_path / "real.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    return {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}


def haops(env: dict[str, str], *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "haops", *argv], env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, start_new_session=True, check=False)


def copy_key(cluster: Cluster, tmp_path: Path, passphrase: str = "") -> Path:
    key = tmp_path / "id_admin"
    shutil.copyfile(cluster.lab.identity, key)
    key.chmod(0o600)
    if passphrase:
        subprocess.run(["ssh-keygen", "-q", "-p", "-N", passphrase, "-P", "", "-f", str(key)], check=True, timeout=30)
    return key


def test_the_admins_ssh_config_carries_apply_and_verify(bastion_cluster: Cluster, tmp_path: Path) -> None:
    bastion_cluster.converge(bastion_cluster.path.read_text())
    env = admin_home(tmp_path, bastion_cluster, str(copy_key(bastion_cluster, tmp_path)))
    applied = haops(env, "apply", "-i", str(tmp_path / "real.yml"))
    assert applied.returncode == 0 and "0 changed files" in applied.stdout, applied.stdout + applied.stderr
    verified = haops(env, "verify", "-i", str(tmp_path / "real.yml"), "--from", "client1", "--json")
    assert verified.returncode == 0, verified.stdout[-3000:] + verified.stderr


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent of this test, ended by its PID."""
    sock = str(tmp_path / "agent.sock")
    process = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        yield sock
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_agent_keys_and_an_encrypted_key_without_a_terminal(bastion_cluster: Cluster, tmp_path: Path, agent: str) -> None:
    encrypted = copy_key(bastion_cluster, tmp_path, PASSPHRASE)
    env = admin_home(tmp_path, bastion_cluster, str(encrypted))
    refused = haops(env, "apply", "--check", "-i", str(tmp_path / "real.yml"), "--limit", "web1")
    assert refused.returncode == 1 and "is encrypted and there is no terminal" in refused.stdout + refused.stderr
    assert f"ssh-add {encrypted}" in refused.stdout + refused.stderr
    subprocess.run(["ssh-add", "-q", str(bastion_cluster.lab.identity)], env={**env, "SSH_AUTH_SOCK": agent}, check=True, timeout=10)
    env = admin_home(tmp_path, bastion_cluster, None) | {"SSH_AUTH_SOCK": agent}
    done = haops(env, "apply", "--check", "-i", str(tmp_path / "real.yml"), "--limit", "web1")
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_encrypted_key_asks_its_passphrase_once_without_echo(bastion_cluster: Cluster, tmp_path: Path) -> None:
    env = admin_home(tmp_path, bastion_cluster, str(copy_key(bastion_cluster, tmp_path, PASSPHRASE)))
    pid, terminal = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", "haops", "apply", "--check", "-i", str(tmp_path / "real.yml"),
                                   "--limit", "web1,web2"], env)
    seen, deadline, answered = b"", time.monotonic() + 60, False
    try:
        while time.monotonic() < deadline:
            if not select.select([terminal], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(terminal, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            if not answered and b"Enter passphrase" in seen:
                os.write(terminal, PASSPHRASE.encode() + b"\n")
                answered = True
        _, status = os.waitpid(pid, 0)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.close(terminal)
    text = seen.decode(errors="replace")
    assert answered and text.count("Enter passphrase") == 1, text
    assert PASSPHRASE not in text, "the passphrase is never echoed"
    assert os.waitstatus_to_exitcode(status) == 0, text


def settings_from(tmp_path: Path, **changes: object) -> SshSettings:
    return SshSettings(known_hosts=(tmp_path / ".ssh" / "known_hosts",), use_user_known_hosts=False,
                       ssh_config=tmp_path / ".ssh" / "config", connect_timeout_s=2, **changes)  # type: ignore[arg-type]


def failure(tmp_path: Path, cluster: Cluster, host: str = "web1") -> str:
    inv = inventory.load(tmp_path / "real.yml")
    with pytest.raises(HostFailure) as caught:
        open_connection(inv.hosts[host], settings_from(tmp_path)).close()
    return str(caught.value)


def test_each_way_through_the_bastion_fails_clearly(bastion_cluster: Cluster, tmp_path: Path) -> None:
    key = str(copy_key(bastion_cluster, tmp_path))
    admin_home(tmp_path, bastion_cluster, key, known=False)
    assert "unknown host key for 10.213.48.5" in failure(tmp_path, bastion_cluster), "the bastion's key is checked too"
    lines = bastion_cluster.lab.known_hosts.read_text().splitlines()
    web2_key = next(line.split(" ", 1)[1] for line in lines if line.startswith("web2,"))
    (tmp_path / ".ssh" / "known_hosts").write_text("".join(f"{line}\n" for line in lines if not line.startswith("web1,"))
                                                   + f"10.213.49.21 {web2_key}\n")
    assert "host key of 10.213.49.21:22 (through 10.213.48.5) CHANGED" in failure(tmp_path, bastion_cluster)
    admin_home(tmp_path, bastion_cluster, key, bastion_address="10.213.48.99")
    message = failure(tmp_path, bastion_cluster)  # nobody answers ARP there: a timeout, or no route
    assert "10.213.48.99:22" in message and ("cannot reach" in message or "within 2s" in message), message
    admin_home(tmp_path, bastion_cluster, key)
    config = tmp_path / ".ssh" / "config"
    config.write_text(config.read_text() + "\nHost web1\n    HostName 10.213.49.99\n")
    assert "10.213.48.5 cannot reach 10.213.49.99:22" in failure(tmp_path, bastion_cluster)
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True, timeout=30)
    admin_home(tmp_path, bastion_cluster, str(stranger))
    assert "authentication as root refused by 10.213.48.5:22; offered: ED25519" in failure(tmp_path, bastion_cluster)
    admin_home(tmp_path, bastion_cluster, key)
    bastion_cluster.lab.delay("bastion", 3000)
    try:
        message = failure(tmp_path, bastion_cluster)
    finally:
        bastion_cluster.lab.delay("bastion", 0)
    assert "10.213.48.5:22" in message and "within 2s" in message, message


def test_a_drill_probes_through_the_bastion(bastion_cluster: Cluster, tmp_path: Path) -> None:
    bastion_cluster.converge(bastion_cluster.path.read_text())
    out = subprocess.run([sys.executable, "-m", "haops", "drill", "backend-failure", "-i", str(bastion_cluster.path),
                          "--duration", "8", "--rate", "50", "--fault-at", "2", "--hold", "3", "--json"],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode in (0, 1) and '"requests"' in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
