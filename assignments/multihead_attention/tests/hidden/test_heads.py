"""Hidden tests of split_heads and merge_heads (section 3.3, multi-head attention)."""

import pytest
import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, float_dtypes, generator, random_tensor, seeds
from grading.checks import expect_value_error, grads

LAYOUT_HINT = ("head j owns features j*d .. (j+1)*d - 1 of each position: reshape to "
               "(B, L, h, d), then move the head axis forward with transpose(1, 2). A reshape "
               "straight to (B, h, L, d) mixes positions and heads.")


@given(B=st.integers(1, 3), L=st.integers(1, 6), h=st.sampled_from([1, 2, 3, 4]),
       d=st.integers(1, 5), dtype=float_dtypes(), seed=seeds())
def test_split_heads_layout(student, B, L, h, d, dtype, seed):
    """split_heads(x, h)[b, j, i] is the j-th block of d = E/h features of position i,
    and gradients flow back to x through the same layout."""
    gen = generator(seed)
    x = random_tensor((B, L, h * d), dtype, gen)
    expected = x.reshape(B, L, h, d).transpose(1, 2)
    case = f"x ({B}, {L}, {h * d}), {dtype}, seed {seed}"
    assert_close(student.split_heads(x, h), expected, what=f"split_heads(x, {h})", case=case,
                 hint=LAYOUT_HINT)
    grad_out = random_tensor(tuple(expected.shape), dtype, gen)
    _, (grad_x,), _ = grads(student.split_heads, (x, h), grad_outputs=(grad_out,),
                            outputs=("its output",), wrt=(0,), case=case)
    assert_close(grad_x, grad_out.transpose(1, 2).reshape(B, L, h * d),
                 what=f"the gradient of x through split_heads(x, {h})", case=case,
                 hint=LAYOUT_HINT)


@given(B=st.integers(1, 3), L=st.integers(1, 6), h=st.sampled_from([1, 2, 3, 4]),
       d=st.integers(1, 5), dtype=float_dtypes(), seed=seeds())
def test_merge_heads_inverts_split(student, B, L, h, d, dtype, seed):
    """merge_heads(x) for x (B, h, L, d) is (B, L, h*d) and undoes split_heads, and
    gradients flow back to x through the same layout."""
    gen = generator(seed)
    x = random_tensor((B, h, L, d), dtype, gen)
    expected = x.transpose(1, 2).reshape(B, L, h * d)
    case = f"x ({B}, {h}, {L}, {d}), {dtype}, seed {seed}"
    hint = ("undo split_heads step by step: transpose(1, 2) back to (B, L, h, d) before "
            "reshaping to (B, L, h*d).")
    assert_close(student.merge_heads(x), expected, what="merge_heads(x)", case=case, hint=hint)
    grad_out = random_tensor((B, L, h * d), dtype, gen)
    _, (grad_x,), _ = grads(student.merge_heads, (x,), grad_outputs=(grad_out,),
                            outputs=("its output",), wrt=(0,), case=case)
    assert_close(grad_x, grad_out.reshape(B, L, h, d).transpose(1, 2),
                 what="the gradient of x through merge_heads(x)", case=case, hint=hint)


@pytest.mark.parametrize("E, h", [(6, 4), (5, 2), (7, 3)])
def test_split_heads_rejects_indivisible(student, E, h):
    """split_heads raises ValueError when E is not divisible by the number of heads."""
    x = torch.zeros(1, 2, E)
    expect_value_error(student.split_heads, x, h, what=f"split_heads(x, {h}) with E={E}",
                       because="the heads cannot share the features equally")
