"""haops apply against ansible-playbook and pyinfra: same lab, same files, same work.

    .venv/bin/python bench/apply_vs_peers.py [--runs 5] [--scale-hosts 32] [--skip-scaling] [--skip-peers]

Scenario: a trimmed copy of inventories/example.yml in lab `habench2` (10.213.11.0/24):
lb1/lb2 get haproxy.cfg (service www only) and the sysctl file, web1-3 the responder, dns1
named.conf and its zone. No VRRP/keepalived. `haops render all` writes the files; Ansible
(bench/peers/site.yml) and pyinfra (bench/peers/deploy.py) install byte-for-byte copies,
check each with the daemon's own checker, and start or reload a daemon only when one of
its files changed, with haops' own commands.

Each tool gets a freshly built lab: a first apply, then --runs no-op re-applies and
--runs one-line changes (`timeout server` 31s, 32s, ...). After every apply the live
files must hash as rendered and every daemon must run; a no-op must leave haproxy.cfg's
mtime and HAProxy's workers on lb1 alone, a change must replace both. Then the scaling run:
one lab of --scale-hosts backends (35 hosts with the default 32), where every tool applies
once and then does --runs no-ops. The haops CLI's client CPU (user + system of its process)
is taken on every no-op; its cost per extra host comes from the 6-host and the scaling runs.
Prints a table, writes /tmp/habench2/results.json.
A benchmark, not a test: a missed target is reported, never raised.

The peers run from their own virtualenv outside the repository, made on first use:
/opt/haops-bench/venv-peers (ansible-core and pyinfra pinned below, from PyPI).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, TypeVar

import yaml

ROOT = Path(__file__).resolve().parents[1]
# haops as installed in .venv (scripts/setup.sh), so the API runs the same code as the CLI.
from haops import inventory as haops_inventory
from haops.apply.run import ApplyOptions, apply
from haops.lab import Lab, LabHost
from haops.lab.naming import netns_prefix
from haops.session import settings_for

def daemon(name: str) -> Any:
    """The daemon of a target, by the daemon's name (haproxy, nginx, apache2, named, keepalived)."""
    from haops.targets import all_targets

    return next(t.daemon for t in all_targets() if t.daemon is not None and t.daemon.name == name)


LAB_NAME = "habench2"
NETWORK = IPv4Network("10.213.11.0/24")
WORK = Path("/tmp/habench2")
HAOPS = ROOT / ".venv" / "bin" / "haops"
PEERS = ROOT / "bench" / "peers"
PEERS_VENV = Path("/opt/haops-bench/venv-peers")
PINS = {"ansible-core": "2.19.14", "pyinfra": "3.10.0"}  # ansible-core 2.19: newest for Python 3.11
ANSIBLE_DEFAULT_SSH_ARGS = "-C -o ControlMaster=auto -o ControlPersist=60s"
BASE_TIMEOUT_S = 30
DAEMON_OF_GROUP = {"lb": "haproxy", "web": "haops-responder", "dns": "named"}
# Ratios: peer time / haops CLI time, at least this. CPU: ms per extra host, at most this.
TARGETS = {"ansible_noop_x": 10.0, "pyinfra_noop_x": 3.0, "pyinfra_first_x": 3.0, "pyinfra_change_x": 2.0,
           "pyinfra_scaled_noop_x": 3.0, "cpu_per_host_ms": 8.0}
SETTLE_S = 10.0
T = TypeVar("T")


# --- the scenario ---------------------------------------------------------------------------


def scenario(backends: int = 3, server_timeout_s: int = BASE_TIMEOUT_S) -> dict[str, Any]:
    """inventories/example.yml trimmed: service www on HAProxy only, no VRRP, no client."""
    data = yaml.safe_load((ROOT / "inventories" / "example.yml").read_text())
    text = yaml.safe_dump(data).replace("10.213.0.", "10.213.11.")
    data = yaml.safe_load(text)
    data["lab"] = {"name": LAB_NAME, "network": str(NETWORK)}
    data.pop("vrrp", None)
    www = data["services"]["www"]
    www["timeouts"] = {"connect": "5s", "client": "30s", "server": f"{server_timeout_s}s"}
    data["services"] = {"www": www}
    hosts = {k: v for k, v in data["hosts"].items() if not k.startswith(("web", "client"))}
    webs = web_addresses(backends)
    hosts |= {name: {"address": str(address), "groups": ["web"]} for name, address in webs.items()}
    data["hosts"] = dict(sorted(hosts.items(), key=lambda kv: IPv4Address(kv[1]["address"])))
    data["zones"]["example.test"]["records"]["www"] = [str(a) for a in webs.values()]
    return data


