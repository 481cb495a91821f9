"""Pure logic of the iptables, LVS and keepalived targets: reviews, exact nth splits, parse-back."""

from __future__ import annotations

import subprocess
from collections import Counter
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from haops import inventory
from haops.errors import InventoryError
from haops.targets import iptables, keepalived, lvs
from haops.targets.base import RenderContext
from tests.conftest import GOLDEN

pytestmark = pytest.mark.unit

HOSTS = """
hosts:
  lb1:  {address: 10.213.0.11, groups: [lb]}
  lb2:  {address: 10.213.0.12, groups: [lb]}
  web1: {address: 10.213.0.21, groups: [web]}
  web2: {address: 10.213.0.22, groups: [web]}
  web3: {address: 10.213.0.23, groups: [web]}
"""


def service_yaml(balancer: str, extra: str = "", backends: str = "{group: web, port: 8080}") -> str:
    return HOSTS + f"""
services:
  www:
    vip: 10.213.0.100
    port: 80
    balancer: {balancer}
    backends: {backends}
{extra}"""


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(InventoryError) as caught:
        inventory.parse(text, "inv.yml")
    return {p.path: p.message for p in caught.value.problems}


# --- iptables review ---------------------------------------------------------------------------


def test_iptables_refuses_health_checks() -> None:
    problems = problems_of(service_yaml("iptables", "    health: {path: /health}\n"))
    assert "no health checks" in problems["services.www.health"]
    assert "lvs" in problems["services.www.health"] and "haproxy" in problems["services.www.health"]


@pytest.mark.parametrize("sticky", ["cookie", "source"])
def test_iptables_refuses_stickiness(sticky: str) -> None:
    problems = problems_of(service_yaml("iptables", f"    sticky: {sticky}\n"))
    assert f"sticky {sticky} is impossible with nth DNAT" in problems["services.www.sticky"]


def test_iptables_refuses_backup_backends() -> None:
    backends = "[web1, web2, {host: web3, backup: true}]"
    problems = problems_of(service_yaml("iptables", "    backend_port: 8080\n", backends))
    assert "no backup servers" in problems["services.www.backends"]


def test_iptables_refuses_other_algorithms() -> None:
    problems = problems_of(service_yaml("iptables", "    algorithm: leastconn\n"))
    assert problems["services.www.algorithm"] == "'leastconn' is not an algorithm of iptables; allowed: nth, roundrobin"


# --- iptables chains, slots and the exact split -------------------------------------------------------


def test_chain_names_fit_the_kernel_limit_and_stay_unique() -> None:
    assert iptables.service_chain("www") == "HAOPS-www"
    longest = "a" * 32
    assert len(iptables.service_chain(longest)) <= iptables.MAX_CHAIN_NAME
    assert iptables.service_chain(longest) != iptables.service_chain(longest[:-1] + "b")
    assert iptables.service_chain("PREROUTING") != "HAOPS-PREROUTING"


def test_weights_become_smooth_slots_reduced_by_gcd() -> None:
    inv = inventory.parse(service_yaml("iptables", backends="[{host: web1, port: 8080, weight: 6}, "
                                       "{host: web2, port: 8080, weight: 2}, {host: web3, port: 8080, weight: 4}]"))
    order = [b.host for b in iptables.slots(inv.services["www"].backends)]
    assert order == ["web1", "web3", "web1", "web2", "web3", "web1"]


def equal_rules(count: int) -> list[iptables.NthRule]:
    return [iptables.NthRule(f"b{i}", count - i if i < count - 1 else None) for i in range(count)]


@pytest.mark.parametrize("count", [2, 3, 4, 7])
def test_every_n_minus_i_packet_zero_splits_equal_backends_exactly(count: int) -> None:
    for cycles in (1, 5):
        assert iptables.simulate_split(equal_rules(count), count * cycles) == Counter({f"b{i}": cycles for i in range(count)})


def test_naive_every_n_packet_i_recipe_is_skewed() -> None:
    """Pain point 10: `--every 3 --packet i` on per-rule counters does not split 1/3 each."""
    naive = [iptables.NthRule(f"b{i}", 3, i) for i in range(3)]
    split = iptables.simulate_split(naive, 27_000)
    assert split["b0"] == 9000
    assert split["b1"] == 6000 and split["b2"] == 4000
    assert split[iptables.NOT_BALANCED] == 8000
    last_unconditional = naive[:2] + [iptables.NthRule("b2")]
    assert iptables.simulate_split(last_unconditional, 27_000) == Counter({"b0": 9000, "b1": 6000, "b2": 12000})


