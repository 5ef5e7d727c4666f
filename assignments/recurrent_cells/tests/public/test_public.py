"""Public tests: run them with `autograder check recurrent_cells`.

A sample only: the hidden tests check every function against PyTorch's own
modules on many shapes and both float dtypes, plus gradients and properties.
"""

import math

import torch

from autograder.testing import assert_close, generator, random_tensor, unpack
from autograder.testing.recorded import oracles


def small_case(cell, T, seed, B=2, I=3, H=4, dtype=torch.float32):
    """x (T, B, I); the weights (W_ih, W_hh, b_ih, b_hh) in PyTorch's layout,
    G*H rows for G gates; the initial state h (B, H), or (h, c) for lstm;
    and the words that describe them in feedback."""
    x = random_tensor((T, B, I), dtype, generator(seed))
    gen, rows = generator(seed + 10), {"rnn": 1, "lstm": 4, "gru": 3}[cell] * H
    params = tuple(random_tensor(shape, dtype, gen, 1 / math.sqrt(H))
                   for shape in ((rows, I), (rows, H), (rows,), (rows,)))
    gen = generator(seed + 20)
    state = random_tensor((B, H), dtype, gen)
    if cell == "lstm":
        state = (state, random_tensor((B, H), dtype, gen))
    words = f"{cell}, x ({T}, {B}, {I}), hidden size {H}, float32, seed {seed}"
    return x, params, state, words


def test_rnn_cell_small(student):
    """rnn_cell equals torch.nn.RNNCell (tanh) with the same weights."""
    x, params, h, case = small_case("rnn", T=1, seed=0)
    assert_close(student.rnn_cell(x[0], h, *params),
                 oracles.torch_cell("rnn", params, torch.float32)(x[0], h),
                 what="rnn_cell", case=case)


def test_lstm_cell_small(student):
    """lstm_cell equals torch.nn.LSTMCell (gate order i, f, g, o)."""
    x, params, state, case = small_case("lstm", T=1, seed=1)
    h, c = unpack(student.lstm_cell(x[0], state, *params), 2, "lstm_cell", "h, c")
    expected_h, expected_c = oracles.torch_cell("lstm", params, torch.float32)(x[0], state)
    assert_close(c, expected_c, what="c'", case=case)
    assert_close(h, expected_h, what="h'", case=case)


def test_unroll_gru_small(student):
    """unroll("gru", ...) equals torch.nn.GRU over a sequence of 5 steps."""
    x, params, _, case = small_case("gru", T=5, seed=2)
    outputs, final = unpack(student.unroll("gru", x, None, *params), 2, "unroll",
                            "outputs, final_state")
    gru = oracles.torch_sequence("gru", params, torch.float32)
    with torch.no_grad():
        expected, expected_final = gru(x)
    assert_close(outputs, expected, what="outputs", case=case)
    assert_close(final, expected_final[0], what="final_state", case=case)


def test_clip_grad_norm_small(student):
    """clip_grad_norm scales two tensors by one global factor, like PyTorch."""
    grads = [torch.tensor([[2.0, 2.0], [1.0, 0.0]]), torch.tensor([4.0])]
    clipped, total = unpack(student.clip_grad_norm(grads, 1.0), 2, "clip_grad_norm",
                            "clipped_list, total_norm")
    expected, expected_total = oracles.clip_grad_norm(grads, 1.0)
    assert_close(total, expected_total, what="total_norm", case="grads of norms 3 and 4")
    for i, (a, e) in enumerate(zip(clipped, expected)):
        assert_close(a, e, what=f"clipped[{i}]", case="grads of norms 3 and 4")
