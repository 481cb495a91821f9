"""The LVS director's live table: probe, load and retire scripts run by sh against a stand-in
ipvsadm that prints what the real one prints. The table text follows ipvsadm.c's
print_service_entry for `-S -n` (FMT_RULE | FMT_NUMERIC): services sorted by address family,
then address, then port; real servers by address, then port; `-p` only when persistent; IPv6
in brackets. That is another order than the file's (services by name)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from haops import inventory
from haops.apply.execute import notices
from haops.targets import keepalived, lvs
from haops.targets.base import ALWAYS, NOTICE, RenderContext, RenderedFile
from haops.targets.lvs import ipvs
from tests.conftest import GOLDEN

pytestmark = pytest.mark.unit

DIRECTOR_CASE = GOLDEN / "lvs" / "ipvsadm-director-dr" / "inventory.yml"

# What `ipvsadm -S -n` prints once the ipvsadm-director-dr file is loaded: 10.213.0.100 sorts
# before 10.213.0.101, so www comes first here, app first in the file.
SAVED = """\
-A -t 10.213.0.100:80 -s sh -p 300
-a -t 10.213.0.100:80 -r 10.213.0.21:80 -g -w 1
-a -t 10.213.0.100:80 -r 10.213.0.22:80 -g -w 1
-A -t 10.213.0.101:8443 -s wrr
-a -t 10.213.0.101:8443 -r 10.213.0.21:9443 -m -w 3
-a -t 10.213.0.101:8443 -r 10.213.0.22:9443 -m -w 1
"""

FAKE_IPVSADM = """#!/bin/sh
case "$1" in
    -S) cat "$FAKE_TABLE" ;;
    -R) cat >> "$FAKE_LOG" ;;
    -L) grep -q -- "^-A $3 $4 " "$FAKE_TABLE" ;;
    *) echo "$@" >> "$FAKE_LOG" ;;
esac
"""


def executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def host(tmp_path: Path) -> dict[str, str]:
    """A stand-in ipvsadm (and a modprobe that cannot load anything) first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    executable(bin_dir / "ipvsadm", FAKE_IPVSADM)
    executable(bin_dir / "modprobe", "#!/bin/sh\necho 'modprobe: FATAL: Module ip_vs not found in directory /lib/modules/x' >&2\nexit 1\n")
    (tmp_path / "log").write_text("")
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_TABLE": str(tmp_path / "table"),
            "FAKE_LOG": str(tmp_path / "log")}


def rendered_rules(tmp_path: Path) -> Path:
    inv = inventory.load(DIRECTOR_CASE)
    [file] = lvs.TARGET.render(inv, "lb1", RenderContext())
    path = tmp_path / "lvs.rules"
    path.write_text(file.text)
    return path


def sh(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True, timeout=20)


def with_table(env: dict[str, str], text: str) -> dict[str, str]:
    Path(env["FAKE_TABLE"]).write_text(text)
    return env


def test_the_table_as_ipvsadm_saves_it_holds_the_rendered_file(tmp_path: Path, host: dict[str, str]) -> None:
    rules = rendered_rules(tmp_path)
    assert sh(ipvs.table_holds(str(rules)), with_table(host, SAVED)).returncode == 0


@pytest.mark.parametrize("changed", [
    SAVED.replace("-m -w 3", "-m -w 2"),                                 # a weight set by hand
    SAVED.replace(" -s sh -p 300", " -s sh"),                            # persistence lost
    SAVED.replace("-s wrr", "-s wlc"),                                   # another scheduler
    SAVED.replace("9443 -m -w 1", "9443 -g -w 1"),                       # another forwarding method
    SAVED + "-A -u 10.213.0.100:53 -s rr\n",                             # a service haops never made
    SAVED.replace("\n-A -t 10.213.0.101", "\n-a -t 10.213.0.100:80 -r 10.213.0.23:80 -g -w 1\n-A -t 10.213.0.101"),
    "\n".join(SAVED.splitlines()[:2]) + "\n",                            # a real server and a service gone
    "",                                                                  # an empty table
])
def test_any_difference_from_the_file_is_not_live(tmp_path: Path, host: dict[str, str], changed: str) -> None:
    rules = rendered_rules(tmp_path)
    assert sh(ipvs.table_holds(str(rules)), with_table(host, changed)).returncode == 1


def test_the_saved_table_parses_to_the_same_services_as_the_file(tmp_path: Path) -> None:
    from_file = lvs.parse_rules(rendered_rules(tmp_path).read_text())
    assert sorted(lvs.parse_rules(SAVED), key=str) == sorted(from_file, key=str)


