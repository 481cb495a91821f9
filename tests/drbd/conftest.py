"""Facts for the DRBD plan tests: tagged fact-script output built from recorded real output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from haops import inventory
from haops.inventory.model import DrbdResource
from haops.targets.drbd.facts import DUMP_MD_KEEP, NodeFacts, parse_node_facts

DATA = Path(__file__).resolve().parent.parent / "data" / "drbd"
LOADED = "K loaded version: 9.2.12 (api:2/proto:86-122)"
MISSING = "K missing modprobe: FATAL: Module drbd not found in directory /lib/modules/6.1.0-28-amd64"
TWO_NODES = """\
hosts:
  server1: {address: 10.213.42.11}
  server2: {address: 10.213.42.12}
drbd:
  mydrbd:
    nodes: [server1, server2]
    disk: /dev/vdb
"""


def tagged(tag: str, text: str) -> list[str]:
    return [f"{tag} {line}" for line in text.splitlines()]


def node(host: str, module: str = LOADED, utils: bool = True, configured: bool = True, block: bool = True,
         dump_md: str | None = None, blkid: str | None = None, events2: str = "", kernel: str = "",
         status: str = "", resource: DrbdResource | None = None) -> NodeFacts:
    """What the fact script would print on `host`; dump_md and blkid name files of tests/data/drbd."""
    lines = [module, f"U {int(utils)}", f"C {int(configured)}", f"B {int(block)}"]
    if dump_md is not None:
        kept = [line for line in (DATA / dump_md).read_text().splitlines()
                if re.match(DUMP_MD_KEEP, line) or line.startswith("rc ")]  # the fact script's own filter
        lines += tagged("M", "\n".join(kept))
    if blkid is not None:
        lines += [line for line in tagged("S", (DATA / blkid).read_text()) if not line.startswith("S DEVNAME=")]
    lines += tagged("E", events2) + tagged("A", status) + tagged("L", kernel)
    return parse_node_facts(host, "\n".join(lines), resource)


@pytest.fixture
def mydrbd(tmp_path: Path) -> DrbdResource:
    path = tmp_path / "inventory.yml"
    path.write_text(TWO_NODES)
    return inventory.load(path).drbd["mydrbd"]
