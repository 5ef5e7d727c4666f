"""Workers as fresh interpreters, for platforms where forking a warm zygote is
unsafe (macOS: fork after ``import torch``) or impossible (Windows).

Each worker is a new interpreter (see :mod:`.interpreter`: nothing of the
grader's environment or memory) that imports torch itself, so it is slower
than a zygote's fork but has the same interface (:class:`.launcher.Launcher`).

Its socket to the grader is made the one way every platform has: the grader
listens on a loopback port for one connection, the worker connects and
proves who it is with a random token it read from its standard input. A
connection without the token (another local process) is dropped. Once
connected, the worker never needs another socket; where the platform has
them, its sandbox layers deny new ones.
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
import subprocess
import sys
import time

from . import interpreter, wire
from .launcher import Launcher

TOKEN_BYTES = 32
CONNECT_SECONDS = 60.0  # a new interpreter's start-up before it connects (not torch: after)


class SpawnLauncher(Launcher):
    def __init__(self) -> None:
        self.processes: dict[int, subprocess.Popen] = {}

    def spawn(self, request: dict) -> tuple[int, int]:
        token = secrets.token_bytes(TOKEN_BYTES)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            proc = subprocess.Popen(
                interpreter.command("autograder.sandbox.spawn_launcher:worker_main"),
                env=interpreter.environment(), stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.processes[proc.pid] = proc
            try:
                proc.stdin.write(port.to_bytes(2, "big") + token)
                proc.stdin.close()
                sock = self._accept(listener, token, proc)
            except BaseException:
                self.forget(proc.pid)
                raise
        try:
            wire.send(sock, request)
        except OSError:
            pass  # it died before reading: the session reports a worker that stopped
        return proc.pid, sock.detach()

    @staticmethod
    def _accept(listener: socket.socket, token: bytes, proc: subprocess.Popen) -> socket.socket:
        """The connection that sends ``token`` first."""
        deadline = time.monotonic() + CONNECT_SECONDS
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            listener.settimeout(0.2)
            try:
                sock, _ = listener.accept()
            except (socket.timeout, BlockingIOError):
                continue
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            try:
                got = b""
                while len(got) < TOKEN_BYTES:
                    chunk = sock.recv(TOKEN_BYTES - len(got))
                    if not chunk:
                        break
                    got += chunk
            except OSError:
                got = b""
            if hmac.compare_digest(got, token):
                sock.settimeout(None)
                return sock
            sock.close()
        raise RuntimeError("a worker interpreter did not start "
                           f"(exit code {proc.poll()}); is torch installed for {sys.executable}?")

    def reap(self, pid: int) -> int | None:
        proc = self.processes.pop(pid)
        try:
            return proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def forget(self, pid: int) -> None:
        proc = self.processes.pop(pid, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        for pid in list(self.processes):
            self.forget(pid)


def worker_main(argv: list[str]) -> None:
    """A spawned worker's entry: connect back, then serve like a forked one."""
    handshake = sys.stdin.buffer.read(2 + TOKEN_BYTES)
    port, token = int.from_bytes(handshake[:2], "big"), handshake[2:]
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(token)
    # POSIX: the worker talks through the descriptor with read(2)/write(2),
    # which its system-call filter allows. Windows: sockets are not file
    # descriptors there, so the socket object itself.
    end = sock if os.name == "nt" else sock.detach()
    request = wire.recv(end)
    from . import zygote
    from .worker import run

    zygote._warm_up()
    run(end, request)
