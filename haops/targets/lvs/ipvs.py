"""The live IPVS table of a director that keepalived does not manage, as shell.

`ipvsadm -S -n` (ipvsadm.c, print_service_entry with FMT_RULE|FMT_NUMERIC) prints one line per
virtual service and one per real server, single-spaced, addresses numeric, IPv6 in brackets:

    -A -t 10.0.0.100:80 -s wrr -p 300
    -a -t 10.0.0.100:80 -r 10.0.0.21:8080 -m -w 2

`-p` only for a persistent service; `-M`, `--pe`, `-o` and `-b` only for settings haops never
makes. Services and real servers come sorted by ipvsadm's own compare (address family, then
the address as a 32-bit difference, then the port), so the table and the file are compared as
sorted lines, never in order. The rules file is rendered in exactly this form.

Loading. ipvsadm-restore is `ipvsadm -C` and then `ipvsadm -R`: two processes, with an empty
table between them, and every real server's connection counters and persistence templates
thrown away. IPVS has no transaction, so instead one `ipvsadm -R` gets only the difference:
services and real servers added (-A, -a) or edited in place (-E, -e) in the file's order,
then real servers and services the file no longer lists deleted (-d, -D). What is unchanged
is never touched. `ipvsadm -R` exits with the status of its last line only, so the proof,
not the exit status, says whether the table holds the file.

ipvsadm itself runs modprobe when the kernel has no IPVS; the probe reads /proc/net/ip_vs
first, so reading facts never loads a module.
"""

from __future__ import annotations

import shlex

from haops.targets.base import NOTICE

IPVS_PROC = "/proc/net/ip_vs"

# The rule lines of a rules file, comments dropped and spacing made single.
RULE_LINES_AWK = '{ sub(/#.*/, ""); $1 = $1 } $1 == "-A" || $1 == "-a"'

SERVICES_AWK = RULE_LINES_AWK + ' { if ($1 == "-A") print $2, $3 }'  # "-t VIP:PORT" of each service

# stdin ("-"): `ipvsadm -S -n`; then the rules file. Prints the ipvsadm commands that turn
# the first into the second, additions and edits before deletions.
DIFFERENCE_AWK = r"""
FILENAME == "-" {
    live[$0] = 1
    if ($1 == "-A") live_service[$2 " " $3] = 1
    else if ($1 == "-a") live_server[$2 " " $3 " " $4 " " $5] = 1
    next
}
{ sub(/#.*/, ""); $1 = $1 }
$1 == "-A" {
    service = $2 " " $3; wanted_service[service] = 1
    if (!($0 in live)) print (service in live_service ? "-E" : "-A") substr($0, 3)
}
$1 == "-a" {
    server = $2 " " $3 " " $4 " " $5; wanted_server[server] = 1
    if (!($0 in live)) print (server in live_server ? "-e" : "-a") substr($0, 3)
}
END {
    for (server in live_server) {
        split(server, part, " ")
        if (!(server in wanted_server) && ((part[1] " " part[2]) in wanted_service)) print "-d " server
    }
    for (service in live_service) if (!(service in wanted_service)) print "-D " service
}
"""


def cannot_load_ipvs(proc: str = IPVS_PROC) -> str:
    """Shell: exit 0 when this kernel has no IPVS and modprobe cannot add it (a namespace lab)."""
    return f"[ ! -e {proc} ] && ! modprobe -n -q ip_vs 2>/dev/null"


def table_holds(rules: str) -> str:
    """Shell: the live table is exactly the file's services and real servers, nothing more."""
    quoted = shlex.quote(rules)
    return (f"[ -f {quoted} ] && live=$(ipvsadm -S -n) && "
            f"[ \"$(printf '%s\\n' \"$live\" | LC_ALL=C sort)\" = \"$(awk {shlex.quote(RULE_LINES_AWK)} {quoted} | LC_ALL=C sort)\" ]")


def holds_or_cannot(rules: str, proc: str = IPVS_PROC) -> str:
    """Shell: the table holds the file, or this kernel can hold no table at all (said at activation)."""
    return f"if [ -e {proc} ]; then {table_holds(rules)}; else {cannot_load_ipvs(proc)}; fi"


def load_script(rules: str, proc: str = IPVS_PROC) -> str:
    """Shell: IPVS loaded if missing, then the table made the file's in one `ipvsadm -R`;
    without IPVS, a notice and exit 0 (the file is written; nothing can hold it)."""
    quoted = shlex.quote(rules)
    difference = f"ipvsadm -S -n | awk {shlex.quote(DIFFERENCE_AWK)} - {quoted}"
    why = f"{NOTICE} no ip_vs kernel module: {rules} written, not loaded ($(printf %s \"$why\" | head -n1))"
    return "\n".join([
        f"[ -e {proc} ] || why=$(modprobe -q ip_vs 2>&1)",
        f"if [ ! -e {proc} ]; then echo \"{why}\"; exit 0; fi",
        f"commands=$({difference}) || exit 1",
        "[ -z \"$commands\" ] || printf '%s\\n' \"$commands\" | ipvsadm -R",
    ])


def unload_script(rules: str, proc: str = IPVS_PROC) -> str:
    """Shell: the virtual services the file lists deleted from the table (others stay)."""
    quoted = shlex.quote(rules)
    services = f"awk {shlex.quote(SERVICES_AWK)} {quoted}"
    return (f"[ -f {quoted} ] && [ -e {proc} ] || exit 0\n"
            f"{services} | while read -r kind address; do "
            "ipvsadm -L -n \"$kind\" \"$address\" >/dev/null 2>&1 || continue; "
            "ipvsadm -D \"$kind\" \"$address\" || exit 1; done")
