"""Replication: directory sync with rsync fanned out from one source host (`haops sync`)."""
