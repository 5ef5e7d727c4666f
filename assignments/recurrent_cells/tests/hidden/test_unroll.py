"""Hidden tests of unroll and bidirectional against torch.nn.RNN, LSTM and GRU."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, generator, random_tensor, unpack
from grading.cases import rnn_cases
from grading.checks import NoGradients, with_grad
from grading.oracles import as_torch_state, sequence_with_grad, torch_sequence

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


@given(case=rnn_cases(max_t=5), with_state=st.booleans())
def test_unroll_gradients_match_torch(student, case, with_state):
    """Gradients of the outputs (and of the final state, for rnn and gru) with
    respect to x, the initial state and the weights equal autograd through
    nn.RNN / LSTM / GRU (backpropagation through time)."""
    x, params = case.x(), case.params()
    state = case.state() if with_state else None
    gen = generator(case.seed + 5)
    grad = random_tensor((case.T, case.B, case.H), case.dtype, gen)
    # lstm's final state is a pair: only a top-level output can be given a gradient.
    grad_final = None if case.cell == "lstm" else random_tensor((case.B, case.H), case.dtype, gen)
    _, _, expected = sequence_with_grad(case.cell, x, None if state is None else [state], params,
                                        grad, grad_final)
    names = list(expected)
    positions = {"x": 1, "h0": 2, "W_ih": 3, "W_hh": 4, "b_ih": 5, "b_hh": 6}
    outputs = ["outputs"] + ([] if grad_final is None else ["final_state"])
    _, grads = with_grad(student.unroll, (case.cell, x, state, *params),
                         grad_outputs=(grad, grad_final), wrt=[positions[n] for n in names],
                         outputs=outputs, case=case)
    if isinstance(grads, NoGradients):
        grads.report()
    grads = unpack(grads, len(names), "the gradients of unroll")
    tolerance = {"rtol": 1e-3, "atol": 1e-5} if case.dtype == torch.float32 else {}
    for name, a in zip(names, grads):
        assert_close(a, expected[name], what=f"the gradient of {name}", case=case, **tolerance,
                     hint="build every step with differentiable, out-of-place operations "
                          "(no .detach(), .data or in-place writes into a preallocated tensor "
                          "that autograd needs); the final state is the last step's state "
                          "itself, still connected to the graph.")


@given(case=rnn_cases(), with_state=st.booleans())
def test_bidirectional_matches_torch(student, case, with_state):
    """bidirectional equals nn.RNN(bidirectional=True): outputs concatenate
    [forward, backward] and the backward direction is re-aligned in time; the
    gradients of the outputs with respect to x and the initial states too."""
    x = case.x()
    p_fwd, p_bwd = case.params(), case.params(offset=1)
    s_fwd, s_bwd = (case.state(), case.state(offset=1)) if with_state else (None, None)
    grad = random_tensor((case.T, case.B, 2 * case.H), case.dtype, generator(case.seed + 5))
    expected, expected_final, expected_grads = sequence_with_grad(
        case.cell, x, None if s_fwd is None else [s_fwd, s_bwd], p_fwd, grad, params_bwd=p_bwd)
    # The weights sit inside the params tuples, which gradients cannot be asked of:
    # x (and each direction's initial h) receive the gradients of both directions.
    names = [n for n in ("x", "state_fwd", "state_bwd") if n in expected_grads]
    result, grads = with_grad(student.bidirectional, (case.cell, x, p_fwd, p_bwd, s_fwd, s_bwd),
                              grad_outputs=(grad, None), wrt=[{"x": 1, "state_fwd": 4,
                                                               "state_bwd": 5}[n] for n in names],
                              outputs=["outputs"], case=case)
    outputs, finals = unpack(result, 2, "bidirectional", "outputs, (final_fwd, final_bwd)")
    assert_close(outputs, expected, what="outputs (T, B, 2H)", case=case,
                 hint="concatenate [forward, backward] on the last axis; the backward "
                      "outputs must be indexed by the time step they belong to.")
    final_fwd, final_bwd = unpack(finals, 2, "the final states", "final_fwd, final_bwd")
    for d, got in enumerate((final_fwd, final_bwd)):
        compare_final(got, tuple(s[d] for s in expected_final) if case.cell == "lstm"
                      else expected_final[d], case.cell, case)
    if isinstance(grads, NoGradients):
        grads.report()
    grads = unpack(grads, len(names), "the gradients of bidirectional")
    tolerance = {"rtol": 1e-3, "atol": 1e-5} if case.dtype == torch.float32 else {}
    for name, a in zip(names, grads):
        assert_close(a, expected_grads[name], what=f"the gradient of {name}", case=case,
                     **tolerance, hint="both directions must stay differentiable: no .detach() "
                                       "or .data on either half before concatenating.")
