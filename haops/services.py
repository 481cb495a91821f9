"""How each daemon is started, reloaded and proven reloaded, with systemd or without it.

Everything here is data: shell snippets that the apply stage runs over SSH. Lab hosts
have no systemd, so each daemon also has a plain form that detaches from the SSH session
(the daemons' own -D/daemonize, or setsid) so the channel never hangs.

A reload's exit code is not proof (nginx -s reload exits 0 when the reload fails; rndc
reload is asynchronous), so each daemon names a *generation*: something that must change
when the new configuration is live (the set of worker PIDs, the zone serials).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

SYSTEMD = "systemd"
PLAIN = "none"
DETECT_INIT = "if [ -d /run/systemd/system ]; then echo systemd; else echo none; fi"

# Children of the master: they are replaced when a reload takes effect.
WORKERS = 'for p in $(pidof {process} 2>/dev/null); do [ "$(ps -o ppid= -p $p | tr -d " ")" = "$m" ] && echo $p; done | sort -n | xargs'


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

    def running(self) -> str:
        """Shell test: true when the master runs."""
        return f'm={self.master_pid()}; [ -n "$m" ] && kill -0 "$m" 2>/dev/null'

    def generation(self) -> str:
        """Shell snippet printing the worker PIDs, which a taking reload replaces."""
        return f"m={self.master_pid()}; " + WORKERS.format(process=shlex.quote(self.process))

    def start_command(self, init: str) -> str:
        if init == SYSTEMD and self.unit:
            return f"systemctl start {self.unit}"
        return f"{self.prepare} && {self.start}"

    def reload_command(self, init: str) -> str:
        if init == SYSTEMD and self.unit:
            return f"systemctl reload {self.unit}"
        return self.reload

    def stop_command(self, init: str) -> str:
        if init == SYSTEMD and self.unit:
            return f"systemctl stop {self.unit}"
        return f'm={self.master_pid()}; [ -z "$m" ] || kill "$m"'


DAEMONS: dict[str, Daemon] = {
    "haproxy": Daemon(
        name="haproxy", unit="haproxy", process="haproxy", pidfile="/run/haproxy.pid",
        prepare="mkdir -p /run/haproxy",
        # Master-worker: USR2 makes the master re-read the config and start new workers,
        # which inherit the listening sockets, so no connection is refused.
        start="haproxy -W -D -p /run/haproxy.pid -f /etc/haproxy/haproxy.cfg",
        reload='kill -USR2 "$(cat /run/haproxy.pid)"',
    ),
    "nginx": Daemon(
        name="nginx", unit="nginx", process="nginx", pidfile="/run/nginx.pid",
        start="nginx -c /etc/nginx/nginx.conf", reload="nginx -c /etc/nginx/nginx.conf -s reload",
    ),
    "apache2": Daemon(
        name="apache2", unit="apache2", process="apache2", pidfile="/run/apache2/apache2.pid",
        prepare="mkdir -p /run/apache2 /run/lock/apache2 /var/log/apache2",
        start="apache2ctl start", reload="apache2ctl graceful",
    ),
    "named": Daemon(
        name="named", unit="named", process="named", pidfile="/run/named/named.pid",
        prepare="mkdir -p /run/named && chown bind:bind /run/named",
        start="named -u bind", reload="rndc reload",
    ),
    "haops-responder": Daemon(
        name="haops-responder", unit=None, process="nginx", pidfile="/run/haops-responder.pid",
        start="nginx -c /etc/haops/responder/nginx.conf", reload="nginx -c /etc/haops/responder/nginx.conf -s reload",
    ),
    "keepalived": Daemon(
        name="keepalived", unit="keepalived", process="keepalived", pidfile="/run/keepalived.pid",
        start="keepalived -f /etc/keepalived/keepalived.conf -p /run/keepalived.pid",
        reload='kill -HUP "$(cat /run/keepalived.pid)"',
    ),
}