def rendered_rules(case: str) -> str:
    inv = inventory.load(GOLDEN / "iptables" / case / "inventory.yml")
    [file] = iptables.TARGET.render(inv, "lb1", RenderContext())
    return file.text


def test_rendered_equal_split_is_exact_over_full_cycles() -> None:
    rules = iptables.parse_dnat_chain(rendered_rules("equal-three"), "HAOPS-www")
    assert [(r.every, r.packet) for r in rules] == [(3, 0), (2, 0), (None, 0)]
    split = iptables.simulate_split(rules, 300)
    assert split == Counter({"10.213.0.21:8080": 100, "10.213.0.22:8080": 100, "10.213.0.23:8080": 100})


def test_rendered_weighted_split_is_exact_over_full_cycles() -> None:
    text = rendered_rules("weighted-3-1-2")
    www = iptables.simulate_split(iptables.parse_dnat_chain(text, "HAOPS-www"), 6 * 50)
    assert www == Counter({"10.213.0.21:8080": 150, "10.213.0.22:8080": 50, "10.213.0.23:8080": 100})
    api_chain = iptables.service_chain("customer-facing-api-gateway")
    api = iptables.simulate_split(iptables.parse_dnat_chain(text, api_chain), 3 * 10)
    assert api == Counter({"10.213.0.21:8443": 10, "10.213.0.22:8443": 20})


def test_weighted_split_stays_even_within_a_cycle() -> None:
    """Smooth order: after any prefix, no backend is more than one slot ahead of its share."""
    rules = iptables.parse_dnat_chain(rendered_rules("weighted-3-1-2"), "HAOPS-www")
    shares = {"10.213.0.21:8080": 3 / 6, "10.213.0.22:8080": 1 / 6, "10.213.0.23:8080": 2 / 6}
    for connections in range(1, 13):
        split = iptables.simulate_split(rules, connections)
        assert all(abs(split[d] - share * connections) < 1 for d, share in shares.items())


def test_rules_touch_only_haops_chains() -> None:
    text = rendered_rules("weighted-3-1-2")
    rule_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert rule_lines[0] == "*nat" and rule_lines[-1] == "COMMIT"
    for line in rule_lines[1:-1]:
        assert line.startswith((":HAOPS-", "-A HAOPS-")), line
        assert line.startswith(":") or '-m comment --comment "haops ' in line


def test_hook_rules_are_data_for_hosts_with_iptables_services() -> None:
    inv = inventory.load(GOLDEN / "iptables" / "equal-three" / "inventory.yml")
    assert iptables.hook_rules(inv, "lb1") == [
        ("nat", "PREROUTING", "HAOPS-PREROUTING"),
        ("nat", "OUTPUT", "HAOPS-OUTPUT"),
        ("nat", "POSTROUTING", "HAOPS-POSTROUTING"),
    ]
    assert iptables.hook_rules(inv, "web1") == []


# --- LVS review -------------------------------------------------------------------------------------


def test_lvs_rr_with_differing_weights_is_refused() -> None:
    backends = "[{host: web1, port: 8080, weight: 2}, {host: web2, port: 8080}]"
    problems = problems_of(service_yaml("lvs", "    algorithm: roundrobin\n", backends))
    assert problems["services.www.algorithm"] == "rr ignores weights, but the backends' weights differ; use wrr"


def test_lvs_lc_with_differing_weights_is_refused() -> None:
    backends = "[{host: web1, port: 8080, weight: 2}, {host: web2, port: 8080}]"
    problems = problems_of(service_yaml("lvs", "    algorithm: leastconn\n", backends))
    assert "use wlc" in problems["services.www.algorithm"]


def test_lvs_refuses_cookie_stickiness() -> None:
    problems = problems_of(service_yaml("lvs", "    sticky: cookie\n"))
    assert "never sees HTTP cookies" in problems["services.www.sticky"]
    assert "sticky: source" in problems["services.www.sticky"]


