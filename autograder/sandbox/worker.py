"""The untrusted side: a worker process that runs one submission's code.

It is forked from the zygote (or spawned on platforms without a safe fork),
locks itself down (:mod:`.isolation`), imports the student's module from source
text it was handed, and then answers requests from the grader: call a function,
build an object, load weights, run forward and backward. Answers carry only
plain data (see :mod:`.wire`). Nothing here is trusted: student code can patch
any of it, which is why the grader re-checks every answer and compares it with
its own reference.
"""

from __future__ import annotations

import io
import linecache
import marshal
import os
import sys
import time
import traceback
import types
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from . import grad_paths, isolation, tripwire, wire

OUTPUT_LIMIT = 8000  # characters of student output kept per answer


class _BoundedText(io.TextIOBase):
    """Collects what student code prints, up to a limit, for the feedback."""

    def __init__(self, limit: int = OUTPUT_LIMIT):
        self.parts: list[str] = []
        self.size, self.limit, self.dropped = 0, limit, False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        room = self.limit - self.size
        if room > 0:
            self.parts.append(text[:room])
            self.size += min(len(text), room)
        if len(text) > room:
            self.dropped = True
        return len(text)

    def take(self) -> str:
        text = "".join(self.parts) + ("\n[... output truncated]" if self.dropped else "")
        self.parts, self.size, self.dropped = [], 0, False
        return text


