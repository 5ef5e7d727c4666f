"""Gradients of a student's function, compared with autograd through an oracle.

A differentiable API is only half-checked by its values: an output returned
``.detach()``ed, computed under ``torch.no_grad()`` or rebuilt from numbers has
the right values and teaches a model nothing. A test therefore calls the
student's function with upstream gradients (:func:`call_with_grad`), checks its
values as it always does, then compares the gradients with autograd's through
the assignment's oracle (:func:`expected_gradients`, :func:`assert_gradients`).

``wrt`` names the inputs: positions, keywords, or paths into dicts, lists and
tuples (``(1, 0)``: h of a state ``(h, c)`` passed second). ``grad_outputs``
has one entry per output, each a tensor, None, or a tuple nested like that
output (``(g_outputs, (g_h, g_c))``). The worker reports outputs outside
autograd's graph by their place in the result, never through autograd's error
text; the names and hints in the feedback are the assignment's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from ..sandbox import grad_paths
from ..sandbox.session import StudentCodeError
from .compare import GradingFailure, assert_close, fail


class DetachedOutputs(GradingFailure):
    """Raised by ``with_grad`` of a student function when outputs given a
    gradient are outside autograd's graph. ``paths``: their places in the
    result (index tuples into ``grad_outputs``), ``result``: the call's values,
    so a test can still check those first."""

    def __init__(self, label: str, paths: tuple[tuple[int, ...], ...], result: Any):
        places = ", ".join(grad_paths.describe(p) for p in paths)
        super().__init__(f"{label} returned {places} without gradients: autograd finds no "
                         "path from it back to the inputs.")
        self.label, self.paths, self.result = label, paths, result


@dataclass(frozen=True)
class Gradients:
    """What back-propagating through a student's call gave: one gradient per
    entry of ``wrt``, and the parameters' by name (with ``param_grads``)."""
    inputs: list
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class NoGradients:
    """In place of :class:`Gradients` when back-propagation was impossible:
    outputs outside autograd's graph (``detached``, their places in the
    result) or another failure (``error``, the first line of its text).
    :func:`assert_gradients` reports it, after the test checked the values."""
    label: str
    detached: tuple[tuple[int, ...], ...] = ()
    error: str = ""


def _label(func) -> str:
    return getattr(func, "label", None) or "the function"


def call_with_grad(func, args: Sequence, kwargs: dict | None = None, *, grad_outputs: Sequence,
                   wrt: Sequence = (), param_grads: bool = False
                   ) -> tuple[Any, Gradients | NoGradients]:
    """``(result, gradients)`` of ``func`` (a ``student.`` function or method)
    with ``grad_outputs`` back-propagated to ``wrt`` (and to the parameters).
    When back-propagation fails, the result still comes back for the test to
    check first: from the same answer for a detached output, or from a plain
    call when the backward pass raised, so a wrong forward pass reads as always."""
    try:
        result, inputs, params = func.with_grad(args, kwargs, grad_outputs=grad_outputs,
                                                wrt=wrt, param_grads=param_grads)
        return result, Gradients(list(inputs), dict(params))
    except DetachedOutputs as detached:
        return detached.result, NoGradients(_label(func), detached=detached.paths)
    except StudentCodeError as error:
        # A timeout, a crash, the time budget, or an error with a frame of the
        # student's in its traceback (their forward pass raised): the failure
        # as for a plain call, without calling again.
        if error.phase != "call" or error.kind != "error" or 'File "' in str(error):
            raise
        first = str(error).split("\n", 1)[0]
    result = func(*args, **(kwargs or {}))  # raises again if the forward pass failed
    return result, NoGradients(_label(func), error=first.split("your code raised ", 1)[-1])


def expected_gradients(oracle, args: Sequence, kwargs: dict | None = None, *,
                       grad_outputs: Sequence, wrt: Sequence) -> list[torch.Tensor]:
    """autograd's gradients of ``oracle(*args, **kwargs)`` with respect to the
    inputs in ``wrt``, for ``grad_outputs``: read exactly as the worker reads
    them for the student's call. An input that does not reach the outputs gets
    zeros, as from the worker."""
    args, kwargs = list(args), dict(kwargs or {})
    leaves = grad_paths.make_leaves(args, kwargs, wrt)
    with torch.set_grad_enabled(True):  # also under a caller's no_grad
        found = grad_paths.pairs(oracle(*args, **kwargs), grad_outputs)
        grads = torch.autograd.grad([o for _, o, _ in found], leaves,
                                    [g for _, _, g in found], allow_unused=True)
    return [torch.zeros_like(x) if g is None else g.detach() for x, g in zip(leaves, grads)]


def output_name(outputs, path: Sequence[int]) -> str:
    """The name of the output at ``path`` in ``outputs``, names nested like the
    result: ``("outputs", ("final h", "final c"))`` names path (1, 1) "final c".
    A place the names do not reach is told by its index."""
    node: Any = outputs
    for depth, step in enumerate(path):
        if isinstance(node, str):
            return node + "".join(f"[{i}]" for i in path[depth:])
        if not isinstance(node, (list, tuple)) or step >= len(node):
            return grad_paths.describe(path)
        node = node[step]
    return node if isinstance(node, str) else grad_paths.describe(path)


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def require_gradients(got: Gradients | NoGradients, *, outputs, case: Any = None,
                      detached_hint: str | None = None, what: str | None = None) -> Gradients:
    """``got`` if back-propagation worked; else fail saying why, naming the
    outputs outside autograd's graph by ``outputs`` (names nested like the
    result) and the function by ``what`` (by default its label)."""
    if isinstance(got, Gradients):
        return got
    if not isinstance(got, NoGradients):
        raise TypeError(f"expected what call_with_grad returns, not a {type(got).__name__}")
    if got.detached:
        names = list(dict.fromkeys(output_name(outputs, p) for p in got.detached))
        them = "it" if len(names) == 1 else "them"
        source = names[0] if len(names) == 1 else "any of them"
        fail(f"{what or got.label} returned {_and(names)} without gradients: autograd finds "
             f"no path from {source} back to the inputs, so nothing can be learnt through "
             f"{them}.", case=case, hint=detached_hint)
    fail(f"back-propagating through the result of {what or got.label} failed: {got.error}",
         case=case)


def assert_gradients(got: Gradients | NoGradients, expected: Sequence[torch.Tensor], *,
                     inputs: Sequence[str], outputs, case: Any = None, hint: str | None = None,
                     detached_hint: str | None = None, what: str | None = None,
                     rtol: float | None = None, atol: float | None = None) -> Gradients:
    """The gradients :func:`call_with_grad` returned equal ``expected`` (one per
    entry of ``wrt``, e.g. from :func:`expected_gradients`). ``inputs`` names
    them ("the gradient of W_ih differs ..."); ``outputs`` (nested like the
    result) and ``what`` name the outputs and the function when an output is
    outside autograd's graph (:func:`require_gradients`). ``hint`` goes with a
    wrong gradient, ``detached_hint`` with a detached output. Returns the
    gradients, whose ``params`` the test may compare next."""
    if len(inputs) != len(expected):
        raise ValueError(f"{len(inputs)} names for {len(expected)} expected gradients")
    got = require_gradients(got, outputs=outputs, case=case, detached_hint=detached_hint,
                            what=what)
    if len(got.inputs) != len(expected):
        fail(f"{len(got.inputs)} gradients came back for {len(expected)} inputs.", case=case)
    for name, actual, want in zip(inputs, got.inputs, expected):
        assert_close(actual, want, what=f"the gradient of {name}", case=case, hint=hint,
                     rtol=rtol, atol=atol)
    return got
