"""The grader's connection to one worker: requests with wall-clock limits.

A session starts a worker for one submission, waits for its module to import,
then forwards requests. Each request has a deadline; a worker that misses it is
killed. Whatever goes wrong on the worker's side (an exception, a timeout, an
exit, a crash, an unreadable answer) becomes a :class:`StudentCodeError` whose
text is written for the student.

Every text a worker sends (error, traceback, printed output, names of forbidden
calls, sandbox layers) is cut to size and cleaned *here*: the worker cuts its
own too, but student code runs there and can lift any of its limits.
"""

from __future__ import annotations

import re
import signal
import socket
import time
from dataclasses import dataclass, field

from . import wire

# What the grader keeps of a worker's texts (the worker's own cuts are the same,
# so an honest worker's texts pass unchanged).
TYPE_SHOWN = 100              # characters of an exception's type name
MESSAGE_SHOWN = 2000          # of its message (the start is kept)
TRACEBACK_SHOWN = 4000        # of its traceback (the end is kept: the failing line)
OUTPUT_PER_ANSWER = 8000      # of printed output, per answer
OUTPUT_PER_SESSION = 64 * 1024  # of printed output, per session (one test); then dropped
FORBIDDEN_NAMES = 100        # findings of forbidden calls kept from one answer
PLACE_SHOWN = 200            # characters of a finding's place ("m.py, line 3, in f")
LAYERS, LAYER_SHOWN = 32, 200           # sandbox layers reported, characters each
TRUNCATED = "\n[... output truncated]"

# Control characters other than newline and tab (NUL, escape sequences that
# rewrite a terminal, carriage returns that overprint a line, C1 controls) and
# bidirectional overrides that make text read differently from what it is.
_UNSHOWABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile("[\ud800-\udfff]")  # JSON "\ud800" decodes to one; UTF-8 cannot hold it


def shown(text, limit: int, keep_end: bool = False, mark: str = " [...]") -> str:
    """A worker's text as a student may see it: without control characters, and
    at most ``limit`` of what is left (plus ``mark`` where it was cut)."""
    text = text if type(text) is str else str(text)
    text = _SURROGATE.sub("\ufffd", _UNSHOWABLE.sub("", text))
    if len(text) > limit:
        text = mark.lstrip() + "\n" + text[-limit:] if keep_end else text[:limit] + mark
    return text


class StudentCodeError(Exception):
    """Student code failed; ``str(exc)`` is the feedback, ``kind`` a short tag.
    ``exc_type``/``exc_mro``: the exception it raised and its classes' qualified
    names ("builtins.ValueError"), from the worker's report; None/() when it
    did not raise (a timeout, a crash). ``phase``: "import" or "call"."""
    phase = "call"

    def __init__(self, message: str, kind: str = "error", output: str = "", error=None):
        super().__init__(message)
        self.kind = kind
        self.output = output
        mro = error.get("mro") if type(error) is dict else None
        self.exc_type = shown(error["type"], TYPE_SHOWN) if type(error) is dict \
            and type(error.get("type")) is str else None
        self.exc_mro = tuple(shown(n, TYPE_SHOWN) for n in mro[:64] if type(n) is str) \
            if self.exc_type and type(mro) is list else ()


