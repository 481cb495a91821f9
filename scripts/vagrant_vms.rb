# The inventory's VMs as the Vagrantfile reads them; tests/test_vagrant.py checks that this
# reads every host's `vm` as haops' own inventory parser does.

def size_mib(size)
  return size if size.is_a?(Integer)
  size.to_s[0..-2].to_i * (size.to_s.end_with?("G") ? 1024 : 1)
end

# The host's `vm` as haops merges host variables (vars < groups in name order < the host's own
# vars): a later level's `vm` replaces an earlier one whole.
def vm_of(inventory, name, spec)
  spec = {} unless spec.is_a?(Hash)
  groups = inventory["groups"] || {}
  member_of = Array(spec["groups"]) + groups.select { |_, group| Array((group || {})["hosts"]).include?(name) }.keys
  levels = [inventory["vars"]] + member_of.uniq.sort.map { |group| (groups[group] || {})["vars"] } + [spec["vars"]]
  levels.compact.map { |level| level["vm"] }.compact.last || {}
end

# {cpus, memory (MiB), disks (MiB each), nics (addresses), gateway} of the host's VM, with
# Vagrant's defaults filled in.
def vm_resources(inventory, name, spec)
  vm = vm_of(inventory, name, spec)
  { "cpus" => vm.fetch("cpus", 1), "memory" => size_mib(vm.fetch("memory", 512)),
    "disks" => Array(vm["disks"]).map { |disk| size_mib(disk) },
    "nics" => Array(vm["nics"]).map(&:to_s), "gateway" => vm["gateway"]&.to_s }
end

# The isolated libvirt network an address sits on: its /24, named after it.
def network_of(address)
  prefix = address.split(".")[0..2].join(".")
  { name: "haops-#{prefix.tr(".", "-")}", network: "#{prefix}.0/24" }
end

# Shell that gives the VM its name and its inventory addresses: eth1, eth2... in the order the
# Vagrantfile attaches the private networks (eth0 is Vagrant's management network), each a /24,
# and the default route through `gateway` where one is set. It is written for ifupdown, so it
# holds across reboots, and run at every `up`: Vagrant's own network step does not run under
# vagrant-libvirt 0.11 here (its provisioners run first), so the Vagrantfile does not rely on it.
def network_script(name, addresses, gateway)
  stanzas = addresses.each_with_index.map do |ip, index|
    on_link = gateway && gateway.split(".")[0..2] == ip.split(".")[0..2]
    "auto eth#{index + 1}\niface eth#{index + 1} inet static\n    address #{ip}/24\n" +
      (on_link ? "    gateway #{gateway}\n" : "")
  end
  <<~SHELL
    set -eu
    hostname #{name} && echo #{name} > /etc/hostname
    grep -q ' #{name}$' /etc/hosts || echo "127.0.1.1 #{name}" >> /etc/hosts
    printf '%s' '#{stanzas.join("\n")}' > /etc/network/interfaces.d/haops
    for index in $(seq #{addresses.length}); do ifup "eth$index"; done
  SHELL
end
