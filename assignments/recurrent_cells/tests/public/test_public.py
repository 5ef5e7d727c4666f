"""Public tests: run them with `autograder check recurrent_cells`.

A sample only: the hidden tests check every function against PyTorch's own
modules on many shapes and both float dtypes, plus gradients and properties.
"""

import torch

from autograder.testing import assert_close, unpack
from grading.cases import RNNCase
from grading.oracles import clip_grad_norm, torch_cell, torch_sequence


def test_rnn_cell_small(student):
    """rnn_cell equals torch.nn.RNNCell (tanh) with the same weights."""
    case = RNNCase("rnn", T=1, B=2, I=3, H=4, dtype=torch.float32, seed=0)
    x, h, params = case.x()[0], case.state(), case.params()
    assert_close(student.rnn_cell(x, h, *params), torch_cell("rnn", params, case.dtype)(x, h),
                 what="rnn_cell", case=case)


def test_lstm_cell_small(student):
    """lstm_cell equals torch.nn.LSTMCell (gate order i, f, g, o)."""
    case = RNNCase("lstm", T=1, B=2, I=3, H=4, dtype=torch.float32, seed=1)
    x, state, params = case.x()[0], case.state(), case.params()
    h, c = unpack(student.lstm_cell(x, state, *params), 2, "lstm_cell", "h, c")
    expected_h, expected_c = torch_cell("lstm", params, case.dtype)(x, state)
    assert_close(c, expected_c, what="c'", case=case)
    assert_close(h, expected_h, what="h'", case=case)


def test_unroll_gru_small(student):
    """unroll("gru", ...) equals torch.nn.GRU over a sequence of 5 steps."""
    case = RNNCase("gru", T=5, B=2, I=3, H=4, dtype=torch.float32, seed=2)
    x, params = case.x(), case.params()
    outputs, final = unpack(student.unroll("gru", x, None, *params), 2, "unroll",
                            "outputs, final_state")
    with torch.no_grad():
        expected, expected_final = torch_sequence("gru", params, case.dtype)(x)
    assert_close(outputs, expected, what="outputs", case=case)
    assert_close(final, expected_final[0], what="final_state", case=case)


def test_clip_grad_norm_small(student):
    """clip_grad_norm scales two tensors by one global factor, like PyTorch."""
    grads = [torch.tensor([[3.0, 0.0], [0.0, 0.0]]), torch.tensor([4.0])]
    clipped, total = unpack(student.clip_grad_norm(grads, 1.0), 2, "clip_grad_norm",
                            "clipped_list, total_norm")
    expected, expected_total = clip_grad_norm(grads, 1.0)
    assert_close(total, expected_total, what="total_norm", case="grads of norms 3 and 4")
    for i, (a, e) in enumerate(zip(clipped, expected)):
        assert_close(a, e, what=f"clipped[{i}]", case="grads of norms 3 and 4")
