"""What a host has now, read with one batched SSH command and parsed by a pure function.

The script prints one tagged line per fact, so parsing never depends on a tool's prose:
  I <init>                    systemd or none
  H{ ... H}                   between them, sha256sum's own lines: a managed file's hash (absent files have none)
  M <mode> <path>             its octal mode
  F <sha256|-> <mode> <path>  the same for a path sha256sum would escape (a backslash or newline)
  T <path> <base64>           a file whose current text rendering needs (zone serials)
  A <target> <0|1> <gen...>   whether the target is live, and its generation (worker PIDs)
  R <target> <digest>         the digest of the files last made live and proven there
  L <target>                  a target haops made live here (a record exists), wanted or not
  P <target> <path>           a file it made live, as recorded (records older than this have none)
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from haops.targets.base import Target
from haops.targets.daemon import DETECT_INIT


@dataclass(frozen=True)
class TargetState:
    live: bool
    generation: str


@dataclass(frozen=True)
class HostFacts:
    init: str
    hashes: dict[str, str | None] = field(default_factory=dict)
    modes: dict[str, int] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    targets: dict[str, TargetState] = field(default_factory=dict)
    proven: dict[str, str] = field(default_factory=dict)
    recorded: dict[str, list[str]] = field(default_factory=dict)


PROVEN_DIR = "/var/lib/haops/live"


def proven_record(target: str) -> str:
    """Where a host keeps the digest of a target's files as last made live and proven."""
    return f"{PROVEN_DIR}/{target}"


def files_record(target: str) -> str:
    """Where a host keeps the paths of the files a target made live there, one a line."""
    return f"{PROVEN_DIR}/{target}.files"


def init_script() -> str:
    """Shell: the I line, without a subshell (printf and echo are builtins)."""
    return f"printf 'I '; {DETECT_INIT}"


def recorded_script() -> str:
    """Shell: one L line per target with a record, and a P line per file it recorded (builtins
    only: a host's facts are read on every apply, and every process there costs its CPU)."""
    return (f'for r in {PROVEN_DIR}/*; do case "$r" in *.files|*.new|"{PROVEN_DIR}/*") continue;; esac; '
            'n=${r##*/}; echo "L $n"; [ -f "$r.files" ] || continue; '
            'while IFS= read -r p || [ -n "$p" ]; do printf "P %s %s\\n" "$n" "$p"; done < "$r.files"; done; true')


def parse_recorded(output: str) -> dict[str, list[str]]:
    recorded: dict[str, list[str]] = {}
    for line in output.splitlines():
        tag, _, rest = line.partition(" ")
        if tag == "L":
            recorded.setdefault(rest.strip(), [])
        elif tag == "P":
            name, _, path = rest.partition(" ")
            recorded.setdefault(name, []).append(path)
    return recorded


def fact_script(paths: Iterable[str], text_paths: Iterable[str], targets: Iterable[Target]) -> str:
    lines = [init_script()]
    wanted = sorted(set(paths))
    plain = [p for p in wanted if "\\" not in p and "\n" not in p]
    if plain:  # one hashing and one stat process for all files, not three per file
        quoted_all = " ".join(shlex.quote(p) for p in plain)
        lines.append(f'echo "H{{"; sha256sum -- {quoted_all} 2>/dev/null; echo "H}}"')
        lines.append(f"stat -L -c 'M %a %n' -- {quoted_all} 2>/dev/null")
    for path in [p for p in wanted if p not in plain]:
        quoted = shlex.quote(path)
        lines.append(f'if [ -f {quoted} ]; then echo "F $(sha256sum < {quoted} | cut -c1-64) $(stat -c %a {quoted}) "{quoted}; '
                     f'else echo "F - - "{quoted}; fi')
    for path in sorted(set(text_paths)):
        quoted = shlex.quote(path)
        lines.append(f'if [ -f {quoted} ]; then echo "T "{quoted}" $(base64 -w0 < {quoted})"; fi')
    for target in dict.fromkeys(targets):
        lines.append(f'if ( {target.probe()} ) >/dev/null 2>&1; then a=1; else a=0; fi; '
                     f'echo "A {target.name} $a $({target.generation()})"')
        record = shlex.quote(proven_record(target.name))
        lines.append(f'if [ -f {record} ]; then read -r r < {record}; echo "R {target.name} $r"; fi')
    lines.append(recorded_script())
    return "\n".join(lines)


def parse_facts(output: str) -> HostFacts:
    init = "none"
    hashes: dict[str, str | None] = {}
    modes: dict[str, int] = {}
    texts: dict[str, str] = {}
    targets: dict[str, TargetState] = {}
    proven: dict[str, str] = {}
    in_hashes = False
    for line in output.splitlines():
        if line in ("H{", "H}"):
            in_hashes = line == "H{"
            continue
        if in_hashes:
            digest, _, path = line.partition("  ")
            hashes[path] = digest
            continue
        tag, _, rest = line.partition(" ")
        if tag == "I":
            init = rest.strip()
        elif tag == "F":
            digest, mode, path = rest.split(" ", 2)
            hashes[path] = None if digest == "-" else digest
            if mode != "-":
                modes[path] = int(mode, 8)
        elif tag == "M":
            mode, _, path = rest.partition(" ")
            modes[path] = int(mode, 8)
        elif tag == "T":
            path, _, encoded = rest.partition(" ")
            texts[path] = base64.b64decode(encoded).decode("utf-8", "replace")
        elif tag == "A":
            name, live, *generation = rest.split(" ")
            targets[name] = TargetState(live == "1", " ".join(g for g in generation if g))
        elif tag == "R":
            name, _, digest = rest.partition(" ")
            proven[name] = digest.strip()
    modes = {path: mode for path, mode in modes.items() if hashes.get(path)}  # a mode only for a file read
    return HostFacts(init, hashes, modes, texts, targets, proven, parse_recorded(output))
