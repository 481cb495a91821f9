"""Hostile and random inventories: a valid model or a clean error, never a traceback or an injection."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haops import inventory
from haops.errors import InventoryError, UserError

pytestmark = pytest.mark.unit

FULL = Path(__file__).parent / "fixtures_full.yml"
FULL_DATA: dict[str, Any] = yaml.safe_load(FULL.read_text())
HOSTILE = ["x\ny", "x;y", "x{", "x}", "x#y", 'x"y', "x'y", "x y", "x\ty", "x\\y", "x$y", "x!y", "", "x" * 300]

# Every string value that ends up in a config file, by its path in FULL_DATA.
VALUE_PATHS = [
    ("hosts", "lb1", "address"),
    ("groups", "lb", "vars", "interface"),
    ("vars", "ssh_user"),
    ("services", "www", "vip"),
    ("services", "www", "hash_key"),
    ("services", "www", "cookie"),
    ("services", "www", "health", "path"),
    ("services", "www", "stats", "user"),
    ("services", "www", "stats", "password"),
    ("services", "www", "stats", "uri"),
    ("zones", "example.test", "contact"),
    ("zones", "example.test", "records", "www", 0),
    ("drbd", "r0", "disk"),
    ("drbd", "r0", "secret"),
    ("vrrp", "vi1", "vip"),
    ("vrrp", "vi1", "auth_pass"),
    ("vrrp", "vi1", "interface"),
    ("vrrp", "vi1", "track_process"),
]
# Every mapping key that ends up in a config file (names of hosts, services, zones...).
KEY_PATHS = [("hosts", "web1"), ("services", "www"), ("zones", "example.test"),
             ("zones", "example.test", "records", "www"), ("drbd", "r0"), ("vrrp", "vi1"), ("groups", "lb")]


def set_at(data: Any, path: tuple[Any, ...], value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value


def rename_key(data: Any, path: tuple[Any, ...], new: str) -> None:
    for part in path[:-1]:
        data = data[part]
    data[new] = data.pop(path[-1])


def parse_data(data: Any) -> inventory.Inventory:
    return inventory.parse(yaml.safe_dump(data, allow_unicode=True), "fuzz.yml")


def test_full_fixture_is_valid() -> None:
    inv = parse_data(FULL_DATA)
    assert set(inv.services) == {"www"} and set(inv.drbd) == {"r0"} and set(inv.vrrp) == {"vi1"}


@pytest.mark.parametrize("path", VALUE_PATHS, ids=lambda p: ".".join(map(str, p)))
@pytest.mark.parametrize("hostile", HOSTILE, ids=repr)
def test_hostile_values_are_refused(path: tuple[Any, ...], hostile: str) -> None:
    data = copy.deepcopy(FULL_DATA)
    set_at(data, path, hostile)
    with pytest.raises(InventoryError) as caught:
        parse_data(data)
    dotted = ".".join(str(p) for p in path[:-1] if not isinstance(p, int))
    assert any(dotted in problem.path for problem in caught.value.problems), caught.value


@pytest.mark.parametrize("path", KEY_PATHS, ids=lambda p: ".".join(map(str, p)))
@pytest.mark.parametrize("hostile", [h for h in HOSTILE if h], ids=repr)
def test_hostile_names_are_refused(path: tuple[Any, ...], hostile: str) -> None:
    data = copy.deepcopy(FULL_DATA)
    rename_key(data, path, hostile)
    with pytest.raises(InventoryError):
        parse_data(data)


leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
    st.text(max_size=30), st.sampled_from(["10.213.9.50", "web1", "lb", "roundrobin", "1s", "/x", "cookie", "nat"]),
)
documents = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(sorted({*FULL_DATA, "address", "port", "vip", "backends", "hosts", "group", "weight", "health"})) | st.text(max_size=8), children, max_size=4),
    ),
    max_leaves=25,
)


def paths_of(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(data, dict):
        return [prefix] + [p for k, v in data.items() for p in paths_of(v, prefix + (k,))]
    if isinstance(data, list):
        return [prefix] + [p for i, v in enumerate(data) for p in paths_of(v, prefix + (i,))]
    return [prefix]


ALL_PATHS = [p for p in paths_of(FULL_DATA) if p]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(ALL_PATHS), documents)
def test_any_mutation_gives_a_model_or_a_clean_error(path: tuple[Any, ...], value: Any) -> None:
    data = copy.deepcopy(FULL_DATA)
    set_at(data, path, value)
    try:
        parse_data(data)
    except UserError as exc:
        assert str(exc)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_any_document_gives_a_model_or_a_clean_error(data: Any) -> None:
    try:
        parse_data(data)
    except UserError as exc:
        assert str(exc)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_model_or_a_clean_error(text: str) -> None:
    try:
        inventory.parse(text, "fuzz.yml")
    except UserError as exc:
        assert str(exc)
