"""DRBD 8.4 resources: the inventory option, the review rules and the rendered file."""

from __future__ import annotations

import pytest

from haops import inventory
from haops.errors import InventoryError
from haops.targets import get_target
from haops.targets.base import RenderContext
from tests.test_bind_drbd_units import drbd_problems, the_problem

pytestmark = pytest.mark.unit


def rendered(extra: str, host: str = "s1") -> str:
    yaml = f"""
hosts:
  s1: {{address: 10.213.0.51}}
  s2: {{address: "fd00:213::52"}}
drbd:
  r0:
    nodes: [s1, s2]
    disk: /dev/vdb
{extra}
"""
    [file] = get_target("drbd").render(inventory.parse(yaml, "drbd.yml"), host, RenderContext())
    return file.text


@pytest.mark.parametrize(("written", "version"), [("9", "9"), ('"9"', "9"), ('"8.4"', "8.4"), ("8.4", "8.4"), (None, "9")])
def test_version_is_read_as_text(written: str | None, version: str) -> None:
    extra = f"    version: {written}" if written is not None else ""
    yaml = f"hosts:\n  s1: {{address: 10.213.0.51}}\n  s2: {{address: 10.213.0.52}}\ndrbd:\n  r0:\n    nodes: [s1, s2]\n    disk: /dev/vdb\n{extra}\n"
    assert inventory.parse(yaml, "drbd.yml").drbd["r0"].version == version


@pytest.mark.parametrize("written", ['"8.3"', "9.0", '"9.2"', "true", "[8.4]", '"drbd9"'])
def test_other_versions_are_refused_at_their_path(written: str) -> None:
    path, message = the_problem(f"    version: {written}")
    assert path == "drbd.r0.version"
    assert 'must be 9 (DRBD 9) or "8.4"' in message


def test_84_needs_exactly_two_nodes() -> None:
    path, message = the_problem('    version: "8.4"', nodes="[s1, s2, s3]")
    assert path == "drbd.r0.nodes"
    assert "exactly two nodes, not 3" in message


@pytest.mark.parametrize("quorum", ["majority", "all"])
def test_84_refuses_quorum(quorum: str) -> None:
    path, message = the_problem(f'    version: "8.4"\n    quorum: {quorum}')
    assert path == "drbd.r0.quorum"
    assert f"quorum {quorum}: quorum exists in DRBD 9 only" in message


def test_84_without_fencing_is_told_to_fence_not_to_use_quorum() -> None:
    path, message = the_problem('    version: "8.4"\n    fencing: dont-care')
    assert path == "drbd.r0.fencing"
    assert "use fencing resource-only" in message
    assert "quorum majority" not in message


def test_84_defaults_pass_review() -> None:
    assert drbd_problems('    version: "8.4"') == []


def test_one_host_cannot_run_both_versions() -> None:
    yaml = """
hosts:
  s1: {address: 10.213.0.51}
  s2: {address: 10.213.0.52}
drbd:
  r0: {nodes: [s1, s2], disk: /dev/vdb}
  r1: {nodes: [s1, s2], disk: /dev/vdc, minor: 1, port: 7790, version: "8.4"}
"""
    with pytest.raises(InventoryError) as error:
        inventory.parse(yaml, "drbd.yml")
    [problem, *others] = error.value.problems
    assert problem.path == "drbd.r1.version"
    assert "s1 has resources of both DRBD versions (r0 (9), r1 (8.4))" in problem.message
    assert [p.path for p in others] == ["drbd.r1.version"]  # and the same for s2


def test_84_file_has_no_drbd9_keywords() -> None:
    text = rendered('    version: "8.4"\n    quorum: "off"')
    for keyword in ("node-id", "connection-mesh", "options", "quorum"):
        assert keyword not in text


def test_84_fencing_is_in_disk_not_net() -> None:
    text = rendered('    version: "8.4"\n    fencing: resource-and-stonith\n    allow_two_primaries: true')
    disk = text.split("    disk {\n", 1)[1].split("    }", 1)[0]
    net = text.split("    net {\n", 1)[1].split("    }", 1)[0]
    assert disk.strip() == "fencing resource-and-stonith;"
    assert "fencing" not in net and "allow-two-primaries yes;" in net


def test_84_ipv6_address_is_bracketed_with_its_family() -> None:
    assert "address ipv6 [fd00:213::52]:7789;" in rendered('    version: "8.4"')


@pytest.mark.parametrize("line", [
    "block drbd0: Split-Brain detected but unresolved, dropping connection!",            # Linux 6.1 (Debian 12)
    "drbd r0/0 drbd0: Split-Brain detected but unresolved, dropping connection!",        # Linux 6.2 and later
    "drbd r0: Split-Brain detected but unresolved, dropping connection!",
])
def test_84_split_brain_is_read_from_the_kernel_log_of_any_kernel(line: str) -> None:
    from haops.targets.drbd import v84

    resource = inventory.parse("hosts:\n  s1: {address: 10.213.0.51}\n  s2: {address: 10.213.0.52}\n"
                               "drbd:\n  r0: {nodes: [s1, s2], disk: /dev/vdb, version: '8.4'}\n", "drbd.yml").drbd["r0"]
    assert v84.parse_kernel_log(f"[ 12.3] {line}", resource, "s2").split_brain == frozenset([("r0", "s2")])
    assert v84.parse_kernel_log(f"[ 12.3] {line.replace('r0', 'r1').replace('drbd0', 'drbd1')}", resource, "s2").split_brain == frozenset()


def test_84_tools_run_without_their_version_mismatch_warning() -> None:
    from haops.targets.drbd import v84

    yaml = "hosts:\n  s1: {address: 10.213.0.51}\n  s2: {address: 10.213.0.52}\ndrbd:\n  r0: {nodes: [s1, s2], disk: /dev/vdb%s}\n"
    old = inventory.parse(yaml % ", version: '8.4'", "drbd.yml").drbd["r0"]
    new = inventory.parse(yaml % "", "drbd.yml").drbd["r0"]
    assert v84.quietly(old, "drbdadm-84 up r0").splitlines() == ["export DRBD_DONT_WARN_ON_VERSION_MISMATCH=1", "drbdadm-84 up r0"]
    assert v84.quietly(new, "drbdadm up r0") == "drbdadm up r0"
