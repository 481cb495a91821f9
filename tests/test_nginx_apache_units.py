"""Nginx and Apache: what review() refuses, and the small mappings the templates rely on."""

from __future__ import annotations

import dataclasses

import pytest

from haops import inventory
from haops.errors import InventoryError
from haops.inventory.model import Health, Inventory, Service
from haops.targets import apache, nginx

pytestmark = pytest.mark.unit

HOSTS = """\
hosts:
  lb1:  {address: 10.213.0.11, groups: [lb]}
  web1: {address: 10.213.0.21, groups: [web]}
  web2: {address: 10.213.0.22, groups: [web]}
services:
  www:
    vip: 10.213.0.100
    port: 80
"""
TWO_BACKENDS = "    backends: {group: web, port: 8080}\n"
WITH_BACKUP = "    backends:\n      - {host: web1, port: 8080}\n      - {host: web2, port: 8080, backup: true}\n"


def parse(balancer: str, extra: str, backends: str = TWO_BACKENDS) -> Inventory:
    return inventory.parse(f"{HOSTS}    balancer: {balancer}\n{extra}{backends}", "test.yml")


def problems(balancer: str, extra: str, backends: str = TWO_BACKENDS) -> str:
    with pytest.raises(InventoryError) as caught:
        parse(balancer, extra, backends)
    return str(caught.value)


def service(balancer: str, extra: str = "", backends: str = TWO_BACKENDS) -> Service:
    return parse(balancer, extra, backends).services["www"]


# --- nginx refusals ------------------------------------------------------------------

def test_least_time_without_plus_is_refused_at_the_algorithm_key() -> None:
    text = problems("nginx", "    algorithm: least_time\n")
    assert "services.www.algorithm: least_time exists only in NGINX Plus" in text
    assert "nginx.plus: true" in text


def test_least_time_with_plus_declared_is_accepted() -> None:
    assert service("nginx", "    algorithm: least_time\n    nginx: {plus: true}\n").method == "least_time"


@pytest.mark.parametrize("extra", ["    algorithm: ip_hash\n", "    algorithm: source\n", "    algorithm: random\n",
                                   "    algorithm: hash\n    hash_key: uri\n", "    sticky: cookie\n", "    sticky: source\n"])
def test_backup_with_a_hash_or_random_method_is_refused_at_the_backup_key(extra: str) -> None:
    text = problems("nginx", extra, WITH_BACKUP)
    assert "services.www.backends[1].backup: nginx refuses backup servers with" in text
    assert 'does not support parameter "backup"' in text


@pytest.mark.parametrize("algorithm", ["roundrobin", "least_conn", "leastconn"])
def test_backup_with_an_ordered_method_is_accepted(algorithm: str) -> None:
    assert service("nginx", f"    algorithm: {algorithm}\n", WITH_BACKUP).backends[1].backup


def test_hash_needs_a_key_and_a_key_needs_hash() -> None:
    assert "services.www.hash_key: algorithm hash needs a key" in problems("nginx", "    algorithm: hash\n")
    text = problems("nginx", "    algorithm: least_conn\n    hash_key: uri\n")
    assert "services.www.hash_key: nginx uses hash_key only with algorithm hash, not least_conn" in text


def test_sticky_cookie_with_another_algorithm_is_refused() -> None:
    text = problems("nginx", "    algorithm: least_conn\n    sticky: cookie\n")
    assert "services.www.sticky: sticky: cookie makes nginx balance by a consistent hash of the SERVERID cookie" in text


def test_nginx_refuses_stats_and_off_mixed_with_retry_conditions() -> None:
    text = problems("nginx", "    stats: {port: 8404, user: admin, password: pw}\n")
    assert "services.www.stats: nginx has no stats page with a login" in text
    text = problems("nginx", "    nginx: {next_upstream: [error, 'off']}\n")
    assert "services.www.nginx.next_upstream: 'off' disables retries" in text


def test_all_backends_backup_is_refused() -> None:
    backends = "    backends:\n      - {host: web1, port: 8080, backup: true}\n"
    assert "services.www.backends: every backend is a backup" in problems("nginx", "", backends)
    assert "services.www.backends: every backend is a backup" in problems("apache", "", backends)


# --- nginx mappings ------------------------------------------------------------------

