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
import selectors
import socket
import subprocess
import sys
import time

from . import interpreter, wire
from .launcher import Launcher, SandboxFault

TOKEN_BYTES = 32
CONNECT_SECONDS = 60.0  # a new interpreter's start-up before it connects (not torch: after)
TOKEN_SECONDS = 2.0     # from a connection to its token: the worker sends it at once
PENDING = 16            # connections waiting for their token at once


class SpawnLauncher(Launcher):
    def __init__(self) -> None:
        self.processes: dict[int, subprocess.Popen] = {}

    def spawn(self, request: dict) -> tuple[int, int]:
        token = secrets.token_bytes(TOKEN_BYTES)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = listener.getsockname()[1]
            try:
                proc = subprocess.Popen(
                    interpreter.command("autograder.sandbox.spawn_launcher:worker_main"),
                    env=interpreter.environment(), stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            except OSError as exc:
                raise SandboxFault(f"a worker interpreter could not be started: {exc}") from None
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
    def _accept(listener: socket.socket, token: bytes, proc) -> socket.socket:
        """The connection that sends ``token`` first. Every connection is read
        as its bytes arrive, so one that connects and says nothing (any local
        process can) holds up no other; at most :data:`PENDING` wait at once,
        each for :data:`TOKEN_SECONDS`."""
        deadline = time.monotonic() + CONNECT_SECONDS
        pending: dict[socket.socket, tuple[float, bytes]] = {}
        listener.setblocking(False)
        with selectors.DefaultSelector() as selector:
            selector.register(listener, selectors.EVENT_READ)
            try:
                while time.monotonic() < deadline and proc.poll() is None:
                    for key, _ in selector.select(timeout=0.2):
                        if key.fileobj is listener:
                            try:
                                sock, _ = listener.accept()
                            except (BlockingIOError, InterruptedError):
                                continue
                            if len(pending) >= PENDING:  # make room: drop the oldest
                                oldest = min(pending, key=lambda s: pending[s][0])
                                selector.unregister(oldest)
                                pending.pop(oldest)
                                oldest.close()
                            sock.setblocking(False)
                            pending[sock] = (time.monotonic(), b"")
                            selector.register(sock, selectors.EVENT_READ)
                            continue
                        sock = key.fileobj
                        since, got = pending[sock]
                        try:
                            chunk = sock.recv(TOKEN_BYTES - len(got))
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:
                            chunk = b""
                        got += chunk
                        # No verdict before all of it: a prefix must not be told apart.
                        if chunk and len(got) < TOKEN_BYTES:
                            pending[sock] = (since, got)
                            continue
                        selector.unregister(sock)
                        pending.pop(sock)
                        if chunk and hmac.compare_digest(got, token):
                            sock.setblocking(True)
                            return sock
                        sock.close()  # closed, or not the token
                    now = time.monotonic()
                    for sock in [s for s, (since, _) in pending.items()
                                 if now - since > TOKEN_SECONDS]:
                        selector.unregister(sock)
                        pending.pop(sock)
                        sock.close()
            finally:
                for sock in pending:
                    sock.close()
        raise SandboxFault(f"a worker interpreter did not connect (exit code {proc.poll()}); "
                           f"can {sys.executable} import torch?")

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
