"""Vagrant VMs for an inventory's hosts: the plan against this machine, the local box, libvirt,
the VMs' lifecycle and their SSH settings."""
