"""The command line as a user meets it: output, files, exit codes, errors without tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from haops import __version__
from haops.cli import main

pytestmark = pytest.mark.unit
EXAMPLE = "inventories/example.yml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--version") == (0, f"haops {__version__}\n", "")


def test_inventory_check_summarises(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inventory", "check", "-i", EXAMPLE)
    assert code == 0 and "7 hosts, 4 services" in out


def test_bad_inventory_exits_2_with_location_and_no_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("hosts:\n  lb1: {address: 10.213.0.999}\n")
    code, out, err = run(capsys, "inventory", "check", "-i", str(bad))
    assert code == 2
    assert f"{bad}:2: hosts.lb1.address" in err and "Traceback" not in err + out


def test_inventory_show_masks_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "inventory", "show", "-i", EXAMPLE, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["services"]["www"]["stats"]["password"] == "********"
    assert data["groups"]["web"] == ["web1", "web2", "web3"]


def test_render_prints_with_secrets_masked_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", "haproxy", "-i", EXAMPLE, "--host", "lb1")
    assert code == 0 and "stats auth admin:********" in out and "change-me" not in out
    assert "--show-secrets" in err
    code, out, _ = run(capsys, "render", "haproxy", "-i", EXAMPLE, "--host", "lb1", "--show-secrets")
    assert "stats auth admin:change-me" in out


def test_render_writes_a_tree_per_host(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, _ = run(capsys, "render", "haproxy", "-i", EXAMPLE, "-o", str(tmp_path))
    assert code == 0
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.cfg")) == [
        "lb1/etc/haproxy/haproxy.cfg", "lb2/etc/haproxy/haproxy.cfg"]
    assert "change-me" in (tmp_path / "lb1/etc/haproxy/haproxy.cfg").read_text()


@pytest.mark.parametrize("args, message", [
    (("render", "nosuch", "-i", EXAMPLE), "unknown target 'nosuch'"),
    (("render", "haproxy", "-i", EXAMPLE, "--host", "nope"), "unknown host nope"),
    (("render", "drbd", "-i", EXAMPLE), "nothing to render"),
    (("validate", "-i", "missing.yml"), "inventory not found"),
])
def test_user_mistakes_exit_2(capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.checker
def test_validate_json_reports_every_host_and_target(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", "-i", EXAMPLE, "--json", "--strict")
    results = json.loads(out)
    assert code == 0, out
    assert {(r["host"], r["target"]) for r in results} == {
        (host, target) for host in ("lb1", "lb2") for target in ("sysctl", "haproxy", "nginx", "apache", "iptables", "keepalived")
    } | {("dns1", "bind")} | {(web, "responder") for web in ("web1", "web2", "web3")}
    assert {r["status"] for r in results} == {"ok"}


def test_missing_checker_is_a_skip_and_strict_makes_it_fail(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    command = [sys.executable, "-m", "haops", "validate", "-i", EXAMPLE, "--target", "haproxy"]
    lenient = subprocess.run(command, env=env, capture_output=True, text=True)
    strict = subprocess.run([*command, "--strict"], env=env, capture_output=True, text=True)
    assert lenient.returncode == 0 and "skipped" in lenient.stdout and "not installed here: haproxy" in lenient.stderr
    assert strict.returncode == 1


def test_entry_point_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "haops", "inventory", "check", "-i", "/nonexistent.yml"], capture_output=True, text=True)
    assert done.returncode == 2 and "inventory not found" in done.stderr and "Traceback" not in done.stderr


SSH_COMMANDS = [("apply",), ("prune",), ("status",), ("drill",), ("switchover",), ("failback",), ("sync",),
                ("db", "status"), ("db", "promote"), ("db", "check"), ("db", "drill"),
                ("drbd", "init"), ("drbd", "up"), ("drbd", "promote"), ("drbd", "demote"), ("drbd", "status"),
                ("drbd", "verify"), ("drbd", "resolve-split-brain")]


@pytest.mark.parametrize("path", SSH_COMMANDS, ids=" ".join)
def test_every_command_that_logs_in_to_hosts_can_ask_for_the_sudo_password(path: tuple[str, ...]) -> None:
    import typer.main

    from haops.cli.app import app as haops_app

    command = typer.main.get_command(haops_app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    flags = {flag for param in command.params for flag in param.opts}
    assert {"--ask-become-pass", "-K"} <= flags, path


def test_a_command_imports_only_its_own_module() -> None:
    """`haops validate ...` builds the app with validate alone: the other command modules
    (with their targets, DRBD and database code) cost ~0.1 s to import on every run."""
    probe = ("import sys\nfrom haops.cli.app import run\ntry:\n    run(['validate', '-i', '/nonexistent/inventory.yml'])\n"
             "except SystemExit:\n    pass\nprint(' '.join(sorted(m for m in sys.modules if m.startswith('haops.cli.'))))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    loaded = set(done.stdout.split())
    assert "haops.cli.validate" in loaded
    assert not loaded & {"haops.cli.db", "haops.cli.drbd", "haops.cli.lab", "haops.cli.vagrant", "haops.cli.apply"}


@pytest.mark.parametrize("args", [["apply", "--no-such-option"], ["apply"], ["lab", "no-such-command"], ["status", "-i"],
                                  ["vagrant", "--help"], ["render", "all", "--bogus"]])
def test_the_one_command_app_answers_as_the_whole_app(args: list[str]) -> None:
    from typer.testing import CliRunner

    from haops.cli.app import app_for, whole_app

    whole, alone = CliRunner().invoke(whole_app(), args), CliRunner().invoke(app_for(args), args)
    assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output)
