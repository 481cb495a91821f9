"""`verify --from local`: the probes leave this machine, only towards the inventory's services."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from haops.session import settings_for
from haops.verify.context import LOCAL, allowed_targets, run_locally
from haops.transport import HostFailure
from haops.verify.result import FAIL, PASS
from haops.verify.run import verify
from tests.apply.conftest import ROOT, Cluster

pytestmark = pytest.mark.lab


def test_verify_from_local_measures_an_exact_split(open_cluster: Cluster) -> None:
    open_cluster.converge(open_cluster.path.read_text())
    inv = open_cluster.inventory
    results = verify(inv, settings_for(inv), faults=False, source=LOCAL)
    splits = {r.subject: r for r in results if r.check == "split"}
    assert set(splits) == {"www", "app", "nth"} and all(r.status == PASS for r in splits.values()), splits
    assert all(r.observed == "web1=4 web2=4 web3=4" for r in splits.values()), splits
    assert [r for r in results if r.status == FAIL] == []
    with pytest.raises(HostFailure, match="refused to probe 10.213.48.41"):
        run_locally("curl -s http://10.213.48.41:8080/", allowed_targets(inv), 5)


def test_without_a_client_verify_says_so_once_at_the_top(open_cluster: Cluster) -> None:
    open_cluster.converge(open_cluster.path.read_text())
    data = yaml.safe_load(open_cluster.path.read_text())
    data["hosts"]["client1"]["groups"] = []
    path = open_cluster.path.with_name("no-client.yml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "haops", "verify", "-i", str(path), "--no-faults"], capture_output=True,
                          text=True, timeout=180, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
                                                       "COLUMNS": "200"}, check=False)
    assert done.stderr.count("no traffic source") == 1 and "--from local" in done.stderr, done.stderr
    assert "could not check" not in done.stdout and done.stdout.count("no traffic source") == 1, done.stdout
