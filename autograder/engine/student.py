"""The ``student`` fixture: the submission as tests see it, without importing it.

``student.scaled_dot_product_attention(q, k, v)`` looks like a call into the
student's module; it is a request to a sandboxed worker, and what comes back is
plain data re-checked by :func:`autograder.sandbox.wire.plain`. Classes become
:class:`RemoteObject` handles that load weights, run forward and backward, and
report their parameters, so tests can compare gradients with a torch oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..assignment import Assignment
from ..sandbox import grad_paths
from ..sandbox.session import StudentCodeError
from ..submission import Submission
from ..testing.compare import GradingFailure
from ..testing.gradients import DetachedOutputs


@dataclass
class SubmissionState:
    """What the grader keeps about one submission across its tests."""
    submission: Submission
    static_forbidden: dict[str, set[str]] = field(default_factory=dict)
    import_error: StudentCodeError | None = None
    code: bytes | None = None  # compiled once by the grader, for every worker
    seconds: float = 0.0
    layers: list[str] = field(default_factory=list)
    launcher: object = None   # None: the batch's sandbox; else e.g. an in-process launcher


class Student:
    """One test's view of one submission. A worker is started on first use and
    stopped at the end of the test, so every test starts from a clean process."""

    def __init__(self, assignment: Assignment, state: SubmissionState, launcher):
        self._assignment, self._state, self._launcher = assignment, state, launcher
        self._session = None  # a WorkerSession, or an in-process one (see engine/inprocess.py)
        self.called: set[str] = set()   # API names this test used, for forbidden-call checks
        self.forbidden: set[str] = set()
        self.output: list[str] = []

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in self._assignment.classes:
            return RemoteClass(self, name)
        return RemoteFunction(self, name)

    # -- plumbing shared by functions and objects ----------------------
    def _request(self, op: str, api_name: str, doing: str, **args):
        self.called.add(api_name)
        session = self._ensure_session()
        limit = self._assignment.limits
        remaining = limit.submission_seconds - self._state.seconds
        if remaining <= 0:
            raise StudentCodeError(f"While {doing}: this submission has used up its time "
                                   f"budget of {limit.submission_seconds:g} s; the remaining "
                                   "tests were not run.", kind="budget")
        before = session.record.seconds
        try:
            return session.request(op, timeout=min(limit.call_seconds, remaining), doing=doing,
                                   **args)
        finally:
            self._state.seconds += session.record.seconds - before
            self._collect(session)

    def _ensure_session(self):
        if self._state.import_error is not None:
            raise self._state.import_error
        if self._session is None:
            sub, limits = self._state.submission, self._assignment.limits
            request = {
                "module": self._assignment.module_name,
                "filename": self._assignment.module,
                "source": sub.source,
                "code": self._state.code,
                "limits": {"cpu_seconds": limits.cpu_seconds, "memory_headroom_mb": limits.memory_mb},
                "forbidden": [f.as_rule() for f in self._assignment.forbidden],
            }
            try:
                self._session = self._launcher.open_session(request, limits.call_seconds,
                                                            limits.import_seconds)
            except StudentCodeError as exc:
                # Remembered: the module will not import in the next test either.
                self._state.import_error = exc
                raise
            self._state.layers = self._session.layers
        return self._session

    def _collect(self, session) -> None:
        self.forbidden |= session.record.forbidden
        session.record.forbidden.clear()
        self.output.extend(session.record.output)
        session.record.output.clear()

    def close(self) -> None:
        if self._session is not None:
            self._session.close(want_status=False)
            self._session = None


def _signature(args, kwargs) -> str:
    def show(v):
        if isinstance(v, torch.Tensor):
            return f"<tensor {tuple(v.shape)} {str(v.dtype).replace('torch.', '')}>"
        if isinstance(v, (list, tuple)):
            inner = ", ".join(show(x) for x in v)
            return f"[{inner}]" if isinstance(v, list) else f"({inner})"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k!r}: {show(x)}" for k, x in v.items()) + "}"
        return repr(v)
    parts = [show(a) for a in args] + [f"{k}={show(v)}" for k, v in kwargs.items()]
    return "(" + ", ".join(parts) + ")"


class _Callable:
    """Shared by functions and methods: plain calls, calls with gradients, and
    calls that check the inputs were not modified."""

    def __init__(self, student: Student, api_name: str, label: str, target: dict):
        self._student, self._api_name, self._label, self._target = student, api_name, label, target

    def __call__(self, *args, **kwargs):
        return self._call(args, kwargs)["result"]

    def _call(self, args, kwargs, **extra):
        """Every call echoes its arguments back, so the grader itself checks that
        none was modified in place (student-api.md: inputs are never modified),
        whatever the test is about."""
        answer = self._student._request(
            "call", self._api_name, f"calling {self._label}{_signature(args, kwargs)}",
            call_args=list(args), call_kwargs=kwargs, echo_args=True, **self._target, **extra)
        if type(answer) is not dict or "args_after" not in answer:
            raise GradingFailure(f"{self._label}: the worker's answer is incomplete.")
        self._check_unmodified(args, kwargs, answer["args_after"], extra.get("wrt", ()))
        return answer

    def _check_unmodified(self, args, kwargs, after, wrt) -> None:
        try:
            after_args, after_kwargs = after
        except (TypeError, ValueError):
            raise GradingFailure(f"{self._label}: the worker's answer is incomplete.") from None
        # Arguments replaced by fresh leaves for gradients are the worker's copies.
        skipped = {tuple(k) if isinstance(k, (list, tuple)) else (k,) for k in wrt}
        changed = _first_changed(list(args), after_args, (), skipped) or \
            _first_changed(dict(kwargs), after_kwargs, (), skipped)
        if changed is not None:
            where = "argument " + (f"{changed[0] + 1}" if isinstance(changed[0], int)
                                   else str(changed[0]))
            where += "".join(f"[{step!r}]" for step in changed[1:])
            raise GradingFailure(f"{self._label} modified its {where} in place; functions "
                                 "must be pure (use out-of-place operations, or clone first).")

    @property
    def label(self) -> str:
        """How feedback names this callable: ``split_heads``, ``MultiHeadAttention.forward``."""
        return self._label

    def with_grad(self, args, kwargs=None, *, grad_outputs, wrt=(), param_grads=False):
        """Run the call, back-propagate ``grad_outputs`` (one per output: a
        tensor, None to skip, or a tuple nested like that output) to the inputs
        in ``wrt`` (positions, keywords, or paths into dicts, lists and tuples)
        and return ``(result, input_grads, param_grads)``. Outputs outside
        autograd's graph raise :class:`~autograder.testing.gradients.DetachedOutputs`."""
        if isinstance(grad_outputs, torch.Tensor):
            raise TypeError("grad_outputs has one entry per output: (g,) for one tensor")
        answer = self._call(tuple(args), kwargs or {}, grad_outputs=list(grad_outputs),
                            wrt=list(wrt), param_grads=param_grads)
        grads = answer.get("grads")
        if type(grads) is not dict:
            raise GradingFailure(f"{self._label} did not return gradients.")
        if "detached" in grads:
            raise DetachedOutputs(self._label, _detached_paths(grads["detached"], grad_outputs,
                                                               self._label), answer.get("result"))
        inputs, params = grads.get("inputs"), grads.get("params")
        if type(inputs) is not list or len(inputs) != len(wrt) or type(params) is not dict:
            raise GradingFailure(f"{self._label}: the worker's answer about gradients is "
                                 "malformed.")
        return answer["result"], inputs, params

    def count_ops(self, *args, **kwargs) -> tuple:
        """``(result, n)``: the call's result and how many torch operations it
        dispatched (see autograder.testing.vectorised)."""
        answer = self._call(args, kwargs, count_ops=True)
        count = answer.get("op_count")
        if type(count) is not int or count < 0:
            raise GradingFailure(f"{self._label}: the worker did not count its operations.")
        return answer["result"], count

    def pure(self, *args, **kwargs):
        """A call; kept for tests that name the property: every call is checked
        for inputs modified in place."""
        return self._call(args, kwargs)["result"]


