"""Unit tests: BIND zone serials and zone review, DRBD refusals of dangerous combinations."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

import pytest

from haops import inventory
from haops.errors import InventoryError
from haops.inventory.model import Inventory
from haops.targets import get_target
from haops.targets.base import RenderContext, RenderedFile
from haops.targets.bind import next_serial, rrset_orders, serial_in
from tests.conftest import GOLDEN

pytestmark = pytest.mark.unit
TODAY = date(2026, 1, 2)
ZONE_PATH = "/etc/bind/haops/db.example.test"


def zone_text(serial: int, www: str = "10.213.0.21") -> str:
    return (
        "$TTL 60\n"
        "@ IN SOA dns1.example.test. hostmaster.example.test. (\n"
        f"        {serial} ; serial YYYYMMDDnn, changed only when the content changes\n"
        "        3600 ; refresh\n"
        "        )\n"
        f"www IN A {www}\n"
    )


# --- next_serial ----------------------------------------------------------------------


def test_no_live_file_gives_todays_first_serial() -> None:
    assert next_serial(TODAY, zone_text(0), None) == 2026010201


def test_same_content_keeps_the_live_serial_even_from_another_day() -> None:
    assert next_serial(TODAY, zone_text(0), zone_text(2025120703)) == 2025120703


def test_changed_content_after_yesterdays_serial_starts_today_at_01() -> None:
    assert next_serial(TODAY, zone_text(0, www="10.213.0.99"), zone_text(2026010107)) == 2026010201


def test_changed_content_after_todays_05_gives_06() -> None:
    assert next_serial(TODAY, zone_text(0, www="10.213.0.99"), zone_text(2026010205)) == 2026010206


def test_more_than_99_changes_a_day_keep_counting() -> None:
    assert next_serial(TODAY, zone_text(0, www="10.213.0.99"), zone_text(2026010299)) == 2026010300


def test_serial_never_goes_backwards_from_a_future_live_serial() -> None:
    assert next_serial(TODAY, zone_text(0, www="10.213.0.99"), zone_text(2030010101)) == 2030010102


@pytest.mark.parametrize("garbage", ["", "not a zone file\n", "@ IN SOA a. b. ( 12 3 4 5 6 )\n", zone_text(0), zone_text(4294967295)])
def test_unreadable_live_file_gives_a_fresh_serial(garbage: str) -> None:
    assert next_serial(TODAY, zone_text(0), garbage) == 2026010201


def test_serial_in_reads_only_the_serial_line() -> None:
    assert serial_in(zone_text(2026010203)) == 2026010203
    assert serial_in("www IN A 10.0.0.1 ; serial\n") is None


# --- the BIND target ------------------------------------------------------------------


def load_case(name: str) -> Inventory:
    return inventory.load(GOLDEN / "bind" / name / "inventory.yml")


def zone_file(inv: Inventory, host: str, context: RenderContext, path: str = ZONE_PATH) -> RenderedFile:
    [file] = [f for f in get_target("bind").render(inv, host, context) if f.path == path]
    return file


def test_rerender_on_a_later_day_keeps_the_serial_when_nothing_changed() -> None:
    inv = load_case("roundrobin-one-server")
    first = zone_file(inv, "dns1", RenderContext(today=TODAY))
    again = zone_file(inv, "dns1", RenderContext(today=date(2026, 3, 1), live={ZONE_PATH: first.text}))
    assert again.text == first.text
    assert serial_in(again.text) == 2026010201


def test_rerender_bumps_the_serial_when_a_record_changes() -> None:
    inv = load_case("roundrobin-one-server")
    first = zone_file(inv, "dns1", RenderContext(today=TODAY))
    zone = inv.zones["example.test"]
    changed = dataclasses.replace(inv, zones={"example.test": dataclasses.replace(zone, records=zone.records[:1])})
    again = zone_file(changed, "dns1", RenderContext(today=TODAY, live={ZONE_PATH: first.text}))
    assert serial_in(again.text) == 2026010202


def test_live_files_of_other_paths_do_not_count() -> None:
    inv = load_case("roundrobin-one-server")
    file = zone_file(inv, "dns1", RenderContext(today=TODAY, live={"/etc/bind/haops/db.other.test": zone_text(2026010250)}))
    assert serial_in(file.text) == 2026010201


def test_bind_hosts_are_the_zone_servers_only() -> None:
    inv = load_case("two-servers-delegation")
    assert get_target("bind").hosts(inv) == ("dns1", "dns2", "dns3")
    assert get_target("bind").hosts(load_case("roundrobin-one-server")) == ("dns1",)


def test_one_order_for_all_zones_is_a_plain_order_line() -> None:
    inv = load_case("roundrobin-one-server")
    assert rrset_orders(list(inv.zones.values())) == [(None, "cyclic")]


def test_different_orders_match_the_deepest_zone_first() -> None:
    inv = load_case("two-servers-delegation")
    orders = rrset_orders(list(inv.zones.values()))
    assert orders[:2] == [("app.example.test", "random"), ("*.app.example.test", "random")]
    assert orders[2:] == [("example.test", "cyclic"), ("*.example.test", "cyclic")]


UNORDERED_ZONE_YAML = """
hosts:
  dns1: 10.213.0.31
  dns2: 10.213.0.32
  dns3: 10.213.0.33
