"""The iptables rules against the real tools: the checker refuses a broken file, and in a throwaway
network namespace the real kernel restores them idempotently, keeps foreign rules, and splits
connections exactly as simulate_split() says (pain point 10)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from haops import inventory
from haops.targets import get_target
from haops.targets.base import RenderContext
from haops.targets.iptables import NthRule, hook_rules, simulate_split
from haops.apply.validation import check_files
from tests.conftest import GOLDEN

pytestmark = pytest.mark.checker

EQUAL = GOLDEN / "iptables" / "equal-three" / "inventory.yml"
WEIGHTED = GOLDEN / "iptables" / "weighted-3-1-2" / "inventory.yml"


def rendered(inventory_file: Path) -> tuple[inventory.Inventory, str]:
    inv = inventory.load(inventory_file)
    [file] = get_target("iptables").render(inv, "lb1", RenderContext())
    return inv, file.text


def in_new_netns(script: str, *args: str) -> str:
    """Run a shell script in a fresh network namespace (its own, empty nat table)."""
    done = subprocess.run(["unshare", "--net", "sh", "-euc", script, "sh", *args], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_iptables_restore_rejects_a_bad_rule() -> None:
    inv = inventory.load(EQUAL)
    target = get_target("iptables")
    [good] = target.render(inv, "lb1", RenderContext())
    bad = dataclasses.replace(good, text=good.text.replace("--every 3", "--every 0"))
    result = check_files(target, inv, "lb1", [bad])
    assert result.status == "failed"
    assert 'statistic: bad value for option "--every"' in result.output
    assert "Error occurred at line" in result.output


HOOK = """
iptables -w -t nat -C "$1" -j "$2" && s=0 || s=$?
if [ "$s" -eq 1 ]; then iptables -w -t nat -I "$1" 1 -j "$2"; elif [ "$s" -ne 0 ]; then exit "$s"; fi
"""


def test_noflush_restore_twice_changes_nothing_and_keeps_foreign_rules(tmp_path: Path) -> None:
    inv, text = rendered(WEIGHTED)
    rules = tmp_path / "iptables.rules"
    rules.write_text(text)
    hooks = " ".join(f"{builtin}:{chain}" for _, builtin, chain in hook_rules(inv, "lb1"))
    script = f"""
iptables -t nat -N FOREIGN
iptables -t nat -A FOREIGN -j RETURN
iptables -t nat -A PREROUTING -p tcp --dport 22 -j FOREIGN
hook() {{ {HOOK} }}
for round in 1 2; do
  iptables-restore --noflush "$1"
  for pair in {hooks}; do hook "${{pair%%:*}}" "${{pair#*:}}"; done
done
iptables-save -t nat
"""
    saved = [line for line in in_new_netns(script, str(rules)).splitlines() if line.startswith("-A ")]
    assert len(saved) == len(set(saved)), "a rule appears twice after the second restore"
    assert "-A PREROUTING -p tcp -m tcp --dport 22 -j FOREIGN" in saved
    assert "-A FOREIGN -j RETURN" in saved
    for _, builtin, chain in hook_rules(inv, "lb1"):
        assert saved.count(f"-A {builtin} -j {chain}") == 1
    ours = [line for line in text.splitlines() if line.startswith("-A ")]
    assert len(saved) == len(ours) + 3 + 2


SPLIT = """
import collections, json, select, socket, subprocess, sys
rules, vip, port, count, backends = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]
run = lambda *argv: subprocess.run(argv, check=True)
run("ip", "link", "set", "lo", "up")
for address in sorted({vip, *(b.rsplit(":", 1)[0] for b in backends)}):
    run("ip", "addr", "add", address + "/32", "dev", "lo")
run("iptables-restore", "--noflush", rules)
run("iptables", "-w", "-t", "nat", "-I", "OUTPUT", "1", "-j", "HAOPS-OUTPUT")
listeners = {}
for backend in backends:
    address, listen_port = backend.rsplit(":", 1)
    server = socket.create_server((address, int(listen_port)), backlog=64)
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


def kernel_split(tmp_path: Path, text: str, connections: int, backends: list[str]) -> Counter[str]:
    rules = tmp_path / "split.rules"
    rules.write_text(text)
    script = 'exec "$0" -c "$1" "$2" 10.213.0.100 80 "$3" ' + " ".join(backends)
    argv = ["unshare", "--net", "sh", "-c", script, sys.executable, SPLIT, str(rules), str(connections)]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return Counter(json.loads(done.stdout))


def test_kernel_splits_weighted_slots_exactly(tmp_path: Path) -> None:
    _, text = rendered(WEIGHTED)
    split = kernel_split(tmp_path, text, 60, ["10.213.0.21:8080", "10.213.0.22:8080", "10.213.0.23:8080"])
    assert split == Counter({"10.213.0.21:8080": 30, "10.213.0.22:8080": 10, "10.213.0.23:8080": 20})


def test_kernel_skews_the_naive_recipe_as_simulated(tmp_path: Path) -> None:
    """`--every 3 --packet i` with the last rule unconditional: the kernel agrees with simulate_split."""
    _, text = rendered(EQUAL)
    naive = text.replace("--every 2 --packet 0", "--every 3 --packet 1")
    backends = ["10.213.0.21:8080", "10.213.0.22:8080", "10.213.0.23:8080"]
    simulated = simulate_split([NthRule(backends[0], 3, 0), NthRule(backends[1], 3, 1), NthRule(backends[2])], 27)
    assert simulated == Counter({backends[0]: 9, backends[1]: 6, backends[2]: 12})
    assert kernel_split(tmp_path, naive, 27, backends) == simulated