def test_lvs_dr_mode_refuses_a_different_backend_port() -> None:
    problems = problems_of(service_yaml("lvs", "    lvs: {mode: dr}\n"))
    message = problems["services.www.lvs.mode"]
    assert "DR mode forwards packets unchanged" in message
    assert "web1:8080, web2:8080, web3:8080 differ" in message


def test_lvs_sticky_source_means_persistence_300_unless_set() -> None:
    sticky = inventory.parse(service_yaml("lvs", "    sticky: source\n"))
    assert lvs.persistence_s(sticky.services["www"]) == 300
    explicit = inventory.parse(service_yaml("lvs", "    sticky: source\n    lvs: {persistence: 30s}\n"))
    assert lvs.persistence_s(explicit.services["www"]) == 30
    plain = inventory.parse(service_yaml("lvs"))
    assert lvs.persistence_s(plain.services["www"]) is None


def test_lvs_algorithm_aliases_map_to_schedulers() -> None:
    inv = inventory.parse(service_yaml("lvs", "    algorithm: source\n"))
    assert inv.services["www"].method == "sh"


# --- LVS rules parse-back ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["wrr-nat-http", "sh-dr-persistence"])
def test_rules_round_trip_to_the_model(case: str) -> None:
    inv = inventory.load(GOLDEN / "lvs" / case / "inventory.yml")
    for host in lvs.TARGET.hosts(inv):
        [file] = lvs.TARGET.render(inv, host, RenderContext())
        parsed = lvs.parse_rules(file.text)
        expected = [
            (s.vip, s.port, s.method, lvs.persistence_s(s), [(b.address, b.port, lvs.mode(s), b.weight) for b in s.backends])
            for s in sorted(inv.services.values(), key=lambda s: s.name) if host in s.hosts
        ]
        got = [(v.address, v.port, v.scheduler, v.persistence_s,
                [(r.address, r.port, r.mode, r.weight) for r in v.real_servers]) for v in parsed]
        assert got == expected


def test_round_trip_sees_the_sticky_default() -> None:
    inv = inventory.load(GOLDEN / "lvs" / "sh-dr-persistence" / "inventory.yml")
    [file] = lvs.TARGET.render(inv, "lb1", RenderContext())
    app, www = lvs.parse_rules(file.text)
    assert (www.scheduler, www.persistence_s, {r.mode for r in www.real_servers}) == ("sh", 300, {"dr"})
    assert (app.scheduler, app.persistence_s, app.real_servers[0]) == ("wlc", 600, lvs.RealServer(IPv4Address("10.213.0.21"), 9443, "nat", 3))


GOOD_RULES = "-A -t 10.0.0.1:80 -s wrr\n-a -t 10.0.0.1:80 -r 10.0.0.2:8080 -m -w 2\n"


@pytest.mark.parametrize(("text", "reason"), [
    (GOOD_RULES + "-a -t 10.0.0.9:80 -r 10.0.0.3:8080 -m -w 1\n", "not defined above"),
    (GOOD_RULES.replace("wrr", "fastest"), "unknown scheduler"),
    (GOOD_RULES.replace("-w 2", "-w 2 -x 5"), "not '-A -t"),
    (GOOD_RULES.replace("10.0.0.2", "10.0.0.256"), "Octet 256"),
    (GOOD_RULES.replace(":8080", ":70000"), "port 70000 out of range"),
    (GOOD_RULES + GOOD_RULES.splitlines()[1] + "\n", "real server listed twice"),
    (GOOD_RULES + GOOD_RULES.splitlines()[0] + "\n", "virtual service defined twice"),
    (GOOD_RULES.replace("-m -w", "-g -w"), "DR real server must use the virtual service's port"),
])
def test_parse_rules_refuses_malformed_lines(text: str, reason: str) -> None:
    with pytest.raises(lvs.RulesError, match=reason):
        lvs.parse_rules(text)


def test_parse_rules_ignores_comments_and_blank_lines_like_ipvsadm() -> None:
    [service] = lvs.parse_rules("# head\n\n" + GOOD_RULES.replace("wrr\n", "wrr  # weighted\n"))
    assert service.scheduler == "wrr" and len(service.real_servers) == 1


