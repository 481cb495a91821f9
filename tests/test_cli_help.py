"""Help has one source, the Typer app: the fast path prints exactly what Typer printed, for
every command, and `-h` works wherever `--help` does."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from haops.cli import help_cache
from haops.cli.app import all_help, app

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[1]
# Did the answer come from the cache? Then neither Typer nor the app was imported.
PROBE = ("import sys; from haops.cli import main\n"
         "try:\n    main(sys.argv[1:])\nfinally:\n"
         "    print('TYPER' if 'typer' in sys.modules else 'FAST', file=sys.stderr)\n")


def haops(args: list[str], cache: Path, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cache), "COLUMNS": str(columns)}
    return subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_the_help_covers_every_registered_command() -> None:
    paths = set(all_help())
    top = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback} | {g.name for g in app.registered_groups}
    assert {p for p in paths if p and " " not in p} == top
    assert {"", "lab up", "inventory check"} <= paths


def test_fast_help_is_what_typer_prints_for_every_command(tmp_path: Path) -> None:
    paths = [p.split() for p in all_help()]

    def real(i_path: tuple[int, list[str]]) -> subprocess.CompletedProcess[str]:
        i, path = i_path
        return haops([*path, "--help"], tmp_path / f"empty{i}")  # nothing cached: Typer answers

    with ThreadPoolExecutor(max_workers=4) as pool:
        typer_answers = list(pool.map(real, enumerate(paths)))
    haops(["--help"], tmp_path / "shared")  # fills the cache
    for path, typer_answer in zip(paths, typer_answers, strict=True):
        assert typer_answer.returncode == 0 and typer_answer.stderr.strip() == "TYPER", typer_answer.stderr
        for flag in help_cache.HELP_FLAGS:
            fast = haops([*path, flag], tmp_path / "shared")
            assert fast.stderr.strip() == "FAST", f"haops {' '.join(path)} {flag} did not take the fast path"
            assert (fast.returncode, fast.stdout) == (0, typer_answer.stdout), f"haops {' '.join(path)} {flag} differs"


def test_haops_alone_prints_the_help_as_typer_does(tmp_path: Path) -> None:
    typer_answer = haops([], tmp_path / "cache")
    fast = haops([], tmp_path / "cache")
    assert typer_answer.stderr.splitlines()[-1] == "TYPER" and fast.stderr.splitlines()[-1] == "FAST"
    assert typer_answer.returncode == fast.returncode == 2
    assert typer_answer.stderr.splitlines()[:-1] == fast.stderr.splitlines()[:-1]
    assert "Usage: haops [OPTIONS] COMMAND" in fast.stderr


def test_version_is_what_typer_prints(tmp_path: Path) -> None:
    fast = [haops([flag], tmp_path).stdout for flag in ("--version", "-V")]
    typer_answer = subprocess.run([sys.executable, "-c", "from haops.cli.app import run; run(['--version'])"],
                                  env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True)
    assert fast == [typer_answer.stdout] * 2


def test_a_narrow_terminal_gets_typer_itself(tmp_path: Path) -> None:
    haops(["apply", "--help"], tmp_path)
    narrow = haops(["apply", "--help"], tmp_path, columns=60)
    assert narrow.stderr.strip() == "TYPER" and max(len(line) for line in narrow.stdout.splitlines()) <= 60


def test_a_changed_source_file_is_a_new_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cli.py").write_text("x = 1\n")
    monkeypatch.setattr(help_cache, "PACKAGE", tmp_path)
    before = help_cache.cache_key()
    (tmp_path / "cli.py").write_text("x = 22\n")
    assert help_cache.cache_key() != before
    (tmp_path / "new_command.py").write_text("")
    assert len({before, help_cache.cache_key()}) == 2


def test_the_cache_answers_only_help_requests() -> None:
    assert help_cache.help_request(["lab", "up", "-h"]) == ("lab", "up")
    assert help_cache.help_request(["--help"]) == ()
    assert help_cache.help_request(["apply", "-i", "x.yml", "--help"]) is None
    assert help_cache.help_request(["apply"]) is None
