"""The grader's connection to one worker: requests with wall-clock limits.

A session starts a worker for one submission, waits for its module to import,
then forwards requests. Each request has a deadline; a worker that misses it is
killed. Whatever goes wrong on the worker's side (an exception, a timeout, an
exit, a crash, an unreadable answer) becomes a :class:`StudentCodeError` whose
text is written for the student.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass, field

from . import wire


class StudentCodeError(Exception):
    """Student code failed; ``str(exc)`` is the feedback, ``kind`` a short tag."""

    def __init__(self, message: str, kind: str = "error", output: str = ""):
        super().__init__(message)
        self.kind = kind
        self.output = output


class ImportFailed(StudentCodeError):
    """The submission could not even be imported."""


@dataclass
class CallRecord:
    """What a session saw, for feedback: output printed, forbidden calls made."""
    output: list[str] = field(default_factory=list)
    forbidden: set[str] = field(default_factory=set)
    seconds: float = 0.0


class WorkerSession:
    def __init__(self, launcher, request: dict, call_timeout: float, import_timeout: float):
        self.launcher, self.call_timeout = launcher, call_timeout
        self.record = CallRecord()
        self.layers: list[str] = []
        self.pid, fd = launcher.spawn(request)
        self.sock = socket.socket(fileno=fd)
        self.alive = True
        answer = self._exchange(None, import_timeout, "importing your module")
        self.layers = answer.get("layers", [])
        if not answer["ok"]:
            self.close()
            raise ImportFailed(describe_error(answer["error"], "importing your module"),
                               kind="import", output=answer.get("output", ""))

    def request(self, op: str, timeout: float | None = None, doing: str = "", **args):
        """Send one request; return the plain-data value of the answer."""
        answer = self._exchange({"op": op, "args": args}, timeout or self.call_timeout, doing)
        if not answer["ok"]:
            raise StudentCodeError(describe_error(answer["error"], doing),
                                   output=answer.get("output", ""))
        return answer.get("value")

    def _exchange(self, message, timeout: float, doing: str) -> dict:
        if not self.alive:
            raise StudentCodeError(f"While {doing}: your code is no longer running "
                                   "(it stopped during an earlier call of this test).",
                                   kind="dead")
        started = time.monotonic()
        try:
            if message is not None:
                self.sock.settimeout(timeout)  # a worker that stops reading cannot block us
                self.sock.sendall(wire.frame(message))
            answer = wire.recv_before(self.sock, started + timeout)
            if type(answer) is not dict or "ok" not in answer:
                raise wire.WireError("the answer is not a message from the grader's worker")
        except (TimeoutError, socket.timeout):
            self.close()
            raise StudentCodeError(
                f"While {doing}: your code did not finish within {timeout:g} s and was "
                "stopped (an infinite loop, a sleep, or code far too slow?).", kind="timeout") from None
        except (wire.Closed, BrokenPipeError, ConnectionResetError):
            status = self.close()
            raise StudentCodeError(f"While {doing}: {_describe_exit(status)}", kind="crash") from None
        except wire.NotPlainData as exc:  # the worker stays usable: the message was whole
            raise StudentCodeError(f"While {doing}: {exc}.", kind="not-plain") from None
        except wire.WireError as exc:
            self.close()
            raise StudentCodeError(f"While {doing}: {exc}.", kind="garbled") from None
        finally:
            self.record.seconds += time.monotonic() - started
        if type(answer.get("output")) is str and answer["output"]:
            self.record.output.append(answer["output"])
        if type(answer.get("forbidden")) is list:
            self.record.forbidden.update(str(n) for n in answer["forbidden"])
        return answer

    def close(self, want_status: bool = True) -> int | None:
        """Stop the worker; returns its wait status (None if already closed or
        not wanted: the end of a test needs no status and does not wait)."""
        if not self.alive:
            return None
        self.alive = False
        if want_status:  # it may be dying on its own: the launcher waits a moment, then kills
            self.sock.close()
            return self.launcher.reap(self.pid)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.sock.close()
        self.launcher.forget(self.pid)
        return None


def describe_error(error, doing: str) -> str:
    if type(error) is not dict:
        return f"While {doing}: your code failed."
    kind, message = str(error.get("type", "Error")), str(error.get("message", ""))
    text = f"While {doing}, your code raised {kind}: {message}"
    trace = str(error.get("traceback", "")).strip()
    if trace:
        text += "\n" + trace
    return text


def _describe_exit(status: int | None) -> str:
    if status is None:
        return "your code stopped running."
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        reasons = {
            signal.SIGXCPU: "it used up its CPU time limit",
            signal.SIGKILL: "it was killed (usually for exceeding the memory or CPU limit)",
            signal.SIGSEGV: "it crashed with a segmentation fault",
            signal.SIGABRT: "it aborted",
            signal.SIGXFSZ: "it tried to write a file, which is not allowed",
        }
        return f"your code stopped: {reasons.get(sig, f'signal {signal.Signals(sig).name}')}."
    code = os.WEXITSTATUS(status)
    return (f"your code exited (exit code {code}) instead of returning: "
            "do not call sys.exit(), exit() or os._exit() in a submission.")
