"""A pre-warmed fork server for workers: pay ``import torch`` once.

The zygote is a fresh interpreter (see :mod:`.interpreter`), never a fork of
the grader: the grader's memory holds secrets (its environment, the reference,
expected answers, other submissions) and a forked child could read all of it.
It imports torch, numpy and the worker runtime, and then, for every test the
grader asks it for a fresh worker: it forks, hands the child one end of a
socket pair the grader created, and reports the child's pid and, later, its
exit code.

Where fork after ``import torch`` is unsafe (macOS) or unavailable (Windows),
:class:`.spawn_launcher.SpawnLauncher` starts each worker as a fresh
interpreter instead: slower (it imports torch every time) but with the same
interface (:class:`.launcher.Launcher`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from . import interpreter
from .launcher import Launcher, SandboxFault

# ``wire`` (which imports torch) is imported where it is used: the grader
# starts its zygote before it imports torch itself, so that the two imports
# overlap instead of following each other (~1.5 s less for a student's check).

# Imported once in the zygote so that workers do not pay for them. Any other
# installed package still imports in a worker (read-only, see
# filesystem_view.py); where no filesystem layer exists, only these do.
PRELOADED_MODULES = (
    "math", "cmath", "itertools", "functools", "operator", "typing", "collections",
    "collections.abc", "dataclasses", "numbers", "copy", "warnings", "enum", "abc",
    "random", "statistics", "string", "re", "time", "contextlib", "numpy",
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.linalg",
    "torch.special", "torch.autograd", "torch.utils.flop_counter",
    "torch.fx.experimental.symbolic_shapes",  # imported lazily by torch.autograd.grad
    "pyseccomp",  # loads libseccomp, which the worker cannot open later
)


# What students import for demos and plots (notebooks nearly always do): ~0.6 s
# per worker that imports them (33 tests: 23 s instead of 4 s, measured). The
# grader asks its zygote to import those a batch's submissions use (only these
# names, see :func:`preload_demo_modules`): once per zygote, and no cost for a
# batch that imports none (imported always, they cost ~0.15 s per submission
# in fork and exit, and 1.5 s at start, measured).
DEMO_MODULES = {"matplotlib": ("matplotlib", "matplotlib.pyplot"),
                "IPython": ("IPython", "IPython.display")}


def _warm_up() -> None:
    """Import everything workers need and run each kind of op once, so lazy
    initialisation (cpuinfo, op registration, lazy imports) happens here and not
    in every worker."""
    from . import wire

    import importlib

    import torch

    torch.set_num_threads(1)
    os.environ["MPLBACKEND"] = "Agg"  # plt.show() never opens a window
    for name in PRELOADED_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # not installed, or broken: a worker that needs it says so
            pass
    from . import isolation, tripwire, worker  # noqa: F401  (the runtime itself)

    tripwire.prepare()  # the library forbidden-op kernels join: ~1 ms less per worker

    x = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    lin = torch.nn.Linear(4, 4)
    y = torch.einsum("bld,bsd->bls", x, x).softmax(-1) @ x
    y = lin(y.float()).masked_fill(torch.ones(3, 3, dtype=torch.bool).tril()[:, :1], 0.0)
    loss = torch.bmm(y, y.transpose(1, 2)).sum() + torch.tanh(y).logsumexp(-1).sum()
    torch.autograd.grad(loss, [x, lin.weight], retain_graph=True, allow_unused=True)
    loss.backward()
    torch.nn.functional.scaled_dot_product_attention(y, y, y)
    wire.decode(wire.encode({"t": y.detach(), "l": [1, 2.0, "s", None, (True,)]}))
    import numpy

    numpy.random.seed(0)  # inherited by every worker (see worker._seed_everything)
    # Last: torch's lazy initialisation above (cpuinfo reads /proc) needs the
    # host's filesystem, which the view hides.
    isolation.warm_up()
    # Move everything to the permanent generation: a garbage collection in a
    # worker would otherwise touch every object and copy each page it lives on.
    import gc

    gc.collect()
    gc.freeze()


def main(argv: list[str]) -> None:
    """The zygote interpreter's entry (see :class:`Zygote`): ``argv`` is its
    control socket's descriptor, whether to use huge pages, the grader's pid."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle
    from .isolation import die_with_parent

    try:
        control = socket.socket(fileno=int(argv[0]))
        die_with_parent()  # with the grader; unless it is already gone
        if os.getppid() == int(argv[2]):
            _serve(control, huge_pages=argv[1] == "1")
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        os._exit(1)


