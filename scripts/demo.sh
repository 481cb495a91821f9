#!/usr/bin/env bash
# The main job: set up, bring up the lab, render and validate the example cluster against it.
set -euo pipefail

cd "$(dirname "$0")/.."
inventory=${1:-inventories/example.yml}
bash scripts/setup.sh
haops inventory check -i "$inventory"
haops lab up -i "$inventory"
haops lab status -i "$inventory"
haops validate -i "$inventory" --strict
# The Vagrant inventory adds the targets that need a kernel of their own (LVS, DRBD).
haops validate -i inventories/vagrant.yml --strict
echo
echo "The lab stays up for you to explore: haops lab ssh lb1; tear it down with: haops lab down -i $inventory"
