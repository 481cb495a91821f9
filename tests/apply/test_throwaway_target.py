"""A target defined only in the test suite goes through every stage: render, validate, plan,
apply, a second apply that changes nothing, and verify's state checks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from haops.apply.run import ApplyOptions, HostOutcome, apply
from haops.apply.validation import check_files, validate
from haops.cli import main
from haops.session import settings_for
from haops.targets import registered, targets_by_host
from haops.targets.base import RenderContext
from haops.transport import SshSettings
from haops.verify.state import state_checks
from tests.apply.conftest import Cluster
from tests.throwaway.motd import MOTD, PUBLISH, PUBLISHED, MotdTarget

pytestmark = pytest.mark.lab
HOST = "web1"


@pytest.fixture(scope="module")
def motd(cluster: Cluster) -> Iterator[MotdTarget]:
    with registered(MotdTarget(on=(HOST,))) as target:
        yield target
    cluster.sh(HOST, "rm -rf /etc/haops-throwaway /run/haops-throwaway")


def settings(cluster: Cluster) -> SshSettings:
    return dataclasses.replace(settings_for(cluster.inventory), connect_timeout_s=3)


def run_apply(cluster: Cluster) -> HostOutcome:
    outcomes = apply(cluster.inventory, [HOST], ApplyOptions(), settings(cluster), lambda host, step: None)
    assert [o.report.host for o in outcomes] == [HOST]
    return outcomes[0]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    return code, capsys.readouterr().out


def test_renders_through_the_cli(cluster: Cluster, motd: MotdTarget, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(capsys, "render", "motd", "-i", str(cluster.path))
    assert code == 0, out
    assert f"# ==> {HOST}:{MOTD} <==" in out and f"# ==> {HOST}:{PUBLISH} <==" in out
    assert "host: web1\naddress: 10.213.10.21\n" in out
    assert "web2" not in out, "only the hosts the target names"


def test_validates_with_its_real_checkers(cluster: Cluster, motd: MotdTarget) -> None:
    results = validate(cluster.inventory, [motd])
    assert [(r.host, r.target, r.status, r.checks) for r in results] == [
        (HOST, "motd", "ok", ("sh -n publish.sh", "motd names its host"))]


def test_its_checkers_refuse_broken_files(cluster: Cluster, motd: MotdTarget) -> None:
    files = {f.path: f for f in motd.render(cluster.inventory, HOST, RenderContext())}
    broken_script = [files[MOTD], dataclasses.replace(files[PUBLISH], text="if then fi\n")]
    wrong_host = [dataclasses.replace(files[MOTD], text="host: web2\n"), files[PUBLISH]]
    assert check_files(motd, cluster.inventory, HOST, broken_script).status == "failed"
    assert check_files(motd, cluster.inventory, HOST, wrong_host).status == "failed"


def test_check_plans_it_after_the_built_in_targets_and_changes_nothing(cluster: Cluster, motd: MotdTarget,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert [t.name for t in targets_by_host(cluster.inventory, [HOST])[HOST]][-1] == "motd"
    code, out = cli(capsys, "apply", "--check", "-i", str(cluster.path), "--limit", HOST)
    assert code == 0, out
    assert f"{HOST}: create {MOTD}" in out and f"{HOST}: create {PUBLISH}" in out
    assert "motd:activate" in out
    assert cluster.sh(HOST, "ls -A /etc/haops-throwaway /run/haops-throwaway 2>&1 || true").count("No such file") == 2


def test_apply_installs_activates_and_proves_it(cluster: Cluster, motd: MotdTarget) -> None:
    outcome = run_apply(cluster)
    assert outcome.report.ok, outcome.report.messages
    assert {MOTD, PUBLISH} <= set(outcome.report.changed)
    assert "motd:activate" in outcome.report.reloads
    assert cluster.sh(HOST, f"cat {PUBLISHED}") == "haops throwaway motd\nhost: web1\naddress: 10.213.10.21\n"
    assert cluster.sh(HOST, f"stat -c %a {PUBLISH}").strip() == "755"


def test_second_apply_changes_nothing(cluster: Cluster, motd: MotdTarget) -> None:
    before = cluster.sh(HOST, f"stat -c %Y.%i {MOTD} {PUBLISHED}")
    outcome = run_apply(cluster)
    assert outcome.report.ok, outcome.report.messages
    assert (outcome.report.changed, outcome.report.reloads) == ([], [])
    assert outcome.plan is not None and outcome.plan.is_noop
    assert cluster.sh(HOST, f"stat -c %Y.%i {MOTD} {PUBLISHED}") == before


def test_a_lost_published_copy_is_activated_again(cluster: Cluster, motd: MotdTarget) -> None:
    cluster.sh(HOST, f"rm -f {PUBLISHED}")
    outcome = run_apply(cluster)
    assert outcome.report.ok, outcome.report.messages
    assert (outcome.report.changed, outcome.report.reloads) == ([], ["motd:activate"])
    cluster.sh(HOST, f"cmp {MOTD} {PUBLISHED}")


def test_verify_runs_and_passes_its_state_check(cluster: Cluster, motd: MotdTarget) -> None:
    results = state_checks(cluster.inventory, settings(cluster), [HOST])
    ours = [r for r in results if r.check == "motd"]
    assert [(r.subject, r.status) for r in ours] == [(f"{HOST} {PUBLISHED}", "pass")]
    assert [r for r in results if r.subject == f"{HOST} motd"][0].status == "pass", "its files match the render"
    assert [r for r in results if r.failed] == []


def test_verify_fails_its_state_check_on_a_hand_edited_copy(cluster: Cluster, motd: MotdTarget) -> None:
    cluster.sh(HOST, f"echo 'host: web9' > {PUBLISHED}")
    try:
        ours = [r for r in state_checks(cluster.inventory, settings(cluster), [HOST]) if r.check == "motd"]
        assert [r.status for r in ours] == ["fail"]
    finally:
        cluster.sh(HOST, f"cp {MOTD} {PUBLISHED}")

