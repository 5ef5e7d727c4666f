"""Hidden tests that hold for every function: purity and vectorisation."""

import time

import torch

from autograder.testing import assert_close, fail, unpack
from grading.cases import ScoringCase
from grading.oracles import softmax

CASE = ScoringCase(B=4, T=6, Dq=5, Dk=5, Dv=3, A=4, dtype=torch.float64, seed=5)


def test_functions_are_pure(student):
    """No function modifies its inputs in place (and each still gives the right answer)."""
    q, k, v = CASE.tensors()
    scores = torch.einsum("bd,btd->bt", q, k)
    mask = CASE.mask()
    assert_close(student.dot_score.pure(q, k), scores, what="dot_score", case=CASE)
    assert_close(student.masked_softmax.pure(scores, mask, 2.0), softmax(scores, mask, 2.0),
                 what="masked_softmax", case=CASE)
    context, _ = unpack(student.attend.pure(scores, v, mask), 2, "attend")
    assert_close(context, torch.einsum("bt,btd->bd", softmax(scores, mask), v), what="context",
                 case=CASE)
    grads = unpack(student.attention_backward.pure(q, k, v, torch.ones(CASE.B, CASE.Dv,
                                                                       dtype=CASE.dtype)), 3,
                   "attention_backward")
    if not all(isinstance(g, torch.Tensor) for g in grads):
        fail("attention_backward should return three tensors.")


def test_attend_is_vectorised(student, reference):
    """attend over a batch of 4096 sequences is a few tensor operations, not a
    Python loop over the batch."""
    big = ScoringCase(B=4096, T=16, Dq=16, Dk=16, Dv=16, A=4, dtype=torch.float32, seed=6)
    q, k, v = big.tensors()
    scores = torch.einsum("bd,btd->bt", q, k)
    mask = big.mask()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference.attend(scores, v, mask)
        started = time.perf_counter()
        reference.attend(scores, v, mask)
        reference_seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    student.attend(scores[:2], v[:2], mask[:2])  # warm-up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        context, _ = unpack(student.attend(scores, v, mask), 2, "attend")
        best = min(best, time.perf_counter() - started)
    assert_close(context, torch.einsum("bt,btd->bd", softmax(scores, mask), v), what="context",
                 case=big)
    budget = 10 * reference_seconds + 0.05
    if best > budget:
        fail(f"attend took {best * 1000:.0f} ms on a batch of {big.B}; the budget is "
             f"{budget * 1000:.0f} ms (10x the reference plus 50 ms).",
             hint="use batched operations (einsum, bmm, broadcasting) over the batch.")
