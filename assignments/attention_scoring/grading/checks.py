"""attention_scoring's gradient checks: the framework's (autograder.testing.
gradients) with this assignment's hints and float32 tolerance.

student-api.md: every function is differentiable. A call with gradients
back-propagates one upstream gradient per differentiable output at once, so an
output that left autograd's graph (``.detach()``, ``torch.no_grad()``, a round
trip through numbers) fails, and the feedback names that output.
"""

from __future__ import annotations

import torch

from autograder.testing import gradients

GRAD_HINT = ("build every output with differentiable, out-of-place torch operations: no "
             ".detach(), torch.no_grad(), .item()/.tolist()/numpy round trips or in-place "
             "writes into a tensor autograd needs.")
DETACHED_HINT = ("every output is differentiable (student-api.md): the tests back-propagate "
                 "through it and compare with autograd. Return the tensor your computation "
                 "built, not a .detach()ed copy, one computed under torch.no_grad(), or a new "
                 "tensor made from its numbers.")
# Gradients of float32 inputs accumulate more rounding than the values.
FLOAT32_TOLERANCE = {"rtol": 1e-3, "atol": 1e-5}


def assert_gradients(got, oracle, args, *, grad_outputs, wrt, inputs, outputs, what,
                     case=None, hint: str | None = None) -> None:
    """The gradients ``call_with_grad`` returned equal autograd's through
    ``oracle(*args)``. ``inputs`` names the arguments in ``wrt``, ``outputs``
    every output of the function (in order), for the feedback."""
    expected = gradients.expected_gradients(oracle, args, grad_outputs=grad_outputs, wrt=wrt)
    tolerance = FLOAT32_TOLERANCE if expected[0].dtype == torch.float32 else {}
    gradients.assert_gradients(got, expected, inputs=inputs, outputs=outputs, what=what,
                               case=case, hint=hint or GRAD_HINT, detached_hint=DETACHED_HINT,
                               **tolerance)
