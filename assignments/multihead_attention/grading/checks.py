"""Checks of multihead_attention's hidden tests whose failures name their cause:
an output autograd cannot reach (the framework's check, with this assignment's
hint), answers that change from call to call, and an ``assert`` where the API
asks for ValueError.

Their failure texts hold no number drawn at random, so a cataloged mistake
(mistakes.yaml) fails them with exactly the submission's text and its hint
reaches the student."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from autograder.sandbox.session import StudentCodeError
from autograder.testing import GradingFailure, fail
from autograder.testing.expect import expect_raises, raised
from autograder.testing.gradients import call_with_grad, require_gradients

DETACHED_HINT = ("keep every returned tensor connected to the inputs in autograd: no .detach(), "
                 ".data, torch.no_grad(), or tensors rebuilt from .item()/.tolist()/numpy. The "
                 "weights are an output too (a model may put a loss on them).")
RANDOM_HINT = ("attention has no randomness: no dropout (nn.Dropout in a module is active in "
               "training mode, the mode a module is built in; F.dropout is active unless "
               "training=False) and no random numbers.")
ASSERT_HINT = ("the API asks for `raise ValueError(...)` for this argument: `assert` raises "
               "AssertionError, and `python -O` removes it.")


def grads(func, args: Sequence, kwargs: dict | None = None, *, grad_outputs: Sequence,
          outputs: Sequence[str], wrt: Sequence = (), param_grads: bool = False,
          case: Any = None):
    """``(result, input_grads, param_grads)`` of ``func.with_grad(...)``. When an
    output given a gradient (``outputs`` names the outputs in order) has no path
    back to the inputs in autograd, fail saying which one, with this
    assignment's hint."""
    result, got = call_with_grad(func, args, kwargs, grad_outputs=grad_outputs, wrt=wrt,
                                 param_grads=param_grads)
    got = require_gradients(got, outputs=outputs, case=case, detached_hint=DETACHED_HINT)
    return result, got.inputs, got.params


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and \
            torch.allclose(a.double(), b.double(), rtol=1e-6, atol=1e-9, equal_nan=True)
    return True  # not tensors: the value checks say what is wrong


def require_deterministic(call: Callable[[], Sequence], *, label: str, inputs: str,
                          case: Any = None) -> None:
    """Fail unless ``call()`` (the same inputs and weights every time) returns
    the same values twice. The text names the inputs, never the values nor which
    output changed, so every random variant of a mistake (dropout on the weights
    or on the output) fails with the same words. A probe that fails otherwise
    proves nothing: the caller's own failure stands."""
    try:
        first, second = call(), call()
    except (StudentCodeError, GradingFailure):
        return
    if not all(_same(a, b) for a, b in zip(first, second)):
        fail(f"{label} returned different results for the same {inputs} on two calls: the "
             "same input must always give the same answer.", case=case, hint=RANDOM_HINT)


def expect_value_error(call, *args, what: str, because: str, **kwargs):
    """``expect_raises(ValueError, ...)``, with an AssertionError (an ``assert``
    in place of the ValueError the API asks for) told as such."""
    try:
        return expect_raises(ValueError, call, *args, what=what, because=because, **kwargs)
    except GradingFailure as failure:
        # expect_raises fails while handling the call's error: that is its context.
        if raised(failure.__context__, AssertionError):
            fail(f"{what} raised AssertionError; it should raise ValueError ({because}).",
                 hint=ASSERT_HINT)
        raise
