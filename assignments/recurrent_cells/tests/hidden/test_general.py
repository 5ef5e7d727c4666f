"""Hidden tests that hold for every function: purity and vectorisation."""

import torch

from autograder.testing import assert_close, unpack
from autograder.testing.vectorised import assert_vectorised
from grading.cases import RNNCase
from grading.oracles import torch_sequence

CASE = RNNCase("lstm", T=4, B=3, I=5, H=4, dtype=torch.float64, seed=7)


def test_cells_are_pure(student):
    """No cell or unroll modifies its inputs in place (and each is still right)."""
    x, params = CASE.x(), CASE.params()
    state = CASE.state()
    h, c = unpack(student.lstm_cell.pure(x[0], state, *params), 2, "lstm_cell")
    outputs, _ = unpack(student.unroll.pure("lstm", x, state, *params), 2, "unroll")
    with torch.no_grad():
        expected, _ = torch_sequence("lstm", params, CASE.dtype)(
            x, (state[0].unsqueeze(0), state[1].unsqueeze(0)))
    assert_close(outputs, expected, what="outputs", case=CASE)
    gru = RNNCase("gru", T=1, B=3, I=5, H=4, dtype=torch.float64, seed=8)
    student.gru_cell.pure(gru.x()[0], gru.state(), *gru.params())
    student.rnn_cell.pure(x[0], state[0], *RNNCase("rnn", 1, 3, 5, 4, torch.float64, 9).params())


def test_unroll_is_vectorised(student):
    """unroll loops over time only, not over the batch: it dispatches as many torch
    operations for 64 sequences as for 2 (counted, never timed), and its outputs
    are right on the large batch."""
    big = RNNCase("gru", T=8, B=64, I=16, H=16, dtype=torch.float32, seed=3)
    x, params = big.x(), big.params()
    outputs, _ = unpack(student.unroll("gru", x, None, *params), 2, "unroll")
    with torch.no_grad():
        expected, _ = torch_sequence("gru", params, big.dtype)(x)
    assert_close(outputs, expected, what="outputs", case=big)
    assert_vectorised(student.unroll, lambda b: (("gru", x[:, :b], None, *params), {}),
                      what="unroll", case=big,
                      hint="each step is a couple of matrix products over the whole batch; "
                           "loop over time only.")