def _detached_paths(paths, grad_outputs, label: str) -> tuple[tuple[int, ...], ...]:
    """A worker's report of outputs outside autograd's graph, checked against
    the gradients the grader itself sent: each path must lead, through list and
    tuple indices, to a tensor given as a gradient; at most one per gradient,
    at least one. Anything else is a malformed answer, never a verdict."""
    given = {path for path, _, _ in grad_paths.pairs(grad_outputs, grad_outputs)}
    try:
        found = {tuple(p) for p in paths} if type(paths) is list \
            and 0 < len(paths) <= len(given) and all(type(p) is list for p in paths) else None
    except TypeError:  # unhashable steps
        found = None
    if not found or not found <= given or any(type(i) is not int for p in found for i in p):
        raise GradingFailure(f"{label}: the worker's answer about gradients is malformed.")
    return tuple(sorted(found))


def _first_changed(before, after, path: tuple, skipped: set) -> tuple | None:
    """The path of the first tensor in ``before`` that ``after`` does not hold
    unchanged (same shape, dtype and values), or None."""
    if path in skipped:
        return None
    if isinstance(before, torch.Tensor):
        same = (isinstance(after, torch.Tensor) and after.shape == before.shape
                and after.dtype == before.dtype and torch.equal(after, before))
        return None if same else path
    if isinstance(before, dict):
        after = after if isinstance(after, dict) else {}
        items = before.items()
    elif isinstance(before, (list, tuple)):
        after = after if isinstance(after, (list, tuple)) else ()
        items = enumerate(before)
        after = dict(enumerate(after))
    else:
        return None
    for key, value in items:
        found = _first_changed(value, after.get(key), path + (key,), skipped)
        if found is not None:
            return found
    return None


