"""~/.ssh/config resolution (pure), the lab's ssh_config for a bastion, and the inventory's lab keys."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from haops.errors import InventoryError, UserError
from haops.inventory import parse
from haops.lab import LabHost
from haops.lab.ssh import ssh_config_text
from haops.sshconfig import SshConfigFile, Wanted, resolve
from haops.sshkeys import KeyError_, KeyRing
from haops.verify.context import run_locally
from haops.transport import HostFailure

pytestmark = pytest.mark.unit

CONFIG = """\
Host bastion
    HostName 203.0.113.10
    User admin
    Port 2222
    IdentityFile ~/.ssh/jump_key
Host lb1
    HostName 198.51.100.11
Host lb* web*
    User root
    ProxyJump bastion
Host 10.0.1.*
    ProxyJump ops@bastion:2200,inner
    IdentitiesOnly yes
Host inner
    HostName 10.0.0.2
Host loop
    ProxyJump loop2
Host loop2
    ProxyJump loop
Host weird
    ProxyCommand nc %h %p
"""


@pytest.fixture
def config(tmp_path: Path) -> SshConfigFile:
    path = tmp_path / "config"
    path.write_text(CONFIG)
    return SshConfigFile(path)


def test_a_host_alias_with_user_and_a_jump(config: SshConfigFile) -> None:
    route = resolve("lb1", "10.0.1.11", None, Wanted(), config)
    assert (route.hostname, route.user, route.port) == ("198.51.100.11", "root", 22)
    [jump] = route.jumps
    assert (jump.hostname, jump.user, jump.port) == ("203.0.113.10", "admin", 2222)
    assert jump.identities == (Path("~/.ssh/jump_key").expanduser(),)


def test_a_pattern_without_hostname_keeps_the_inventory_address(config: SshConfigFile) -> None:
    route = resolve("web7", "10.0.2.7", None, Wanted(), config)
    assert route.hostname == "10.0.2.7" and route.user == "root" and [j.alias for j in route.jumps] == ["bastion"]


def test_an_unnamed_host_is_looked_up_by_address_and_jumps_chain(config: SshConfigFile) -> None:
    route = resolve("db1", "10.0.1.50", None, Wanted(), config)
    assert route.hostname == "10.0.1.50" and route.identities_only
    assert [(j.hostname, j.user, j.port) for j in route.jumps] == [("203.0.113.10", "ops", 2200), ("10.0.0.2", None, 22)]


def test_the_inventory_wins_over_the_file(config: SshConfigFile, tmp_path: Path) -> None:
    route = resolve("lb1", "10.0.1.11", None, Wanted("deploy", 2022, (tmp_path / "k",)), config)
    assert (route.user, route.port, route.identities) == ("deploy", 2022, (tmp_path / "k",))


def test_no_file_means_the_address_directly(tmp_path: Path) -> None:
    route = resolve("lb1", "10.0.1.11", None, Wanted(), SshConfigFile(tmp_path / "absent"))
    assert (route.hostname, route.port, route.jumps) == ("10.0.1.11", 22, ())


def test_loops_and_proxycommand_are_clear_errors(config: SshConfigFile) -> None:
    with pytest.raises(UserError, match="ProxyJump hops"):
        resolve("loop", "10.0.9.1", "loop", Wanted(), config)
    with pytest.raises(UserError, match="ProxyCommand is not supported"):
        resolve("weird", "10.0.9.2", "weird", Wanted(), config)


EDGES = CONFIG + """\
Host !db9 db* 10.0.3.?
    User dbadmin
    IdentityFile ~/.ssh/db_key
Host *.example.test
    Port 2200
Match host lb2
    User matched
Match originalhost web3 user nobody-here
    Port 2300
Host *
    IdentityFile ~/.ssh/fallback
    ConnectTimeout 7
"""


@pytest.mark.parametrize("alias", ["lb1", "lb2", "web3", "db1", "db9", "10.0.3.4", "10.0.3.44", "10.0.1.7",
                                   "a.example.test", "example.test", "inner", "bastion", "unknown", "weird"])
def test_lookup_gives_what_paramiko_gives_over_every_block(tmp_path: Path, alias: str) -> None:
    path = tmp_path / "config"
    path.write_text(EDGES)
    config = SshConfigFile(path)
    assert config.lookup(alias) == dict(config.parsed.lookup(alias))


def test_names_matches_as_fnmatch_over_the_host_patterns(config: SshConfigFile) -> None:
    assert [config.names(a) for a in ("lb1", "lbx", "web7", "10.0.1.9", "10.0.2.9", "weird", "bastion2")] == \
        [True, True, True, True, False, True, False]


def test_names_works_beside_a_match_block(tmp_path: Path) -> None:
    """paramiko's get_hostnames() raises KeyError on a config with a Match block."""
    path = tmp_path / "config"
    path.write_text(EDGES)
    config = SshConfigFile(path)
    assert [config.names(a) for a in ("db1", "db9", "lb2", "x.example.test", "nothing")] == [True, True, True, True, False]