zones:
  example.test:
    servers: [dns1]
    records:
      www: [10.213.0.10, 10.213.0.100, 10.213.0.9]
      '@': 10.213.0.5
      api: 10.213.0.7
    delegate:
      shop: [dns3]
      app: [dns2]
"""


def test_zone_lines_come_in_canonical_order_not_inventory_order() -> None:
    file = zone_file(inventory.parse(UNORDERED_ZONE_YAML, "zones.yml"), "dns1", RenderContext(today=TODAY))
    body = file.text.split("        )\n", 1)[1]
    assert [line for line in body.splitlines() if line and not line.startswith(";")] == [
        "@ IN NS dns1.example.test.",
        "@ IN A 10.213.0.5",
        "api IN A 10.213.0.7",
        "www IN A 10.213.0.9",
        "www IN A 10.213.0.10",
        "www IN A 10.213.0.100",
        "app IN NS dns2.example.test.",
        "shop IN NS dns3.example.test.",
        "dns1.example.test. IN A 10.213.0.31",
        "dns2.example.test. IN A 10.213.0.32",
        "dns3.example.test. IN A 10.213.0.33",
    ]


def test_named_conf_lists_zones_by_name() -> None:
    inv = load_case("two-servers-delegation")
    [config] = [f for f in get_target("bind").render(inv, "dns2", RenderContext(today=TODAY)) if f.path == "/etc/bind/named.conf"]
    assert config.text.index('zone "app.example.test"') < config.text.index('zone "example.test"')


# --- review_zone ----------------------------------------------------------------------

ZONE_YAML = """
hosts:
  dns1: {{address: 10.213.0.31}}
  dns2: {{address: 10.213.0.32}}
zones:
  example.test:
    servers: [dns1]
{extra}
"""


def reviewed(extra: str) -> list[tuple[str, str]]:
    """The review's problems as the inventory reports them: (key path, message), with the line."""
    try:
        inventory.parse(ZONE_YAML.format(extra=extra), "zones.yml")
    except InventoryError as error:
        assert all(problem.line for problem in error.problems)
        return [(problem.path, problem.message) for problem in error.problems]
    return []


def test_a_plain_zone_passes_review() -> None:
    assert reviewed("    records: {www: [10.213.0.21, 10.213.0.22], '@': 10.213.0.21}\n    delegate: {app: [dns2]}") == []


def test_fixed_order_is_refused_because_debian_bind_lacks_it() -> None:
    [(path, message)] = reviewed("    rrset_order: fixed")
    assert path == "zones.example.test.rrset_order"
    assert "disabled at compilation time" in message and "cyclic" in message


def test_record_named_like_a_name_server_is_refused() -> None:
    [(path, message)] = reviewed("    records: {dns1: 10.213.0.99}")
    assert path == "zones.example.test.records.dns1"
    assert "name server" in message


def test_record_inside_a_delegation_is_refused() -> None:
    [(path, message)] = reviewed("    records: {www.app: 10.213.0.99}\n    delegate: {app: [dns2]}")
    assert path == "zones.example.test.records.www.app"
    assert "inside the delegation of app.example.test" in message


def test_underscore_in_an_a_record_name_is_refused() -> None:
    [(path, message)] = reviewed("    records: {_svc: 10.213.0.99}")
    assert path == "zones.example.test.records._svc"
    assert "check-names" in message


def test_apex_delegation_is_refused() -> None:
    [(path, message)] = reviewed("    delegate: {'@': [dns2]}")
    assert path == "zones.example.test.delegate.@"
    assert "apex cannot be delegated" in message


def test_apex_as_contact_is_refused() -> None:
    [(path, message)] = reviewed("    contact: '@'")
    assert path == "zones.example.test.contact"
    assert "not a mailbox" in message


# --- DRBD -----------------------------------------------------------------------------

DRBD_YAML = """
hosts:
  s1: {{address: 10.213.0.51}}
  s2: {{address: 10.213.0.52}}
  s3: {{address: 10.213.0.53}}
drbd:
  r0:
    nodes: {nodes}
    disk: /dev/vdb
{extra}
"""


def drbd_problems(extra: str, nodes: str = "[s1, s2]") -> list[tuple[str, str]]:
    try:
        inventory.parse(DRBD_YAML.format(extra=extra, nodes=nodes), "drbd.yml")
    except InventoryError as error:
        return [(problem.path, problem.message) for problem in error.problems]
    return []


