"""Hidden tests of scaled_dot_product_attention (section 3.3)."""

import math

import torch
from hypothesis import given, strategies as st

from autograder.testing import GradingFailure, assert_close, fail, generator, random_tensor, unpack
from grading.cases import attention_cases
from grading.checks import grads, require_deterministic
from grading.oracles import sdpa, sdpa_grads, sdpa_weight_grads

SCALE_HINT = ("the scores are q k^T divided by sqrt(d_k) (d_k = q.size(-1)), unless `scale` "
              "is given; without it the softmax saturates as d_k grows.")
MASK_HINT = ("a bool mask means True = may attend: masked scores must become -inf before "
             "the softmax (multiplying weights by the mask, or setting scores to 0, is not "
             "the same).")
EMPTY_ROW_HINT = ("a query with no allowed key must get all-zero weights and output, not "
                  "NaN: handle rows where every score is -inf.")


def call(student, *args, **kwargs):
    return unpack(student.scaled_dot_product_attention(*args, **kwargs), 2,
                  "scaled_dot_product_attention", "out, weights")


def check(student, case, *args, hint=None, **kwargs):
    out, weights = call(student, *args, **kwargs)
    expected_out, expected_weights = sdpa(*args, **kwargs)
    try:
        assert_close(weights, expected_weights, what="weights", case=case, hint=hint)
        assert_close(out, expected_out, what="out", case=case, hint=hint)
    except GradingFailure:
        deterministic(student, case)  # a random answer is told as such, not by its numbers
        raise


def deterministic(student, case):
    """Two calls on the same q, k, v (large enough that dropout cannot pass by
    chance) must agree."""
    gen = generator(11)
    q, k, v = (random_tensor((2, 8, 8), torch.float32, gen) for _ in range(3))
    require_deterministic(lambda: call(student, q, k, v), label="scaled_dot_product_attention",
                          inputs="q, k, v (2, 8, 8)", case=case)


@given(case=attention_cases())
def test_sdpa_matches_torch_without_mask(student, case):
    """Without a mask the output equals torch's scaled_dot_product_attention, for
    any number of leading batch dims, L != S and Ev != E."""
    check(student, case, *case.tensors(), hint=SCALE_HINT)


@given(case=attention_cases(min_e=2), scale=st.floats(0.05, 3.0))
def test_sdpa_custom_scale(student, case, scale):
    """An explicit `scale` replaces 1/sqrt(E)."""
    check(student, f"{case.describe()}, scale={scale:.4g}", *case.tensors(), scale=scale,
          hint="use `scale` when it is given, 1/sqrt(E) only when it is None.")


@given(case=attention_cases())
def test_sdpa_weights_rows_sum_to_one(student, case):
    """Each row of weights is a probability distribution over the keys: it is
    non-negative and sums to 1."""
    _, weights = call(student, *case.tensors())
    expected = torch.ones(*case.batch, case.L, dtype=case.dtype)
    assert_close(weights.sum(-1), expected, what="weights.sum(-1)", case=case,
                 hint="the softmax runs over the keys, the last axis of the scores.")
    if (weights < 0).any():
        fail("weights has negative entries.", case=case)
    # The property together with the right values: uniform weights also sum to one.
    assert_close(weights, sdpa(*case.tensors())[1], what="weights", case=case)


@given(case=attention_cases(), broadcast=st.booleans())
def test_sdpa_bool_mask_matches_torch(student, case, broadcast):
    """With a bool mask (True = may attend), masked keys get weight exactly 0 and a
    query with no allowed key gets zeros, not NaN. The mask may broadcast."""
    mask = case.mask(broadcast=broadcast)
    check(student, f"{case.describe()}, bool mask {tuple(mask.shape)} (row 0 fully masked)",
          *case.tensors(), attn_mask=mask, hint=MASK_HINT + " " + EMPTY_ROW_HINT)


@given(case=attention_cases())
def test_sdpa_float_mask_is_added_to_scores(student, case):
    """A float mask is added to the scaled scores before the softmax."""
    gen = generator(case.seed + 7)
    mask = random_tensor((case.L, case.S), case.dtype, gen, scale=2.0)
    check(student, f"{case.describe()}, float mask ({case.L}, {case.S})", *case.tensors(),
          attn_mask=mask, hint="a float attn_mask is added to q k^T * scale, not multiplied.")


@given(case=attention_cases())
def test_sdpa_is_causal_matches_torch(student, case):
    """is_causal=True lets query i attend keys j <= i only (top-left aligned, also
    when L != S)."""
    check(student, f"{case.describe()}, is_causal=True", *case.tensors(), is_causal=True,
          hint="build the mask with causal_mask(L, S): key j is allowed for query i when "
               "j <= i. A query whose keys are all in its future gets zeros.")