def _serve(control: socket.socket, huge_pages: bool = True, warm: bool = False) -> None:
    """The zygote's loop: one request at a time from its single grader.

    Workers are reaped without blocking (the grader kills a worker at the end of
    each test and rarely needs its exit status), and statuses are kept for the
    times it does ask: a worker that died on its own is described to the student.
    """
    from . import wire

    from . import isolation
    from .hugepages import collapse_private_memory

    if not warm:  # a clone (see op "clone") inherits its parent's warm state
        _warm_up()
        isolation.leave_network()  # once, for every worker to inherit

    statuses: dict[int, int] = {}
    children: set[int] = set()
    forgotten: set[int] = set()

    def reap_finished() -> None:
        for pid in list(children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                children.discard(pid)
                isolation.forget_worker(pid)
                if pid in forgotten:
                    forgotten.discard(pid)
                else:
                    statuses[pid] = status

    spare = _fork_spare(control)
    # Back the heap with huge pages, so that forking and exiting each later
    # worker is cheap (~16 ms less each; the collapse costs ~0.4 s, worth it
    # from a few dozen workers on); after forking the first spare, so the
    # first test does not wait for it.
    if huge_pages:
        collapse_private_memory()
    while True:
        try:
            request = wire.recv(control.fileno())
            op = request.get("op")
            if op in ("spawn", "clone"):  # the other end of a socket pair follows
                _, fds, _, _ = socket.recv_fds(control, 16, 1)
        except (OSError, wire.WireError):
            break
        if op == "spawn":
            # Hand the grader's socket to the spare forked earlier (the grader
            # sends the request over it, so the zygote never reads submissions),
            # answer, and only then fork the next spare: the grader never waits
            # for a fork.
            pid, line = spare
            try:
                socket.send_fds(line, [b"fd"], [fds[0]])
            except OSError:
                pass  # the spare died: the grader sees a closed worker and says so
            line.close()
            os.close(fds[0])
            children.add(pid)
            wire.send(control.fileno(), {"pid": pid})
            spare = _fork_spare(control)
        elif op == "clone":
            # A new zygote for another grader process (--jobs N), forked from
            # this clean one: never from a grader that has read anything.
            pid = os.fork()
            if pid == 0:
                control.close()
                spare[1].close()
                clone_control = socket.socket(fileno=fds[0])
                _serve(clone_control, huge_pages=False, warm=True)  # never returns
            os.close(fds[0])
            children.add(pid)
            forgotten.add(pid)
            wire.send(control.fileno(), {"pid": pid})
        elif op == "reap":  # give it a moment to finish dying on its own, then kill it
            pid = request["pid"]
            if pid in children:
                deadline = time.monotonic() + 1.0
                done, status = os.waitpid(pid, os.WNOHANG)
                while not done and time.monotonic() < deadline:
                    time.sleep(0.002)
                    done, status = os.waitpid(pid, os.WNOHANG)
                if not done:
                    os.kill(pid, signal.SIGKILL)
                    _, status = os.waitpid(pid, 0)
                statuses[pid] = status
                children.discard(pid)
                isolation.forget_worker(pid)
            wire.send(control.fileno(), {"status": statuses.pop(pid, 0)})
        elif op == "preload":  # demo modules a batch imports (names from DEMO_MODULES only)
            if _preload(request.get("modules")):
                # The waiting spare was forked without them: replace it.
                try:
                    os.kill(spare[0], signal.SIGKILL)
                except OSError:
                    pass
                spare[1].close()
                children.add(spare[0])
                forgotten.add(spare[0])
                spare = _fork_spare(control)
            wire.send(control.fileno(), {"ok": True})
        elif op == "forget":  # killed by the grader: nobody needs its status
            forgotten.add(request["pid"])
            statuses.pop(request["pid"], None)
        else:
            break
        reap_finished()
    for pid in children | {spare[0]}:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except OSError:
            pass
    isolation.remove_tmp_root()
    os._exit(0)


def _preload(names) -> bool:
    """Import the allowlisted demo modules among ``names`` (in the zygote, so
    every later worker has them). True if anything new was imported."""
    import importlib

    wanted = [m for name in (names if isinstance(names, list) else [])
              for m in DEMO_MODULES.get(name, ()) if m not in sys.modules]
    if not wanted:
        return False
    from . import isolation
    isolation.zygote_tmp()  # their caches (matplotlib's font list) need a writable folder
    for module in wanted:
        try:
            importlib.import_module(module)
        except Exception:  # broken or missing: a worker that needs it says so itself
            pass
    import gc
    gc.collect()
    gc.freeze()
    return True


def _fork_spare(control: socket.socket) -> tuple[int, socket.socket]:
    """Fork a worker that prepares its request-independent layers and then waits
    for its request and socket from the zygote."""
    from . import wire

    zygote_end, spare_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        control.close()
        zygote_end.close()
        from . import isolation
        from .worker import run

        try:
            layers = isolation.prepare()
            _, fds, _, _ = socket.recv_fds(spare_end, 16, 1)
            spare_end.close()
            request = wire.recv(fds[0])
        except BaseException:
            os._exit(1)
        run(fds[0], request, layers)
    spare_end.close()
    return pid, zygote_end


class Zygote(Launcher):
    """The grader's handle on its zygote. ``huge_pages``: worth it for a batch,
    not for a student's check of a few tests."""

    def __init__(self, huge_pages: bool = True) -> None:
        grader_end, zygote_end = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                interpreter.command("autograder.sandbox.zygote:main", str(zygote_end.fileno()),
                                    "1" if huge_pages else "0", str(os.getpid())),
                pass_fds=[zygote_end.fileno()], env=interpreter.environment(),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True)  # a terminal's Ctrl-C is the grader's alone
        finally:
            zygote_end.close()
        self.pid, self.control = self._process.pid, grader_end

    @classmethod
    def _attach(cls, pid: int, control: socket.socket) -> "Zygote":
        zygote = cls.__new__(cls)
        zygote.pid, zygote.control, zygote._process = pid, control, None
        return zygote

    def _ask(self, message: dict, handing: socket.socket | None = None,
             answered: bool = True) -> dict:
        """One exchange with the zygote over its control socket, handing it
        ``handing`` (a socket for a new worker or clone) after the message. A
        zygote that stopped (killed for memory, say) or answers nonsense is a
        :class:`SandboxFault`: no worker can be started any more."""
        from . import wire

        global _QUIT
        _QUIT = _QUIT or wire.frame({"op": "quit"})
        try:
            wire.send(self.control.fileno(), message)
            if handing is not None:
                socket.send_fds(self.control, [message["op"].encode()], [handing.fileno()])
            answer = wire.recv(self.control.fileno()) if answered else {}
        except (OSError, wire.WireError) as exc:
            raise SandboxFault(f"the sandbox's zygote (pid {self.pid}) stopped answering "
                               f"({type(exc).__name__}: {exc}); no worker can be started") \
                from None
        if type(answer) is not dict:
            raise SandboxFault("the sandbox's zygote sent a malformed answer")
        return answer

    def _pid(self, answer: dict) -> int:
        pid = answer.get("pid")
        if type(pid) is not int or pid <= 0:
            raise SandboxFault("the sandbox's zygote could not start a process")
        return pid

    def clone(self) -> "Zygote":
        """Another zygote, forked by this one (not by the caller): for a grader
        process forked after the caller loaded a batch. Hand it to that
        process; it is as clean and warm as this one."""
        mine, theirs = socket.socketpair()
        try:
            pid = self._pid(self._ask({"op": "clone"}, handing=theirs))
        finally:
            theirs.close()
        return Zygote._attach(pid, mine)

    def spawn(self, request: dict) -> tuple[int, int]:
        """Start a worker for ``request``; returns (pid, grader's socket fd)."""
        from . import wire

        mine, theirs = socket.socketpair()
        try:
            pid = self._pid(self._ask({"op": "spawn"}, handing=theirs))
        finally:
            theirs.close()
        try:
            wire.send(mine.fileno(), request)  # straight to the worker
        except OSError:
            pass  # it died before reading: the session reports a worker that stopped
        return pid, mine.detach()

    def preload(self, modules: list[str]) -> None:
        """Have the zygote import the demo modules (keys of DEMO_MODULES) that
        the batch's submissions import, so workers inherit them."""
        wanted = sorted(set(modules) & set(DEMO_MODULES))
        if wanted:
            self._ask({"op": "preload", "modules": wanted})

    def reap(self, pid: int) -> int | None:
        """Wait for a worker to end and return its exit code."""
        status = self._ask({"op": "reap", "pid": pid}).get("status")
        try:
            return os.waitstatus_to_exitcode(status)
        except (TypeError, ValueError):
            return None

    def forget(self, pid: int) -> None:
        """Kill a worker now; the zygote reaps it in the background. (The
        grader may signal it: workers run as users of their own, the grader
        as root or as the same user.) A zygote that stopped is reported by the
        next spawn, not here: this runs as a test ends."""
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self._ask({"op": "forget", "pid": pid}, answered=False)
        except SandboxFault:
            pass

    def close(self) -> None:
        """Stop the zygote. Imports nothing (this may run at exit, after Ctrl-C
        interrupted an import): the quit message was encoded by the first
        exchange, and a zygote that never had one quits when its control
        socket closes. Either way it is waited for a moment, then killed (a
        forked copy of this process may still hold the socket open)."""
        global _shared
        if _shared is not None and _shared[1] is self:
            _shared = None
        if _QUIT is not None:
            try:
                self.control.settimeout(1.0)
                self.control.sendall(_QUIT)
            except OSError:
                pass
        self.control.close()
        if self._process is not None:  # a clone is its parent zygote's child, reaped there
            try:
                self._process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()


