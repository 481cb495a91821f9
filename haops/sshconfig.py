"""Where SSH to a host really goes, as OpenSSH would read ~/.ssh/config (or the lab's ssh_config).

An inventory host is looked up by its `ssh_host` when set; otherwise by its name when a `Host`
pattern other than `*` names it (`Host lb1`, `Host web*`), else by its address (so
`Host 10.0.1.*` blocks apply too). From the matching blocks: HostName, User, Port,
IdentityFile, IdentitiesOnly, ProxyJump (each hop looked up the same way), UserKnownHostsFile
and ConnectTimeout. What the inventory sets (ssh_user, ssh_port, ssh_key) wins over the file,
as `ssh -l -p -i` win over it. Pure: it opens no connection (haops/transport.py does).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from haops.errors import UserError

MAX_HOPS = 8
DEFAULT_KEYS = ("id_rsa", "id_ecdsa", "id_ed25519")
HOP = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s]+)(?::(?P<port>\d{1,5}))?$")
UNSUPPORTED = {"proxycommand": "ProxyCommand"}


def user_ssh_config() -> Path:
    return Path("~/.ssh/config").expanduser()


@dataclass(frozen=True)
class Route:
    """One SSH hop, resolved: where to connect, as whom, with which keys, through which jumps."""

    alias: str
    hostname: str
    port: int
    user: str | None
    identities: tuple[Path, ...] = ()
    identities_only: bool = False
    jumps: tuple[Route, ...] = ()  # outermost first: jumps[0] is connected to directly
    known_hosts: tuple[Path, ...] = ()
    connect_timeout_s: int | None = None

    def describe(self) -> str:
        where = f"{self.user + '@' if self.user else ''}{self.hostname}:{self.port}"
        return where if not self.jumps else f"{where} via {' -> '.join(j.alias for j in self.jumps)}"


@dataclass(frozen=True)
class Wanted:
    """What the caller already knows of the hop (inventory or lab); None leaves it to the file."""

    user: str | None = None
    port: int | None = None
    identities: tuple[Path, ...] = ()
    identities_only: bool = False
    known_hosts: tuple[Path, ...] = ()


@dataclass
class SshConfigFile:
    """An ssh_config file, parsed once (a missing file is an empty config)."""

    path: Path | None
    parsed: Any = field(init=False, repr=False)
    blocks: list[HostBlock] = field(init=False, repr=False)
    named: Patterns = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from paramiko import SSHConfig

        self.parsed = SSHConfig()
        if self.path is not None and self.path.is_file():
            try:
                self.parsed = SSHConfig.from_path(str(self.path))
            except (OSError, ValueError, UnicodeDecodeError) as exc:
                raise UserError(f"cannot read ssh config {self.path}: {exc}") from None
        self.blocks = [HostBlock.of(context) for context in self.parsed._config]  # paramiko keeps its blocks there
        # Not paramiko's get_hostnames(): it raises KeyError on a config with a Match block.
        self.named = any_of([p for block in self.blocks for p in block.patterns if p != "*" and not p.startswith("!")])

    def names(self, alias: str) -> bool:
        """A `Host` pattern other than `*` matches the alias."""
        return self.named.match(alias)

    def lookup(self, alias: str) -> dict[str, Any]:
        """The options for `alias`, as paramiko's lookup gives them. paramiko tests every block's
        patterns twice per lookup (one fnmatch per pattern, a getuser() per block), which made a
        lab's ssh_config, with a block per host, cost more per host the more hosts it had: here
        only the blocks that can apply are handed to it."""
        if any(block.canonicalizes for block in self.blocks):  # the second pass may look up another name
            return dict(self.parsed.lookup(alias))
        from paramiko import SSHConfig

        subset = SSHConfig()
        subset._config = [block.context for block in self.blocks if block.may_apply(alias)]
        return dict(subset.lookup(alias))


WILDCARDS = frozenset("*?[")


@dataclass(frozen=True)
class Patterns:
    """ssh_config (fnmatch) patterns: the plain names as a set, one regex for the rest. A lab's
    file has a block per host, each named plainly: compiling a regex for each cost more per host
    the more hosts there were."""

    names: frozenset[str]
    wild: re.Pattern[str] | None

    def match(self, alias: str) -> bool:
        return alias in self.names or (self.wild is not None and self.wild.fullmatch(alias) is not None)


def any_of(patterns: list[str]) -> Patterns:
    """What matches any of the patterns; none: nothing."""
    wild = [p for p in patterns if not WILDCARDS.isdisjoint(p)]
    return Patterns(frozenset(patterns).difference(wild),
                    re.compile("|".join(fnmatch.translate(p) for p in wild)) if wild else None)


@dataclass(frozen=True)
class HostBlock:
    """A Host or Match block of a parsed ssh_config, its Host patterns compiled once."""

    context: dict[str, Any]
    patterns: tuple[str, ...]
    positive: Patterns
    negated: Patterns
    is_match: bool
    canonicalizes: bool

    @classmethod
    def of(cls, context: dict[str, Any]) -> HostBlock:
        patterns = context.get("host", [])
        return cls(context, tuple(patterns), any_of([p for p in patterns if not p.startswith("!")]),
                   any_of([p[1:] for p in patterns if p.startswith("!")]),
                   bool(context.get("matches")), "canonicalizehostname" in context.get("config", {}))

    def may_apply(self, alias: str) -> bool:
        """A Match block is left to paramiko; a Host block applies as OpenSSH says: a pattern
        matches and no negated one does."""
        if self.is_match:
            return True
        return self.positive.match(alias) and not self.negated.match(alias)


def lookup_name(name: str, address: str, ssh_host: str | None, config: SshConfigFile) -> tuple[str, str]:
    """(alias to look up, the hostname to use when the file gives none)."""
    if ssh_host:
        return ssh_host, ssh_host
    if config.names(name):
        return name, address
    return address, address


def resolve(name: str, address: str, ssh_host: str | None, wanted: Wanted, config: SshConfigFile) -> Route:
    """The route to an inventory host (name, its address, its ssh_host)."""
    alias, fallback = lookup_name(name, address, ssh_host, config)
    return _route(alias, fallback, wanted, config, depth=0)


def resolve_alias(alias: str, wanted: Wanted, config: SshConfigFile) -> Route:
    """The route to a name as `ssh ALIAS` would take it (a ProxyJump hop)."""
    return _route(alias, alias, wanted, config, depth=0)


def _route(alias: str, fallback: str, wanted: Wanted, config: SshConfigFile, depth: int) -> Route:
    if depth > MAX_HOPS:
        raise UserError(f"ssh config: more than {MAX_HOPS} ProxyJump hops to reach {alias} (a loop?)")
    options = config.lookup(alias)
    refused = [key for key in UNSUPPORTED if key in options]
    if refused:
        raise UserError(f"ssh config for {alias}: {', '.join(UNSUPPORTED[k] for k in refused)} is not supported by haops; use ProxyJump")
    hostname = str(options.get("hostname") or alias)
    if hostname == alias:
        hostname = fallback
    identities = wanted.identities or tuple(Path(p).expanduser() for p in options.get("identityfile", []))
    only = wanted.identities_only or _yes(options.get("identitiesonly"))
    return Route(
        alias=alias,
        hostname=hostname,
        port=wanted.port or _port(options.get("port"), alias),
        user=wanted.user or options.get("user"),
        identities=identities,
        identities_only=only,
        jumps=_jumps(alias, hostname, options.get("proxyjump"), config, depth),
        known_hosts=wanted.known_hosts or tuple(Path(p).expanduser() for p in str(options.get("userknownhostsfile", "")).split()
                          if p != "/dev/null"),
        connect_timeout_s=_timeout(options.get("connecttimeout"), alias),
    )


def _jumps(alias: str, hostname: str, value: str | None, config: SshConfigFile, depth: int) -> tuple[Route, ...]:
    """ProxyJump a,b,c: connect to a, through it to b, through b to c, through c to the target."""
    if not value or value.strip().lower() == "none":
        return ()
    hops: list[Route] = []
    for text in value.split(","):
        match = HOP.fullmatch(text.strip())
        if match is None:
            raise UserError(f"ssh config for {alias}: ProxyJump hop {text.strip()!r} is not [user@]host[:port]")
        hop_alias = match["host"].strip("[]")
        if hop_alias in (alias, hostname):
            return ()  # `Host *` ProxyJump matching the jump host itself: it is reached directly, as ssh does
        port = int(match["port"]) if match["port"] else None
        route = _route(hop_alias, hop_alias, Wanted(user=match["user"], port=port), config, depth + 1)
        hops.extend(route.jumps if not hops else ())
        hops.append(Route(route.alias, route.hostname, route.port, route.user, route.identities,
                          route.identities_only, (), route.known_hosts, route.connect_timeout_s))
    return tuple(hops)


def _yes(value: Any) -> bool:
    return str(value or "").strip().lower() == "yes"


def _port(value: Any, alias: str) -> int:
    if value is None:
        return 22
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UserError(f"ssh config for {alias}: Port {text!r} is not a port number")
    return int(text)


def _timeout(value: Any, alias: str) -> int | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text.isdigit():
        raise UserError(f"ssh config for {alias}: ConnectTimeout {text!r} is not a number of seconds")
    return int(text)


def default_identities() -> tuple[Path, ...]:
    """The keys ssh tries when nothing names one: ~/.ssh/id_rsa, id_ecdsa, id_ed25519 that exist."""
    home = Path("~/.ssh").expanduser()
    return tuple(home / name for name in DEFAULT_KEYS if (home / name).is_file())
