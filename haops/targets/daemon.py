"""How a daemon is started, reloaded, stopped and seen reloaded, with systemd or without it.

Everything here is data: shell snippets that apply runs over SSH. Lab hosts have no systemd,
so each daemon also has a plain form that detaches from the SSH session (the daemon's own
daemonize flag, or setsid), so the channel never hangs.

A reload's exit code is not proof (nginx -s reload exits 0 when the reload fails; rndc reload
is asynchronous), so each daemon names a *generation*: something that must change when the
new configuration is live (the set of worker PIDs).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from haops.inventory.model import bracketed

SYSTEMD = "systemd"
PLAIN = "none"
DETECT_INIT = "if [ -d /run/systemd/system ]; then echo systemd; else echo none; fi"

# Children of the master: they are replaced when a reload takes effect. Shell builtins only
# (apply's facts and every proof poll run this): the parent is field 4 of /proc/PID/stat
# (process names have no spaces, the inventory checks that), the PIDs as pidof lists them.
WORKERS = ('g=; for p in $(pidof {process} 2>/dev/null); do {{ read -r _ _ _ pp _ < /proc/$p/stat; }} 2>/dev/null && '
           '[ "$pp" = "$m" ] && g="$g $p"; done; echo $g')


@dataclass(frozen=True)
class Daemon:
    name: str
    unit: str | None  # None: no systemd unit ships for it, so it runs plain everywhere
    process: str
    pidfile: str
    start: str
    reload: str
    prepare: str = "true"

    def master_pid(self) -> str:
        """Shell expression: the master's PID, or empty."""
        return f"$(cat {shlex.quote(self.pidfile)} 2>/dev/null)"

    def read_master(self) -> str:
        """Shell: the master's PID into $m (empty if none), without a process."""
        return f"m=; {{ read -r m < {shlex.quote(self.pidfile)}; }} 2>/dev/null"

    def running(self) -> str:
        """Shell test: true when the master runs."""
        return f'{self.read_master()}; [ -n "$m" ] && kill -0 "$m" 2>/dev/null'

    def generation(self) -> str:
        """Shell snippet printing the worker PIDs, which a taking reload replaces."""
        return f"{self.read_master()}; " + WORKERS.format(process=shlex.quote(self.process))

    def holds_port(self, port: int, address: str = "0.0.0.0") -> str:
        """Shell test: this daemon's master or one of its workers (not a squatter, nor another
        instance of the same program) listens on the TCP address and port."""
        workers = WORKERS.format(process=shlex.quote(self.process))
        pids = f'"pid=($m|$({workers} | tr " " "|")),"'
        return f"m={self.master_pid()}; ss -ltnpH {shlex.quote(listening_on(address, port))} | grep -Eq {pids}"

    def old_workers_let_go(self, generation: str, port: int, address: str = "0.0.0.0") -> str:
        """Shell test: no worker of an earlier `generation` still listens on the address and port.
        Until then a reload is not wholly live: an old worker may still take a new connection."""
        pids = "|".join(p for p in generation.split() if p.isdigit())
        if not pids:
            return "true"
        return f"! ss -ltnpH {shlex.quote(listening_on(address, port))} | grep -Eq {shlex.quote(f'pid=({pids}),')}"

    def port_not_being_handed_over(self, port: int, address: str, daemons: list[str]) -> str:
        """Shell test: no process named in `daemons` (the programs haops runs) listens on the address
        and port, or this daemon does. A stranger holding it is no handover: the bind's refusal says so."""
        names = shlex.quote(f'users:\\(\\("({"|".join(daemons)})",')
        return (f"{{ ! ss -ltnpH {shlex.quote(in_the_way_of(address, port))} | grep -Eq {names} "
                f"|| ( {self.holds_port(port, address)} ); }}")

    def start_command(self, init: str) -> str:
        """Shell: start it, and nothing more (a drill's fault, a test's restart)."""
        if init == SYSTEMD and self.unit:
            return f"systemctl start {self.unit}"
        return f"{self.prepare} && {self.start}"

    def enable_and_start_command(self, init: str) -> str:
        """Shell: start it as apply makes it live; under systemd also enabled, so it comes back after a reboot."""
        if init == SYSTEMD and self.unit:
            return f"systemctl enable --quiet --now {self.unit}"
        return self.start_command(init)

    def reload_command(self, init: str) -> str:
        if init == SYSTEMD and self.unit:
            return f"systemctl reload {self.unit}"
        return self.reload

    def until_stopped(self, seconds: int = 10) -> str:
        """Shell: wait (bounded) until the master is gone; fails if it is still running."""
        return f"for i in $(seq {seconds * 10}); do ( {self.running()} ) || exit 0; sleep 0.1; done; exit 1"

    def stop_command(self, init: str) -> str:
        """Shell: stop it, and nothing more: a drill's stop leaves the unit enabled."""
        if init == SYSTEMD and self.unit:
            return f"systemctl stop {self.unit}"
        return f'm={self.master_pid()}; [ -z "$m" ] || kill "$m"'

    def stop_and_disable_command(self, init: str) -> str:
        """Shell: stop it as a rollback or a retire does; under systemd also disabled, so a reboot does not bring it back."""
        if init == SYSTEMD and self.unit:
            return f"systemctl disable --quiet --now {self.unit}"
        return self.stop_command(init)


def log_size(path: str) -> str:
    """Shell: prints the size of a log in bytes; 0 when it does not exist yet."""
    return f"stat -c %s {shlex.quote(path)} 2>/dev/null || echo 0"


def log_since(path: str, offset: str) -> str:
    """Shell: what was written to a log after its first `offset` bytes (a shell word)."""
    return f"tail -c +$(({offset} + 1)) {shlex.quote(path)} 2>/dev/null"


def in_the_way_of(address: str, port: int) -> str:
    """An ss filter for listeners that keep a bind to the address and port from working: on it,
    or on the wildcard address of the same port."""
    if address in ("0.0.0.0", "::"):  # a wildcard bind meets every listener on the port
        return f"sport = :{port}"
    return f"( src {bracketed(address)} or src 0.0.0.0 or src [::] ) and sport = :{port}"


def listening_on(address: str, port: int) -> str:
    """An ss filter for listeners on the TCP address and port (0.0.0.0: any address)."""
    return f"sport = :{port}" if address == "0.0.0.0" else f"src {bracketed(address)} and sport = :{port}"  # ss: IPv6 in []
