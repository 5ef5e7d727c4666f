"""Hidden test of vectorisation: no Python loop over the batch."""

import functools
import time

import torch

from autograder.testing import assert_close, fail, unpack
from grading.cases import MHACase

CASE = MHACase(B=512, L=12, S=12, d_model=32, n_heads=4, dtype=torch.float32, seed=11)
REPEATS = 3


@functools.cache
def _reference_seconds(reference, case):
    """The reference's own time on the same input, single-threaded like a worker;
    measured once per batch (best of a few runs), not once per submission."""
    query, _ = case.inputs()
    module = reference.MultiHeadAttention(case.d_model, case.n_heads)
    module.load_state_dict(case.weights())
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            module(query)
            best = float("inf")
            for _ in range(REPEATS):
                started = time.perf_counter()
                expected = module(query)
                best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)
    return best, expected


def test_mha_is_vectorised(student, reference):
    """A forward pass over a batch of 512 sequences takes at most a few times the
    reference's time: the batch (and the heads) are processed by tensor
    operations, not by a Python loop."""
    query, _ = CASE.inputs()
    reference_seconds, (expected_out, _) = _reference_seconds(reference, CASE)
    module = student.MultiHeadAttention.build((CASE.d_model, CASE.n_heads), weights=CASE.weights())
    module(query[:2])  # warm-up: first calls pay one-off costs
    best, out = float("inf"), None
    for _ in range(REPEATS):
        started = time.perf_counter()
        out, _ = unpack(module(query), 2, "MultiHeadAttention.forward")
        best = min(best, time.perf_counter() - started)
    assert_close(out, expected_out, what="out", case=CASE)
    budget = 10 * reference_seconds + 0.05  # the constant covers sending the tensors
    if best > budget:
        fail(f"the forward pass took {best * 1000:.0f} ms on a batch of {CASE.B}; the "
             f"budget is {budget * 1000:.0f} ms ({reference_seconds * 1000:.1f} ms for the "
             "reference, x10, plus 50 ms).", case=CASE,
             hint="process the whole batch and all heads at once with batched matmuls "
                  "(@, torch.matmul, einsum); a Python loop over batch elements is far slower.")
