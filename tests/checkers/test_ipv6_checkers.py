"""IPv6 against the real tools: ip6tables-restore refuses a broken rule and the kernel splits IPv6
connections exactly as the IPv4 ones; the LVS parse-back refuses a real server of the other
family."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from haops import inventory
from haops.apply.validation import check_files
from haops.targets import get_target
from haops.targets.base import RenderContext
from haops.targets.iptables import CONFIG6, parse_dnat_chain, service_chain, simulate_split
from tests.conftest import GOLDEN

pytestmark = pytest.mark.checker

DUAL = GOLDEN / "iptables" / "dual-stack" / "inventory.yml"
BACKENDS6 = ["[fd00:213:0:7::21]:8080", "[fd00:213:0:7::22]:8080", "[fd00:213:0:7::23]:8080"]


def rules6() -> tuple[inventory.Inventory, str]:
    inv = inventory.load(DUAL)
    files = {f.path: f for f in get_target("iptables").render(inv, "lb1", RenderContext())}
    return inv, files[CONFIG6].text


def test_ip6tables_restore_rejects_a_bad_ipv6_rule() -> None:
    inv = inventory.load(DUAL)
    target = get_target("iptables")
    files = target.render(inv, "lb1", RenderContext())
    broken = [dataclasses.replace(f, text=f.text.replace("[fd00:213:0:7::22]", "[fd00:213:0:7::zz]")) for f in files]
    result = check_files(target, inv, "lb1", broken)
    assert result.status == "failed"
    assert "ip6tables-restore" in result.output


def test_an_ipv4_address_in_the_ipv6_file_is_refused() -> None:
    inv = inventory.load(DUAL)
    target = get_target("iptables")
    files = target.render(inv, "lb1", RenderContext())
    mixed = [dataclasses.replace(f, text=f.text.replace("fd00:213:0:7::100/128", "10.213.0.100/32")) if f.path == CONFIG6 else f
             for f in files]
    assert check_files(target, inv, "lb1", mixed).status == "failed"


SPLIT6 = """
import collections, json, select, socket, subprocess, sys
rules, vip, port, count, backends = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
run = lambda *argv: subprocess.run(argv, check=True)
run("ip", "link", "set", "lo", "up")
for address in sorted({vip, *(b.rsplit(":", 1)[0].strip("[]") for b in backends)}):
    run("ip", "-6", "addr", "add", address + "/128", "dev", "lo", "nodad")
run("ip6tables-restore", "--noflush", rules)
run("ip6tables", "-w", "-t", "nat", "-I", "OUTPUT", "1", "-j", "HAOPS-OUTPUT")
listeners = {}
for backend in backends:
    address, listen_port = backend.rsplit(":", 1)
    server = socket.create_server((address.strip("[]"), int(listen_port)), family=socket.AF_INET6, backlog=64)
    listeners[server] = backend
split = collections.Counter()
for _ in range(count):
    with socket.create_connection((vip, port), timeout=2):
        ready, _, _ = select.select(list(listeners), [], [], 2)
        for server in ready:
            server.accept()[0].close()
            split[listeners[server]] += 1
print(json.dumps(split))
"""


def test_kernel_splits_ipv6_connections_exactly_by_weight(tmp_path: Path) -> None:
    _, text = rules6()
    rules = tmp_path / "ip6tables.rules"
    rules.write_text(text)
    script = 'exec "$0" -c "$1" "$2" fd00:213:0:7::100 83 "$3" ' + " ".join(BACKENDS6)
    argv = ["unshare", "--net", "sh", "-c", script, sys.executable, SPLIT6, str(rules), "40"]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    split = Counter(json.loads(done.stdout))
    assert split == Counter({BACKENDS6[0]: 20, BACKENDS6[1]: 10, BACKENDS6[2]: 10})
    assert split == simulate_split(parse_dnat_chain(text, service_chain("nth6")), 40)


def test_lvs_parse_back_refuses_a_real_server_of_the_other_family() -> None:
    inv = inventory.load(GOLDEN / "lvs" / "dual-stack" / "inventory.yml")
    target = get_target("lvs")
    files = target.render(inv, "lb1", RenderContext())
    mixed = [dataclasses.replace(f, text=f.text.replace("-r [fd00:213:0:7::22]:8080", "-r 10.213.0.22:8080")) for f in files]
    result = check_files(target, inv, "lb1", mixed)
    assert result.status == "failed"
    assert "address family" in result.output
