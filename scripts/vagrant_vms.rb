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

# {cpus, memory (MiB), disks (MiB each)} of the host's VM, with Vagrant's defaults filled in.
def vm_resources(inventory, name, spec)
  vm = vm_of(inventory, name, spec)
  { "cpus" => vm.fetch("cpus", 1), "memory" => size_mib(vm.fetch("memory", 512)),
    "disks" => Array(vm["disks"]).map { |disk| size_mib(disk) } }
end
