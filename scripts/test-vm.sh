#!/usr/bin/env bash
# The VM tier, apart from the main suite (it boots VMs for minutes): set up, build the local
# box if it is not current, then tests/vm on three real-kernel VMs (LVS director, two real
# servers with DRBD), destroyed at the end. Extra arguments go to pytest (e.g. -k drbd).
# Software emulation by default (this machine's /dev/kvm cannot run a stock kernel);
# HAOPS_VM_DRIVER=kvm where KVM works.
set -euo pipefail

cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HAOPS_VM_DRIVER=${HAOPS_VM_DRIVER:-qemu}
set +e
.venv/bin/python -m pytest -m vm tests/vm "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "test-vm: pytest collected no tests; that is a failure" >&2
  exit 1
fi
exit "$status"
