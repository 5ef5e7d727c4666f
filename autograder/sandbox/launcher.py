"""What every way of starting workers offers the grader (see ``session.py``).

A launcher starts one worker per test and hands the grader a socket to it:

* ``spawn(request) -> (pid, fd)``: a worker for ``request``, which the
  launcher has already sent to it; ``fd`` is the grader's end of the socket;
  :class:`SandboxFault` when no worker can be started;
* ``reap(pid) -> int | None``: wait a moment for the worker to end (kill it
  after that) and return its exit code as ``subprocess`` reports one (a
  negative number: killed by that signal; None: unknown);
* ``forget(pid)``: kill it now; nobody needs its exit code;
* ``close()``: stop every worker and the launcher itself.

:class:`.zygote.Zygote` forks workers from a warm interpreter (Linux);
:class:`.spawn_launcher.SpawnLauncher` starts a fresh interpreter per worker
(macOS, Windows).
"""

from __future__ import annotations


class SandboxFault(Exception):
    """The sandbox itself failed: a worker could not be started, the zygote
    stopped. A grader fault, never a student's result: the batch stops with a
    grader error instead of giving everyone zero."""


class Launcher:
    """The base of every launcher; ``with launcher:`` closes it at the end."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open_session(self, request: dict, call_timeout: float, import_timeout: float):
        """A worker for ``request``, ready to answer (see :class:`.session.WorkerSession`)."""
        from .session import WorkerSession

        return WorkerSession(self, request, call_timeout, import_timeout)

    def spawn(self, request: dict) -> tuple[int, int]:
        raise NotImplementedError

    def reap(self, pid: int) -> int | None:
        raise NotImplementedError

    def forget(self, pid: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class NoWorkers(Launcher):
    """For submissions that cannot run (unreadable): starting a worker is a bug."""

    def spawn(self, request: dict):
        raise RuntimeError("no student code runs for an unreadable submission")

    def close(self) -> None:
        pass
