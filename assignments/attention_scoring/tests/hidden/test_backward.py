"""Hidden test of attention_backward: the chain rule through softmax, by hand."""

import torch
from hypothesis import given

from autograder.testing import assert_close, generator, random_tensor, unpack
from grading.cases import scoring_cases


@given(case=scoring_cases(same_dims=True))
def test_attention_backward_matches_autograd(student, case):
    """grad_query, grad_keys and grad_values of context = softmax(q . K) V equal
    what autograd computes (your code may not use autograd)."""
    q, k, v = case.tensors()
    grad_context = random_tensor((case.B, case.Dv), case.dtype, generator(case.seed + 4))
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    context = torch.einsum("bt,btd->bd", torch.softmax(
        torch.einsum("bd,btd->bt", leaves[0], leaves[1]), -1), leaves[2])
    expected = torch.autograd.grad(context, leaves, grad_context)
    got = unpack(student.attention_backward(q, k, v, grad_context), 3, "attention_backward",
                 "grad_query, grad_keys, grad_values")
    hints = {
        "grad_values": "context = sum_t w_t v_t, so dL/dv_t = w_t * grad_context.",
        "grad_query": "through the softmax: dL/ds_t = w_t (dL/dw_t - sum_u w_u dL/dw_u). "
                      "Forgetting the subtracted term is the classic mistake; then "
                      "dL/dq = sum_t dL/ds_t k_t.",
        "grad_keys": "dL/dk_t = dL/ds_t * q, with dL/ds_t from the softmax Jacobian "
                     "(diag(w) - w w^T) applied to dL/dw.",
    }
    for name, a, e in zip(("grad_query", "grad_keys", "grad_values"), got, expected):
        assert_close(a, e, what=name, case=case, hint=hints[name],
                     rtol=1e-3 if case.dtype == torch.float32 else None,
                     atol=1e-5 if case.dtype == torch.float32 else None)
