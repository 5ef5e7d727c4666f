"""Hidden test of vectorisation: no Python loop over the batch, judged by the
number of torch operations a forward pass dispatches (never by its time)."""

import torch

from autograder.testing import assert_close, unpack
from autograder.testing.vectorised import assert_vectorised
from grading.cases import MHACase
from grading.oracles import torch_mha_forward

CASE = MHACase(B=64, L=12, S=12, d_model=32, n_heads=4, dtype=torch.float32, seed=11)


def test_mha_is_vectorised(student):
    """A forward pass processes the batch (and the heads) by tensor operations:
    it dispatches as many torch operations for 64 sequences as for 2, and its
    output is right on the large batch."""
    query, _ = CASE.inputs()
    module = student.MultiHeadAttention.build((CASE.d_model, CASE.n_heads), weights=CASE.weights())
    out, _ = unpack(module(query), 2, "MultiHeadAttention.forward")
    expected_out, _ = torch_mha_forward(CASE, query)
    assert_close(out, expected_out, what="out", case=CASE)
    assert_vectorised(module.method("forward"), lambda b: ((query[:b],), {}),
                      what="MultiHeadAttention.forward", case=CASE,
                      hint="process the whole batch and all heads at once with batched matmuls "
                           "(@, torch.matmul, einsum); do not loop over batch elements.")
