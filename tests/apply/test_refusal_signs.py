"""Each daemon's sign of a refused reload, read by its real shell snippets from files set up to
look as the daemon leaves them: what it said before the mark, then what it says after.

The lab tests (test_refusal.py) make the daemons refuse for real; these pin down the cases a
lab cannot stage on demand: an earlier failure still on record, a reload not yet processed,
a bind that is being retried, a parent that is gone before the mark.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from haops.apply.execute import take_mark
from haops.targets.base import Refusal
from haops.targets.haproxy import master_refusal

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