class RemoteFunction(_Callable):
    def __init__(self, student: Student, name: str):
        super().__init__(student, name, name, {"name": name})


class RemoteClass:
    """``student.MultiHeadAttention``: build objects in the worker."""

    def __init__(self, student: Student, name: str):
        self._student, self._name = student, name

    def __call__(self, *args, **kwargs) -> "RemoteObject":
        return self.build(args, kwargs)

    def build(self, args=(), kwargs=None, *, dtype: torch.dtype | None = None,
              weights: dict[str, torch.Tensor] | None = None) -> "RemoteObject":
        """Construct, convert to ``dtype`` and load ``weights`` in one round trip."""
        kwargs = kwargs or {}
        options = {}
        if dtype is not None:
            options["dtype"] = str(dtype).replace("torch.", "")
        if weights is not None:
            options["state"] = weights
        value = self._student._request(
            "new", self._name, f"creating {self._name}{_signature(args, kwargs)}",
            name=self._name, call_args=list(args), call_kwargs=kwargs, **options)
        return RemoteObject(self._student, self._name, value["handle"], value["parameters"])


class RemoteObject:
    """A handle on an object built in the worker (an ``nn.Module`` here)."""

    def __init__(self, student: Student, class_name: str, handle: int, parameters: dict):
        self._student, self._class, self._handle = student, class_name, handle
        self.parameter_shapes = {name: tuple(info[0]) for name, info in parameters.items()}

    def method(self, name: str) -> _Callable:
        return _Callable(self._student, self._class, f"{self._class}.{name}",
                         {"name": name, "handle": self._handle})

    def __call__(self, *args, **kwargs):
        return self.method("forward")(*args, **kwargs)

    def with_grad(self, args, kwargs=None, **options):
        return self.method("forward").with_grad(args, kwargs, **options)

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        self._student._request("load", self._class, f"loading weights into {self._class}",
                               handle=self._handle, state=state)

    def to(self, dtype: torch.dtype) -> "RemoteObject":
        self._student._request("convert", self._class, f"converting {self._class} to {dtype}",
                               handle=self._handle, dtype=str(dtype).replace("torch.", ""))
        return self
