#!/usr/bin/env bash
# The main job: set up, bring up the lab, apply the example cluster, verify it, print the report.
set -euo pipefail

cd "$(dirname "$0")/.."
inventory=${1:-inventories/example.yml}
bash scripts/setup.sh
haops inventory check -i "$inventory"
haops lab up -i "$inventory"
haops validate -i "$inventory" --strict
# The Vagrant inventory adds the targets that need a kernel of their own (LVS, DRBD).
haops validate -i inventories/vagrant.yml --strict
haops apply -i "$inventory"
haops verify -i "$inventory" --junit verify-report.xml
echo
echo "The lab stays up for you to explore: haops lab ssh lb1 -i $inventory"
echo "Tear it down with: haops lab down -i $inventory"
