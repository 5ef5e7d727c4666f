"""Hidden tests of unroll and bidirectional against torch.nn.RNN, LSTM and GRU."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, generator, random_tensor, unpack
from grading.cases import rnn_cases
from grading.oracles import as_torch_state, torch_sequence

STATE_HINT = ("final_state has the same form as state: h for rnn and gru, (h, c) for lstm "
              "(state=None means zeros).")


def first(final, cell):
    return final[0] if cell == "lstm" else final


def compare_final(got, expected, cell, case):
    """expected: nn.RNN's final state for one direction, (B, H) or (h, c)."""
    if cell == "lstm":
        h, c = unpack(got, 2, "the final lstm state", "h, c")
        assert_close(h, expected[0], what="final h", case=case, hint=STATE_HINT)
        assert_close(c, expected[1], what="final c", case=case, hint=STATE_HINT)
    else:
        assert_close(got, expected, what="final_state", case=case, hint=STATE_HINT)


@given(case=rnn_cases(), with_state=st.booleans())
def test_unroll_matches_torch(student, case, with_state):
    """unroll runs the cell over every step and equals nn.RNN / LSTM / GRU."""
    x, params = case.x(), case.params()
    state = case.state() if with_state else None
    outputs, final = unpack(student.unroll(case.cell, x, state, *params), 2, "unroll",
                            "outputs, final_state")
    module = torch_sequence(case.cell, params, case.dtype)
    with torch.no_grad():
        expected, expected_final = module(x, None if state is None else as_torch_state(case.cell, [state]))
    assert_close(outputs, expected, what="outputs (T, B, H)", case=case,
                 hint="outputs[t] is the hidden state h after step t (for lstm, h, not c); "
                      "the same weights are used at every step.")
    compare_final(final, tuple(s[0] for s in expected_final) if case.cell == "lstm"
                  else expected_final[0], case.cell, case)


@given(case=rnn_cases(), with_state=st.booleans())
def test_unroll_reverse_matches_flipped(student, case, with_state):
    """With reverse=True the sequence is read from the last step to the first,
    and outputs[t] is the state after reading step t: it equals running forwards
    over the time-flipped input and flipping the outputs back."""
    x, params = case.x(), case.params()
    state = case.state() if with_state else None
    outputs, final = unpack(student.unroll(case.cell, x, state, *params, reverse=True), 2,
                            "unroll(reverse=True)", "outputs, final_state")
    module = torch_sequence(case.cell, params, case.dtype)
    with torch.no_grad():
        expected, expected_final = module(x.flip(0), None if state is None
                                          else as_torch_state(case.cell, [state]))
    assert_close(outputs, expected.flip(0), what="outputs", case=f"{case.describe()}, reverse",
                 hint="store the state computed when reading step t at outputs[t]: a backward "
                      "pass that collects outputs in reading order must re-reverse them.")
    compare_final(final, tuple(s[0] for s in expected_final) if case.cell == "lstm"
                  else expected_final[0], case.cell, case)


@given(case=rnn_cases(max_t=5))
def test_unroll_gradients_match_torch(student, case):
    """Gradients of the outputs with respect to x and the weights equal autograd
    through nn.RNN / LSTM / GRU (backpropagation through time)."""
    x, params = case.x(), case.params()
    grad = random_tensor((case.T, case.B, case.H), case.dtype, generator(case.seed + 5))
    wrt = [1, 3, 4] + ([5, 6] if case.bias else [])
    _, grads, _ = student.unroll.with_grad((case.cell, x, None, *params),
                                           grad_outputs=(grad, None), wrt=wrt)
    module = torch_sequence(case.cell, params, case.dtype)
    x_leaf = x.clone().requires_grad_(True)
    out, _ = module(x_leaf)
    names = ["x", "W_ih", "W_hh", "b_ih", "b_hh"][:len(wrt)]
    leaves = [x_leaf, module.weight_ih_l0, module.weight_hh_l0] + \
        ([module.bias_ih_l0, module.bias_hh_l0] if case.bias else [])
    expected = torch.autograd.grad(out, leaves, grad)
    tolerance = {"rtol": 1e-3, "atol": 1e-5} if case.dtype == torch.float32 else {}
    for name, a, e in zip(names, grads, expected):
        assert_close(a, e, what=f"the gradient of {name}", case=case, **tolerance,
                     hint="build every step with differentiable, out-of-place operations "
                          "(no .detach(), .data or in-place writes into a preallocated tensor "
                          "that autograd needs).")


@given(case=rnn_cases(), with_state=st.booleans())
def test_bidirectional_matches_torch(student, case, with_state):
    """bidirectional equals nn.RNN(bidirectional=True): outputs concatenate
    [forward, backward] and the backward direction is re-aligned in time."""
    x = case.x()
    p_fwd, p_bwd = case.params(), case.params(offset=1)
    s_fwd, s_bwd = (case.state(), case.state(offset=1)) if with_state else (None, None)
    outputs, finals = unpack(student.bidirectional(case.cell, x, p_fwd, p_bwd, s_fwd, s_bwd), 2,
                             "bidirectional", "outputs, (final_fwd, final_bwd)")
    module = torch_sequence(case.cell, p_fwd, case.dtype, params_bwd=p_bwd)
    with torch.no_grad():
        expected, expected_final = module(x, None if s_fwd is None
                                          else as_torch_state(case.cell, [s_fwd, s_bwd]))
    assert_close(outputs, expected, what="outputs (T, B, 2H)", case=case,
                 hint="concatenate [forward, backward] on the last axis; the backward "
                      "outputs must be indexed by the time step they belong to.")
    final_fwd, final_bwd = unpack(finals, 2, "the final states", "final_fwd, final_bwd")
    for d, got in enumerate((final_fwd, final_bwd)):
        compare_final(got, tuple(s[d] for s in expected_final) if case.cell == "lstm"
                      else expected_final[d], case.cell, case)
