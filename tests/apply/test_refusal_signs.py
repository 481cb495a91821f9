"""Each daemon's sign of a refused reload, read by its real shell snippets from files set up to
look as the daemon leaves them: what it said before the mark, then what it says after.

The lab tests (test_refusal.py) make the daemons refuse for real; these pin down the cases a
lab cannot stage on demand: an earlier failure still on record, a reload not yet processed,
a bind that is being retried, a parent that is gone before the mark.
"""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from haops.apply.execute import take_mark
from haops.targets.apache import DAEMON as APACHE, parent_exit_refusal
from haops.targets.base import Refusal
from haops.targets.haproxy import master_refusal
from haops.targets.nginx import emerg_refusal

pytestmark = pytest.mark.unit

# A fake socat that answers from the file named as the socket; fails when there is none,
# as the real one does while the master re-executes itself.
FAKE_SOCAT = '#!/bin/sh\nfor last; do :; done\nexec cat "${last#UNIX-CONNECT:}"\n'


def judged(refusal: Refusal, before: str, after: str, tmp_path: Path) -> tuple[bool, str]:
    """Run `before`, take the mark as apply does, run `after` (the reload), then the test."""
    script = "\n".join([before, take_mark(refusal), after, refusal.test])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "socat").write_text(FAKE_SOCAT)
    (bin_dir / "socat").chmod(0o755)
    done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    return done.returncode == 0, done.stdout


def show_proc(reloads: int, failed: int) -> str:
    """`show proc` as HAProxy 2.6.12's master CLI prints it."""
    return (f"#<PID>          <type>          <reloads>       <uptime>        <version>      \n"
            f"16260           master          {reloads} [failed: {failed}]   0d00h00m04s     2.6.12-1+deb12u4\n"
            f"# workers\n16261           worker          {reloads}               0d00h00m04s     2.6.12-1+deb12u4\n"
            f"# programs\n\n")


def master_says(tmp_path: Path, state: tuple[int, int] | None) -> str:
    socket = tmp_path / "master.sock"
    if state is None:
        return f"rm -f {socket}"
    (tmp_path / f"proc-{state[0]}-{state[1]}").write_text(show_proc(*state))
    return f"cp {tmp_path}/proc-{state[0]}-{state[1]} {socket}"


@pytest.mark.parametrize(("before", "after", "refused"), [
    ((0, 0), (1, 1), True),
    ((3, 2), (4, 3), True),   # failed again after two earlier failures
    ((0, 0), (1, 0), False),  # the reload took
    ((3, 2), (4, 0), False),  # took after earlier failures: the count starts again at 0
    ((3, 2), (3, 2), False),  # not processed yet: the earlier failures are not this reload's
    ((0, 0), None, False),    # the master is re-executing itself: no answer yet
    (None, (1, 1), False),    # no master CLI before (started without -S): nothing to compare with
], ids=["failed", "failed-again", "took", "took-after-failures", "not-yet", "re-executing", "no-socket"])
def test_haproxy_refusal_is_a_failed_reload_counted_after_the_mark(
        tmp_path: Path, before: tuple[int, int] | None, after: tuple[int, int] | None, refused: bool) -> None:
    refusal = master_refusal(str(tmp_path / "master.sock"))
    verdict, said = judged(refusal, master_says(tmp_path, before), master_says(tmp_path, after), tmp_path)
    assert verdict == refused
    assert ("reload failed" in said) == refused


NGINX_BIND = "2026/12/02 16:32:31 [emerg] 13668#13668: bind() to 10.213.10.100:8091 failed (98: Address already in use)"
NGINX_GAVE_UP = "2026/12/02 16:32:33 [emerg] 13668#13668: still could not bind()"


def appended(log: Path, *lines: str) -> str:
    return "".join(f"printf '%s\\n' '{line}' >> {log}\n" for line in lines) or "true"