class Worker:
    def __init__(self, fd, request: dict, layers: list[str]):
        self.fd = fd  # a descriptor, or a socket object where sockets are not (Windows)
        self.prepared_layers = layers
        self.request = request
        self.module: types.ModuleType | None = None
        self.handles: dict[int, Any] = {}
        self.output = _BoundedText()

    # -- start-up -------------------------------------------------------
    def start(self) -> None:
        torch.set_num_threads(1)  # forked children deadlock in OpenMP otherwise
        _seed_everything()  # code that draws random numbers gets the same ones every run
        filename = self.request["filename"]
        layers = self.prepared_layers + isolation.lock_down(
            isolation.Limits(**self.request["limits"]),
            keep_fds=(self.fd,) if isinstance(self.fd, int) else ())
        tripwire.install(self.request.get("forbidden", ()), filename)
        sys.stdout = sys.stderr = self.output
        started = time.perf_counter()
        try:
            self.module = self._import(self.request["module"], filename, self.request["source"],
                                       self.request.get("code"))
            self._answer({"ok": True, "layers": layers, "seconds": time.perf_counter() - started})
        except BaseException as exc:  # SystemExit and KeyboardInterrupt too: they are the student's
            self._answer({"ok": False, "error": self._describe(exc), "layers": layers})
            return
        self.serve()

    @staticmethod
    def _import(name: str, filename: str, source: str, code: bytes | None) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__file__ = filename
        # Tracebacks show the student's lines although no file can be opened here.
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        sys.modules[name] = module
        # The grader compiles a submission once for all its workers (compiling
        # costs more than everything else a worker does before its first call).
        compiled = marshal.loads(code) if code else compile(source, filename, "exec")
        exec(compiled, module.__dict__)
        return module

    # -- the request loop ----------------------------------------------
    def serve(self) -> None:
        while True:
            try:
                request = wire.recv(self.fd)
            except wire.Closed:
                return
            try:
                value = getattr(self, "op_" + request["op"])(**request.get("args", {}))
                self._answer({"ok": True, "value": value})
            except BaseException as exc:
                self._answer({"ok": False, "error": self._describe(exc)})

    def _answer(self, message: dict) -> None:
        message["output"] = self.output.take()
        message["forbidden"] = tripwire.take_used()
        try:
            wire.send(self.fd, message)
        except Exception as exc:  # e.g. the student returned something torch cannot save
            fallback = {"ok": False, "output": message["output"], "forbidden": message["forbidden"],
                        "error": {"type": type(exc).__name__,
                                  "message": f"the result could not be sent to the grader: {exc}",
                                  "traceback": ""}}
            wire.send(self.fd, fallback)

    def _describe(self, exc: BaseException) -> dict:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if f.filename == self.request["filename"]]
        lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
        # Qualified class names, so that tests can tell a ValueError (or a class of
        # the student's deriving from it) from any other exception of that name.
        mro = [f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__]
        return {"type": type(exc).__name__, "message": str(exc)[:2000],
                "traceback": "".join(lines)[-4000:], "mro": mro[:64]}

    def _target(self, name: str, handle: int | None):
        owner = self.module if handle is None else self.handles[handle]
        if not hasattr(owner, name):
            what = "your module" if handle is None else f"your {type(owner).__name__}"
            raise AttributeError(f"{what} has no attribute {name!r}")
        return getattr(owner, name)

    # -- operations (names after "op_" are what the grader asks for) ---
    def op_call(self, name, call_args=(), call_kwargs=None, handle=None,
                grad_outputs=None, wrt=(), param_grads=False, echo_args=False,
                count_ops=False):
        """Call a function (or a method of a built object). With ``grad_outputs``
        (one per output, nested like the result: see :mod:`.grad_paths`), also
        back-propagate them and return the gradients of the arguments named in
        ``wrt`` (positions, keywords, or paths into dicts, lists and tuples) and,
        if asked, of the parameters."""
        call_args, call_kwargs = list(call_args), dict(call_kwargs or {})
        leaves = grad_paths.make_leaves(call_args, call_kwargs, wrt)
        target = self._target(name, handle)
        if count_ops:  # how many torch operations the call dispatches (vectorisation tests)
            with _OpCounter() as counter:
                result = target(*call_args, **call_kwargs)
        else:
            result = target(*call_args, **call_kwargs)
        answer = {"result": _detached(result)}
        if count_ops:
            answer["op_count"] = counter.count
        if grad_outputs is not None:
            answer["grads"] = self._backward(result, grad_outputs, leaves, handle, param_grads)
        if echo_args:  # lets the grader check that inputs were not modified in place
            answer["args_after"] = _detached((call_args, call_kwargs))
        return answer

    def _backward(self, result, grad_outputs, leaves, handle, param_grads):
        """The gradients, or ``{"detached": [path, ...]}``: the places in the
        result of the outputs given a gradient that are outside autograd's graph
        (detached, computed under no_grad, rebuilt from numbers). That is the
        student's answer, told as data; autograd would only raise about it."""
        found = grad_paths.pairs(result, grad_outputs)
        detached = [list(path) for path, output, _ in found if not output.requires_grad]
        if detached:
            return {"detached": detached}
        # remove_duplicate=False: a parameter reachable under two paths (an
        # alias such as q_proj = self.layers[0]) is reported under both.
        named = list(self.handles[handle].named_parameters(remove_duplicate=False)) \
            if param_grads else []
        inputs = leaves + [p for _, p in named]
        grads = torch.autograd.grad([o for _, o, _ in found], inputs, [g for _, _, g in found],
                                    allow_unused=True)
        grads = [torch.zeros_like(x) if g is None else g for x, g in zip(inputs, grads)]
        return {"inputs": _detached(grads[:len(leaves)]),
                "params": {n: _detached(g) for (n, _), g in zip(named, grads[len(leaves):])}}

    def op_new(self, name, call_args=(), call_kwargs=None, dtype=None, state=None):
        """Build an object; optionally convert it to ``dtype`` and load ``state``
        (one round trip instead of three)."""
        obj = self._target(name, None)(*call_args, **(call_kwargs or {}))
        handle = len(self.handles) + 1
        self.handles[handle] = obj
        if dtype is not None:
            self.op_convert(handle, dtype)
        if state is not None:
            self.op_load(handle, state)
        return {"handle": handle, "parameters": self.op_parameters(handle)}

    def op_parameters(self, handle):
        obj = self.handles[handle]
        if not isinstance(obj, torch.nn.Module):
            return {}
        return {n: [list(p.shape), str(p.dtype)]
                for n, p in obj.named_parameters(remove_duplicate=False)}

    def op_load(self, handle, state):
        """Copy weights in by sub-module and name (``q_proj.weight``), so extra
        buffers or parameters of the student's own never get in the way."""
        obj = self.handles[handle]
        with torch.no_grad():
            for key, value in state.items():
                owner_name, _, attr = key.rpartition(".")
                owner = obj.get_submodule(owner_name) if owner_name else obj
                target = getattr(owner, attr, None)
                if not isinstance(target, torch.Tensor):
                    raise AttributeError(f"your module has no tensor {key!r}")
                if target.shape != value.shape:
                    raise ValueError(f"{key} has shape {tuple(target.shape)}, "
                                     f"expected {tuple(value.shape)}")
                target.copy_(value)
        return None

    def op_convert(self, handle, dtype):
        self.handles[handle].to(getattr(torch, dtype))
        return None


class _OpCounter(TorchDispatchMode):
    """Counts the operators a call dispatches, below autograd: deterministic,
    unlike its time, and it grows with the batch only when the code loops over
    batch elements."""

    def __init__(self):
        super().__init__()
        self.count = 0

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # True would import torch._dynamo (~830 modules, ~1-3 s) in the worker

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def _seed_everything(seed: int = 0) -> None:
    """Python's ``random`` is reseeded from the OS at every fork and torch's
    generator carries whatever the zygote left; numpy's was seeded once in the
    zygote (``numpy.random.seed`` costs ~20 ms of page faults, too much per
    worker) and nothing there draws from it since."""
    import random

    random.seed(seed)
    torch.default_generator.manual_seed(seed)


def _detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, list):
        return [_detached(v) for v in value]
    if isinstance(value, tuple):  # namedtuples travel as plain tuples
        return tuple(_detached(v) for v in value)
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    return value


def run(fd: int, request: dict, prepared_layers: list[str] | None = None) -> None:
    """Entry point in a fresh worker; never returns. ``prepared_layers``: what
    :func:`isolation.prepare` already did (a pre-forked spare), else it is done here."""
    code = 0
    try:
        layers = isolation.prepare() if prepared_layers is None else prepared_layers
        Worker(fd, request, layers).start()
    except BaseException:
        code = 1
    os._exit(code)
