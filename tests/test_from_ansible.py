"""`haops inventory from-ansible`: Ansible's documented inventories, read by ansible-inventory and by haops' own reader."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from haops import inventory as inventory_loader
from haops.cli.app import app
from haops.errors import UserError
from haops.inventory.ansible import draft_host, expand_range, read_static, skeleton

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data" / "ansible"
EXAMPLES = sorted(p for p in DATA.iterdir() if p.suffix in (".ini", ".yml"))
REFUSED = {"group_vars.ini"}  # the docs' INI names children it never defines; Ansible refuses it


def ansible_list(path: Path) -> dict[str, Any]:
    tool = shutil.which("ansible-inventory")
    assert tool, "ansible-inventory missing: scripts/setup.sh installs ansible-core"
    done = subprocess.run([tool, "-i", str(path), "--list"], capture_output=True, text=True, timeout=120,
                          env={"ANSIBLE_INVENTORY_UNPARSED_FAILED": "1", "PATH": "/usr/bin:/bin", "HOME": "/root"})
    if done.returncode != 0:
        raise AssertionError(done.stderr)
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """Children of `all` in any order (Ansible lists them as it met them); everything else as is."""
    return {name: {k: sorted(v) if name == "all" else v for k, v in entry.items()} if name != "_meta" else entry
            for name, entry in data.items()}


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.name not in REFUSED], ids=lambda p: p.name)
def test_own_reader_equals_ansible_inventory(path: Path) -> None:
    assert comparable(read_static(path)) == comparable(ansible_list(path))


def test_undefined_child_refused_like_ansible() -> None:
    with pytest.raises(AssertionError, match="undefined group: northeast"):
        ansible_list(DATA / "group_vars.ini")
    with pytest.raises(UserError, match=r"group_vars.ini:22: .*undefined group: northeast"):
        read_static(DATA / "group_vars.ini")


def test_ranges() -> None:
    assert expand_range("web[1:3]") == ["web1", "web2", "web3"]
    assert expand_range("db-[a:c].example.com") == ["db-a.example.com", "db-b.example.com", "db-c.example.com"]
    assert expand_range("www[01:10]")[:2] == ["www01", "www02"] and expand_range("www[01:10]")[-1] == "www10"
    assert expand_range("www[01:50:2]")[-1] == "www49" and len(expand_range("www[01:50:2]")) == 25
    assert expand_range("r[1:2]c[a:b]") == ["r1ca", "r1cb", "r2ca", "r2cb"]
    with pytest.raises(UserError, match="neither numeric"):
        expand_range("x[1:b]")


def test_group_vars_flattened_child_over_parent() -> None:
    hostvars = read_static(DATA / "group_vars.yml")["_meta"]["hostvars"]
    assert hostvars["host3"]["halon_system_timeout"] == 30
    assert read_static(DATA / "priority.yml")["_meta"]["hostvars"]["shared"] == {"testvar": "a"}


def skeleton_of(name: str, group_map: dict[str, str] | None = None) -> str:
    return skeleton(read_static(DATA / name), name, "test", group_map or {})


def test_cluster_skeleton_loads_and_maps_connection_vars() -> None:
    text = skeleton_of("cluster.ini", {"loadbalancers": "lb", "webservers": "web"})
    inv = inventory_loader.parse(text, "<skeleton>")
    assert set(inv.hosts) == {"lb1", "lb2", "web1", "web2", "web3"}
    data = yaml.safe_load(text)
    assert data["hosts"]["lb1"] == {"address": "10.213.46.11", "groups": ["lb"],
                                    "vars": {"ssh_user": "root", "become": "sudo"}}
    assert data["hosts"]["web2"]["vars"] == {"ssh_port": 2222}
    assert data["vars"] == {"ssh_key": "/root/.ssh/id_ed25519"}
    assert data["groups"] == {"lb": {"hosts": ["lb1", "lb2"]}, "web": {"hosts": ["web1", "web2", "web3"]}}
    assert "# become: sudo, from ansible_become" in text
    assert "# not carried over: ntp_server (haops has no such host variable)" in text
    assert "# named 'web1' (haops host names are DNS labels); Ansible calls it 'web1.example.com'" in text


@pytest.mark.parametrize(("hostvars", "become", "note"), [
    ({"ansible_become": True}, "sudo", "become: sudo, from ansible_become"),
    ({"ansible_become": "yes", "ansible_become_user": "root"}, "sudo", "become: sudo, from ansible_become"),
    ({"ansible_become": True, "ansible_become_method": "su"}, None, "method 'su' to user 'root'"),
    ({"ansible_become": True, "ansible_become_user": "postgres"}, None, "method 'sudo' to user 'postgres'"),
    ({"ansible_become": False, "ansible_become_method": "sudo"}, None, "ansible_become_method (ansible_become is not on)"),
    ({"ansible_become_password": "secret"}, None, "ansible_become_password (haops never stores passwords"),
])
def test_ansible_become_carried_only_as_sudo_to_root(hostvars: dict[str, object], become: str | None, note: str) -> None:
    draft = draft_host("h1", "h1", {"ansible_host": "192.0.2.1", **hostvars})
    assert draft.variables.get("become") == become
    assert any(note in line for line in draft.notes), draft.notes
    assert "secret" not in " ".join(draft.notes)


def test_missing_addresses_said_once_at_the_top_and_per_host() -> None:
    text = skeleton_of("host_vars.ini")
    assert "# MISSING before it loads: an IP address for host1, host2, badwolf," in text
    data = yaml.safe_load(text)
    assert data["hosts"]["jumper"] == {"address": "192.0.2.50", "groups": ["aliases"], "vars": {"ssh_port": 5555}}
    assert data["hosts"]["badwolf"]["vars"] == {"ssh_host": "badwolf.example.com", "ssh_port": 5309}
    assert data["hosts"]["aws-host"]["vars"] == {"ssh_key": "/home/example/.ssh/aws.pem"}
    assert "not carried over: ansible_python_interpreter (haops runs no Python on the hosts)" in text
    problems = [line for line in _check_problems(text) if "address: must be an IPv4 or IPv6 address" not in line]
    assert problems == []


def _check_problems(text: str) -> list[str]:
    try:
        inventory_loader.parse(text, "<skeleton>")
    except UserError as error:
        return [line for line in str(error).splitlines()[1:]]
    return []


def test_children_flattened_into_parents() -> None:
    data = yaml.safe_load(skeleton_of("children.yml"))
    assert data["groups"]["prod"] == {"hosts": ["foo", "one", "two"]}
    assert data["hosts"]["mail"]["groups"] if "groups" in data["hosts"]["mail"] else True


@pytest.mark.parametrize("reader", ["--static", "--ansible-inventory"])
def test_cli_writes_a_skeleton_that_checks(reader: str, tmp_path: Path) -> None:
    out = tmp_path / "haops.yml"
    runner = CliRunner()
    done = runner.invoke(app, ["inventory", "from-ansible", str(DATA / "cluster.ini"), reader,
                               "--group-map", "loadbalancers=lb", "-g", "webservers=web", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert ("ansible-inventory --list" in out.read_text()) == (reader == "--ansible-inventory")
    checked = runner.invoke(app, ["inventory", "check", "-i", str(out)])
    assert checked.exit_code == 0 and "5 hosts" in checked.output


def test_both_readers_give_the_same_skeleton() -> None:
    for path in EXAMPLES:
        if path.name in REFUSED:
            continue
        assert skeleton(read_static(path), "x", "r", {}) == skeleton(ansible_list(path), "x", "r", {}), path.name


@pytest.mark.parametrize("args, message", [
    (["--group-map", "nope"], "expected ANSIBLE_GROUP=HAOPS_GROUP"),
    (["--group-map", "nosuch=web"], "has no group 'nosuch'"),
    (["--group-map", "webservers=Web_1"], "is not a haops group name"),
])
def test_cli_mistakes_exit_2(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; from haops.cli.app import run; run(sys.argv[1:])",
                           "inventory", "from-ansible", str(DATA / "cluster.ini"), "--static", *args],
                          capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(Path(__file__).parent.parent), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_an_ipv6_ansible_host_becomes_the_address() -> None:
    draft = draft_host("db1.example.com", "db1", {"ansible_host": "fd00:213::21"})
    assert draft.address == "fd00:213::21"
    assert "address: ansible_host fd00:213::21" in draft.notes
