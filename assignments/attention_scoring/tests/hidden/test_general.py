"""Hidden tests that hold for every function: purity and vectorisation."""

import torch

from autograder.testing import assert_close, fail, unpack
from autograder.testing.vectorised import assert_vectorised
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


def test_attend_is_vectorised(student):
    """attend over a batch is a few tensor operations, not a Python loop over the
    batch: it dispatches as many torch operations for 64 sequences as for 2 (counted,
    never timed), and its context is right on the large batch."""
    big = ScoringCase(B=64, T=16, Dq=16, Dk=16, Dv=16, A=4, dtype=torch.float32, seed=6)
    q, k, v = big.tensors()
    scores = torch.einsum("bd,btd->bt", q, k)
    mask = big.mask()
    context, _ = unpack(student.attend(scores, v, mask), 2, "attend")
    assert_close(context, torch.einsum("bt,btd->bd", softmax(scores, mask), v), what="context",
                 case=big)
    assert_vectorised(student.attend, lambda b: ((scores[:b], v[:b], mask[:b]), {}),
                      what="attend", case=big,
                      hint="use batched operations (einsum, bmm, broadcasting) over the batch.")
