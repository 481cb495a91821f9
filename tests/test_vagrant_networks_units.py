"""The VMs' libvirt networks as haops makes and checks them (haops/vagrant/networks.py): isolated,
no DNS server, names the Vagrantfile agrees with; the refusals of networks that would leak."""

from __future__ import annotations

import subprocess
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from haops.vagrant import networks

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
MANAGEMENT = IPv4Network("10.213.20.0/24")
SUBNETS = [IPv4Network("10.213.21.0/24"), IPv4Network("10.213.22.0/24")]


def test_every_network_is_made_without_forwarding_and_without_dns() -> None:
    for network in networks.wanted(SUBNETS, MANAGEMENT, management_nat=False):
        xml = network.xml()
        assert "<forward" not in xml and "<dns enable='no'/>" in xml
        assert f"<ip address='{network.subnet[1]}' netmask='255.255.255.0'>" in xml


def test_only_the_management_network_hands_out_addresses() -> None:
    made = {n.name: n for n in networks.wanted(SUBNETS, MANAGEMENT, management_nat=False)}
    assert list(made) == ["haops-management", "haops-10-213-21", "haops-10-213-22"]
    assert "<range start='10.213.20.128' end='10.213.20.254'/>" in made["haops-management"].xml()
    assert "<dhcp>" not in made["haops-10-213-22"].xml()


def test_a_nat_management_network_is_left_to_vagrant() -> None:
    assert [n.name for n in networks.wanted(SUBNETS, MANAGEMENT, management_nat=True)] == ["haops-10-213-21", "haops-10-213-22"]


def test_the_names_are_the_vagrantfiles() -> None:
    script = "require ARGV[0]; puts network_of('10.213.22.21')[:name]"
    named = subprocess.run(["ruby", "-e", script, str(ROOT / "scripts" / "vagrant_vms.rb")], capture_output=True,
                           text=True, check=True, timeout=30).stdout.strip()
    assert named == networks.private_name(IPv4Network("10.213.22.0/24")) == "haops-10-213-22"


NAT_XML = "<network><name>haops-10-213-22</name><forward mode='nat'/><ip address='10.213.22.1' netmask='255.255.255.0'/></network>"
ISOLATED_XML = "<network><name>haops-10-213-22</name><dns enable='no'/><ip address='10.213.22.1' netmask='255.255.255.0'/></network>"


def test_an_existing_network_that_forwards_is_refused() -> None:
    network = networks.Network("haops-10-213-22", IPv4Network("10.213.22.0/24"))
    why = networks.refusal(network, NAT_XML, management_nat=False)
    assert why is not None and "forwards to the outside" in why and "virsh net-destroy haops-10-213-22" in why
    assert networks.refusal(network, ISOLATED_XML, management_nat=False) is None


def test_only_the_management_network_may_nat_and_only_when_asked() -> None:
    management = networks.Network("haops-management", MANAGEMENT, dhcp=True)
    xml = NAT_XML.replace("haops-10-213-22", "haops-management").replace("10.213.22.1", "10.213.20.1")
    assert networks.refusal(management, xml, management_nat=True) is None
    assert networks.refusal(management, xml, management_nat=False) is not None


def test_an_existing_network_on_another_address_is_refused() -> None:
    network = networks.Network("haops-10-213-22", IPv4Network("10.213.22.0/24"))
    why = networks.refusal(network, ISOLATED_XML.replace("10.213.22.1", "10.213.99.1"), management_nat=False)
    assert why is not None and "another address" in why


def test_dns_is_seen_on_unless_disabled() -> None:
    assert networks.serves_dns(NAT_XML) and not networks.serves_dns(ISOLATED_XML)


def test_the_record_of_made_networks_round_trips_and_empties(tmp_path: Path) -> None:
    networks.record(tmp_path, {"haops-10-213-22", "haops-management"})
    assert networks.recorded(tmp_path) == {"haops-10-213-22", "haops-management"}
    networks.record(tmp_path, set())
    assert not (tmp_path / networks.RECORD).exists() and networks.recorded(tmp_path) == set()


def test_an_existing_network_serving_dns_is_refused() -> None:
    network = networks.Network("haops-10-213-22", IPv4Network("10.213.22.0/24"))
    why = networks.refusal(network, ISOLATED_XML.replace("<dns enable='no'/>", ""), management_nat=False)
    assert why is not None and "DNS server on" in why and "virsh net-undefine haops-10-213-22" in why


def test_a_network_carrying_another_inventorys_vms_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(networks, "described", lambda _name: ISOLATED_XML)
    monkeypatch.setattr(networks, "attached_domains", lambda _name: ["haops-vm-0a1b2c-real1"])
    monkeypatch.setattr(networks, "start", lambda _name: None)
    wanted = [networks.Network("haops-10-213-22", IPv4Network("10.213.22.0/24"))]
    with pytest.raises(networks.UserError, match="carries VMs of another inventory .*haops-vm-0a1b2c-real1"):
        networks.ensure(wanted, tmp_path, "haops-vmtier-ffffff-", [].append)
    networks.ensure(wanted, tmp_path, "haops-vm-0a1b2c-", [].append)  # its own VMs: fine


def test_a_network_that_could_not_start_is_still_recorded_for_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def virsh(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        code = 1 if args[0] == "net-start" else 0
        return subprocess.CompletedProcess(args, code, "", "network is already in use by interface virbr9")

    monkeypatch.setattr(networks.libvirt, "virsh", virsh)
    network = networks.Network("haops-10-213-22", IPv4Network("10.213.22.0/24"))
    with pytest.raises(networks.UserError, match="already in use by interface virbr9"):
        networks.define(network, tmp_path, set())
    assert networks.recorded(tmp_path) == {"haops-10-213-22"}


def test_nothing_recorded_leaves_no_state_directory(tmp_path: Path) -> None:
    networks.record(tmp_path / "never-up", set())
    assert not (tmp_path / "never-up").exists()


def vm_inventory(address: str) -> Any:
    from haops import inventory

    return inventory.parse(f"hosts:\n  real1: {{address: {address}}}\n", "vm.yml")


def test_a_host_on_the_management_network_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAOPS_VM_MANAGEMENT", raising=False)
    with pytest.raises(networks.UserError, match="real1: address inside the VMs' management network 10.213.20.0/24"):
        networks.for_inventory(vm_inventory("10.213.20.21"))
    assert [n.name for n in networks.for_inventory(vm_inventory("10.213.22.21"))] == ["haops-management", "haops-10-213-22"]


@pytest.mark.parametrize("management", ["10.213.0.0/16", "10.213.20.0/23"])
def test_a_management_network_that_is_not_a_24_is_refused(monkeypatch: pytest.MonkeyPatch, management: str) -> None:
    monkeypatch.setenv("HAOPS_VM_MANAGEMENT", management)
    with pytest.raises(networks.UserError, match="must be a /24"):
        networks.for_inventory(vm_inventory("10.213.22.21"))
