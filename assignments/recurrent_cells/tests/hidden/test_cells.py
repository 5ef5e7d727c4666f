"""Hidden tests of the three cells against torch.nn.RNNCell, LSTMCell, GRUCell."""

import torch
from hypothesis import given, strategies as st

from autograder.testing import assert_close, unpack
from grading.cases import rnn_cases
from grading.oracles import torch_cell

GATE_HINT = {
    "lstm": "PyTorch stacks the gates as i, f, g, o along the first axis of W_ih (4H, I): "
            "rows 0..H-1 are the input gate, H..2H-1 forget, 2H..3H-1 the candidate g "
            "(tanh), 3H..4H-1 output. c' = f*c + i*g, h' = o*tanh(c').",
    "gru": "PyTorch's GRU order is r, z, n. The reset gate multiplies (W_hn h + b_hn), "
           "*after* the matrix product, and h' = (1 - z) * n + z * h: z keeps the old state.",
}


@given(case=rnn_cases(cells=("rnn",)), nonlinearity=st.sampled_from(["tanh", "relu"]))
def test_rnn_cell_matches_torch(student, case, nonlinearity):
    """rnn_cell equals nn.RNNCell for tanh and relu, with and without biases."""
    x, h, params = case.x()[0], case.state(), case.params()
    got = student.rnn_cell(x, h, *params, nonlinearity=nonlinearity)
    with torch.no_grad():
        expected = torch_cell("rnn", params, case.dtype, nonlinearity)(x, h)
    assert_close(got, expected, what=f"rnn_cell (nonlinearity={nonlinearity!r})", case=case,
                 hint="h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh): PyTorch's weights are "
                      "(out, in), so multiply by their transpose.")


@given(case=rnn_cases(cells=("lstm",)))
def test_lstm_cell_matches_torch(student, case):
    """lstm_cell equals nn.LSTMCell: gates i, f, g, o; returns (h', c')."""
    x, state, params = case.x()[0], case.state(), case.params()
    h, c = unpack(student.lstm_cell(x, state, *params), 2, "lstm_cell", "h', c'")
    with torch.no_grad():
        expected_h, expected_c = torch_cell("lstm", params, case.dtype)(x, state)
    assert_close(c, expected_c, what="c'", case=case, hint=GATE_HINT["lstm"])
    assert_close(h, expected_h, what="h'", case=case,
                 hint=GATE_HINT["lstm"] + " Return (h', c') in that order.")


@given(case=rnn_cases(cells=("gru",)))
def test_gru_cell_matches_torch(student, case):
    """gru_cell equals nn.GRUCell: gates r, z, n with the reset gate inside n."""
    x, h, params = case.x()[0], case.state(), case.params()
    with torch.no_grad():
        expected = torch_cell("gru", params, case.dtype)(x, h)
    assert_close(student.gru_cell(x, h, *params), expected, what="gru_cell", case=case,
                 hint=GATE_HINT["gru"])
