"""Gradients of a student's outputs, compared with autograd through the oracles.

student-api.md: every function is differentiable. A call with gradients
back-propagates one upstream gradient per differentiable output at once, so an
output that left autograd's graph (``.detach()``, ``torch.no_grad()``, a round
trip through numbers) fails, and the feedback names that output.
"""

from __future__ import annotations

import re

import torch

from autograder.sandbox.session import StudentCodeError
from autograder.testing import assert_close, fail

# What autograd says when an output it is asked to differentiate has no grad_fn.
_NOT_IN_GRAPH = re.compile(r"element (\d+) of tensors does not require grad")

GRAD_HINT = ("build every output with differentiable, out-of-place torch operations: no "
             ".detach(), torch.no_grad(), .item()/.tolist()/numpy round trips or in-place "
             "writes into a tensor autograd needs.")
DETACHED_HINT = ("every output is differentiable (student-api.md): the tests back-propagate "
                 "through it and compare with autograd. Return the tensor your computation "
                 "built, not a .detach()ed copy, one computed under torch.no_grad(), or a new "
                 "tensor made from its numbers.")


def call_with_grad(func, args, *, grad_outputs, wrt):
    """``(result, gradients)`` of ``func(*args)`` (a ``student.`` function) with
    ``grad_outputs`` back-propagated to the arguments named in ``wrt``. When the
    backward pass itself fails (an output outside autograd's graph), the values
    still come first: the call is repeated without gradients and ``gradients`` is
    that error, which :func:`assert_gradients` reports."""
    try:
        result, grads, _ = func.with_grad(args, grad_outputs=grad_outputs, wrt=wrt)
        return result, grads
    except StudentCodeError as backward_error:
        # The student's own code raised (a frame of theirs in the traceback), ran
        # out of time or crashed: that is the failure, as for a plain call.
        if backward_error.kind != "error" or 'File "' in str(backward_error):
            raise
        return func(*args), backward_error


def expected_gradients(oracle, args, *, grad_outputs, wrt) -> list[torch.Tensor]:
    """autograd's gradients of ``oracle(*args)`` with respect to the arguments in
    ``wrt`` (positions, or (position, key) paths into a dict argument)."""
    args, leaves = list(args), []
    for key in wrt:
        path = key if isinstance(key, tuple) else (key,)
        container = args
        for step in path[:-1]:
            container[step] = dict(container[step])
            container = container[step]
        leaf = container[path[-1]].detach().clone().requires_grad_(True)
        container[path[-1]] = leaf
        leaves.append(leaf)
    result = oracle(*args)
    outputs = [result] if isinstance(result, torch.Tensor) else list(result)
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if g is not None]
    grads = torch.autograd.grad([o for o, _ in pairs], leaves, [g for _, g in pairs],
                                allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(leaves, grads)]


def assert_gradients(got, oracle, args, *, grad_outputs, wrt, inputs, outputs, what,
                     case=None, hint: str | None = None) -> None:
    """The gradients ``call_with_grad`` returned equal autograd's through
    ``oracle``. ``inputs`` names the arguments in ``wrt``, ``outputs`` every
    output of the function (in order), for the feedback."""
    if isinstance(got, StudentCodeError):
        found = _NOT_IN_GRAPH.search(str(got))
        if found is None:
            raise got
        named = [name for name, g in zip(outputs, grad_outputs) if g is not None]
        index = int(found.group(1))
        name = named[index] if index < len(named) else "an output"
        fail(f"{what} returned {name} outside autograd's graph: no gradient flows back "
             "from it to the inputs, so nothing upstream of it could learn.", case=case,
             hint=DETACHED_HINT)
    if not isinstance(got, (list, tuple)) or len(got) != len(wrt):
        fail(f"{what}: the gradients of its inputs could not be computed.", case=case)
    expected = expected_gradients(oracle, args, grad_outputs=grad_outputs, wrt=wrt)
    dtype = next(e.dtype for e in expected)
    tolerance = {"rtol": 1e-3, "atol": 1e-5} if dtype == torch.float32 else {}
    for name, a, e in zip(inputs, got, expected):
        assert_close(a, e, what=f"the gradient of {name}", case=case,
                     hint=hint or GRAD_HINT, **tolerance)
