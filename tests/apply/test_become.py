"""apply as an ordinary user through sudo (`become: sudo`), on a lab host with real users and
real sudo: one allowed without a password, one whose sudo asks for it (--ask-become-pass),
and one sudo does not allow at all. Without become the same user fails for lack of root, so the
login really is the named user's. A refusal is clear, and nothing on the host changes."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest

from haops.apply.facts import PROVEN_DIR
from tests.apply.conftest import Cluster

pytestmark = pytest.mark.lab

PASSWORD = "cor-rect horse 7"  # a space and a dash: it must travel as one line, untouched
# A login shell, no home directory on the machine (/var is the lab host's own overlay), a key
# login (the lab's shared authorized_keys; "*" is not a locked account as "!" would be).
ADD_USER = "useradd -d /var/lib/{user} -m -s /bin/sh {user} && usermod -p '*' {user}"


def add_users(cluster: Cluster) -> None:
    cluster.sh("lb1", " && ".join([
        ADD_USER.format(user="deploy"), "echo 'deploy ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/deploy",
        ADD_USER.format(user="asker"), f"echo 'asker:{PASSWORD}' | chpasswd", "echo 'asker ALL=(ALL) ALL' > /etc/sudoers.d/asker",
        # one timestamp for all of asker's sessions: sudo would skip the prompt on the next command
        "echo 'Defaults:asker timestamp_type=global' >> /etc/sudoers.d/asker",
        ADD_USER.format(user="plain"), f"echo 'plain:{PASSWORD}' | chpasswd",
        "chmod 440 /etc/sudoers.d/deploy /etc/sudoers.d/asker", "visudo -c >/dev/null",  # its complaint on stderr
    ]))


def as_user(cluster: Cluster, user: str) -> None:
    cluster.rewrite("lb1:     {address: 10.213.10.11, groups: [lb]}",
                    f"lb1:     {{address: 10.213.10.11, groups: [lb], vars: {{ssh_user: {user}, become: sudo}}}}")


def apply_cluster(cluster: Cluster, *flags: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """Apply to the whole cluster (lb1's VIP wait reads lb2 too); only lb1 logs in as the user."""
    return subprocess.run([sys.executable, "-m", "haops", "apply", "-i", str(cluster.path), *flags],
                          input=None if password is None else password + "\n", capture_output=True, text=True, timeout=180)


def untouched(cluster: Cluster) -> bool:
    """Nothing made live on lb1: no record of it, no balancer running (Debian's own haproxy.cfg is there)."""
    script = f"[ ! -e {shlex.quote(PROVEN_DIR)} ] && ! pidof haproxy >/dev/null && echo yes || echo no"
    return cluster.sh("lb1", script).strip() == "yes"


@pytest.fixture
def users(bare: Cluster) -> Cluster:
    add_users(bare)
    return bare


def test_a_sudo_user_without_a_password_applies_and_root_owns_what_it_installed(users: Cluster) -> None:
    as_user(users, "deploy")
    done = apply_cluster(users)
    assert done.returncode == 0, done.stdout + done.stderr
    owners = users.sh("lb1", "stat -c '%U:%G %a' /etc/haproxy/haproxy.cfg; ps -o user= -p $(cat /run/haproxy.pid)")
    assert owners.split() == ["root:root", "640", "root"], owners  # the mode haops gives it: it holds the stats password
    again = apply_cluster(users)
    assert again.returncode == 0 and "7 hosts: 0 changed files, 0 reloads, 0 failed" in again.stdout, again.stdout
    status = subprocess.run([sys.executable, "-m", "haops", "status", "-i", str(users.path), "--json"],
                            capture_output=True, text=True, timeout=60)
    holders = {vip["instance"]: vip["holder"] for vip in json.loads(status.stdout)["vips"]}
    assert status.returncode == 0 and set(holders.values()) == {"lb1"}, status.stdout + status.stderr


def test_sudo_that_asks_for_a_password_gets_it_once_from_the_prompt(users: Cluster) -> None:
    as_user(users, "asker")
    done = apply_cluster(users, "--ask-become-pass", password=PASSWORD)
    assert done.returncode == 0, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert users.sh("lb1", "stat -c %U /etc/haproxy/haproxy.cfg").strip() == "root"
    status = subprocess.run([sys.executable, "-m", "haops", "status", "-i", str(users.path), "-K", "--json"],
                            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    holders = {vip["instance"]: vip["holder"] for vip in json.loads(status.stdout)["vips"]}
    assert status.returncode == 0 and set(holders.values()) == {"lb1"}, status.stdout + status.stderr
    stored = users.sh("lb1", f"grep -rlF -- {shlex.quote(PASSWORD)} /etc /var/lib/haops /run /tmp 2>/dev/null || true")
    assert stored.strip() == "", f"the sudo password was written to {stored}"


def test_a_password_sudo_without_the_prompt_says_how_and_changes_nothing(users: Cluster) -> None:
    as_user(users, "asker")
    done = apply_cluster(users)
    assert done.returncode != 0
    assert "asks asker for a password (or does not allow asker at all): run again with --ask-become-pass" in done.stdout + done.stderr, \
        done.stdout + done.stderr
    assert untouched(users)


def test_a_wrong_password_is_refused_once_and_changes_nothing(users: Cluster) -> None:
    as_user(users, "asker")
    done = apply_cluster(users, "--ask-become-pass", password="not " + PASSWORD)
    assert done.returncode != 0
    assert "refused the password given for asker" in done.stdout + done.stderr, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert untouched(users)


def test_a_user_sudo_does_not_allow_is_told_so_and_nothing_changes(users: Cluster) -> None:
    as_user(users, "plain")
    done = apply_cluster(users, "--ask-become-pass", password=PASSWORD)
    assert done.returncode != 0
    assert "plain@" in done.stdout + done.stderr and "may not run commands as root" in done.stdout + done.stderr, \
        done.stdout + done.stderr
    assert untouched(users)


def test_the_same_user_without_become_cannot_apply(users: Cluster) -> None:
    users.rewrite("lb1:     {address: 10.213.10.11, groups: [lb]}",
                  "lb1:     {address: 10.213.10.11, groups: [lb], vars: {ssh_user: deploy}}")
    done = apply_cluster(users)
    assert done.returncode != 0, done.stdout
    assert untouched(users)
