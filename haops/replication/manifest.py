"""The convergence proof: a manifest of a tree (path, type, size, mode, owner, sha256, ACLs,
xattrs) read on each host by a stdlib python3 script, and the comparison of two manifests.

The script applies rsync's exclude rules (a subset: `*`, `?`, `**`, `[...]`, a leading `/`
anchors, a trailing `/` matches directories only), so what rsync leaves alone is left out of
both sides. Owners are compared the way rsync maps them: by name unless --numeric-ids, a
name the destination lacks keeping its numeric id (so a user's file is never root:root).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Any

MANIFEST_SCRIPT = r'''
import grp, hashlib, json, os, pwd, re, stat, struct, sys
root, excludes = sys.argv[1], json.loads(sys.argv[2])
ACL_TAGS = {1: "user_obj", 2: "user", 4: "group_obj", 8: "group", 16: "mask", 32: "other"}

def pattern(text):
    dir_only = text.endswith("/")
    text = text.rstrip("/")
    anchored = text.startswith("/")
    text = text.lstrip("/")
    full = anchored or "/" in text or "**" in text
    out, i = "", 0
    while i < len(text):
        if i == 0 and not anchored and text.startswith("**/"):  # as rsync: also at the top (unanchored only)
            out, i = "(.*/)?", 3
        elif text.startswith("**", i):
            out, i = out + ".*", i + 2
        elif text[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif text[i] == "?":
            out, i = out + "[^/]", i + 1
        elif text[i] == "[" and "]" in text[i + 1:]:
            end = text.index("]", i + 2 if text[i + 1:i + 2] == "]" else i + 1)
            out, i = out + "[" + text[i + 1:end].replace("!", "^", 1) + "]", end + 1
        else:
            out, i = out + re.escape(text[i]), i + 1
    head = "^" if anchored else ("(^|.*/)" if full else "^")
    return re.compile(head + out + "$"), dir_only, full

RULES = [pattern(p) for p in excludes]

def excluded(rel, is_dir):
    for rx, dir_only, full in RULES:
        if dir_only and not is_dir:
            continue
        if rx.match(rel if full else rel.rsplit("/", 1)[-1]):
            return True
    return False

def acl(path, name):
    try:
        raw = os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None
    entries = []
    for at in range(4, len(raw) - 7, 8):
        tag, perm, ident = struct.unpack("<HHI", raw[at:at + 8])
        entries.append([ACL_TAGS.get(tag, str(tag)), perm, ident if tag in (2, 8) else None])
    return entries

def xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    found = {}
    for name in sorted(names):
        if name.startswith("system.posix_acl_"):
            continue
        try:
            found[name] = os.getxattr(path, name, follow_symlinks=False).hex()
        except OSError:
            pass
    return found

def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

def entry(path):
    st = os.lstat(path)
    kind = "d" if stat.S_ISDIR(st.st_mode) else "f" if stat.S_ISREG(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "o"
    item = {"type": kind, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
            "size": st.st_size if kind == "f" else 0}
    if kind == "f":
        item["sha256"] = sha256(path)
    if kind == "l":
        item["link"] = os.readlink(path)
    else:
        item["xattrs"] = xattrs(path)
        item["acl"] = acl(path, "system.posix_acl_access")
        if kind == "d":
            item["default_acl"] = acl(path, "system.posix_acl_default")
    return item

def walk():
    if not os.path.isdir(root):
        return None
    entries = {".": entry(root)}
    for here, dirs, files in os.walk(root):
        rel_here = os.path.relpath(here, root)
        prefix = "" if rel_here == "." else rel_here + "/"
        dirs[:] = sorted(d for d in dirs if not excluded(prefix + d, True))
        for name in dirs + sorted(f for f in files if not excluded(prefix + f, False)):
            try:
                entries[prefix + name] = entry(os.path.join(here, name))
            except FileNotFoundError:
                continue
    return entries

found = walk()
users = {str(p.pw_uid): p.pw_name for p in pwd.getpwall()}
groups = {str(g.gr_gid): g.gr_name for g in grp.getgrall()}
json.dump({"entries": found, "users": users, "groups": groups}, sys.stdout, sort_keys=True)
'''


def manifest_command(path: str, excludes: tuple[str, ...]) -> str:
    return (f"command -v python3 >/dev/null || {{ echo 'python3 is needed for the manifest' >&2; exit 96; }}; "
            f"python3 -c {shlex.quote(MANIFEST_SCRIPT)} {shlex.quote(path)} {shlex.quote(json.dumps(list(excludes)))}")


@dataclass(frozen=True)
class Manifest:
    entries: dict[str, dict[str, Any]] | None  # None: the directory does not exist
    users: dict[int, str]
    groups: dict[int, str]

    @property
    def total_size(self) -> int:
        return sum(e["size"] for e in (self.entries or {}).values())

    @property
    def files(self) -> int:
        return len(self.entries or {})


def parse_manifest(text: str) -> Manifest:
    data = json.loads(text)
    return Manifest(data["entries"], {int(k): v for k, v in data["users"].items()},
                    {int(k): v for k, v in data["groups"].items()})


@dataclass(frozen=True)
class Difference:
    path: str
    what: str  # missing, extra, type, size, content, link, mode, owner, group, acl, xattrs
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.what}" + (f" ({self.detail})" if self.detail else "")


class IdMap:
    """Which id a source owner must have on the destination, as rsync maps it."""

    def __init__(self, source: Manifest, dest: Manifest, numeric: bool) -> None:
        self.source, self.numeric = source, numeric
        self.dest_uid = {name: uid for uid, name in dest.users.items()}
        self.dest_gid = {name: gid for gid, name in dest.groups.items()}
        self.dest = dest

    def uid(self, uid: int) -> int:
        return self.mapped(uid, self.source.users, self.dest_uid)

    def gid(self, gid: int) -> int:
        return self.mapped(gid, self.source.groups, self.dest_gid)

    def mapped(self, ident: int, names: dict[int, str], dest_ids: dict[str, int]) -> int:
        if self.numeric or ident == 0:
            return ident
        name = names.get(ident)
        return dest_ids.get(name, ident) if name is not None else ident

    def user(self, uid: int, side: Manifest) -> str:
        return f"{side.users.get(uid, '#')}({uid})"

    def group(self, gid: int, side: Manifest) -> str:
        return f"{side.groups.get(gid, '#')}({gid})"

    def acl(self, entries: list[list[Any]] | None) -> list[list[Any]] | None:
        if entries is None:
            return None
        return [[tag, perm, self.uid(ident) if tag == "user" else self.gid(ident) if tag == "group" else ident]
                for tag, perm, ident in entries]


def compare(source: Manifest, dest: Manifest, numeric_ids: bool = False) -> list[Difference]:
    """Every way the destination differs from the source; [] when they are the same tree."""
    theirs = dest.entries or {}
    ids = IdMap(source, dest, numeric_ids)
    found: list[Difference] = []
    for path, want in (source.entries or {}).items():
        have = theirs.get(path)
        found += [Difference(path, "missing")] if have is None else entry_differences(path, want, have, ids)
    found += [Difference(path, "extra") for path in theirs if path not in (source.entries or {})]
    return sorted(found, key=lambda d: (d.path, d.what))


def entry_differences(path: str, want: dict[str, Any], have: dict[str, Any], ids: IdMap) -> list[Difference]:
    if want["type"] != have["type"]:
        return [Difference(path, "type", f"{want['type']} -> {have['type']}")]
    found = []
    if want["size"] != have["size"]:
        found.append(Difference(path, "size", f"{have['size']} bytes, source {want['size']}"))
    elif want.get("sha256") != have.get("sha256"):
        found.append(Difference(path, "content", "sha256 differs"))
    if want.get("link") != have.get("link"):
        found.append(Difference(path, "link", f"-> {have.get('link')}, source -> {want.get('link')}"))
    if want["mode"] != have["mode"]:
        found.append(Difference(path, "mode", f"{have['mode']:04o}, source {want['mode']:04o}"))
    if ids.uid(want["uid"]) != have["uid"]:
        found.append(Difference(path, "owner", f"{ids.user(have['uid'], ids.dest)}, source {ids.user(want['uid'], ids.source)}"))
    if ids.gid(want["gid"]) != have["gid"]:
        found.append(Difference(path, "group", f"{ids.group(have['gid'], ids.dest)}, source {ids.group(want['gid'], ids.source)}"))
    if ids.acl(want.get("acl")) != have.get("acl") or ids.acl(want.get("default_acl")) != have.get("default_acl"):
        found.append(Difference(path, "acl"))
    if want.get("xattrs") != have.get("xattrs"):
        names = sorted(set(want.get("xattrs") or {}) ^ set(have.get("xattrs") or {}) | {
            n for n in (want.get("xattrs") or {}) if (have.get("xattrs") or {}).get(n) != want["xattrs"][n]})
        found.append(Difference(path, "xattrs", ", ".join(names)))
    return found


def blocking(differences: list[Difference], delete: bool) -> list[Difference]:
    """What stands between the destination and convergence: files only on the destination
    count only when the run deletes them."""
    return [d for d in differences if delete or d.what != "extra"]
