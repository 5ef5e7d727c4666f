"""Hidden tests of split_heads and merge_heads (section 3.3, multi-head attention)."""

import pytest
import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, float_dtypes, generator, random_tensor, seeds
from grading.checks import expect_value_error

LAYOUT_HINT = ("head j owns features j*d .. (j+1)*d - 1 of each position: reshape to "
               "(B, L, h, d), then move the head axis forward with transpose(1, 2). A reshape "
               "straight to (B, h, L, d) mixes positions and heads.")


@given(B=st.integers(1, 3), L=st.integers(1, 6), h=st.sampled_from([1, 2, 3, 4]),
       d=st.integers(1, 5), dtype=float_dtypes(), seed=seeds())
def test_split_heads_layout(student, B, L, h, d, dtype, seed):
    """split_heads(x, h)[b, j, i] is the j-th block of d = E/h features of position i."""
    x = random_tensor((B, L, h * d), dtype, generator(seed))
    expected = x.reshape(B, L, h, d).transpose(1, 2)
    assert_close(student.split_heads(x, h), expected, what=f"split_heads(x, {h})",
                 case=f"x ({B}, {L}, {h * d}), {dtype}, seed {seed}", hint=LAYOUT_HINT)


@given(B=st.integers(1, 3), L=st.integers(1, 6), h=st.sampled_from([1, 2, 3, 4]),
       d=st.integers(1, 5), dtype=float_dtypes(), seed=seeds())
def test_merge_heads_inverts_split(student, B, L, h, d, dtype, seed):
    """merge_heads(x) for x (B, h, L, d) is (B, L, h*d) and undoes split_heads."""
    x = random_tensor((B, h, L, d), dtype, generator(seed))
    expected = x.transpose(1, 2).reshape(B, L, h * d)
    assert_close(student.merge_heads(x), expected, what="merge_heads(x)",
                 case=f"x ({B}, {h}, {L}, {d}), {dtype}, seed {seed}",
                 hint="undo split_heads step by step: transpose(1, 2) back to (B, L, h, d) "
                      "before reshaping to (B, L, h*d).")


@pytest.mark.parametrize("E, h", [(6, 4), (5, 2), (7, 3)])
def test_split_heads_rejects_indivisible(student, E, h):
    """split_heads raises ValueError when E is not divisible by the number of heads."""
    x = torch.zeros(1, 2, E)
    expect_value_error(student.split_heads, x, h, what=f"split_heads(x, {h}) with E={E}",
                       because="the heads cannot share the features equally")