def test_check_entry_point_fails_on_a_malformed_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad, empty = tmp_path / "good", tmp_path / "bad", tmp_path / "empty"
    good.write_text(GOOD_RULES)
    bad.write_text(GOOD_RULES.replace("-s wrr", "-s"))
    empty.write_text(GOOD_RULES.splitlines()[0] + "\n")
    assert lvs.main(["check", str(good)]) == 0
    assert lvs.main(["check", str(bad)]) == 1
    assert lvs.main(["check", str(empty)]) == 1
    assert "line 1" in capsys.readouterr().err


def test_decimal_seconds() -> None:
    assert [lvs.decimal_seconds(ms) for ms in (500, 1000, 1500, 2250, 10, 60_000)] == ["0.5", "1", "1.5", "2.25", "0.01", "60"]


# --- keepalived ---------------------------------------------------------------------------------------


def vrrp_yaml(body: str) -> str:
    return HOSTS + "\nvrrp:\n  www:\n    vip: 10.213.0.100/24\n    router_id: 51\n    hosts: {lb1: 150, lb2: 100}\n" + body


def test_subsecond_advert_uses_vrrp3_and_whole_seconds_vrrp2() -> None:
    fast = inventory.parse(vrrp_yaml("    advert_int: 500ms\n")).vrrp["www"]
    slow = inventory.parse(vrrp_yaml("    advert_int: 3s\n")).vrrp["www"]
    assert (keepalived.vrrp_version(fast), keepalived.vrrp_version(slow)) == (3, 2)
    assert keepalived.review_vrrp(fast) == [] and keepalived.review_vrrp(slow) == []


def test_vrrp3_with_auth_pass_is_refused_with_its_line() -> None:
    with pytest.raises(InventoryError) as caught:
        inventory.parse(vrrp_yaml("    advert_int: 1500ms\n    auth_pass: s3cret\n"), "inv.yml")
    [problem] = caught.value.problems
    assert problem.path == "vrrp.www.auth_pass" and problem.line is not None
    assert "VRRPv3 has no authentication" in problem.message


def test_vrrp3_advert_above_40_95s_is_refused() -> None:
    with pytest.raises(InventoryError) as caught:
        inventory.parse(vrrp_yaml("    advert_int: 45500ms\n"))
    [problem] = caught.value.problems
    assert problem.path == "vrrp.www.advert_int" and "at most 40.95s" in problem.message


@pytest.mark.parametrize(("nopreempt", "states"), [(False, ("MASTER", "BACKUP")), (True, ("BACKUP", "BACKUP"))])
def test_initial_states(nopreempt: bool, states: tuple[str, str]) -> None:
    inv = inventory.parse(vrrp_yaml(f"    nopreempt: {str(nopreempt).lower()}\n"))
    got = tuple(keepalived.instance_on_host(inv, inv.vrrp["www"], host).state for host in ("lb1", "lb2"))
    assert got == states


def test_auth_pass_is_a_secret_in_a_private_file() -> None:
    inv = inventory.parse(vrrp_yaml("    auth_pass: s3cret\n"))
    [file] = keepalived.TARGET.render(inv, "lb2", RenderContext())
    assert file.secrets == ("s3cret",) and file.mode == 0o600
    [public] = keepalived.TARGET.render(inventory.parse(vrrp_yaml("")), "lb2", RenderContext())
    assert public.secrets == () and public.mode == 0o644


def test_keepalived_hosts_are_vrrp_members_and_lvs_directors() -> None:
    inv = inventory.load(GOLDEN / "keepalived" / "vrrp-and-lvs" / "inventory.yml")
    assert keepalived.TARGET.hosts(inv) == ("lb1", "lb2", "lb3")


def test_dynamic_interfaces_goes_first_in_global_defs(tmp_path: Path) -> None:
    config, scratch = tmp_path / "keepalived.conf", tmp_path / "scratch" / "keepalived.conf"
    config.write_text("# head\nglobal_defs {\n    router_id lb1\n}\nvrrp_instance x {\n}\n")
    subprocess.run(["sh", "-c", keepalived.CHECK_SCRIPT, "check", str(config), str(scratch), "nosuch0"], capture_output=True)
    assert scratch.read_text() == "# head\nglobal_defs {\n    dynamic_interfaces\n    router_id lb1\n}\nvrrp_instance x {\n}\n"