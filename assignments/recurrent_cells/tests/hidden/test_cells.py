"""Hidden tests of the three cells against torch.nn.RNNCell, LSTMCell, GRUCell:
their values and their gradients."""

from hypothesis import given, strategies as st

from autograder.testing import assert_close, generator, random_tensor, unpack
from autograder.testing.gradients import assert_gradients, call_with_grad
from grading.cases import rnn_cases
from grading.checks import DETACHED_HINT, state_names, wrt_of, wrt_state, wrt_weights
from grading.oracles import with_gradients

GATE_HINT = {
    "lstm": "PyTorch stacks the gates as i, f, g, o along the first axis of W_ih (4H, I): "
            "rows 0..H-1 are the input gate, H..2H-1 forget, 2H..3H-1 the candidate g "
            "(tanh), 3H..4H-1 output. c' = f*c + i*g, h' = o*tanh(c').",
    "gru": "PyTorch's GRU order is r, z, n. The reset gate multiplies (W_hn h + b_hn), "
           "*after* the matrix product, and h' = (1 - z) * n + z * h: z keeps the old state.",
}


def grad_outputs(case, count):
    """One random (B, H) gradient per output of the cell."""
    gen = generator(case.seed + 5)
    return tuple(random_tensor((case.B, case.H), case.dtype, gen) for _ in range(count))


def cell_wrt(cell, bias):
    """wrt paths and names of x, the state (h, or the h and c of lstm's (h, c))
    and the weights, in the cell's arguments."""
    return wrt_of(([0], ["x"]), wrt_state(cell, 1, state_names(cell, "h", "h", "c")),
                  wrt_weights(2, bias))


def cell_with_grad(cell, x, state, params, grads, nonlinearity="tanh"):
    """nn.RNNCell / LSTMCell / GRUCell's result and its gradients (see cell_wrt)."""
    wrt, _ = cell_wrt(cell, params[2] is not None)
    kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    return with_gradients(f"{cell}_cell", (x, state, *params), kwargs, grads, wrt)


def call_cell(student, case, x, state, params, grads, kwargs=None):
    """The student cell's result and its gradients (see cell_wrt)."""
    wrt, _ = cell_wrt(case.cell, case.bias)
    return call_with_grad(getattr(student, f"{case.cell}_cell"), (x, state, *params), kwargs,
                          grad_outputs=grads, wrt=wrt)


def compare_grads(got, expected, case, what):
    """The gradients the student's cell gives the inputs, against autograd
    through the torch module; an output outside autograd's graph named."""
    _, names = cell_wrt(case.cell, case.bias)
    assert_gradients(got, expected, inputs=[f"{what} with respect to {n}" for n in names],
                     outputs=("h'", "c'") if case.cell == "lstm" else ("h'",), case=case,
                     hint=DETACHED_HINT, detached_hint=DETACHED_HINT)


@given(case=rnn_cases(cells=("rnn",)), nonlinearity=st.sampled_from(["tanh", "relu"]))
def test_rnn_cell_matches_torch(student, case, nonlinearity):
    """rnn_cell equals nn.RNNCell for tanh and relu, with and without biases, and
    so do its gradients with respect to x, h and the weights."""
    x, h, params = case.x()[0], case.state(), case.params()
    grads = grad_outputs(case, 1)
    what = f"rnn_cell (nonlinearity={nonlinearity!r})"
    got, got_grads = call_cell(student, case, x, h, params, grads,
                               {"nonlinearity": nonlinearity})
    expected, expected_grads = cell_with_grad("rnn", x, h, params, grads, nonlinearity)
    assert_close(got, expected, what=what, case=case,
                 hint="h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh): PyTorch's weights are "
                      "(out, in), so multiply by their transpose.")
    compare_grads(got_grads, expected_grads, case, what)


@given(case=rnn_cases(cells=("lstm",)))
def test_lstm_cell_matches_torch(student, case):
    """lstm_cell equals nn.LSTMCell: gates i, f, g, o; returns (h', c'); the
    gradients through both h' and c' with respect to x, the state (h, c) and
    the weights too."""
    x, state, params = case.x()[0], case.state(), case.params()
    grads = grad_outputs(case, 2)
    got, got_grads = call_cell(student, case, x, state, params, grads)
    h, c = unpack(got, 2, "lstm_cell", "h', c'")
    (expected_h, expected_c), expected_grads = cell_with_grad("lstm", x, state, params, grads)
    assert_close(c, expected_c, what="c'", case=case, hint=GATE_HINT["lstm"])
    assert_close(h, expected_h, what="h'", case=case,
                 hint=GATE_HINT["lstm"] + " Return (h', c') in that order.")
    compare_grads(got_grads, expected_grads, case, "lstm_cell's (h', c')")


@given(case=rnn_cases(cells=("gru",)))
def test_gru_cell_matches_torch(student, case):
    """gru_cell equals nn.GRUCell: gates r, z, n with the reset gate inside n;
    its gradients with respect to x, h and the weights too."""
    x, h, params = case.x()[0], case.state(), case.params()
    grads = grad_outputs(case, 1)
    got, got_grads = call_cell(student, case, x, h, params, grads)
    expected, expected_grads = cell_with_grad("gru", x, h, params, grads)
    assert_close(got, expected, what="gru_cell", case=case, hint=GATE_HINT["gru"])
    compare_grads(got_grads, expected_grads, case, "gru_cell")
