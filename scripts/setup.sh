#!/usr/bin/env bash
# Install everything haops, its lab and its tests need on Debian 12, as root. Idempotent.
#   - the daemons and their checkers from Debian packages, installed without starting them;
#   - a virtualenv in .venv with haops installed from a real wheel, plus the test tools;
#   - /usr/local/bin/haops pointing at it, so `haops` works from any directory.
set -euo pipefail

cd "$(dirname "$0")/.."
# The daemons and checkers (shared with the Vagrantfile), then what this machine needs to
# run haops, its lab and its tests.
mapfile -t PACKAGES < <(grep -v '^#' templates/host-packages.txt | grep .)
PACKAGES+=(
  python3 python3-venv python3-pip
  openssh-server openssh-client iputils-ping
  vagrant vagrant-libvirt
  # `haops vagrant box build|up`: libvirt and QEMU for the VMs, debootstrap for the local box
  libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients dnsmasq-base qemu-system-x86 qemu-utils debootstrap
  ruby          # tests/test_vagrant.py reads the inventory's VMs with the Vagrantfile's own Ruby helper
  ansible-core  # `ansible-inventory --list` for `haops inventory from-ansible` and its tests
  pipx          # the README's `pipx install`, which tests/admin/test_plain_install.py runs
  sudo          # `become: sudo` hosts: tests/apply/test_become.py logs in as real users and goes through it
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: run as root (it installs Debian packages and makes network namespaces)" >&2
  exit 2
fi

missing=()
for package in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  # The lab runs the daemons inside its hosts; keep apt from starting them on this machine.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
  fi
  trap 'if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python=${HAOPS_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q '.[test]'
ln -sf "$PWD/.venv/bin/haops" /usr/local/bin/haops
echo "setup: ready ($(.venv/bin/haops --version))"
