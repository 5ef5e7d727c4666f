"""Hidden tests of unroll and bidirectional against torch.nn.RNN, LSTM and GRU."""

import torch
from hypothesis import example, given, strategies as st

from autograder.testing import assert_close, generator, random_tensor, unpack
from autograder.testing.gradients import assert_gradients, call_with_grad
from grading.cases import RNNCase, rnn_cases
from grading.checks import DETACHED_HINT, state_names, wrt_of, wrt_state, wrt_weights
from grading.oracles import as_torch_state, torch_sequence, with_gradients

# An lstm with an initial state: its gradients in and out through (h, c),
# checked whatever else hypothesis draws.
LSTM_CASE = RNNCase("lstm", T=3, B=2, I=3, H=4, dtype=torch.float32, seed=31)
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


def state_grad(case, gen):
    """An upstream gradient for a (B, H) state, or a pair of them for lstm's (h, c)."""
    grads = tuple(random_tensor((case.B, case.H), case.dtype, gen)
                  for _ in range(2 if case.cell == "lstm" else 1))
    return grads if case.cell == "lstm" else grads[0]


def grad_tolerance(case) -> dict:
    """Gradients through time accumulate more float32 rounding than one step."""
    return {"rtol": 1e-3, "atol": 1e-5} if case.dtype == torch.float32 else {}


@given(case=rnn_cases(max_t=5), with_state=st.booleans())
@example(case=LSTM_CASE, with_state=True)  # (h0, c0) in, (h_n, c_n) out: always checked
def test_unroll_gradients_match_torch(student, case, with_state):
    """Gradients of the outputs and of the final state (h, or both h and c for
    lstm) with respect to x, the initial state and the weights equal autograd
    through nn.RNN / LSTM / GRU (backpropagation through time)."""
    x, params = case.x(), case.params()
    state = case.state() if with_state else None
    gen = generator(case.seed + 5)
    grad_outputs = (random_tensor((case.T, case.B, case.H), case.dtype, gen),
                    state_grad(case, gen))
    h0 = state_names(case.cell, "h0", "h0", "c0")
    wrt, names = wrt_of(([1], ["x"]), wrt_state(case.cell, 2, h0, with_state),
                        wrt_weights(3, case.bias))
    args = (case.cell, x, state, *params)
    _, got = call_with_grad(student.unroll, args, grad_outputs=grad_outputs, wrt=wrt)
    _, expected = with_gradients("unroll", args, {}, grad_outputs, wrt)
    assert_gradients(got, expected, inputs=names, case=case, **grad_tolerance(case),
                     outputs=("outputs", state_names(case.cell, "final_state")),
                     detached_hint=DETACHED_HINT,
                     hint="build every step with differentiable, out-of-place operations "
                          "(no .detach(), .data or in-place writes into a preallocated tensor "
                          "that autograd needs); the final state is the last step's state "
                          "itself, still connected to the graph.")


@given(case=rnn_cases(), with_state=st.booleans())
@example(case=LSTM_CASE, with_state=True)
def test_bidirectional_matches_torch(student, case, with_state):
    """bidirectional equals nn.RNN(bidirectional=True): outputs concatenate
    [forward, backward] and the backward direction is re-aligned in time; the
    gradients of the outputs and of both final states with respect to x, the
    initial states and both directions' weights too."""
    x = case.x()
    p_fwd, p_bwd = case.params(), case.params(offset=1)
    s_fwd, s_bwd = (case.state(), case.state(offset=1)) if with_state else (None, None)
    gen = generator(case.seed + 5)
    grad_outputs = (random_tensor((case.T, case.B, 2 * case.H), case.dtype, gen),
                    (state_grad(case, gen), state_grad(case, gen)))
    wrt, names = wrt_of(([1], ["x"]),
                        wrt_weights(2, case.bias, inside=True, prefix="params_fwd's "),
                        wrt_weights(3, case.bias, inside=True, prefix="params_bwd's "),
                        wrt_state(case.cell, 4, state_names(case.cell, "state_fwd"), with_state),
                        wrt_state(case.cell, 5, state_names(case.cell, "state_bwd"), with_state))
    args = (case.cell, x, p_fwd, p_bwd, s_fwd, s_bwd)
    result, got = call_with_grad(student.bidirectional, args, grad_outputs=grad_outputs, wrt=wrt)
    (expected, expected_final), expected_grads = with_gradients("bidirectional", args, {},
                                                                grad_outputs, wrt)
    outputs, finals = unpack(result, 2, "bidirectional", "outputs, (final_fwd, final_bwd)")
    assert_close(outputs, expected, what="outputs (T, B, 2H)", case=case,
                 hint="concatenate [forward, backward] on the last axis; the backward "
                      "outputs must be indexed by the time step they belong to.")
    final_fwd, final_bwd = unpack(finals, 2, "the final states", "final_fwd, final_bwd")
    for got_final, want in zip((final_fwd, final_bwd), expected_final):
        compare_final(got_final, want, case.cell, case)
    assert_gradients(got, expected_grads, inputs=names, case=case, **grad_tolerance(case),
                     outputs=("outputs", (state_names(case.cell, "final_fwd"),
                                          state_names(case.cell, "final_bwd"))),
                     detached_hint=DETACHED_HINT,
                     hint="both directions must stay differentiable: no .detach() or .data on "
                          "either half before concatenating, nor on the final states.")
