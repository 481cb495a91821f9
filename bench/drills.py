"""The drill targets of the HA issue, measured in a lab of their own (10.213.21.0/24).

    sudo .venv/bin/python bench/drills.py [--only NAME ...] [--out DIR]

Each target runs as a real drill: a real crash, reload or switchover under the 200 req/s
probe. Prints one line per target with what was measured and the target; it is a benchmark,
not a test, so it never fails on the figures. The records and pictures go to --out.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haops import inventory
from haops.apply.run import ApplyOptions, apply
from haops.drill.cluster import DrillCluster
from haops.drill.findings import Findings, explain
from haops.drill.plot import save_timeline
from haops.drill.run import DrillOptions, run_drill
from haops.lab import Lab, LabHost
from haops.session import lab_settings

ROOT = Path(__file__).resolve().parents[1]
NAME, NETWORK = "habdrill", IPv4Network("10.213.21.0/24")


@dataclass(frozen=True)
class Target:
    name: str
    options: DrillOptions
    edit: Callable[[str], str]
    judge: Callable[[Findings], str]


def failed(found: Findings) -> str:
    return f"{found.failed} failed of {found.sent}"


def takeover(found: Findings) -> str:
    measured = "-" if found.measured_s is None else f"{found.measured_s:.2f}s"
    bound = "-" if found.bound_s is None else f"{found.bound_s:.2f}s"
    return f"VIP moved in {measured} (bound {bound} + 0.5 s); {failed(found)}; two holders: {len(found.two_holders)}"


def failback(found: Findings) -> str:
    verdict = [text for ok, text in found.verdicts if "preempt" in text]
    return f"{'; '.join(verdict) or 'no failback verdict'}; two holders beyond a hand-over: " \
           f"{len([w for w in found.two_holders if w.length > 1.0])}"


def same(text: str) -> str:
    return text


def nopreempt(text: str) -> str:
    return text.replace("    track_process: haproxy\n", "    track_process: haproxy\n    nopreempt: true\n")


def subsecond(text: str) -> str:
    return text.replace("    advert_int: 1s\n    auth_pass: s3cret\n", "    advert_int: 200ms\n")


TARGETS = [
    Target("backend crash, 10,000+ requests (target: 0 failed)",
           DrillOptions("backend-failure", "www", duration=55, fault_at=5, hold=40), same, failed),
    Target("master crash, 1 s adverts (target: bound + 0.5 s)", DrillOptions("lb-failure", duration=20), same, takeover),
    Target("master crash, 200 ms VRRPv3 adverts (target: gap <= 1 s)", DrillOptions("lb-failure", duration=20), subsecond, takeover),
    *[Target(f"50 reloads of {s} (target: 0 refused or reset)", DrillOptions("reload", s, duration=20), same, failed)
      for s in ("www", "api", "app")],
    Target("planned switchover (target: 0 failed)", DrillOptions("switchover", duration=20), same, failed),
    Target("failback with preempt", DrillOptions("lb-stop", duration=20), same, failback),
    Target("failback with nopreempt", DrillOptions("lb-stop", duration=20), nopreempt, failback),
]


def lab_inventory(text: str, folder: Path) -> Path:
    path = folder / "bench-drills.yml"
    path.write_text(text.replace("10.213.0.", "10.213.21.").replace("name: haops", f"name: {NAME}").replace(
        "network: 10.213.0.0/24", f"network: {NETWORK}"))
    return path


def converge(path: Path, lab: Lab) -> None:
    inv = inventory.load(path)
    outcomes = apply(inv, list(inv.hosts), ApplyOptions(), lab_settings(lab), lambda host, step: None)
    bad = [o.report.host for o in outcomes if not o.report.ok]
    if bad:
        raise SystemExit(f"apply failed on {bad}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="substrings of target names to run")
    parser.add_argument("--out", type=Path, default=Path("bench-drills"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    example = (ROOT / "inventories" / "example.yml").read_text()
    lab = Lab(NAME, NETWORK)
    path = lab_inventory(example, args.out)
    inv = inventory.load(path)
    lab.up([LabHost(h.name, h.address, h.groups) for h in inv.hosts.values()], path.read_text())
    try:
        for index, target in enumerate(t for t in TARGETS if not args.only or any(o in t.name for o in args.only)):
            path = lab_inventory(target.edit(example), args.out)
            converge(path, lab)
            cluster = DrillCluster(inventory.load(path), lab_settings(lab), lab)
            try:
                done = run_drill(cluster.inventory, target.options, cluster, lambda text: None)
            finally:
                cluster.close()
            save_timeline(done, args.out / f"{index}-{done.drill}")
            done.save(args.out / f"{index}-{done.drill}.json")
            print(f"{target.name}: {target.judge(explain(done))}", flush=True)
    finally:
        lab.down()


if __name__ == "__main__":
    main()