def the_problem(extra: str, nodes: str = "[s1, s2]") -> tuple[str, str]:
    problems = drbd_problems(extra, nodes)
    assert len(problems) == 1, problems
    return problems[0]


def test_defaults_pass_review() -> None:
    assert drbd_problems("") == []


def test_discard_zero_changes_is_fine() -> None:
    assert drbd_problems("    after_sb_0pri: discard-zero-changes") == []


@pytest.mark.parametrize("key", ["after_sb_1pri", "after_sb_2pri"])
def test_violently_as0p_is_refused(key: str) -> None:
    path, message = the_problem(f"    {key}: violently-as0p")
    assert path == f"drbd.r0.{key}"
    assert f"{key} violently-as0p" in message
    assert "throws away data the primary has already written" in message
    assert "use disconnect" in message


@pytest.mark.parametrize("key", ["after_sb_1pri", "after_sb_2pri"])
def test_pri_lost_handler_policy_is_refused_without_handlers(key: str) -> None:
    path, message = the_problem(f"    {key}: call-pri-lost-after-sb")
    assert path == f"drbd.r0.{key}"
    assert "no DRBD handlers" in message


def test_no_fencing_and_no_quorum_is_refused() -> None:
    path, message = the_problem("    fencing: dont-care")
    assert path == "drbd.r0.fencing"
    assert "fencing dont-care with quorum off" in message
    assert "split brain" in message
    assert "resource-only" in message


def test_no_fencing_is_fine_with_quorum_on_three_nodes() -> None:
    assert drbd_problems("    fencing: dont-care\n    quorum: majority", nodes="[s1, s2, s3]") == []


def test_two_primaries_need_stonith_fencing() -> None:
    path, message = the_problem("    allow_two_primaries: true")
    assert path == "drbd.r0.fencing"
    assert "allow_two_primaries with fencing resource-only" in message
    assert "resource-and-stonith" in message


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_two_primaries_need_protocol_c(protocol: str) -> None:
    path, message = the_problem(f"    allow_two_primaries: true\n    fencing: resource-and-stonith\n    protocol: {protocol}")
    assert path == "drbd.r0.protocol"
    assert f"protocol {protocol} with allow_two_primaries" in message
    assert "use protocol C" in message


def test_two_primaries_with_stonith_and_protocol_c_pass() -> None:
    assert drbd_problems("    allow_two_primaries: true\n    fencing: resource-and-stonith\n    protocol: C") == []


def test_quorum_majority_on_two_nodes_is_refused() -> None:
    path, message = the_problem("    quorum: majority")
    assert path == "drbd.r0.quorum"
    assert "1 of 2, not a majority" in message
    assert "diskless tiebreaker" in message


def test_quorum_majority_on_three_nodes_passes() -> None:
    assert drbd_problems("    quorum: majority", nodes="[s1, s2, s3]") == []


def test_every_problem_is_reported_at_once() -> None:
    paths = [path for path, _ in drbd_problems("    after_sb_1pri: violently-as0p\n    after_sb_2pri: violently-as0p\n    quorum: majority")]
    assert sorted(paths) == ["drbd.r0.after_sb_1pri", "drbd.r0.after_sb_2pri", "drbd.r0.quorum"]


def test_secret_makes_the_file_private_and_masked() -> None:
    inv = inventory.parse(DRBD_YAML.format(extra="    secret: S3cret.value", nodes="[s1, s2]"), "drbd.yml")
    [file] = get_target("drbd").render(inv, "s1", RenderContext())
    assert file.mode == 0o600
    assert file.secrets == ("S3cret.value",)
    assert 'cram-hmac-alg sha256;\n        shared-secret "S3cret.value";' in file.text


def test_without_secret_there_is_no_authentication_block() -> None:
    inv = inventory.parse(DRBD_YAML.format(extra="", nodes="[s1, s2]"), "drbd.yml")
    [file] = get_target("drbd").render(inv, "s2", RenderContext())
    assert file.mode == 0o644 and file.secrets == ()
    assert "shared-secret" not in file.text and "cram-hmac-alg" not in file.text


def test_every_node_gets_the_same_text_and_checks_as_itself() -> None:
    inv = inventory.parse(DRBD_YAML.format(extra="", nodes="[s1, s2, s3]"), "drbd.yml")
    target = get_target("drbd")
    texts = {host: target.render(inv, host, RenderContext())[0].text for host in target.hosts(inv)}
    assert sorted(texts) == ["s1", "s2", "s3"] and len(set(texts.values())) == 1
    [check] = target.checks(inv, "s3", Path("/tmp/tree"))
    assert check.env == (("__DRBD_NODE__", "s3"),)
    assert check.argv == ("drbdadm", "-c", "/tmp/tree/etc/drbd.d/r0.res", "dump", "r0")
