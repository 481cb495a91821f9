"""The two things the DRBD commands do on hosts: read every node's facts (in parallel, one
command each) and run a plan's steps in order, stopping at the first that fails."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from haops.inventory.model import DrbdResource
from haops.secrets import mask_line
from haops.targets.drbd import v84
from haops.targets.drbd.facts import NodeFacts, fact_script, parse_node_facts
from haops.targets.drbd.lifecycle import Step, hosts_of
from haops.transport import Connections, HostFailure

DRBDSETUP_SECRET = r"--shared-secret[= ](\S+)"

READERS = 8


@dataclass(frozen=True)
class Gathered:
    facts: dict[str, NodeFacts]
    unreachable: dict[str, str]


def gather(resource: DrbdResource, connections: Connections, inspect_disk: bool = False) -> Gathered:
    def read(host: str) -> tuple[str, NodeFacts | str]:
        disk = next(n.disk for n in resource.nodes if n.host == host)
        try:
            ran = connections.runner(host)(v84.quietly(resource, fact_script(resource, disk, inspect_disk)))
        except HostFailure as exc:
            return host, str(exc)
        return host, parse_node_facts(host, ran.stdout, resource)

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        results = list(pool.map(read, hosts_of(resource)))
    return Gathered({h: r for h, r in results if isinstance(r, NodeFacts)},
                    {h: r for h, r in results if isinstance(r, str)})


@dataclass(frozen=True)
class StepResult:
    step: Step
    code: int
    output: str


def run_steps(steps: list[Step], resource: DrbdResource, connections: Connections,
              progress: Callable[[Step], None]) -> list[StepResult]:
    """Each step on its host, in order; the first that fails ends the run (its result is last).
    What a step said has the resource's shared secret masked."""
    results: list[StepResult] = []
    for step in steps:
        progress(step)
        try:
            ran = connections.runner(step.host)(v84.quietly(resource, step.script))
            result = StepResult(step, ran.code, without_secret((ran.stdout + ran.stderr).strip(), resource))
        except HostFailure as exc:
            result = StepResult(step, 255, str(exc))
        results.append(result)
        if result.code != 0:
            break
    return results


def without_secret(output: str, resource: DrbdResource) -> str:
    """drbdadm repeats the drbdsetup command line that failed, --shared-secret=... included (an
    older secret too: masked where it stands, not only by value)."""
    secrets = (resource.secret,) if resource.secret else ()
    return "".join(mask_line(line, secrets, (DRBDSETUP_SECRET,)) for line in output.splitlines(True))


def wait_for(check: Callable[[], bool], seconds: float, interval: float = 1.0) -> bool:
    """Poll `check` until it holds or `seconds` pass (bounded: at most seconds / interval + 1 reads)."""
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