@given(case=attention_cases())
def test_sdpa_is_causal_combines_with_mask(student, case):
    """is_causal and a bool attn_mask together allow a key only if both allow it."""
    mask = case.mask(fully_masked_row=False)
    check(student, f"{case.describe()}, bool mask and is_causal=True", *case.tensors(),
          attn_mask=mask, is_causal=True,
          hint="combine the two masks with a logical and; neither replaces the other.")


@given(case=attention_cases(square=True), data=st.data())
def test_sdpa_never_looks_ahead(student, case, data):
    """With is_causal=True, changing the keys and values after position t never
    changes the output at positions <= t: that is what makes autoregressive
    generation possible."""
    pivot = data.draw(st.integers(0, case.L - 1), label="pivot")
    q, k, v = case.tensors()
    gen = generator(case.seed + 3)
    k2, v2 = k.clone(), v.clone()
    k2[..., pivot + 1:, :] = random_tensor(k2[..., pivot + 1:, :].shape, case.dtype, gen, 5.0)
    v2[..., pivot + 1:, :] = random_tensor(v2[..., pivot + 1:, :].shape, case.dtype, gen, 5.0)
    out, _ = call(student, q, k, v, is_causal=True)
    out2, _ = call(student, q, k2, v2, is_causal=True)
    assert_close(out2[..., :pivot + 1, :], out[..., :pivot + 1, :],
                 what=f"out at positions 0..{pivot} after changing keys/values after {pivot}",
                 case=case, hint="a query attended to a key after it: check the causal mask "
                                 "(query i may see keys 0..i only).")
    # The property together with the right values: zeros never look ahead either.
    assert_close(out, sdpa(q, k, v, is_causal=True)[0], what="out with is_causal=True",
                 case=case)


@given(case=attention_cases(max_batch_dims=1), masked=st.booleans())
def test_sdpa_gradients_match_torch(student, case, masked):
    """Gradients with respect to q, k and v equal autograd through torch's kernel,
    through out and through the weights, and stay finite for fully masked rows."""
    q, k, v = case.tensors()
    mask = case.mask() if masked else None
    gen = generator(case.seed + 5)
    grad_out = random_tensor((*case.batch, case.L, case.Ev), case.dtype, gen)
    grad_weights = random_tensor((*case.batch, case.L, case.S), case.dtype, gen)
    what = f"{case.describe()}{', bool mask (row 0 fully masked)' if masked else ''}"
    tolerance = {"rtol": 1e-3, "atol": 1e-4} if case.dtype == torch.float32 else {}
    hint = (EMPTY_ROW_HINT + " Masking must not block gradients of the other positions (use "
            "masked_fill or where, not in-place writes).")
    func = student.scaled_dot_product_attention
    _, got, _ = grads(func, (q, k, v), {"attn_mask": mask}, grad_outputs=(grad_out, None),
                      outputs=("out", "weights"), wrt=(0, 1, 2), case=what)
    expected = sdpa_grads(q, k, v, grad_out, attn_mask=mask)
    for name, g, want in zip(("q", "k", "v"), got, expected):
        assert_close(g, want, what=f"the gradient of {name}", case=what, hint=hint, **tolerance)
    # The weights are an output too: their gradients reach q and k (never v).
    _, got, _ = grads(func, (q, k, v), {"attn_mask": mask},
                      grad_outputs=(None, grad_weights), outputs=("out", "weights"), wrt=(0, 1),
                      case=what)
    expected = sdpa_weight_grads(q, k, grad_weights, attn_mask=mask)
    for name, g, want in zip(("q", "k"), got, expected):
        assert_close(g, want, what=f"the gradient of {name} through weights", case=what,
                     hint=hint, **tolerance)


@given(case=attention_cases(max_len=5, min_e=4))
def test_sdpa_stable_for_large_scores(student, case):
    """Scores of magnitude ~1e4 do not overflow: the softmax subtracts the row
    maximum (or uses logsumexp) before exponentiating."""
    q, k, v = case.tensors()
    q = q * (1e4 / math.sqrt(case.E))
    out, weights = call(student, q, k, v)
    expected_out, expected_weights = sdpa(q, k, v)
    hint = "exp() of a score of 1e4 overflows to inf; subtract each row's maximum first."
    assert_close(weights, expected_weights, what="weights", case=f"{case.describe()}, q * 1e4",
                 hint=hint, rtol=1e-3, atol=1e-3)
    assert_close(out, expected_out, what="out", case=f"{case.describe()}, q * 1e4", hint=hint,
                 rtol=1e-3, atol=1e-3)


@given(case=attention_cases(max_batch_dims=1))
def test_sdpa_is_pure(student, case):
    """The function does not modify q, k, v or the mask in place (and still
    returns the right answer)."""
    q, k, v = case.tensors()
    mask = case.mask()
    out, weights = unpack(student.scaled_dot_product_attention.pure(q, k, v, attn_mask=mask), 2,
                          "scaled_dot_product_attention", "out, weights")
    expected_out, expected_weights = sdpa(q, k, v, attn_mask=mask)
    assert_close(weights, expected_weights, what="weights", case=case)
    assert_close(out, expected_out, what="out", case=case)
