#!/usr/bin/env bash
# The VM tier, apart from the main suite (it boots VMs for minutes): set up, build the local
# box if it is not current, then tests/vm on three real-kernel VMs (LVS director, two real
# servers with DRBD), destroyed at the end. Extra arguments go to pytest (e.g. -k drbd).
# Software emulation by default (this machine's /dev/kvm cannot run a stock kernel);
# HAOPS_VM_DRIVER=kvm where KVM works.
set -euo pipefail

cd "$(dirname "$0")/.."
export HAOPS_VM_DRIVER=${HAOPS_VM_DRIVER:-qemu}
# The main test command (setup, mypy, pytest, exit 5 refused), narrowed to the VM tier.
exec bash scripts/test.sh -m vm tests/vm "$@"
