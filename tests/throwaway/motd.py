"""A throwaway target that lives only in the test suite, to prove a technology can be added
through haops.targets.registered without touching any haops module or the haops templates.

On each of its hosts it installs a motd naming the host and a script that publishes it to
/run; the script is the activation and a byte-equal copy in /run is the proof.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path

import jinja2

from haops.inventory.model import Inventory
from haops.targets.base import Check, RemoteHost, RenderContext, RenderedFile, StateCheck, Target, Verdict, under
from haops.verify.result import verdict

MOTD = "/etc/haops-throwaway/motd"
PUBLISH = "/etc/haops-throwaway/publish.sh"
PUBLISHED = "/run/haops-throwaway/motd"
TEMPLATES = Path(__file__).parent / "templates"


def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)
    env.filters["dirname"] = posixpath.dirname
    return env


def required_line(host: str) -> str:
    return f"host: {host}"


def published_matches() -> str:
    return f"cmp -s {MOTD} {PUBLISHED}"


class MotdTarget(Target):
    name = "motd"

    def __init__(self, on: tuple[str, ...]) -> None:
        self.on = on
        self.env = environment()

    def hosts(self, inventory: Inventory) -> tuple[str, ...]:
        return tuple(name for name in inventory.hosts if name in self.on)

    def render(self, inventory: Inventory, host: str, context: RenderContext) -> list[RenderedFile]:
        motd = self.env.get_template("motd.j2").render(host=host, address=inventory.hosts[host].address)
        publish = self.env.get_template("publish.sh.j2").render(motd=MOTD, published=PUBLISHED)
        return [RenderedFile(MOTD, motd), RenderedFile(PUBLISH, publish, mode=0o755)]

    def checks(self, inventory: Inventory, host: str, root: Path) -> list[Check]:
        return [
            Check("sh", ("sh", "-n", under(root, PUBLISH)), "sh -n publish.sh"),
            Check("grep", ("grep", "-qx", required_line(host), under(root, MOTD)), "motd names its host"),
        ]

    def probe(self) -> str:
        return published_matches()

    def activate(self, init: str, live: bool, files: list[RenderedFile]) -> str:
        return f"sh {shlex.quote(PUBLISH)}"

    def proof(self, inventory: Inventory, host: str, files: list[RenderedFile], before: str | None) -> str:
        return published_matches()

    def stop(self, init: str) -> str | None:
        return f"rm -f {PUBLISHED}"

    def state_checks(self, inventory: Inventory, host: str) -> list[StateCheck]:
        def probe(remote: RemoteHost) -> Verdict:
            published = remote.file(PUBLISHED)
            text = published.content_string if published.exists else ""
            ok = required_line(host) in text.splitlines() and remote.run(published_matches()).rc == 0
            observed = "published, names the host" if ok else f"published copy is {text.strip()[:60]!r}"
            return "published, names the host", observed, verdict(ok)

        return [StateCheck("motd", f"{host} {PUBLISHED}", probe)]