def test_a_canonicalizing_config_is_looked_up_whole(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("CanonicalizeHostname yes\nCanonicalDomains example.invalid\nHost lb1\n    User root\n")
    config = SshConfigFile(path)
    assert config.lookup("lb1") == dict(config.parsed.lookup("lb1"))


def test_a_lookup_in_a_lab_config_tests_only_blocks_that_can_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """paramiko's lookup tests every pattern of every block: with a block per lab host, each host
    cost more the more hosts there were. Only the host's own block and the shared one reach it."""
    import paramiko

    hosts = [LabHost(f"web{i}", IPv4Address(f"10.213.11.{100 + i}")) for i in range(1, 41)]
    path = tmp_path / "ssh_config"
    path.write_text(ssh_config_text(hosts, tmp_path / "id", tmp_path / "known", "big"))
    config = SshConfigFile(path)
    tested: list[int] = []
    original = paramiko.SSHConfig._lookup
    monkeypatch.setattr(paramiko.SSHConfig, "_lookup", lambda self, *a, **k: tested.append(len(self._config)) or original(self, *a, **k))
    route = resolve("web7", "10.213.11.107", None, Wanted(), config)
    assert route.hostname == "10.213.11.107" and route.user == "root" and route.identities == (tmp_path / "id",)
    assert tested and max(tested) <= 3


def test_reading_a_lab_config_compiles_no_pattern_per_plainly_named_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    hosts = [LabHost(f"web{i}", IPv4Address(f"10.213.11.{100 + i}")) for i in range(1, 41)]
    path = tmp_path / "ssh_config"
    path.write_text(ssh_config_text(hosts, tmp_path / "id", tmp_path / "known", "big"))
    compiled: list[str] = []
    original = re.compile
    monkeypatch.setattr(re, "compile", lambda pattern, *a, **k: compiled.append(pattern) or original(pattern, *a, **k))
    config = SshConfigFile(path)
    assert len(compiled) <= 2, compiled  # the wildcard blocks, not one per host
    assert config.names("web40") and not config.names("web41")


def test_the_lab_ssh_config_jumps_for_hosts_behind_the_bastion(tmp_path: Path) -> None:
    hosts = [LabHost("bastion", IPv4Address("10.213.48.5")), LabHost("lb1", IPv4Address("10.213.49.11"))]
    text = ssh_config_text(hosts, tmp_path / "id", tmp_path / "known", "habast", {"lb1": "bastion"})
    path = tmp_path / "ssh_config"
    path.write_text(text)
    route = resolve("lb1", "10.213.49.11", None, Wanted(), SshConfigFile(path))
    assert route.hostname == "10.213.49.11" and [j.hostname for j in route.jumps] == ["10.213.48.5"]
    assert route.known_hosts == (tmp_path / "known",) and route.identities_only


def test_lab_private_network_and_bastion_go_together() -> None:
    base = "hosts: {a: {address: 10.213.49.11}}\nlab: {name: x, network: 10.213.48.0/24, %s}\n"
    lab = parse(base % "private_network: 10.213.49.0/24, bastion: 10.213.48.5").lab
    assert lab is not None and lab.private_network == IPv4Network("10.213.49.0/24") and lab.bastion == IPv4Address("10.213.48.5")
    for wrong, said in (("private_network: 10.213.49.0/24", "go together"),
                        ("private_network: 10.213.48.0/25, bastion: 10.213.48.5", "overlaps"),
                        ("private_network: 10.213.49.0/24, bastion: 10.213.47.5", "not on the lab network")):
        with pytest.raises(InventoryError, match=said):
            parse(base % wrong)


def test_an_encrypted_key_without_a_terminal_is_a_clear_error(tmp_path: Path) -> None:
    import subprocess

    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(key)], check=True, timeout=30)
    with pytest.raises(KeyError_, match="is encrypted and there is no terminal"):
        KeyRing(prompt=lambda text: None).key(key)
    asked: list[str] = []
    ring = KeyRing(prompt=lambda text: asked.append(text) or ("wrong" if len(asked) == 1 else "pass phrase"))
    assert ring.key(key) is ring.key(key) and len(asked) == 2, "a wrong answer is asked again; a key is unlocked once"


def test_local_probes_name_only_the_services_addresses() -> None:
    assert run_locally("echo 10.213.0.100", {"10.213.0.100"}, 5).strip() == "10.213.0.100"
    with pytest.raises(HostFailure, match="refused to probe 192.0.2.1"):
        run_locally("curl http://192.0.2.1/", {"10.213.0.100"}, 5)
    with pytest.raises(HostFailure, match="did not finish within 1s"):
        run_locally("sleep 5", set(), 1)
