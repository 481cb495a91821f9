"""The transport's pieces that need no SSH server: the socket options, known_hosts look-ups,
and the candidate upload's shell, run here by sh on a real tree."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from haops.apply.remote_check import CANDIDATE_PREFIX, candidate_root, upload_script
from haops.targets.base import RenderedFile
from haops.transport import QUICKACK, Become, Ran, SshSettings, known_keys, nodelay_socket

pytestmark = pytest.mark.unit


def test_the_socket_has_nagle_off_and_acks_at_once() -> None:
    checked = threading.Event()

    def serve(server: socket.socket) -> None:
        peer, _ = server.accept()
        with peer:  # open until the client has looked: a FIN would change the client's ACK mode
            peer.sendall(b"hello")
            checked.wait(5)

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        threading.Thread(target=serve, args=(server,), daemon=True).start()
        sock = nodelay_socket("127.0.0.1", port, 5)
        with sock:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            assert sock.recv(5) == b"hello"
            if QUICKACK:
                assert sock.getsockopt(socket.IPPROTO_TCP, QUICKACK) == 1, "re-armed after the read"
            checked.set()


def test_known_keys_finds_plain_hashed_and_port_entries_only_for_that_host(tmp_path: Path) -> None:
    keys = {name: paramiko.Ed25519Key.from_private_key_file(str(make_key(tmp_path, name))) for name in ("a", "b", "c")}
    known = paramiko.HostKeys()
    known.add("10.0.0.1", "ssh-ed25519", keys["a"])
    known.add(paramiko.HostKeys.hash_host("10.0.0.2"), "ssh-ed25519", keys["b"])
    known.add("[10.0.0.3]:2222", "ssh-ed25519", keys["c"])
    path = tmp_path / "known_hosts"
    known.save(str(path))
    assert known_keys(path, "10.0.0.1") == {"ssh-ed25519": keys["a"]}
    assert known_keys(path, "10.0.0.2") == {"ssh-ed25519": keys["b"]}
    assert known_keys(path, "[10.0.0.3]:2222") == {"ssh-ed25519": keys["c"]}
    assert known_keys(path, "10.0.0.3") == {} and known_keys(path, "10.0.0.9") == {}
    assert known_keys(tmp_path / "absent", "10.0.0.1") == {}
    path.write_text(path.read_text() + f"10.0.0.9 ssh-ed25519 {keys['a'].get_base64()}\n")
    assert known_keys(path, "10.0.0.9") == {"ssh-ed25519": keys["a"]}, "a changed file is read again"


def make_key(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"id_{name}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_the_upload_fills_a_private_tree_from_stdin_byte_for_byte(tmp_path: Path) -> None:
    root = str(tmp_path / "candidate")
    files = [RenderedFile("/etc/a b/x.conf", "ünïcode\nline 2\n"), RenderedFile("/etc/empty", ""),
             RenderedFile("/srv/s", "secret=hunter2\n")]
    script, data = upload_script(root, files)
    assert "hunter2" not in script, "texts never ride on the command line"
    done = subprocess.run(["sh", "-c", script], input=data, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    for file in files:
        assert Path(root + file.path).read_text(encoding="utf-8") == file.text
    assert (Path(root).stat().st_mode & 0o777) == 0o700
    again = subprocess.run(["sh", "-c", script], input=data, capture_output=True, timeout=30)
    assert again.returncode != 0, "an existing tree is refused, as mktemp would"


def test_candidate_roots_are_fresh_and_under_the_prefix() -> None:
    roots = {candidate_root() for _ in range(50)}
    assert len(roots) == 50 and all(r.startswith(CANDIDATE_PREFIX) for r in roots)


def test_become_runs_the_script_as_root_through_real_sudo_with_its_input_intact() -> None:
    script = "echo \"$(id -u) 'quoted' $((6 * 7)) [${LC_ALL-unset}]\"; cat"
    command = Become("root", "here").command(script)
    done = subprocess.run(["sh", "-c", command], input="the input\n", capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in os.environ.items() if k != "LC_ALL"})
    # sudo's C locale does not reach the script
    assert (done.returncode, done.stdout) == (0, "0 'quoted' 42 [unset]\nthe input\n"), done.stderr


def test_with_a_password_it_goes_first_on_stdin_and_only_then() -> None:
    become = Become("deploy", "lb1", "pw with space")
    assert become.stdin(b"data") == b"data"
    become.with_password = True
    assert become.stdin(b"data") == b"pw with space\ndata"
    assert become.command("true").startswith("env LC_ALL=C sudo -S -k -p '' -- env -u LC_ALL sh -c ")  # -k: reads it always


@pytest.mark.parametrize(("ran", "refused"), [
    (Ran(1, "", "sudo: a password is required\n"), True),
    (Ran(1, "", "sudo: unable to resolve host lb1\nsudo: a password is required\n"), True),
    (Ran(127, "", "sh: 1: sudo: not found\n"), True),
    (Ran(1, "", "haproxy: config refused\n"), False),
    (Ran(1, "", "sudo: unable to resolve host lb1\nhaproxy: config refused\n"), False),
    (Ran(1, "", "deploy is not in the sudoers file.\n"), True),
    (Ran(1, "", "Sorry, user deploy is not allowed to execute '/usr/bin/sh -c true' as root on lb1.\n"), True),
    (Ran(127, "", "sudo: unable to resolve host lb1\nsh: 1: drbdadm: not found\n"), False),
    (Ran(0, "", "sudo: unable to resolve host lb1\n"), False),
])
def test_only_sudo_saying_no_counts_as_its_refusal(ran: Ran, refused: bool) -> None:
    assert Become("deploy", "lb1").refused(ran) is refused


@pytest.mark.parametrize(("password", "stderr", "code", "said"), [
    (None, "sudo: a password is required", 1, "asks deploy for a password (or does not allow deploy at all): run again with --ask-become-pass"),
    ("Zq9-x", "Sorry, try again.\nsudo: 1 incorrect password attempt", 1, "refused the password given for deploy"),
    ("Zq9-x", "deploy is not in the sudoers file.", 1, "deploy@lb1 may not run commands as root"),
    (None, "sh: 1: sudo: not found", 127, "sudo is not installed on lb1"),
])
def test_each_sudo_refusal_says_what_to_do(password: str | None, stderr: str, code: int, said: str) -> None:
    message = str(Become("deploy", "lb1", password).failure(Ran(code, "", stderr)))
    assert said in message and (password is None or password not in message), message


def test_the_become_password_is_in_no_repr() -> None:
    secret = "s3cret-value"
    assert secret not in repr(SshSettings(become_password=secret)) + repr(Become("deploy", "lb1", secret))