_shared = None  # (owner pid, launcher): this process's one sandbox
_QUIT: bytes | None = None  # the "quit" frame, encoded at the first exchange


def shared_launcher(many_workers: bool = True):
    """This process's sandbox, started on first use and kept for every batch
    (``import torch`` is paid once per process). The zygote is a fresh
    interpreter, so it holds nothing the grader read before or after. A forked
    grader process (``--jobs N``) is handed a :meth:`Zygote.clone` instead of
    starting one of its own: a clone is forked from the zygote, warm."""
    global _shared
    if _shared is not None:
        owner, launcher = _shared
        if owner != os.getpid():
            raise RuntimeError("a forked grader process must be given a clone of its "
                               "parent's zygote, never start one itself")
        return launcher
    launcher = start_launcher(many_workers=many_workers)
    _shared = (os.getpid(), launcher)
    import atexit
    atexit.register(_close_shared)
    return launcher


def _close_shared() -> None:
    global _shared
    if _shared is not None and _shared[0] == os.getpid():
        _shared[1].close()
    _shared = None


def start_launcher(method: str | None = None, many_workers: bool = True):
    """The best launcher for this platform: a zygote on Linux, spawn elsewhere.
    ``many_workers``: a batch rather than a handful of tests."""
    method = method or os.environ.get("AUTOGRADER_WORKER_START") or (
        "fork" if sys.platform.startswith("linux") else "spawn")
    if method == "fork":
        return Zygote(huge_pages=many_workers)
    from .spawn_launcher import SpawnLauncher

    return SpawnLauncher()