class ImportFailed(StudentCodeError):
    """The submission could not even be imported."""
    phase = "import"


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
        self._output_left, self._output_cut = OUTPUT_PER_SESSION, False
        # The worker reports forbidden calls by their rule's name ("rule", or
        # "rule (place)"): a finding naming no rule of this request is dropped.
        self._watched = {r["name"] for r in request.get("forbidden") or ()
                         if isinstance(r, dict) and type(r.get("name")) is str}
        self.pid, fd = launcher.spawn(request)
        self.sock = socket.socket(fileno=fd)
        self.alive = True
        answer = self._exchange(None, import_timeout, "importing your module")
        layers = answer.get("layers")
        self.layers = [shown(x, LAYER_SHOWN) for x in layers[:LAYERS]] \
            if type(layers) is list else []
        if not answer["ok"]:
            self.close()
            raise ImportFailed(describe_error(answer.get("error"), "importing your module"),
                               kind="import", output=answer["output"], error=answer.get("error"))

    def request(self, op: str, timeout: float | None = None, doing: str = "", **args):
        """Send one request; return the plain-data value of the answer."""
        answer = self._exchange({"op": op, "args": args}, timeout or self.call_timeout, doing)
        if not answer["ok"]:
            raise StudentCodeError(describe_error(answer.get("error"), doing),
                                   output=answer["output"], error=answer.get("error"))
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
            raise StudentCodeError(f"While {doing}: {shown(exc, MESSAGE_SHOWN)}.",
                                   kind="not-plain") from None
        except wire.WireError as exc:
            self.close()
            raise StudentCodeError(f"While {doing}: {shown(exc, MESSAGE_SHOWN)}.",
                                   kind="garbled") from None
        finally:
            self.record.seconds += time.monotonic() - started
        answer["output"] = self._keep_output(answer.get("output"))
        names = answer.get("forbidden")
        if type(names) is list:
            findings = (self._finding(n) for n in names[:FORBIDDEN_NAMES] if type(n) is str)
            self.record.forbidden.update(f for f in findings if f is not None)
        return answer

    def _finding(self, text: str) -> str | None:
        """A worker's finding of a forbidden call, if it names a rule of this
        session: "rule", or "rule (place)" with the place cleaned and cut."""
        for name in sorted(self._watched, key=len, reverse=True):
            if text == name:
                return name
            if text.startswith(name + " (") and text.endswith(")"):
                return f"{name} ({shown(text[len(name) + 2:-1], PLACE_SHOWN)})"
        return None

    def _keep_output(self, text) -> str:
        """Record what the worker says its code printed, within this answer's and
        this session's share; returns what was kept."""
        if type(text) is not str or not text or self._output_cut:
            return ""
        text = shown(text, OUTPUT_PER_ANSWER, mark=TRUNCATED)
        if len(text) > self._output_left:  # the session's share is used up: say so once
            text = text[:self._output_left] + TRUNCATED
            self._output_cut = True
        self._output_left = max(self._output_left - len(text), 0)
        if text:
            self.record.output.append(text)
        return text

    def close(self, want_status: bool = True) -> int | None:
        """Stop the worker; returns its exit code (None if already closed or
        not wanted: the end of a test needs no status and does not wait)."""
        if not self.alive:
            return None
        self.alive = False
        self.sock.close()
        if want_status:  # it may be dying on its own: the launcher waits a moment, then kills
            return self.launcher.reap(self.pid)
        self.launcher.forget(self.pid)
        return None


def describe_error(error, doing: str) -> str:
    """A worker's report of an exception, as feedback: cut to size and cleaned."""
    if type(error) is not dict:
        return f"While {doing}: your code failed."
    kind = shown(error.get("type", "Error"), TYPE_SHOWN)
    message = shown(error.get("message", ""), MESSAGE_SHOWN)
    text = f"While {doing}, your code raised {kind}: {message}"
    trace = shown(error.get("traceback", ""), TRACEBACK_SHOWN, keep_end=True).strip()
    if trace:
        text += "\n" + trace
    return text


# Why a worker was killed by a signal, by the signal's name (Windows has few).
_SIGNAL_REASONS = {
    "SIGXCPU": "it used up its CPU time limit",
    "SIGKILL": "it was killed (usually for exceeding the memory or CPU limit)",
    "SIGSEGV": "it crashed with a segmentation fault",
    "SIGABRT": "it aborted",
    "SIGXFSZ": "it tried to write a file, which is not allowed",
}


def _describe_exit(code: int | None) -> str:
    """``code``: the worker's exit code as a launcher reports it (negative:
    the signal that killed it)."""
    if code is None:
        return "your code stopped running."
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"your code stopped: {_SIGNAL_REASONS.get(name, name)}."
    return (f"your code exited (exit code {code}) instead of returning: "
            "do not call sys.exit(), exit() or os._exit() in a submission.")
