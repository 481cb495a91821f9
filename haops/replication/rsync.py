"""rsync as haops runs it on the source host: the argv, and parsers for what it prints.

Pure code: the argv is data built from the request, and the parsers read rsync's own
`--itemize-changes`, `--info=progress2` and `--stats` output (tests/data/rsync/ holds real runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from haops.inventory.model import bracketed

# Exit codes rsync documents, in the words haops reports them with.
EXIT_MEANINGS = {
    1: "syntax or usage error", 2: "protocol incompatibility", 3: "errors selecting input/output files",
    5: "error starting client-server protocol", 10: "error in socket I/O", 11: "error in file I/O",
    12: "error in rsync protocol data stream (the connection broke)", 20: "interrupted",
    23: "partial transfer due to error", 24: "some source files vanished during the transfer",
    25: "more deletions than previewed: new files appeared on the destination since the preview; "
        "run again to see them", 30: "timeout in data send/receive", 35: "timeout waiting for daemon",
}
SSH_ALIVE_INTERVAL_S, SSH_ALIVE_COUNT = 2, 3
EXIT_MEANINGS[255] = (f"the source's SSH connection to the destination failed: refused, unreachable, or "
                      f"silent for {SSH_ALIVE_INTERVAL_S * SSH_ALIVE_COUNT} s")
SAFE_WORD = re.compile(r"^[A-Za-z0-9._@%+=:,/-]+$")


@dataclass(frozen=True)
class RsyncOptions:
    excludes: tuple[str, ...] = ()
    delete: bool = False
    max_delete: int | None = None
    numeric_ids: bool = False
    dry_run: bool = False
    io_timeout_s: int = 30
    connect_timeout_s: int = 10
    bwlimit_kib: int | None = None
    # With --delete: only these paths (as the preview listed them) may be removed; None: any.
    deletable: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Login:
    """How the source host reaches one destination: address, port, user, and the name its
    host key is filed under in the run's known_hosts."""

    alias: str
    address: str
    port: int
    user: str
    sudo: bool = False  # the destination's rsync runs as root through sudo (NOPASSWD: nobody can answer it)


def ssh_command(login: Login, known_hosts: str, options: RsyncOptions) -> str:
    """The `-e` of rsync: the source's ssh, its own config and keys ignored, strict host keys
    against the run's known_hosts, keys only from the forwarded agent. rsync splits it on
    spaces, so every word must be one (checked)."""
    words = ["ssh", "-F", "/dev/null", "-T", "-x", "-p", str(login.port), "-l", login.user,
             "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known_hosts}",
             "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"HostKeyAlias={login.alias}",
             "-o", "UpdateHostKeys=no", "-o", "IdentityFile=none", "-o", "PasswordAuthentication=no",
             "-o", "KbdInteractiveAuthentication=no", "-o", "ControlMaster=no", "-o", "ControlPath=none",
             "-o", "ForwardAgent=no", "-o", f"ConnectTimeout={options.connect_timeout_s}",
             "-o", f"ServerAliveInterval={SSH_ALIVE_INTERVAL_S}", "-o", f"ServerAliveCountMax={SSH_ALIVE_COUNT}",
             "-o", "LogLevel=ERROR"]
    unsafe = [w for w in words if not SAFE_WORD.fullmatch(w)]
    if unsafe:
        raise ValueError(f"cannot pass {unsafe} to rsync's -e")
    return " ".join(words)


def rsync_argv(source_path: str, login: Login, dest_path: str, known_hosts: str, options: RsyncOptions) -> list[str]:
    """rsync on the source host pushing the *contents* of source_path into dest_path."""
    argv = ["rsync", "-aAXz", "-8", "--mkpath", "--itemize-changes", "--stats", "--info=progress2", "--no-human-readable",
            f"--timeout={options.io_timeout_s}", "-e", ssh_command(login, known_hosts, options)]
    if login.sudo:
        argv.append("--rsync-path=sudo -n rsync")
    if options.numeric_ids:
        argv.append("--numeric-ids")
    if options.delete:
        argv.append("--delete")
        if options.max_delete is not None:
            argv.append(f"--max-delete={options.max_delete}")
    if options.dry_run:
        argv.append("--dry-run")
    if options.bwlimit_kib is not None:
        argv.append(f"--bwlimit={options.bwlimit_kib}")
    argv += [f"--exclude={pattern}" for pattern in options.excludes]
    if options.delete and options.deletable is not None:
        argv += only_these_deleted(options.deletable)
    # bare, rsync would read an IPv6 address's :: as its daemon syntax
    argv += ["--", with_slash(source_path), f"{login.user}@{bracketed(login.address)}:{with_slash(dest_path)}"]
    return argv


