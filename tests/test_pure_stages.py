"""The pure stages as data, pyinfra style: each case in tests/data/plan holds its input and
the output written by hand from the semantics, never captured from the code."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from haops import inventory
from haops.apply.execute import restore_script
from haops.apply.facts import HostFacts, TargetState, fact_script, parse_facts
from haops.apply.plan import FilePlan, TargetPlan, plan_host, sha256
from haops.apply.remote_check import check_script, parse_check_output
from haops.cli.apply import select_hosts
from haops.errors import UserError
from haops.inventory.model import Inventory
from haops.targets.base import Check, RenderedFile, Target
from haops.targets.daemon import Daemon

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "plan"
EXAMPLE = ROOT / "inventories" / "example.yml"


def cases(name: str) -> list[Any]:
    loaded = yaml.safe_load((DATA / f"{name}.yml").read_text())
    return [pytest.param(case, id=case.get("name") or str(case.get("limit"))) for case in loaded]


def digest(value: Any) -> str | None:
    """A hash as the data writes it: null, a literal, or {sha256_of: TEXT}."""
    if isinstance(value, dict):
        return hashlib.sha256(value["sha256_of"].encode()).hexdigest()
    return value  # type: ignore[no-any-return]


def octal(modes: dict[str, str]) -> dict[str, int]:
    return {path: int(mode, 8) for path, mode in modes.items()}


def fill(value: Any, root: str) -> Any:
    """`value` with every {root} replaced, in keys and values alike."""
    if isinstance(value, str):
        return value.replace("{root}", root)
    if isinstance(value, list):
        return [fill(v, root) for v in value]
    if isinstance(value, dict):
        return {fill(k, root): fill(v, root) for k, v in value.items()}
    return value


class FakeTarget(Target):
    def __init__(self, name: str, daemon: bool = False, probe: str = "true", generation: str = "echo") -> None:
        self.name = name  # type: ignore[misc]
        self.daemon = Daemon(name, None, name, f"/run/{name}.pid", "true", "true") if daemon else None  # type: ignore[misc]
        self._probe, self._generation = probe, generation

    def probe(self) -> str:
        return self._probe

    def generation(self) -> str:
        return self._generation


def rendered_file(data: dict[str, Any]) -> RenderedFile:
    return RenderedFile(data["path"], data["text"], int(data.get("mode", "644"), 8))


def expected_facts(data: dict[str, Any], init: str) -> HostFacts:
    return HostFacts(
        init,
        {path: digest(value) for path, value in data["hashes"].items()},
        octal(data["modes"]),
        data["texts"],
        {name: TargetState(state["live"], state["generation"]) for name, state in data["targets"].items()},
    )


# --- plan_host ------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("plan_host"))
def test_plan_host(case: dict[str, Any]) -> None:
    facts_in = case["facts"]
    facts = HostFacts(
        facts_in["init"],
        {path: digest(value) for path, value in facts_in["files"].items()},
        octal(facts_in.get("modes", {})),
        {},
        {name: TargetState(s["live"], s["generation"]) for name, s in facts_in["targets"].items()},
    )
    rendered: dict[Target, list[RenderedFile]] = {FakeTarget(t["name"], t["daemon"]): [rendered_file(f) for f in t["files"]] for t in case["targets"]}
    plan = plan_host("h1", rendered, facts, case["init"])
    observed = {
        "init": plan.init,
        "is_noop": plan.is_noop,
        "changed_files": plan.changed_files,
        "targets": [{"name": t.target.name, "action": t.action, "live_generation": t.live_generation,
                     "files": [[f.file.path, f.action] for f in t.files]} for t in plan.targets],
    }
    assert observed == case["expected"]


# --- facts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("parse_facts"))
def test_parse_facts(case: dict[str, Any]) -> None:
    expected = case["expected"]
    assert parse_facts("\n".join(case["output"]) + "\n") == expected_facts(expected, expected["init"])


@pytest.mark.parametrize("case", cases("fact_script"))
def test_fact_script_read_back_by_parse_facts(case: dict[str, Any], tmp_path: Path) -> None:
    case = fill(case, str(tmp_path))
    for file in case["tree"]:
        path = Path(file["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(file["text"])
        path.chmod(int(file["mode"], 8))
    targets = [FakeTarget(t["name"], probe=t["probe"], generation=t["generation"]) for t in case["targets"]]
    done = subprocess.run(["sh", "-c", fact_script(case["paths"], case["text_paths"], targets)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    facts = parse_facts(done.stdout)
    assert facts.init in ("systemd", "none")
    assert facts == expected_facts(case["expected"], facts.init)


# --- checks on the host ---------------------------------------------------------------------------


def check(data: dict[str, Any]) -> Check:
    return Check(data["tool"], tuple(data["argv"]), data["label"], tuple(tuple(pair) for pair in data.get("env", [])))  # type: ignore[misc]


@pytest.mark.parametrize("case", cases("check_script"))
def test_check_script(case: dict[str, Any]) -> None:
    assert check_script([check(c) for c in case["checks"]]) == case["script"]


def base64_placeholders(line: str) -> str:
    return re.sub(r"\{b64:(.*)\}", lambda m: base64.b64encode(m.group(1).encode()).decode(), line, flags=re.S)


@pytest.mark.parametrize("case", cases("parse_check_output"))
def test_parse_check_output(case: dict[str, Any]) -> None:
    checks = [Check("x", ("x",), label) for label in case["labels"]]
    output = "\n".join(base64_placeholders(line) for line in case["output"]) + "\n"
    assert parse_check_output(output, checks, case["root"]) == case["failures"]


@pytest.mark.parametrize("case", cases("check_roundtrip"))
def test_check_script_run_and_parsed(case: dict[str, Any]) -> None:
    checks = [check(c) for c in case["checks"]]
    done = subprocess.run(["sh", "-c", check_script(checks)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert parse_check_output(done.stdout, checks, case["root"]) == case["failures"]


# --- rollback -------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", cases("restore_script"))
def test_restore_script(case: dict[str, Any]) -> None:
    files = tuple(FilePlan(RenderedFile(f["path"], f["text"]), digest(f["before"]), 0o644) for f in case["files"])
    plan = TargetPlan(FakeTarget("t"), files, "reload", "1")
    assert restore_script(plan, case["backup"]) == case["script"]


def test_sha256_is_the_hash_the_data_writes() -> None:
    assert sha256("old\n") == digest({"sha256_of": "old\n"}) == hashlib.sha256(b"old\n").hexdigest()


# --- host selection ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def example() -> Inventory:
    return inventory.load(EXAMPLE)


@pytest.mark.parametrize("case", cases("select_hosts"))
def test_select_hosts(case: dict[str, Any], example: Inventory) -> None:
    if "error" in case:
        with pytest.raises(UserError) as raised:
            select_hosts(example, case["limit"])
        assert case["error"] in str(raised.value)
    else:
        assert select_hosts(example, case["limit"]) == case["hosts"]


def test_apply_enables_what_it_starts_and_a_drill_only_starts_and_stops() -> None:
    """Under systemd apply enables a daemon it starts (and a rollback or retire disables it); a
    drill's stop fault must not: an aborted drill would leave the unit disabled across reboots,
    and the restart loop would time systemd's configuration reloads as downtime."""
    from haops.targets import get_target
    from haops.targets.daemon import SYSTEMD

    haproxy = get_target("haproxy")
    assert haproxy.daemon is not None
    assert haproxy.activate(SYSTEMD, False, []) == "systemctl enable --quiet --now haproxy"
    assert haproxy.stop(SYSTEMD) == "systemctl disable --quiet --now haproxy"
    assert haproxy.daemon.start_command(SYSTEMD) == "systemctl start haproxy"
    assert haproxy.daemon.stop_command(SYSTEMD) == "systemctl stop haproxy"
