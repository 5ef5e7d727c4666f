"""Calls with gradients whose failures name their cause (student-api.md: every
function is differentiable, and tests compare gradients with the oracle's)."""

from __future__ import annotations

import re

from autograder.sandbox.session import StudentCodeError
from autograder.testing import fail

DETACHED_HINT = ("keep every output connected to the inputs in autograd: no .detach(), "
                 ".data, torch.no_grad(), or new tensors rebuilt from .item()/.tolist()/numpy.")


class NoGradients:
    """The call ran but back-propagating through its result failed: the
    failure, reported once the result's values have been checked."""

    def __init__(self, message: str, case, hint: str | None):
        self.message, self.case, self.hint = message, case, hint

    def report(self):
        fail(self.message, case=self.case, hint=self.hint)


def with_grad(func, args, kwargs=None, *, grad_outputs, wrt, outputs, case):
    """``(result, input_grads)`` of ``func.with_grad(...)``. When the backward
    pass fails, the call is made again without gradients, so an error of the
    forward pass reads as it always does, and ``input_grads`` is a
    :class:`NoGradients` saying which output autograd cannot reach (``outputs``:
    the names of the outputs given a gradient, in order)."""
    try:
        result, grads, _ = func.with_grad(args, kwargs, grad_outputs=grad_outputs, wrt=wrt)
        return result, grads
    except StudentCodeError as backward_error:
        if backward_error.phase != "call" or backward_error.kind != "error":
            raise  # a timeout, a crash, the time budget: nothing to retry
        first = str(backward_error).split("\n", 1)[0]
    result = func(*args, **(kwargs or {}))  # raises again if the forward pass failed
    label = getattr(func, "_label", "the function")
    detached = re.search(r"element (\d+) of tensors does not require grad", first)
    if detached:
        index = int(detached.group(1))
        name = outputs[index] if index < len(outputs) else "an output"
        return result, NoGradients(
            f"{label} returned {name} without gradients: autograd finds no path from it back "
            "to the inputs, so nothing can be learnt through it.", case, DETACHED_HINT)
    cause = first.split("your code raised ", 1)[-1]
    return result, NoGradients(f"back-propagating through the result of {label} failed: "
                               f"{cause}", case, None)