def web_addresses(backends: int) -> dict[str, IPv4Address]:
    """web1-3 keep the example's .21-.23; a larger set lives at .101 upwards."""
    base = 20 if backends <= 9 else 100
    return {f"web{i}": NETWORK.network_address + base + i for i in range(1, backends + 1)}


def lab_hosts(data: dict[str, Any]) -> list[LabHost]:
    return [LabHost(name, IPv4Address(h["address"]), tuple(h["groups"])) for name, h in data["hosts"].items()]


def groups_of(data: dict[str, Any]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, h in data["hosts"].items():
        for group in h["groups"]:
            groups.setdefault(group, []).append(name)
    return groups


@dataclass
class Scene:
    """The inventory file and the rendered files every tool installs."""

    data: dict[str, Any]
    inventory: Path = WORK / "inventory.yml"
    rendered: Path = WORK / "rendered"

    def write(self) -> None:
        self.inventory.write_text(yaml.safe_dump(self.data, sort_keys=False))
        subprocess.run(["rm", "-rf", str(self.rendered)], check=True)
        run_checked([str(HAOPS), "render", "all", "-i", str(self.inventory), "-o", str(self.rendered), "--show-secrets"])

    def change(self, server_timeout_s: int) -> None:
        self.data["services"]["www"]["timeouts"]["server"] = f"{server_timeout_s}s"
        self.write()

    def expected(self) -> dict[str, dict[str, str]]:
        """host -> live path -> sha256 of the rendered file."""
        return {d.name: {"/" + str(f.relative_to(d)): sha256(f) for f in sorted(d.rglob("*")) if f.is_file()}
                for d in sorted(self.rendered.iterdir())}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_checked(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited {done.returncode}:\n{(done.stdout + done.stderr)[-3000:]}")
    return done


# --- the lab and what is live on it ---------------------------------------------------------------


@contextmanager
def fresh_lab(data: dict[str, Any]) -> Iterator[Lab]:
    lab = Lab(LAB_NAME, NETWORK)
    lab.down()
    try:
        lab.up(lab_hosts(data), yaml.safe_dump(data, sort_keys=False))
        yield lab
    finally:
        lab.down()


def sh(lab: Lab, host: str, script: str) -> str:
    done = lab.exec(host, ["sh", "-c", script], timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{host}: {script}\n{done.stdout}{done.stderr}")
    return done.stdout


def live_state_script(paths: list[str], daemons: list[str]) -> str:
    hashes = f"sha256sum {' '.join(shlex.quote(p) for p in paths)}"
    running = [f"if {daemon(d).running()}; then echo RUNNING {d}; fi" for d in daemons]
    return "; ".join([hashes, *running])


def host_problems(lab: Lab, host: str, files: dict[str, str], daemons: list[str]) -> list[str]:
    done = lab.exec(host, ["sh", "-c", live_state_script(sorted(files), daemons)], timeout=60)
    lines = done.stdout.splitlines()
    live = {line.split()[1]: line.split()[0] for line in lines if not line.startswith("RUNNING ")}
    problems = [f"{host}:{p} differs from the rendered file" for p, h in files.items() if live.get(p) != h]
    return problems + [f"{host}: {d} is not running" for d in daemons if f"RUNNING {d}" not in lines]


def verify(lab: Lab, scene: Scene) -> None:
    """Every live file hashes as rendered; every daemon runs."""
    groups = {name: h["groups"] for name, h in scene.data["hosts"].items()}
    expected = scene.expected()

    def one(host: str) -> list[str]:
        daemons = [DAEMON_OF_GROUP[g] for g in groups[host] if g in DAEMON_OF_GROUP]
        return host_problems(lab, host, expected.get(host, {}), daemons)

    with ThreadPoolExecutor(max_workers=16) as pool:
        problems = [p for found in pool.map(one, list(groups)) for p in found]
    if problems:
        raise RuntimeError("after apply: " + "; ".join(problems[:10]))


def lb1_state(lab: Lab) -> tuple[str, str]:
    """haproxy.cfg's mtime and HAProxy's worker PIDs on lb1."""
    out = sh(lab, "lb1", f"stat -c %y /etc/haproxy/haproxy.cfg; {daemon('haproxy').generation()}")
    mtime, _, workers = out.partition("\n")
    return mtime.strip(), workers.strip()


def expect_untouched(lab: Lab, before: tuple[str, str]) -> None:
    after = lb1_state(lab)
    if after != before:
        raise RuntimeError(f"no-op apply touched lb1: mtime/workers {before} -> {after}")


def expect_replaced(lab: Lab, before: tuple[str, str]) -> None:
    """A change must rewrite haproxy.cfg and replace the workers (a USR2 reload is asynchronous)."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        after = lb1_state(lab)
        if after[0] != before[0] and after[1] and after[1] != before[1]:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"change apply did not replace lb1's haproxy.cfg and workers: {before} -> {after}")
        time.sleep(0.05)


# --- the tools ------------------------------------------------------------------------------------


Applier = Callable[[Scene, Lab, str], float]


CPU_S: list[float] = []  # client CPU of each timed command, in order


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    cpu_before = children_cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
                          env={**os.environ, **(env or {})}, cwd=cwd)
    seconds = time.perf_counter() - started
    CPU_S.append(children_cpu() - cpu_before)
    log.write_text(f"$ {shlex.join(argv)}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}")
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed (exit {done.returncode}); see {log}:\n{(done.stdout + done.stderr)[-3000:]}")
    return seconds


def haops_cli(scene: Scene, lab: Lab, label: str) -> float:
    # Every host at once, as Ansible gets forks = hosts (ansible_env) and pyinfra works on all.
    concurrency = str(len(scene.data["hosts"]))
    return timed([str(HAOPS), "apply", "-i", str(scene.inventory), "--concurrency", concurrency],
                 WORK / "logs" / f"haops-{label}.log")


def haops_api(scene: Scene, lab: Lab, label: str) -> float:
    started = time.perf_counter()
    inv = haops_inventory.load(scene.inventory)
    outcomes = apply(inv, list(inv.hosts), ApplyOptions(concurrency=len(inv.hosts)), settings_for(inv), lambda host, step: None)
    seconds = time.perf_counter() - started
    failed = [f"{o.report.host}: {o.report.messages}" for o in outcomes if not o.report.ok]
    if failed:
        raise RuntimeError("haops API apply failed: " + "; ".join(failed))
    return seconds


def ansible_hosts(scene: Scene) -> Path:
    path = WORK / "ansible-hosts.ini"
    sections = [f"[{group}]\n" + "".join(f"{h}\n" for h in hosts) for group, hosts in groups_of(scene.data).items()]
    path.write_text("\n".join(sections))
    return path


def ansible_env(scene: Scene, lab: Lab) -> dict[str, str]:
    return {
        "ANSIBLE_CONFIG": str(PEERS / "ansible.cfg"),
        "ANSIBLE_FORKS": str(len(scene.data["hosts"])),
        "ANSIBLE_SSH_ARGS": f"{ANSIBLE_DEFAULT_SSH_ARGS} -F {lab.ssh_config}",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(WORK / "ansible-cp"),
        "ANSIBLE_LOCAL_TEMP": str(WORK / "ansible-local"),
        "ANSIBLE_NOCOLOR": "1",
    }


def ansible(scene: Scene, lab: Lab, label: str) -> float:
    argv = [str(PEERS_VENV / "bin" / "ansible-playbook"), "-i", str(ansible_hosts(scene)),
            str(PEERS / "site.yml"), "-e", f"rendered={scene.rendered}"]
    return timed(argv, WORK / "logs" / f"ansible-{label}.log", ansible_env(scene, lab))


def close_ansible_masters() -> None:
    """End the ControlPersist masters Ansible left (its default keeps them 60 s) by their sockets."""
    for socket in (WORK / "ansible-cp").glob("*"):
        subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "lab-host"],
                       capture_output=True, stdin=subprocess.DEVNULL, check=False, timeout=10)


def pyinfra_inventory(scene: Scene, lab: Lab) -> Path:
    ssh = {"ssh_user": "root", "ssh_key": str(lab.identity), "ssh_known_hosts_file": str(lab.known_hosts),
           "ssh_strict_host_key_checking": "yes", "rendered": str(scene.rendered)}
    lines = []
    for group, hosts in groups_of(scene.data).items():
        entries = [(h, {"ssh_hostname": scene.data["hosts"][h]["address"], **ssh}) for h in hosts]
        lines.append(f"{group} = {entries!r}")
    path = WORK / "pyinfra_inventory.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def pyinfra(scene: Scene, lab: Lab, label: str) -> float:
    argv = [str(PEERS_VENV / "bin" / "pyinfra"), "-y", str(pyinfra_inventory(scene, lab)), str(PEERS / "deploy.py")]
    return timed(argv, WORK / "logs" / f"pyinfra-{label}.log", cwd=WORK)


TOOLS: dict[str, Applier] = {"haops": haops_cli, "haops-api": haops_api, "ansible": ansible, "pyinfra": pyinfra}


# --- one tool, start to end ------------------------------------------------------------------------


@dataclass
class ToolResult:
    tool: str
    first_s: float = 0.0
    noop_s: list[float] = field(default_factory=list)
    change_s: list[float] = field(default_factory=list)
    noop_cpu_s: list[float] = field(default_factory=list)

    @property
    def noop(self) -> float:
        return statistics.median(self.noop_s)

    @property
    def change(self) -> float:
        return statistics.median(self.change_s)


def measure_tool(name: str, runs: int) -> ToolResult:
    scene = Scene(scenario())
    scene.write()
    result, tool = ToolResult(name), TOOLS[name]
    with fresh_lab(scene.data) as lab:
        try:
            result.first_s = tool(scene, lab, "first")
            verify(lab, scene)
            for i in range(runs):
                result.noop_s.append(noop_once(tool, scene, lab, f"noop{i}"))
                result.noop_cpu_s.append(CPU_S[-1] if CPU_S else 0.0)
                result.change_s.append(change_once(tool, scene, lab, i))
        finally:
            close_ansible_masters()
    print(f"  {name:9} first {result.first_s:6.2f} s  no-op {result.noop:6.2f} s  change {result.change:6.2f} s", flush=True)
    return result


def noop_once(tool: Applier, scene: Scene, lab: Lab, label: str) -> float:
    before = lb1_state(lab)
    seconds = tool(scene, lab, label)
    verify(lab, scene)
    expect_untouched(lab, before)
    return seconds


def change_once(tool: Applier, scene: Scene, lab: Lab, i: int) -> float:
    scene.change(BASE_TIMEOUT_S + 1 + i)
    before = lb1_state(lab)
    seconds = tool(scene, lab, f"change{i}")
    expect_replaced(lab, before)
    verify(lab, scene)
    return seconds


# --- scaling -------------------------------------------------------------------------------------------


@dataclass
class Scaling:
    hosts: int
    backends: int
    first_s: float
    noop_s: dict[str, list[float]] = field(default_factory=dict)  # tool -> no-op seconds
    cli_noop_cpu_s: list[float] = field(default_factory=list)

    def noop(self, tool: str) -> float:
        return statistics.median(self.noop_s[tool])


def measure_scaling(backends: int, runs: int, tools: list[str]) -> Scaling:
    """One lab: haops applies first (timed), then each tool applies once (its own warm-up) and
    does `runs` no-ops. Every file is byte for byte what every tool installs, so a tool that
    comes after another still has nothing to change."""
    scene = Scene(scenario(backends))
    scene.write()
    with fresh_lab(scene.data) as lab:
        first = haops_cli(scene, lab, f"scale{backends}-first")
        verify(lab, scene)
        result = Scaling(len(scene.data["hosts"]), backends, first)
        try:
            for name in tools:
                tool = TOOLS[name]
                if name != "haops":
                    tool(scene, lab, f"scale{backends}-warm")
                    verify(lab, scene)
                result.noop_s[name] = []
                for i in range(runs):
                    result.noop_s[name].append(noop_once(tool, scene, lab, f"scale{backends}-{name}-noop{i}"))
                    if name == "haops":
                        result.cli_noop_cpu_s.append(CPU_S[-1])
        finally:
            close_ansible_masters()
    print(f"  {backends} backends ({result.hosts} hosts): haops first {first:.2f} s; no-op "
          + ", ".join(f"{name} {result.noop(name):.2f} s" for name in result.noop_s), flush=True)
    return result


# --- the peers' virtualenv and their copy of haops' commands -----------------------------------------


def ensure_peers_venv() -> None:
    pip = PEERS_VENV / "bin" / "pip"
    if not pip.exists():
        run_checked([sys.executable, "-m", "venv", str(PEERS_VENV)])
    installed = run_checked([str(pip), "freeze"]).stdout.lower().splitlines()
    wanted = [f"{name}=={version}" for name, version in PINS.items()]
    if not all(w in installed for w in wanted):
        print(f"installing {', '.join(wanted)} into {PEERS_VENV}", flush=True)
        run_checked([str(pip), "install", "-q", *wanted])


def check_peer_commands() -> None:
    """The peers must start and reload with haops' own commands: fail early if they drifted."""
    for path in (PEERS / "site.yml", PEERS / "deploy.py"):
        text = path.read_text()
        for name in DAEMON_OF_GROUP.values():
            d = daemon(name)
            pieces = [d.pidfile, d.start, d.reload] + ([d.prepare] if d.prepare != "true" else [])
            missing = [p for p in pieces if p not in text]
            if missing:
                raise SystemExit(f"{path} no longer uses haops' commands for {name}: missing {missing}")


# --- report ----------------------------------------------------------------------------------------------


def ratio(value: float, base: float) -> str:
    return f"{value / base:.1f}x" if base > 0 else "-"


def table(results: list[ToolResult]) -> str:
    base = next((r for r in results if r.tool == "haops"), ToolResult("none", 0.0, [0.0], [0.0]))
    rows = [f"{'tool':10} {'first s':>8} {'no-op s':>8} {'change s':>9}   {'first/haops':>11} {'no-op/haops':>11} {'change/haops':>12}"]
    for r in results:
        rows.append(f"{r.tool:10} {r.first_s:8.2f} {r.noop:8.2f} {r.change:9.2f}   {ratio(r.first_s, base.first_s):>11} "
                    f"{ratio(r.noop, base.noop):>11} {ratio(r.change, base.change):>12}")
    return "\n".join(rows)


def cpu_per_host_ms(small: ToolResult, small_hosts: int, scaling: Scaling) -> float:
    """Client CPU of the haops CLI's no-op, per host beyond the 6-host scene (medians)."""
    extra = scaling.hosts - small_hosts
    return 1000 * (statistics.median(scaling.cli_noop_cpu_s) - statistics.median(small.noop_cpu_s)) / extra


def verdicts(results: list[ToolResult], scaling: Scaling | None) -> list[tuple[str, float, float, bool]]:
    """(target, measured, goal, met) for each target this run measured; ratios are x, CPU is ms."""
    by = {r.tool: r for r in results}
    out: list[tuple[str, float, float, bool]] = []
    if "haops" not in by:
        return out
    haops = by["haops"]

    def at_least(text: str, key: str, x: float) -> None:
        out.append((f"{text} >= {TARGETS[key]:.0f}x", x, TARGETS[key], x >= TARGETS[key]))

    if "ansible" in by:
        at_least("no-op vs ansible", "ansible_noop_x", by["ansible"].noop / haops.noop)
    if "pyinfra" in by:
        at_least("no-op vs pyinfra", "pyinfra_noop_x", by["pyinfra"].noop / haops.noop)
        at_least("first apply vs pyinfra", "pyinfra_first_x", by["pyinfra"].first_s / haops.first_s)
        at_least("one-line change vs pyinfra", "pyinfra_change_x", by["pyinfra"].change / haops.change)
    if scaling is not None:
        if "pyinfra" in scaling.noop_s:
            at_least(f"no-op vs pyinfra at {scaling.hosts} hosts", "pyinfra_scaled_noop_x",
                     scaling.noop("pyinfra") / scaling.noop("haops"))
        ms = cpu_per_host_ms(haops, len(scenario()["hosts"]), scaling)
        goal = TARGETS["cpu_per_host_ms"]
        out.append((f"client CPU per extra host for a no-op <= {goal:.0f} ms", ms, goal, ms <= goal))
    return out


def report(results: list[ToolResult], scaling: Scaling | None, runs: int) -> dict[str, Any]:
    print(f"\napply on lab {LAB_NAME} ({NETWORK}): 2 HAProxy balancers (service www + sysctl), 3 responders, 1 BIND; "
          f"no VRRP/keepalived. Medians of {runs} runs; ratios: tool / haops CLI (higher = haops faster).")
    print("haops-api is haops' Python API in-process (no interpreter start-up), for information; the CLI is compared.")
    print(table(results))
    by = {r.tool: r for r in results}
    if scaling is not None and "haops" in scaling.noop_s:
        base = scaling.noop("haops")
        print(f"\nscaling, {scaling.backends} backends ({scaling.hosts} hosts), no-op: "
              + ", ".join(f"{name} {scaling.noop(name):.2f} s ({ratio(scaling.noop(name), base)})" for name in scaling.noop_s))
        if "haops" in by:
            print(f"haops CLI client CPU per no-op: {statistics.median(by['haops'].noop_cpu_s):.3f} s at "
                  f"{len(scenario()['hosts'])} hosts, {statistics.median(scaling.cli_noop_cpu_s):.3f} s at {scaling.hosts}")
    checks = verdicts(results, scaling)
    print("\ntargets:")
    for text, measured, _goal, met in checks:
        unit = " ms" if "CPU" in text else "x"
        print(f"  {'met   ' if met else 'MISSED'} {text}: measured {measured:.1f}{unit}")
    measured = {r.tool for r in results}
    if not {"haops", "ansible", "pyinfra"} <= measured:
        print("  (not all measured: a peer target needs the haops row and that peer's; skipped or failed)")
    if scaling is None or "haops" not in measured:
        print("  (not measured: the scaling target; skipped or failed)")
    missed = [text for text, _m, _g, met in checks if not met]
    print("missed: " + ("; ".join(missed) if missed else "none of the targets measured"))
    return {"lab": LAB_NAME, "network": str(NETWORK), "runs": runs, "vrrp": False,
            "tools": [asdict(r) | {"noop_median_s": r.noop, "change_median_s": r.change} for r in results],
            "scaling": asdict(scaling) if scaling else None,
            "targets": [{"target": t, "measured_x": m, "goal_x": g, "met": ok} for t, m, g, ok in checks]}


def leftover_namespaces() -> list[str]:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in listed.splitlines() if line.startswith(netns_prefix(LAB_NAME))]


# --- main --------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="no-op and change applies per tool (medians)")
    parser.add_argument("--scale-hosts", type=int, default=32, help="backends for the scaling run (4..150)")
    parser.add_argument("--skip-scaling", action="store_true", help="no scaling run")
    parser.add_argument("--skip-peers", action="store_true", help="haops only: no Ansible, no pyinfra")
    args = parser.parse_args()
    if args.runs < 1 or not 4 <= args.scale_hosts <= 150:
        parser.error("--runs must be >= 1 and --scale-hosts 4..150")
    return args


def main() -> None:
    args = parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the lab makes network namespaces")
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    tools = ["haops", "haops-api"] + ([] if args.skip_peers else ["ansible", "pyinfra"])
    if not args.skip_peers:
        check_peer_commands()
        ensure_peers_venv()
    load_at_start = os.getloadavg()
    print(f"apply vs peers: {', '.join(tools)}; {args.runs} runs; logs in {WORK / 'logs'}", flush=True)
    failures: dict[str, str] = {}
    results = [r for name in tools if (r := attempt(name, lambda n=name: measure_tool(n, args.runs), failures))]
    scaling_tools = ["haops"] + ([] if args.skip_peers else ["pyinfra", "ansible"])
    scaling = None if args.skip_scaling else attempt(
        "scaling", lambda: measure_scaling(args.scale_hosts, args.runs, scaling_tools), failures)
    data = report(results, scaling, args.runs) | {"failures": failures}
    data["load_average"] = {"start": load_at_start, "end": os.getloadavg()}
    print(f"load average (1/5/15 min): start {load_at_start}, end {os.getloadavg()} on {os.cpu_count()} CPUs "
          "(other work on this machine skews the figures)")
    (WORK / "results.json").write_text(json.dumps(data, indent=2) + "\n")
    left = leftover_namespaces()
    print(f"results: {WORK / 'results.json'}; lab namespaces left: {', '.join(left) or 'none'}")
    if failures:
        raise SystemExit(f"FAILED (not timed): {', '.join(failures)}")


def attempt(label: str, phase: Callable[[], T], failures: dict[str, str]) -> T | None:
    """Run one phase; a failure (an apply that failed or left the hosts wrong) is reported, not fatal."""
    try:
        return phase()
    except RuntimeError as exc:
        failures[label] = str(exc)
        print(f"  {label}: FAILED: {str(exc)[:1500]}", flush=True)
        return None


if __name__ == "__main__":
    main()
