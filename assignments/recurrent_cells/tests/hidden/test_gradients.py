"""Hidden tests of hidden_grad_norms: vanishing and exploding gradients."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, assert_tensor, fail, float_dtypes, generator, random_tensor, seeds
from grading.cases import rnn_cases
from grading.oracles import hidden_grad_norms


def orthogonal(n, dtype, seed):
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator(seed), dtype=torch.float64))
    return q.to(dtype)


@given(case=rnn_cases(cells=("rnn",), max_t=8), with_h0=st.booleans())
def test_hidden_grad_norms_match_autograd(student, case, with_h0):
    """Entry t is ||d h_T.sum() / d h_t||, as autograd computes it; the last
    entry is sqrt(B*H)."""
    x, params = case.x(), case.params()
    h0 = case.state() if with_h0 else None
    got = student.hidden_grad_norms(x, h0, *params)
    expected = hidden_grad_norms(x, h0, *params)
    assert_tensor(got, what="hidden_grad_norms", shape=(case.T,), case=case)
    assert_close(got, expected, what="hidden_grad_norms", case=case,
                 rtol=1e-3 if case.dtype == torch.float32 else None,
                 hint="back-propagate h_T.sum() to every intermediate state h_t (one norm per "
                      "step, over the whole (B, H) gradient); the last entry is the norm of a "
                      "tensor of ones.")


@given(T=st.integers(3, 10), B=st.integers(1, 3), H=st.integers(2, 6), I=st.integers(1, 4),
       dtype=float_dtypes(), seed=seeds())
def test_gradients_vanish_with_small_recurrent_weight(student, T, B, H, I, dtype, seed):
    """With a recurrent weight of spectral norm 0.5 and tanh, each step back in
    time multiplies the gradient by at most 0.5: the norms shrink towards the
    start of the sequence (vanishing gradients)."""
    gen = generator(seed)
    x = random_tensor((T, B, I), dtype, gen)
    W_ih, W_hh = random_tensor((H, I), dtype, gen), 0.5 * orthogonal(H, dtype, seed)
    norms = assert_tensor(student.hidden_grad_norms(x, None, W_ih, W_hh), what="hidden_grad_norms",
                          shape=(T,))
    where = f"x ({T}, {B}, {I}), H={H}, W_hh = 0.5 * orthogonal, {dtype}, seed {seed}"
    assert_close(norms, hidden_grad_norms(x, None, W_ih, W_hh), what="hidden_grad_norms",
                 case=where, rtol=1e-3 if dtype == torch.float32 else None)
    if not bool((norms[:-1] <= 0.5 * norms[1:] * (1 + 1e-4)).all()):
        fail("the gradient norms should shrink by at least half at each step back in time.",
             case=where, hint="||dh_T/dh_t|| <= ||W_hh|| * max|tanh'| per step.")


@given(T=st.integers(3, 8), B=st.integers(1, 3), H=st.integers(2, 6), dtype=float_dtypes(),
       seed=seeds())
def test_gradients_explode_with_large_recurrent_weight(student, T, B, H, dtype, seed):
    """With a recurrent weight of 3 x an orthogonal matrix and tiny inputs (tanh
    stays in its linear range), the norms grow about 3x at each step back in
    time: exploding gradients, the reason for clipping."""
    gen = generator(seed)
    x = random_tensor((T, B, 1), dtype, gen, scale=1e-7)
    W_ih, W_hh = random_tensor((H, 1), dtype, gen), 3 * orthogonal(H, dtype, seed)
    norms = assert_tensor(student.hidden_grad_norms(x, None, W_ih, W_hh), what="hidden_grad_norms",
                          shape=(T,))
    where = f"x ({T}, {B}, 1) of size 1e-7, H={H}, W_hh = 3 * orthogonal, {dtype}, seed {seed}"
    assert_close(norms, hidden_grad_norms(x, None, W_ih, W_hh), what="hidden_grad_norms",
                 case=where, rtol=1e-3 if dtype == torch.float32 else None)
    if not bool((norms[:-1] >= 2.5 * norms[1:]).all()):
        fail("the gradient norms should grow about 3x at each step back in time.", case=where)
