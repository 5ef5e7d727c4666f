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
        """The connection that sends ``token`` first (see :class:`_Handshake`)."""
        deadline = time.monotonic() + CONNECT_SECONDS
        with _Handshake(listener, token) as handshake:
            while time.monotonic() < deadline and proc.poll() is None:
                sock = handshake.step(timeout=0.2)
                if sock is not None:
                    return sock
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


class _Handshake:
    """Connections to the listener, each read as its bytes arrive, so one that
    connects and says nothing (any local process can) holds up no other. At
    most :data:`PENDING` wait at once, each for :data:`TOKEN_SECONDS`; no
    verdict is given on a part of the token (a prefix must not be told apart)."""

    def __init__(self, listener: socket.socket, token: bytes):
        self.listener, self.token = listener, token
        self.pending: dict[socket.socket, tuple[float, bytes]] = {}  # since, bytes so far
        self.selector = selectors.DefaultSelector()
        listener.setblocking(False)
        self.selector.register(listener, selectors.EVENT_READ)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        for sock in list(self.pending):
            self._drop(sock)
        self.selector.close()

    def step(self, timeout: float) -> socket.socket | None:
        """Wait up to ``timeout`` for connections and bytes; the socket that
        sent the token, if one did."""
        for key, _ in self.selector.select(timeout=timeout):
            if key.fileobj is self.listener:
                self._admit()
            elif (found := self._read(key.fileobj)) is not None:
                return found
        now = time.monotonic()
        for sock in [s for s, (since, _) in self.pending.items() if now - since > TOKEN_SECONDS]:
            self._drop(sock)
        return None

    def _admit(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if len(self.pending) >= PENDING:  # make room: drop the oldest
            self._drop(min(self.pending, key=lambda s: self.pending[s][0]))
        sock.setblocking(False)
        self.pending[sock] = (time.monotonic(), b"")
        self.selector.register(sock, selectors.EVENT_READ)

    def _read(self, sock: socket.socket) -> socket.socket | None:
        since, got = self.pending[sock]
        try:
            chunk = sock.recv(TOKEN_BYTES - len(got))
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            chunk = b""
        got += chunk
        if chunk and len(got) < TOKEN_BYTES:
            self.pending[sock] = (since, got)
            return None
        if chunk and hmac.compare_digest(got, self.token):
            self.selector.unregister(sock)
            del self.pending[sock]
            sock.setblocking(True)
            return sock
        self._drop(sock)  # closed, or not the token
        return None

    def _drop(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        del self.pending[sock]
        sock.close()


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
