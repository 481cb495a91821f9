"""One apply at a time per host: a flock held by a remote process on a lease we keep renewing.

The holder is a shell on the host that keeps the lock while heartbeats arrive on its SSH
channel. Once it holds the lock it runs `then` (apply's fact script) and sends its output, so
taking the lock and reading the facts under it cost one channel. When apply ends it closes the channel and the lock frees at once; when haops dies
or the network splits, heartbeats stop and the lock frees itself within LEASE_S. A stale
lock therefore never needs clearing by hand.
"""

from __future__ import annotations

import getpass
import os
import shlex
import socket
import threading
import time
from typing import TYPE_CHECKING

from haops.transport import HostFailure, run, shell_command

if TYPE_CHECKING:
    from fabric import Connection
    from paramiko import Channel

LOCK = "/run/lock/haops-apply.lock"
HOLDER = "/run/lock/haops-apply.holder"
LEASE_S = 20
BEAT_S = 5
ANSWER_S = 15
THEN_S = 120  # the script run under the lock, before LOCKED
LOCKED = b"\nhaops-lock: held "


BASH = "/bin/bash"


def hold_script(holder: str, then: str, lease_s: int = LEASE_S) -> str:
    """The holder: this shell takes the lock on its own descriptor 9 (flock -n 9) and keeps it
    until it ends, runs `then`, prints LOCKED with its exit code, and waits for heartbeats.
    One shell for all of it, and no mkdir unless /run/lock is missing: every process here is
    paid on every host on every apply. The wait is bash's `read -t` where bash is (the shell
    becomes bash and keeps descriptor 9): no process per heartbeat; else one `timeout` each.
    --norc: Debian's bash reads ~/.bashrc under sshd even for `bash -c`."""
    wait_in_bash = f'while read -r -t {lease_s} beat && [ -n "$beat" ]; do :; done'
    return (f"[ -d /run/lock ] || mkdir -p /run/lock; exec 9>>{LOCK} && flock -n 9 || exit 1; "
            f"echo {shlex.quote(holder)} > {HOLDER}; ( eval {shlex.quote(then)} ) </dev/null; "
            'c=$?; echo; echo "haops-lock: held $c"; '
            f"[ -x {BASH} ] && exec {BASH} --norc --noprofile -c {shlex.quote(wait_in_bash)}; "
            f'while beat=$(timeout {lease_s} head -n1) && [ -n "$beat" ]; do :; done')


class HostLock:
    def __init__(self, connection: Connection, host: str, then: str = "true") -> None:
        self.connection, self.host, self.then = connection, host, then
        self.channel: Channel | None = None
        self.stop = threading.Event()
        self.output = ""  # what `then` printed
        self.then_code = 0

    def __enter__(self) -> HostLock:
        holder = f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()} since {time.strftime('%H:%M:%S')}"
        command, first = shell_command(self.connection, hold_script(holder, self.then))
        try:
            self.channel = channel = self.connection.client.get_transport().open_session(timeout=ANSWER_S)
            channel.settimeout(ANSWER_S)
            channel.exec_command(command)
            if first:
                channel.sendall(first)
            self._await_lock(channel)
        except (TimeoutError, OSError, EOFError) as exc:
            raise HostFailure(f"taking the apply lock on {self.host} failed: {exc or 'no answer'}") from None
        threading.Thread(target=self._beat, args=(channel,), name=f"lock-{self.host}", daemon=True).start()
        return self

    def _await_lock(self, channel: Channel) -> None:
        """Read what `then` printed up to the LOCKED line; an end before it means another holder."""
        answer = b""
        give_up_at = time.monotonic() + THEN_S
        while not (LOCKED in answer and answer.endswith(b"\n")):
            if time.monotonic() > give_up_at:
                raise HostFailure(f"no answer from {self.host} within {THEN_S}s while reading its facts under the lock")
            chunk = channel.recv(65536)
            if not chunk:
                who = run(self.connection, f"cat {HOLDER} 2>/dev/null").stdout.strip() or "another apply"
                raise HostFailure(f"locked: another apply is running on {self.host} ({who}); "
                                  f"try again when it ends (a vanished holder's lock frees itself within {LEASE_S}s)")
            answer += chunk
        output, _, code = answer.rpartition(LOCKED)
        self.output, self.then_code = output.decode("utf-8", "replace"), int(code.strip() or 0)

    def _beat(self, channel: Channel) -> None:
        while not self.stop.wait(BEAT_S):
            try:
                channel.sendall(b"beat\n")
            except (OSError, EOFError):
                return

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.channel is None:
            return
        try:
            self.channel.shutdown_write()  # end of input: the holder's loop ends, the lock frees now
            self.channel.close()
        except (OSError, EOFError):
            pass  # the connection is gone; the lease runs out on the host by itself
