"""PostgreSQL's own parsers refuse what the server would: postgres -C for postgresql.conf, the
pg_hba_file_rules view of a single-user backend for pg_hba.conf."""

from __future__ import annotations

import dataclasses

import pytest

from haops import inventory
from haops.apply.validation import check_files
from haops.targets import get_target
from haops.targets.base import RenderContext
from haops.targets.postgresql import layout
from tests.conftest import GOLDEN

pytestmark = pytest.mark.checker
CASE = GOLDEN / "postgresql" / "sync-two-standbys" / "inventory.yml"


def checked(old: str, new: str, path: str) -> str:
    inv = inventory.load(CASE)
    target = get_target("postgresql")
    files = target.render(inv, "db1", RenderContext())
    changed = []
    for file in files:
        if file.path == path:
            assert old in file.text
            file = dataclasses.replace(file, text=file.text.replace(old, new))
        changed.append(file)
    result = check_files(target, inv, "db1", changed)
    assert result.status == "failed", result.output
    return result.output


def test_rendered_files_pass() -> None:
    inv = inventory.load(CASE)
    target = get_target("postgresql")
    assert check_files(target, inv, "db1", target.render(inv, "db1", RenderContext())).status == "ok"


def test_an_unknown_parameter_is_refused() -> None:
    output = checked("hot_standby = on", "hot_standy = on", layout.CONF)
    assert 'unrecognized configuration parameter "hot_standy"' in output


def test_a_bad_value_and_a_bad_synchronous_standby_list_are_refused() -> None:
    assert 'invalid value for parameter "max_wal_senders"' in checked("max_wal_senders = 10", "max_wal_senders = ten", layout.CONF)
    output = checked("ANY 1 (", "ANY 1 ((", layout.CONF)
    assert 'invalid value for parameter "synchronous_standby_names"' in output


def test_a_bad_hba_line_is_refused_with_its_line_number() -> None:
    output = checked("10.213.44.12/32", "10.213.44.12/33", layout.HBA)
    assert "pg_hba.conf line 8: invalid CIDR mask in address" in output