def test_a_missing_file_never_counts_as_live(tmp_path: Path, host: dict[str, str]) -> None:
    assert sh(ipvs.table_holds(str(tmp_path / "absent.rules")), with_table(host, "")).returncode == 1


def load(rules: Path, env: dict[str, str], proc: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    done = sh(ipvs.load_script(str(rules), str(proc)), env)
    return done, Path(env["FAKE_LOG"]).read_text().splitlines()


def test_loading_sends_only_the_difference_in_one_restore(tmp_path: Path, host: dict[str, str]) -> None:
    rules = rendered_rules(tmp_path)
    live = (SAVED.replace("-m -w 3", "-m -w 1").replace(" -s sh -p 300", " -s sh")
            + "-a -t 10.213.0.101:8443 -r 10.213.0.23:9443 -m -w 1\n-A -t 10.213.0.200:443 -s rr\n")
    done, sent = load(rules, with_table(host, live), tmp_path)  # tmp_path stands in for /proc/net/ip_vs
    assert done.returncode == 0, done.stderr
    assert sent == [
        "-e -t 10.213.0.101:8443 -r 10.213.0.21:9443 -m -w 3",   # edited in place, in the file's order
        "-E -t 10.213.0.100:80 -s sh -p 300",
        "-d -t 10.213.0.101:8443 -r 10.213.0.23:9443",           # deletions after every addition
        "-D -t 10.213.0.200:443",
    ]


def test_loading_an_empty_table_adds_every_line_and_a_loaded_one_sends_nothing(tmp_path: Path, host: dict[str, str]) -> None:
    rules = rendered_rules(tmp_path)
    _, sent = load(rules, with_table(host, ""), tmp_path)
    assert sorted(sent) == sorted(SAVED.splitlines())
    Path(host["FAKE_LOG"]).write_text("")
    _, sent = load(rules, with_table(host, SAVED), tmp_path)
    assert sent == []


def test_without_ipvs_loading_says_so_and_succeeds(tmp_path: Path, host: dict[str, str]) -> None:
    rules = rendered_rules(tmp_path)
    done, sent = load(rules, with_table(host, SAVED), tmp_path / "no-ip_vs")
    assert done.returncode == 0
    assert sent == []
    assert notices("lvs", done.stdout) == [
        f"lvs: no ip_vs kernel module: {rules} written, not loaded (modprobe: FATAL: Module ip_vs not found in directory /lib/modules/x)"]


def test_without_ipvs_the_probe_holds_only_where_modprobe_cannot_load_it(tmp_path: Path, host: dict[str, str]) -> None:
    rules, absent = str(rendered_rules(tmp_path)), str(tmp_path / "no-ip_vs")
    assert sh(ipvs.holds_or_cannot(rules, absent), with_table(host, "")).returncode == 0
    executable(Path(host["PATH"].split(":")[0]) / "modprobe", "#!/bin/sh\nexit 0\n")  # loadable, not loaded yet
    assert sh(ipvs.holds_or_cannot(rules, absent), with_table(host, SAVED)).returncode == 1


def test_unloading_deletes_only_the_files_services_that_are_there(tmp_path: Path, host: dict[str, str]) -> None:
    rules = rendered_rules(tmp_path)
    done = sh(ipvs.unload_script(str(rules), str(tmp_path)), with_table(host, SAVED.splitlines()[0] + "\n-A -t 10.9.9.9:1 -s rr\n"))
    assert done.returncode == 0, done.stderr
    assert Path(host["FAKE_LOG"]).read_text().splitlines() == ["-D -t 10.213.0.100:80"]


def test_keepalived_loads_the_table_where_it_runs_and_only_there() -> None:
    keepalived_case = inventory.load(GOLDEN / "lvs" / "sh-dr-persistence" / "inventory.yml")  # health checks
    director = inventory.load(DIRECTOR_CASE)                                                   # none, no VRRP
    assert lvs.keepalived_directs(keepalived_case, "lb1") and not lvs.keepalived_directs(director, "lb1")
    assert keepalived.TARGET.hosts(director) == ()
    assert lvs.virtual_server_blocks(director, "lb1") == ""
    marked = lvs.TARGET.render(keepalived_case, "lb1", RenderContext())
    assert lvs.TARGET.activate("systemd", True, marked) == ALWAYS
    assert lvs.TARGET.proof(keepalived_case, "lb1", marked, None) == ALWAYS
    loaded = lvs.TARGET.render(director, "lb1", RenderContext())
    assert "ipvsadm -R" in lvs.TARGET.activate("systemd", True, loaded)


def test_the_keepalived_mark_is_a_comment_the_parse_back_ignores() -> None:
    keepalived_case = inventory.load(GOLDEN / "lvs" / "sh-dr-persistence" / "inventory.yml")
    [file] = lvs.TARGET.render(keepalived_case, "lb1", RenderContext())
    assert lvs.KEEPALIVED_MARK in file.text.splitlines()
    assert len(lvs.parse_rules(file.text)) == 2


def test_only_marked_lines_of_an_activation_reach_the_report() -> None:
    output = f"something\n{NOTICE} no ip_vs kernel module: x\n  {NOTICE} indented is not one\n"
    assert notices("lvs", output) == ["lvs: no ip_vs kernel module: x"]
    assert notices("lvs", "") == []


def test_loaded_by_keepalived_reads_only_the_rules_file() -> None:
    other = RenderedFile("/etc/other", lvs.KEEPALIVED_MARK + "\n")
    assert not lvs.loaded_by_keepalived([other])


def persistent_app_case(tmp_path: Path) -> Path:
    """The director case with its wrr NAT service made persistent (lvs.persistence)."""
    text = DIRECTOR_CASE.read_text().replace("lvs: {mode: nat}", "lvs: {mode: nat, persistence: 60s}")
    assert "persistence: 60s" in text
    path = tmp_path / "inventory.yml"
    path.write_text(text + "responders: true\n")
    return path


def test_persistence_promises_affinity_whatever_the_scheduler(tmp_path: Path) -> None:
    """A persistent service sends each client to one real server: its traffic must not be
    measured as a wrr split (found on the VMs: 12 of 12 on one server is right there)."""
    from haops.targets.base import AFFINITY, SPLIT

    plain = inventory.load(DIRECTOR_CASE)
    persistent = inventory.load(persistent_app_case(tmp_path))
    assert lvs.TARGET.traffic(plain.services["app"]).distribution == SPLIT
    assert lvs.TARGET.traffic(persistent.services["app"]).distribution == AFFINITY
    assert lvs.TARGET.traffic(persistent.services["app"]).hashed_key == "source"


def test_affinity_probes_from_this_machine_name_it_local(tmp_path: Path) -> None:
    from haops.verify.behaviour import affinity_probes
    from haops.verify.context import LOCAL, VerifyContext

    inv = inventory.load(persistent_app_case(tmp_path))
    ctx = VerifyContext(inv, settings=None, source=LOCAL)  # type: ignore[arg-type]  # no SSH is opened
    probes = affinity_probes(ctx, inv.services["app"], "source", [])
    assert list(probes) == [LOCAL] and probes[LOCAL][0] == LOCAL


def test_a_dr_real_servers_responder_also_listens_on_the_vip(tmp_path: Path) -> None:
    """DR packets arrive addressed to the VIP (on lo): the stand-in application must accept them."""
    from haops.targets import responder

    inv = inventory.load(persistent_app_case(tmp_path))
    listens = responder.TARGET.listeners(inv, "web1")
    assert ("10.213.0.100", 80) in listens            # www is DR: the VIP, on the service port
    assert ("10.213.0.21", 80) in listens and ("10.213.0.21", 9443) in listens
    assert ("10.213.0.101", 9443) not in listens      # app is NAT: the director rewrites to web1's address
    text = responder.TARGET.render(inv, "web1", RenderContext())[0].text
    assert "listen 10.213.0.100:80;" in text


KEEPALIVED_CASE = GOLDEN / "lvs" / "wrr-nat-http" / "inventory.yml"  # health checks: keepalived directs


def test_keepalived_proof_needs_its_services_in_the_table_where_ipvs_exists(tmp_path: Path, host: dict[str, str]) -> None:
    proof = keepalived.virtual_servers_proof(inventory.load(KEEPALIVED_CASE), "lb1", proc=str(tmp_path / "log"))
    assert sh(proof, with_table(host, "-A -t 10.213.0.100:80 -s wrr\n")).returncode == 0
    assert sh(proof, with_table(host, "-A -t 10.213.0.101:80 -s wrr\n")).returncode == 1


def test_keepalived_proof_holds_where_the_kernel_has_no_ipvs(tmp_path: Path, host: dict[str, str]) -> None:
    """The namespace lab: no /proc/net/ip_vs, no module to load; apply must not roll keepalived back."""
    proof = keepalived.virtual_servers_proof(inventory.load(KEEPALIVED_CASE), "lb1", proc=str(tmp_path / "absent"))
    assert sh(proof, with_table(host, "")).returncode == 0