@pytest.mark.parametrize(("alias", "native", "line"), [
    ("roundrobin", "roundrobin", None),
    ("leastconn", "least_conn", "least_conn"),
    ("source", "ip_hash", "ip_hash"),
    ("random", "random", "random two"),
])
def test_nginx_algorithm_aliases_and_lines(alias: str, native: str, line: str | None) -> None:
    chosen = service("nginx", f"    algorithm: {alias}\n")
    assert chosen.algorithm == alias and chosen.method == native
    assert nginx.balancing_line(chosen) == line


@pytest.mark.parametrize(("key", "variable"), [
    ("uri", "$request_uri"),
    ("source", "$remote_addr"),
    ("cookie:sid", "$cookie_sid"),
    ("header:X-User-Id", "$http_x_user_id"),
    ("arg:page_no", "$arg_page_no"),
])
def test_hash_key_grammar_becomes_nginx_variables(key: str, variable: str) -> None:
    chosen = service("nginx", f"    algorithm: hash\n    hash_key: {key}\n")
    assert nginx.balancing_line(chosen) == f"hash {variable} consistent"


def test_stickiness_becomes_hashing() -> None:
    assert nginx.balancing_line(service("nginx", "    sticky: cookie\n")) == "hash $haops_sticky_www consistent"
    assert nginx.balancing_line(service("nginx", "    sticky: source\n")) == "hash $remote_addr consistent"
    assert nginx.balancing_line(service("nginx", "    sticky: source\n    algorithm: ip_hash\n")) == "ip_hash"


def test_sticky_variables_never_collide() -> None:
    base = service("nginx")
    names = ["a-b", "a_b", "a_db", "a__b", "a-d-b"]
    variables = {nginx.sticky_variable(dataclasses.replace(base, name=name)) for name in names}
    assert len(variables) == len(names)


def test_passive_health_from_fall_and_interval() -> None:
    chosen = dataclasses.replace(service("nginx"), health=Health(interval_ms=700, fall=3))
    assert nginx.server_parameters(chosen, 2, True) == "weight=2 max_fails=3 fail_timeout=3s backup"
    assert nginx.server_parameters(dataclasses.replace(chosen, health=None), 1, False) == "weight=1"


# --- apache refusals and mappings ----------------------------------------------------

def test_sticky_source_on_apache_is_refused_at_the_sticky_key() -> None:
    text = problems("apache", "    sticky: source\n")
    assert "services.www.sticky: mod_proxy_balancer cannot pin clients by source address" in text


def test_heartbeat_hash_key_stats_and_fast_health_are_refused_on_apache() -> None:
    assert "services.www.algorithm: lbmethod heartbeat balances on load reports" in problems("apache", "    algorithm: heartbeat\n")
    assert "services.www.hash_key: mod_proxy_balancer has no hash balancing" in problems("apache", "    hash_key: uri\n")
    assert "services.www.stats: Apache's status page is the balancer-manager" in problems(
        "apache", "    stats: {port: 8404, user: admin, password: pw}\n")
    assert "services.www.health.interval: mod_proxy_hcheck needs an interval of at least 100ms" in problems(
        "apache", "    health: {interval: 50ms}\n")


@pytest.mark.parametrize(("alias", "native"), [("roundrobin", "byrequests"), ("leastconn", "bybusyness"),
                                               ("bytraffic", "bytraffic"), ("bybusyness", "bybusyness")])
def test_apache_algorithm_aliases(alias: str, native: str) -> None:
    assert service("apache", f"    algorithm: {alias}\n").method == native


def test_apache_times_are_seconds_or_milliseconds() -> None:
    assert apache.apache_time(5000) == "5"
    assert apache.apache_time(750) == "750ms"


def test_apache_member_and_balancer_parameters() -> None:
    chosen = service("apache", "    sticky: cookie\n    redispatch: false\n    health: {type: tcp, interval: 2s, fall: 4, rise: 1}\n")
    member = apache.member_parameters(chosen, "web1", 7, True)
    assert member == ("loadfactor=7 route=web1 status=+H connectiontimeout=5 timeout=30 "
                      "hcmethod=TCP hcinterval=2 hcpasses=1 hcfails=4")
    assert apache.balancer_parameters(chosen) == "lbmethod=byrequests maxattempts=2 stickysession=SERVERID nofailover=On"


def test_apache_loads_only_the_modules_in_use() -> None:
    plain = service("apache", "    algorithm: leastconn\n")
    assert apache.modules([plain]) == [*apache.BASE_MODULES, "lbmethod_bybusyness"]
    sticky = service("apache", "    sticky: cookie\n    health: true\n")
    assert apache.modules([sticky])[-3:] == ["lbmethod_byrequests", "proxy_hcheck", "headers"]
    assert apache.server_limit([plain]) == 164
