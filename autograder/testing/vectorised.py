"""Vectorisation judged by what a call does, never by how long it takes.

A student's call runs under a counter of the torch operations it dispatches
(``count_ops`` of a student function or method). Code that processes the batch
with tensor operations dispatches the same operations for a batch of 2 as for
a batch of 64; a Python loop over batch elements dispatches ~32 times more.
The count does not depend on the machine's load, so the same submission always
gets the same verdict.
"""

from __future__ import annotations

from typing import Callable

from .compare import fail


def assert_vectorised(call, make_args: Callable[[int], tuple], what: str,
                      sizes: tuple[int, int] = (2, 64), case=None, hint: str = "") -> None:
    """``call``: a student callable (``student.f`` or ``module.method("forward")``);
    ``make_args(batch)`` -> ``(args, kwargs)`` for a batch of that size. Fails
    when the number of operations grows with the batch: more than twice the
    small batch's count, plus a little for data-dependent branches."""
    counts = []
    for batch in sizes:
        args, kwargs = make_args(batch)
        _, count = call.count_ops(*args, **kwargs)
        counts.append(count)
    small, big = counts
    if big > 2 * small + 16:
        fail(f"{what} dispatched {small} torch operations for a batch of {sizes[0]} and {big} "
             f"for a batch of {sizes[1]}: the work grows with the batch, so the code loops "
             "over batch elements in Python.", case=case,
             hint=hint or "process the whole batch at once with batched tensor operations "
                          "(@, torch.matmul, einsum, broadcasting).")
