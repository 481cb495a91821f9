"""pyinfra's side of bench/apply_vs_peers.py: the work `haops apply` does for the benchmark
scenario, done the usual pyinfra way.

Each file (a byte-for-byte copy of what `haops render all` wrote under the host data's
`rendered`/<host>/) is uploaded to a staging copy under /var/lib/pyinfra-stage; only when
that upload changed something is the daemon's own checker run on it and the file moved
into place (a copy beside the live file, then a rename). A daemon is started or reloaded
only when one of its files changed, with haops' own commands (haops/targets/daemon.py and each target: lab hosts
have no systemd). The benchmark's generated inventory carries the SSH data: the lab's key
and known_hosts with strict host key checking.
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

from pyinfra import host
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, server
from pyinfra.operations.util import any_changed

STAGE = "/var/lib/pyinfra-stage"

# (live path, mode, checker argv prefix: the staged file is appended; None: no checker)
SYSCTL = [("/etc/sysctl.d/60-haops.conf", "644", None)]
HAPROXY = [("/etc/haproxy/haproxy.cfg", "640", "haproxy -c -f")]
RESPONDER = [("/etc/haops/responder/nginx.conf", "644", "nginx -t -q -c")]
# The zone first: named-checkconf -z loads the zones named.conf names from their live paths.
NAMED = [
    ("/etc/bind/haops/db.example.test", "644", "named-checkzone -k fail -i local example.test"),
    ("/etc/bind/named.conf", "644", "named-checkconf -z"),
]

# Start when not running, else reload: haops' own commands for hosts without systemd.
START_OR_RELOAD = {
    "sysctl": "sysctl -q -p /etc/sysctl.d/60-haops.conf",
    "haproxy": 'if m=$(cat /run/haproxy.pid 2>/dev/null); [ -n "$m" ] && kill -0 "$m" 2>/dev/null; '
               'then kill -USR2 "$(cat /run/haproxy.pid)"; '
               "else mkdir -p /run/haproxy && haproxy -W -D -p /run/haproxy.pid -S /run/haproxy-master.sock,mode,600 -f /etc/haproxy/haproxy.cfg; fi",
    "responder": 'if m=$(cat /run/haops-responder.pid 2>/dev/null); [ -n "$m" ] && kill -0 "$m" 2>/dev/null; '
                 "then nginx -c /etc/haops/responder/nginx.conf -s reload; "
                 "else nginx -c /etc/haops/responder/nginx.conf; fi",
    "named": 'if m=$(cat /run/named/named.pid 2>/dev/null); [ -n "$m" ] && kill -0 "$m" 2>/dev/null; '
             "then rndc reload; "
             "else mkdir -p /run/named && chown bind:bind /run/named && named -u bind; fi",
}


def install(path: str, mode: str, checker: str | None) -> OperationMeta:
    """Stage the file; when it changed: check it, then copy beside the live file and rename."""
    staged = f"{STAGE}{path}"
    live = PurePosixPath(path)
    temp = str(live.parent / f".{live.name}.pyinfra-new")
    upload = files.put(
        name=f"Stage {path}",
        src=f"{host.data.rendered}/{host.name}{path}",
        dest=staged,
        mode=mode,
        add_deploy_dir=False,
    )
    commands = [f"{checker} {shlex.quote(staged)}"] if checker else []
    commands += [
        f"mkdir -p {shlex.quote(str(live.parent))}",
        f"cp {shlex.quote(staged)} {shlex.quote(temp)} && chmod {mode} {shlex.quote(temp)}",
        f"mv -f {shlex.quote(temp)} {shlex.quote(path)}",
    ]
    server.shell(name=f"Check and install {path}", commands=commands, _if=upload.did_change)
    return upload


def deploy(name: str, entries: list[tuple[str, str, str | None]]) -> None:
    uploads = [install(*entry) for entry in entries]
    server.shell(name=f"Start or reload {name}", commands=[START_OR_RELOAD[name]], _if=any_changed(*uploads))


if "lb" in host.groups:
    deploy("sysctl", SYSCTL)  # first: HAProxy binds the service address before it is this host's
    deploy("haproxy", HAPROXY)
if "web" in host.groups:
    deploy("responder", RESPONDER)
if "dns" in host.groups:
    deploy("named", NAMED)