@pytest.mark.parametrize(("after", "refused"), [
    ((NGINX_BIND,) * 5 + (NGINX_GAVE_UP,), True),
    (("2026/12/02 16:40:00 [emerg] 9#9: unknown directive \"nosuch\" in /etc/nginx/nginx.conf:3",), True),
    ((NGINX_BIND, NGINX_BIND), False),  # still retrying: the port may yet come free
    (("2026/12/02 16:40:00 [emerg] 9#9: close() socket 0.0.0.0:81 failed (9: Bad file descriptor)",), False),
    (("2026/12/02 16:40:00 [warn] 9#9: 1024 worker_connections are more than open file resource limit: 256",), False),
    ((), False),
], ids=["bind-gave-up", "runtime-error", "bind-retrying", "close-failed", "warning", "silent"])
def test_nginx_refusal_is_a_final_emerg_line_after_the_mark(tmp_path: Path, after: tuple[str, ...], refused: bool) -> None:
    log = tmp_path / "error.log"
    old_failure = appended(log, NGINX_BIND, NGINX_GAVE_UP)  # an earlier reload's refusal
    verdict, said = judged(emerg_refusal(str(log)), old_failure, appended(log, *after), tmp_path)
    assert verdict == refused
    if refused:
        assert said.splitlines() == list(dict.fromkeys(line.split(": ", 1)[1] for line in after)), "each message once"


def test_nginx_refusal_counts_a_log_that_did_not_exist_before(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    assert judged(emerg_refusal(str(log)), "true", appended(log, NGINX_GAVE_UP), tmp_path) == (True, "still could not bind()\n")


APACHE_LOG = ("[Wed Dec 02 16:33:10.530232 2026] [mpm_event:notice] [pid 15295:tid 15295] AH00493: SIGUSR1 received.  Doing graceful restart",
              "(98)Address already in use: AH00072: make_sock: could not bind to address 10.213.10.100:8092",
              "[Wed Dec 02 16:33:10.531467 2026] [:emerg] [pid 15295:tid 15295] AH00019: Unable to open logs, exiting")


def apache_refusal(tmp_path: Path) -> Refusal:
    return parent_exit_refusal(dataclasses.replace(APACHE, pidfile=str(tmp_path / "apache2.pid")), str(tmp_path / "error.log"))


def parent_started(tmp_path: Path) -> str:
    """A stand-in parent whose PID the pidfile names."""
    return f"sleep 30 </dev/null >/dev/null 2>&1 & echo $! > {tmp_path}/apache2.pid"


def parent_gone(tmp_path: Path) -> str:
    return f'kill "$(cat {tmp_path}/apache2.pid)"; wait'


def test_apache_refusal_is_the_parent_gone_after_the_restart(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    log.write_text("[Wed Dec 02 16:00:00.000000 2026] [:emerg] [pid 1:tid 1] AH00019: Unable to open logs, exiting\n")
    verdict, said = judged(apache_refusal(tmp_path), parent_started(tmp_path),
                           appended(log, *APACHE_LOG) + parent_gone(tmp_path), tmp_path)
    assert verdict
    assert said.splitlines() == [APACHE_LOG[1], "[:emerg] [pid 15295:tid 15295] AH00019: Unable to open logs, exiting",
                                 "apache2 stopped: its parent exits when a graceful restart fails"]


def test_apache_restart_with_the_parent_still_running_is_not_refused(tmp_path: Path) -> None:
    log = tmp_path / "error.log"
    verdict, _ = judged(apache_refusal(tmp_path), parent_started(tmp_path),
                        appended(log, *APACHE_LOG) + "sleep 0.1", tmp_path)
    assert not verdict
    subprocess.run(["sh", "-c", f'kill "$(cat {tmp_path}/apache2.pid)"'], check=True)


@pytest.mark.parametrize("pidfile", ["", "999999999"], ids=["no-pidfile", "stale-pidfile"])
def test_apache_start_is_never_refused_for_a_parent_that_was_not_running(tmp_path: Path, pidfile: str) -> None:
    """A start has no parent to lose (apache2ctl start returns before the pidfile is written)."""
    before = f"echo {pidfile} > {tmp_path}/apache2.pid" if pidfile else "true"
    assert judged(apache_refusal(tmp_path), before, "true", tmp_path) == (False, "")