def only_these_deleted(paths: tuple[str, ...]) -> list[str]:
    """Filter rules that let --delete remove the listed paths and protect everything else: a
    path that appeared on the destination after the preview stays."""
    return [f"--filter=R /{literal_pattern(path)}" for path in paths] + ["--filter=P *"]


def literal_pattern(path: str) -> str:
    """A path as an rsync pattern matching only itself. rsync reads a backslash as an escape only
    in a pattern that has a wildcard, so only such a pattern is escaped."""
    if not any(c in path for c in "*?["):
        return path
    return re.sub(r"([*?\[\]\\])", r"\\\1", path)


def with_slash(path: str) -> str:
    return path if path.endswith("/") else path + "/"


# --- what rsync prints -----------------------------------------------------------------

# %i (11 characters, "*deleting" padded) and one space: a name's own leading spaces stay its own
ITEM = re.compile(r"^(\*deleting  |[<>ch.][fdLDS][^ ]{9}) (.*)$")
ESCAPED = re.compile(r"\\#([0-7]{3})")  # rsync prints a byte it will not show as \#ooo (octal)
PROGRESS = re.compile(r"^\s*(\d+)\s+(\d+)%\s+\S+\s+\d+:\d\d:\d\d")
STAT = re.compile(r"^([A-Z][A-Za-z ]+): ([\d,.]+)")
STAT_KEYS = {
    "Number of files": "files", "Number of created files": "created", "Number of deleted files": "deleted",
    "Number of regular files transferred": "transferred", "Total file size": "total_size",
    "Total transferred file size": "transferred_size", "Literal data": "literal", "Matched data": "matched",
    "Total bytes sent": "bytes_sent", "Total bytes received": "bytes_received",
}


@dataclass(frozen=True)
class Change:
    """One line of --itemize-changes: what rsync did (or would do) to one path."""

    code: str
    path: str

    @property
    def deleting(self) -> bool:
        return self.code == "*deleting"

    @property
    def what(self) -> str:
        if self.deleting:
            return "delete"
        if self.code[2:].startswith("+++++++++"):
            return "create"
        kinds = {"c": "checksum", "s": "size", "t": "time", "p": "perms", "o": "owner", "g": "group",
                 "a": "acl", "x": "xattrs"}
        changed = [name for letter, name in kinds.items() if letter in self.code[2:]]
        return ",".join(changed) or "attributes"


@dataclass(frozen=True)
class RsyncStats:
    files: int = 0
    created: int = 0
    deleted: int = 0
    transferred: int = 0
    total_size: int = 0
    transferred_size: int = 0
    literal: int = 0
    matched: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class RsyncOutput:
    """rsync's stdout, fed piece by piece as it arrives (progress lines end in \\r)."""

    changes: list[Change] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)
    percent: int | None = None

    def feed(self, piece: str) -> int | None:
        """Take one line or progress update; the percent done if it was progress."""
        if (progress := PROGRESS.match(piece)) is not None:
            self.percent = int(progress.group(2))
            return self.percent
        if (item := ITEM.match(piece)) is not None:
            self.changes.append(Change(item.group(1).strip(), unescaped(item.group(2))))
        elif (stat := STAT.match(piece)) is not None and stat.group(1) in STAT_KEYS:
            self.figures[STAT_KEYS[stat.group(1)]] = int(stat.group(2).replace(",", "").split(".")[0])
        return None

    def stats(self) -> RsyncStats | None:
        return RsyncStats(**self.figures) if "bytes_sent" in self.figures else None

    @property
    def deletions(self) -> list[str]:
        return [c.path for c in self.changes if c.deleting]


def unescaped(name: str) -> str:
    """A name as rsync's output escapes it, back as it is (-8 keeps UTF-8 as it is; control
    characters and a literal backslash-hash stay escaped)."""
    return ESCAPED.sub(lambda m: chr(int(m.group(1), 8)), name)


def parse(text: str) -> RsyncOutput:
    """All of one rsync run's stdout at once."""
    output = RsyncOutput()
    for piece in re.split(r"[\r\n]", text):
        if piece.strip():
            output.feed(piece)
    return output


def failure_text(code: int, stderr: str) -> str:
    meaning = EXIT_MEANINGS.get(code, "failed")
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("rsync error:")]
    detail = "; ".join(lines[-3:])
    return f"rsync exit {code} ({meaning})" + (f": {detail}" if detail else "")
