"""``check`` where there is no zygote (macOS, Windows): workers as fresh
interpreters that connect back over loopback, and no POSIX-only call on the
grader's side.

Windows itself cannot run here. What can be tested is tested: the spawn path
end to end on this machine, the parts that differ on Windows (sockets that
are not file descriptors, exit codes without POSIX wait statuses), and the
grader's side of ``check`` with every POSIX-only API it could reach removed
from ``os``, ``signal``, ``socket`` and the module table first.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from autograder.sandbox import wire
from autograder.sandbox.session import _describe_exit
from autograder.sandbox.launcher import SandboxFault
from autograder.sandbox.spawn_launcher import PENDING, TOKEN_BYTES, TOKEN_SECONDS, SpawnLauncher
from conftest import ROOT

MHA = "multihead_attention"


def test_wire_speaks_over_socket_objects():
    """Windows: the worker's end is a socket object, not a descriptor."""
    a, b = socket.socketpair()
    message = {"t": torch.arange(300_000, dtype=torch.float64), "s": "x" * 70_000, "n": None}
    sender = threading.Thread(target=wire.send, args=(a, message))
    sender.start()  # bigger than a socket buffer: written while the other end reads
    got = wire.recv(b)
    sender.join()
    assert torch.equal(got["t"], message["t"]) and got["s"] == message["s"] and got["n"] is None
    a.close()
    with pytest.raises(wire.Closed):
        wire.recv(b)


class _Running:
    def poll(self):
        return None


def test_spawned_worker_connection_needs_the_token():
    """Another local process that connects first (or says the wrong thing) is
    dropped; the worker with the token is the one handed to the grader."""
    token = os.urandom(TOKEN_BYTES)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        impostors = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        impostors[0].sendall(b"\0" * TOKEN_BYTES)
        impostors[1].sendall(token[:-1])
        impostors[1].shutdown(socket.SHUT_WR)  # a prefix of the token, then nothing
        worker = socket.create_connection(("127.0.0.1", port))
        worker.sendall(token)
        accepted = SpawnLauncher._accept(listener, token, _Running())
        worker.sendall(b"hello")
        assert accepted.recv(5) == b"hello"
        for impostor in impostors:
            assert impostor.recv(1) == b""  # closed by the grader
            impostor.close()
        accepted.close()
        worker.close()


def test_a_silent_connection_holds_up_no_worker():
    """Any local process can connect to the port and say nothing (it can read
    the port in /proc/net/tcp): the worker that connects after it is still
    accepted at once, and the silent one is dropped after TOKEN_SECONDS."""
    token = os.urandom(TOKEN_BYTES)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(PENDING + 4)]
        worker = socket.create_connection(("127.0.0.1", port))
        worker.sendall(token)
        started = time.monotonic()
        accepted = SpawnLauncher._accept(listener, token, _Running())
        waited = time.monotonic() - started
        worker.sendall(b"ok")
        assert accepted.recv(2) == b"ok"
        assert waited < TOKEN_SECONDS, waited  # not a score: a bound on a stall
        accepted.close()
        worker.close()
        for sock in silent:
            sock.close()


def test_a_worker_that_never_connects_is_a_sandbox_fault():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        class Exited:
            def poll(self):
                return 1
        with pytest.raises(SandboxFault, match="did not connect"):
            SpawnLauncher._accept(listener, os.urandom(TOKEN_BYTES), Exited())


@pytest.mark.parametrize("code, words", [
    (3, "exit code 3"), (0, "exit code 0"), (-9, "it was killed"),
    (-11, "segmentation fault"), (-24, "CPU time limit"), (None, "stopped running"),
])
def test_exit_codes_are_described_from_the_launchers_number(code, words):
    assert words in _describe_exit(code)


# Every POSIX-only name the grader's side of ``check`` could reach, gone as on
# Windows. The standard library's own POSIX code keeps what it took at import
# (subprocess, imported first), SIGKILL (Popen.kill sends it on POSIX) and
# getuid (pytest's cache asks for it; it has a Windows branch).
WINDOWS_LIKE = """
import os, shutil, signal, socket, subprocess, sys, tempfile
for name in ("setsid", "fork", "forkpty", "WIFSIGNALED", "WTERMSIG", "WEXITSTATUS",
             "waitstatus_to_exitcode", "O_NOFOLLOW", "O_DIRECTORY", "O_PATH",
             "sched_getaffinity", "sched_setaffinity", "setuid", "setgid", "setgroups"):
    if hasattr(os, name):
        delattr(os, name)
for name in ("SIGXCPU", "SIGXFSZ"):
    delattr(signal, name)
for name in ("send_fds", "recv_fds", "AF_UNIX"):
    delattr(socket, name)
sys.modules["resource"] = None
from autograder.cli import run
run()
"""


def check_like_windows(path: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AUTOGRADER_COURSE"}
    env.update(AUTOGRADER_WORKER_START="spawn", CI="true", COLUMNS="200")
    return subprocess.run([sys.executable, "-c", WINDOWS_LIKE, "check", MHA, str(path),
                           "--verbose"], cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=600)


def test_check_runs_with_spawned_workers_and_no_posix_only_calls(tmp_path):
    reference = tmp_path / f"{MHA}.py"
    reference.write_text((ROOT / "reference" / f"{MHA}.py").read_text())
    done = check_like_windows(reference, tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert "4 of 4 public tests passed" in done.stdout, done.stdout
    assert "Sandbox layers active: separate process" in done.stdout, done.stdout

    broken = tmp_path / "broken" / f"{MHA}.py"
    broken.parent.mkdir()
    broken.write_text(reference.read_text().replace("import torch", "import torch\n"
                                                    "import sys\nsys.exit(5)", 1))
    done = check_like_windows(broken, tmp_path)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Traceback (most recent call last)" not in done.stderr
    assert "0 of 4 public tests passed" in done.stdout, done.stdout
