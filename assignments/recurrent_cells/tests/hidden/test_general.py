"""Hidden tests that hold for every function: purity and vectorisation."""

import time

import torch

from autograder.testing import assert_close, fail, unpack
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


def test_unroll_is_vectorised(student, reference):
    """unroll over a batch of 2048 loops over time only, not over the batch."""
    big = RNNCase("gru", T=8, B=2048, I=16, H=16, dtype=torch.float32, seed=3)
    x, params = big.x(), big.params()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference.unroll("gru", x, None, *params)
        started = time.perf_counter()
        expected, _ = reference.unroll("gru", x, None, *params)
        reference_seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)
    student.unroll("gru", x[:, :2], None, *params)  # warm-up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        outputs, _ = unpack(student.unroll("gru", x, None, *params), 2, "unroll")
        best = min(best, time.perf_counter() - started)
    assert_close(outputs, expected, what="outputs", case=big)
    budget = 10 * reference_seconds + 0.05
    if best > budget:
        fail(f"unroll took {best * 1000:.0f} ms on a batch of {big.B}; the budget is "
             f"{budget * 1000:.0f} ms (10x the reference plus 50 ms).",
             hint="each step is a couple of matrix products over the whole batch; loop over "
                  "time only.")
