"""recurrent_cells is fair both ways, proven in one graded batch:

- every differentiable output and input is checked against the oracle's
  gradients: a reference that detaches any one of them (each cell kind, lstm's
  h' and c' and its state (h, c) in, unroll's outputs, final state (h and c for
  lstm) and c0, bidirectional's halves, final states and weights) loses
  points, a detached output named in the feedback;
- common real mistakes get their own hint (element-wise clipping is not told it
  clips per tensor, float32 zeros for a float64 input, clipping in place);
- correct code written the other way (einsum or a loop over gates, fused
  projections, float64 inside, a dict of names with "LSTM"/"GRU" in strings)
  never loses a point, nor do (h, c) states returned as a namedtuple or a list.
"""

import pytest

from conftest import ROOT, failed, failures, grade_sources
from conftest import patched as patched_source
from conftest import with_definitions as with_functions

REFERENCE = (ROOT / "reference" / "recurrent_cells.py").read_text()
ID = "recurrent_cells"


def patched(*pairs: tuple[str, str]) -> str:
    return patched_source(REFERENCE, *pairs)


RETURN_CELLS = "return torch.cat([out_fwd, out_bwd], dim=-1), (final_fwd, final_bwd)"
RETURN_UNROLL = "return torch.stack(outputs), state"
DETACH_STATE = "(tuple(s.detach() for s in {0}) if cell == 'lstm' else {0}.detach())"

# Something detached, one place at a time -> (the test that must catch it, what
# its feedback says). An output outside autograd's graph is named as the
# detached output; an input cut off from the graph shows as its wrong gradient.
DETACHED = {
    "detached_rnn_tanh": ([("return torch.tanh(pre)", "return torch.tanh(pre).detach()")],
                          "test_rnn_cell_matches_torch", "rnn_cell returned h' without gradients"),
    "detached_rnn_relu": ([("return torch.relu(pre)", "return torch.relu(pre).detach()")],
                          "test_rnn_cell_matches_torch", "rnn_cell returned h' without gradients"),
    "detached_lstm_h": ([("    return h_new, c_new", "    return h_new.detach(), c_new")],
                        "test_lstm_cell_matches_torch", "lstm_cell returned h' without gradients"),
    "detached_lstm_c": ([("    return h_new, c_new", "    return h_new, c_new.detach()")],
                        "test_lstm_cell_matches_torch", "lstm_cell returned c' without gradients"),
    "detached_lstm_state_in": ([("    h, c = state", "    h, c = state[0], state[1].detach()")],
                               "test_lstm_cell_matches_torch",
                               "the gradient of lstm_cell's (h', c') with respect to c differs"),
    "detached_gru": ([("return (1 - z) * n + z * h", "return ((1 - z) * n + z * h).detach()")],
                     "test_gru_cell_matches_torch", "gru_cell returned h' without gradients"),
    "detached_unroll_outputs": ([(RETURN_UNROLL, "return torch.stack(outputs).detach(), state")],
                                "test_unroll_gradients_match_torch",
                                "unroll returned outputs without gradients"),
    "detached_unroll_final": ([(RETURN_UNROLL, "return torch.stack(outputs), "
                                + DETACH_STATE.format("state"))],
                              "test_unroll_gradients_match_torch",
                              "unroll returned final_state's h and final_state's c without "
                              "gradients"),
    "detached_unroll_final_c": ([(RETURN_UNROLL, "return torch.stack(outputs), ((state[0], "
                                  "state[1].detach()) if cell == 'lstm' else state)")],
                                "test_unroll_gradients_match_torch",
                                "unroll returned final_state's c without gradients"),
    "detached_unroll_c0": ([("    outputs = [None] * T\n",
                             "    if cell == 'lstm':\n        state = (state[0], state[1].detach())"
                             "\n    outputs = [None] * T\n")],
                           "test_unroll_gradients_match_torch", "the gradient of c0 differs"),
    "detached_bidirectional": ([(RETURN_CELLS, RETURN_CELLS.replace(
                                    "dim=-1)", "dim=-1).detach()"))],
                               "test_bidirectional_matches_torch",
                               "bidirectional returned outputs without gradients"),
    "detached_bidirectional_fwd": ([(RETURN_CELLS, RETURN_CELLS.replace(
                                        "[out_fwd,", "[out_fwd.detach(),"))],
                                   "test_bidirectional_matches_torch", "the gradient of"),
    "detached_bidirectional_bwd": ([(RETURN_CELLS, RETURN_CELLS.replace(
                                        "out_bwd]", "out_bwd.detach()]"))],
                                   "test_bidirectional_matches_torch", "the gradient of"),
    "detached_bidirectional_finals": ([(RETURN_CELLS, RETURN_CELLS.replace(
                                           "(final_fwd, final_bwd)",
                                           "({}, {})".format(DETACH_STATE.format("final_fwd"),
                                                             DETACH_STATE.format("final_bwd"))))],
                                      "test_bidirectional_matches_torch",
                                      "bidirectional returned final_fwd's h, final_fwd's c, "
                                      "final_bwd's h and final_bwd's c without gradients"),
    "detached_bidirectional_final_bwd_c": ([(RETURN_CELLS, RETURN_CELLS.replace(
                                                "final_bwd)", "(final_bwd[0], final_bwd[1]"
                                                ".detach()) if cell == 'lstm' else final_bwd)"))],
                                           "test_bidirectional_matches_torch",
                                           "bidirectional returned final_bwd's c without "
                                           "gradients"),
    "detached_bidirectional_final_fwd_rnn": ([(RETURN_CELLS, RETURN_CELLS.replace(
                                                  "(final_fwd,", "(final_fwd if cell == 'lstm' "
                                                  "else final_fwd.detach(),"))],
                                             "test_bidirectional_matches_torch",
                                             "bidirectional returned final_fwd without gradients"),
    "detached_bidirectional_params_bwd": ([("out_bwd, final_bwd = unroll(cell, x, state_bwd, "
                                            "*params_bwd, reverse=True)",
                                            "out_bwd, final_bwd = unroll(cell, x, state_bwd, "
                                            "*(None if p is None else p.detach() for p in "
                                            "params_bwd), reverse=True)")],
                                          "test_bidirectional_matches_torch",
                                          "the gradient of params_bwd's W_ih differs"),
}

CLIP_RETURN = "return [g * factor for g in grads], total_norm"
# Real mistakes -> (tests that must fail, the cataloged mistake whose hint they get).
MISTAKES = {
    "clip_elementwise": (patched((CLIP_RETURN, ("return [g.clamp(-max_norm, max_norm) "
                                                "for g in grads], total_norm"))),
                         {"test_clip_grad_norm_small", "test_clip_grad_norm_matches_torch"},
                         "clip_elementwise"),
    "clip_per_tensor": (patched((CLIP_RETURN, ("return [g * torch.clamp(max_norm / "
                                               "(torch.linalg.vector_norm(g) + eps), max=1.0) "
                                               "for g in grads], total_norm"))),
                        {"test_clip_grad_norm_small", "test_clip_grad_norm_matches_torch"},
                        "clip_per_tensor"),
    "clip_in_place": (patched((CLIP_RETURN, ("for g in grads:\n        g.mul_(factor)\n"
                                             "    return list(grads), total_norm"))),
                      {"test_clip_grad_norm_small", "test_clip_does_not_modify_inputs"},
                      "clip_in_place"),
    "zeros_float32": (patched(("zeros = x.new_zeros(B, W_hh.shape[1])",
                               "zeros = torch.zeros(B, W_hh.shape[1])")),
                      {"test_unroll_matches_torch"}, "unroll_zeros_float32"),
}

# -- correct submissions in other styles ---------------------------------

EINSUM_GATES = with_functions(REFERENCE, '''
def _gates(x, h, W_ih, W_hh, b_ih, b_hh, G):
    """(G, B, H) input and hidden projections, one einsum each."""
    H = h.shape[-1]
    gi = torch.einsum("bi,ghi->gbh", x, W_ih.reshape(G, H, -1))
    gh = torch.einsum("bk,ghk->gbh", h, W_hh.reshape(G, H, H))
    if b_ih is not None:
        gi = gi + b_ih.reshape(G, 1, H)
        gh = gh + b_hh.reshape(G, 1, H)
    return gi, gh


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    gi, gh = _gates(x, h, W_ih, W_hh, b_ih, b_hh, 1)
    act = {"tanh": torch.tanh, "relu": torch.relu}[nonlinearity]
    return act(gi[0] + gh[0])


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    h, c = state
    gi, gh = _gates(x, h, W_ih, W_hh, b_ih, b_hh, 4)
    i, f, g, o = (gi + gh).unbind(0)
    c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_next), c_next


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    gi, gh = _gates(x, h, W_ih, W_hh, b_ih, b_hh, 3)
    r = torch.sigmoid(gi[0] + gh[0])
    z = torch.sigmoid(gi[1] + gh[1])
    n = torch.tanh(gi[2] + r * gh[2])
    return n + z * (h - n)


def clip_grad_norm(grads, max_norm, eps=1e-6):
    total_norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads)).to(grads[0].dtype)
    factor = torch.clamp(max_norm / (total_norm + eps), max=1.0)
    return [torch.einsum("...,->...", g, factor) for g in grads], total_norm
''')

LOOP_OVER_GATES = with_functions(REFERENCE, '''
def _gate(x, h, W_ih, W_hh, b_ih, b_hh, k):
    """Gate k's input and hidden parts, from its own rows of the weights."""
    H = h.shape[-1]
    rows = slice(k * H, (k + 1) * H)
    from_x, from_h = x @ W_ih[rows].t(), h @ W_hh[rows].t()
    if b_ih is not None:
        from_x, from_h = from_x + b_ih[rows], from_h + b_hh[rows]
    return from_x, from_h


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    a, b = _gate(x, h, W_ih, W_hh, b_ih, b_hh, 0)
    return torch.tanh(a + b) if nonlinearity == "tanh" else torch.clamp(a + b, min=0)


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    h, c = state
    gates = []
    for k in range(4):
        a, b = _gate(x, h, W_ih, W_hh, b_ih, b_hh, k)
        gates.append(a + b)
    i, f, g, o = gates
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    parts = [_gate(x, h, W_ih, W_hh, b_ih, b_hh, k) for k in range(3)]
    r, z = (torch.sigmoid(a + b) for a, b in parts[:2])
    n = torch.tanh(parts[2][0] + r * parts[2][1])
    return (1 - z) * n + z * h


def unroll(cell, x, state, W_ih, W_hh, b_ih=None, b_hh=None, reverse=False):
    """Outputs written into a preallocated tensor, one time step at a time."""
    step = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell}[cell]
    T, B, H = x.shape[0], x.shape[1], W_hh.shape[1]
    if state is None:
        state = (x.new_zeros(B, H), x.new_zeros(B, H)) if cell == "lstm" else x.new_zeros(B, H)
    outputs = x.new_zeros(T, B, H)
    order = reversed(range(T)) if reverse else range(T)
    for t in order:
        state = step(x[t], state, W_ih, W_hh, b_ih, b_hh)
        outputs[t] = state[0] if cell == "lstm" else state
    return outputs, state


def hidden_grad_norms(x, h0, W_ih, W_hh, b_ih=None, b_hh=None):
    """retain_grad and one backward() instead of autograd.grad."""
    with torch.enable_grad():
        h = torch.zeros(x.shape[1], W_hh.shape[1], dtype=x.dtype) if h0 is None else h0
        h = h.detach().clone().requires_grad_(True)
        states = []
        for t in range(x.shape[0]):
            h = rnn_cell(x[t].detach(), h, W_ih.detach(), W_hh.detach(),
                         None if b_ih is None else b_ih.detach(),
                         None if b_hh is None else b_hh.detach())
            h.retain_grad()
            states.append(h)
        states[-1].sum().backward()
    return torch.stack([torch.linalg.vector_norm(s.grad) for s in states])
''')

FUSED = with_functions(REFERENCE, '''
import torch.nn.functional as F


def _fused(x, h, W_ih, W_hh, b_ih, b_hh):
    """One matrix product for both projections: [x, h] @ [W_ih, W_hh]^T."""
    bias = None if b_ih is None else b_ih + b_hh
    return F.linear(torch.cat([x, h], dim=-1), torch.cat([W_ih, W_hh], dim=1), bias)


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    pre = _fused(x, h, W_ih, W_hh, b_ih, b_hh)
    return torch.tanh(pre) if nonlinearity == "tanh" else F.relu(pre)


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    h, c = state
    H = h.shape[-1]
    gates = _fused(x, h, W_ih, W_hh, b_ih, b_hh)
    ifo = torch.sigmoid(gates[:, torch.tensor([*range(2 * H), *range(3 * H, 4 * H)])])
    i, f, o = ifo.split(H, dim=-1)
    c_new = torch.addcmul(f * c, i, torch.tanh(gates[:, 2 * H:3 * H]))
    return o * torch.tanh(c_new), c_new


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    H = h.shape[-1]
    rz = torch.sigmoid(_fused(x, h, W_ih[:2 * H], W_hh[:2 * H],
                              None if b_ih is None else b_ih[:2 * H],
                              None if b_hh is None else b_hh[:2 * H]))
    r, z = rz[:, :H], rz[:, H:]
    n = torch.tanh(F.linear(x, W_ih[2 * H:], None if b_ih is None else b_ih[2 * H:])
                   + r * F.linear(h, W_hh[2 * H:], None if b_hh is None else b_hh[2 * H:]))
    return torch.lerp(n, h, z)


def bidirectional(cell, x, params_fwd, params_bwd, state_fwd=None, state_bwd=None):
    forward, last_fwd = unroll(cell, x, state_fwd, *params_fwd)
    backward, last_bwd = unroll(cell, x.flip(0), state_bwd, *params_bwd)
    return torch.cat((forward, backward.flip(0)), -1), (last_fwd, last_bwd)
''')

FLOAT64_INSIDE = with_functions(REFERENCE, '''
def _d(t):
    return None if t is None else t.double()


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    pre = _affine(_d(x), _d(W_ih), _d(b_ih)) + _affine(_d(h), _d(W_hh), _d(b_hh))
    out = torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)
    return out.to(x.dtype)


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    h, c = (_d(s) for s in state)
    gates = _affine(_d(x), _d(W_ih), _d(b_ih)) + _affine(h, _d(W_hh), _d(b_hh))
    i, f, g, o = gates.chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return h_new.to(x.dtype), c_new.to(x.dtype)


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    i_r, i_z, i_n = _affine(_d(x), _d(W_ih), _d(b_ih)).chunk(3, dim=-1)
    h_r, h_z, h_n = _affine(_d(h), _d(W_hh), _d(b_hh)).chunk(3, dim=-1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return ((1 - z) * n + z * _d(h)).to(x.dtype)


def hidden_grad_norms(x, h0, W_ih, W_hh, b_ih=None, b_hh=None):
    with torch.enable_grad():
        h = x.new_zeros(x.shape[1], W_hh.shape[1]) if h0 is None else h0
        h = h.detach().double().requires_grad_(True)
        states = []
        for t in range(x.shape[0]):
            h = torch.tanh(_affine(_d(x[t].detach()), _d(W_ih.detach()), _d(b_ih))
                           + _affine(h, _d(W_hh.detach()), _d(b_hh)))
            states.append(h)
        grads = torch.autograd.grad(states[-1].sum(), states)
    return torch.stack([g.norm() for g in grads]).to(x.dtype)


def clip_grad_norm(grads, max_norm, eps=1e-6):
    dtype = grads[0].dtype
    total = torch.linalg.vector_norm(torch.cat([g.double().reshape(-1) for g in grads]))
    factor = torch.clamp(max_norm / (total + eps), max=1.0)
    return [(g.double() * factor).to(g.dtype) for g in grads], total.to(dtype)
''')

NAMES_IN_STRINGS = with_functions(REFERENCE, '''
# Named like PyTorch's modules, for messages only: torch.nn.LSTM, nn.GRU and
# nn.RNN in a string or a comment are never a forbidden call.
CELLS = {"rnn": ("RNN", "torch.nn.RNNCell"), "lstm": ("LSTM", "torch.nn.LSTMCell"),
         "gru": ("GRU", "torch.nn.GRUCell")}
NONLINEARITIES = {"tanh": torch.tanh, "relu": torch.relu}


def _check_cell(cell):
    if cell not in CELLS:
        known = ", ".join(f"{k!r} ({name})" for k, (name, _) in CELLS.items())
        raise ValueError(f"unknown cell {cell!r}; expected one of {known}")
    return CELLS[cell][0]


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', not {nonlinearity!r}")
    return NONLINEARITIES[nonlinearity](_affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh))


def unroll(cell, x, state, W_ih, W_hh, b_ih=None, b_hh=None, reverse=False):
    name = _check_cell(cell)
    step = {"RNN": rnn_cell, "LSTM": lstm_cell, "GRU": gru_cell}[name]
    if state is None:
        zeros = torch.zeros(x.shape[1], W_hh.shape[1], dtype=x.dtype, device=x.device)
        state = (zeros, zeros) if name == "LSTM" else zeros
    steps = range(x.shape[0])
    outputs = {}
    for t in (reversed(steps) if reverse else steps):
        state = step(x[t], state, W_ih, W_hh, b_ih, b_hh)
        outputs[t] = state[0] if name == "LSTM" else state
    return torch.stack([outputs[t] for t in steps]), state
''')

# The spec's (h', c') and final states as a namedtuple (a tuple, as torch's own
# APIs return) or a list: unpacked the same, given gradients the same.
NAMEDTUPLE_STATE = with_functions(REFERENCE, '''
import collections

LSTMState = collections.namedtuple("LSTMState", "h c")


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    h, c = state
    i, f, g, o = (_affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)).chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return LSTMState(h=torch.sigmoid(o) * torch.tanh(c_new), c=c_new)
''')

LIST_STATE = with_functions(REFERENCE, '''
def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    h, c = state
    i, f, g, o = (_affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)).chunk(4, dim=-1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return [torch.sigmoid(o) * torch.tanh(c_new), c_new]


def bidirectional(cell, x, params_fwd, params_bwd, state_fwd=None, state_bwd=None):
    out_fwd, final_fwd = unroll(cell, x, state_fwd, *params_fwd)
    out_bwd, final_bwd = unroll(cell, x, state_bwd, *params_bwd, reverse=True)
    return [torch.cat([out_fwd, out_bwd], dim=-1), [final_fwd, final_bwd]]
''')

STYLES = {"einsum_gates": EINSUM_GATES, "loop_over_gates": LOOP_OVER_GATES,
          "fused_projections": FUSED, "float64_inside": FLOAT64_INSIDE,
          "names_in_strings": NAMES_IN_STRINGS, "namedtuple_state": NAMEDTUPLE_STATE,
          "list_state": LIST_STATE}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("recurrent_cells_fairness")
    assert REFERENCE not in STYLES.values()
    detached = {sid: patched(*pairs) for sid, (pairs, _, _) in DETACHED.items()}
    return grade_sources(tmp, ID, {"reference": REFERENCE, **detached,
                                   **{sid: source for sid, (source, _, _) in MISTAKES.items()},
                                   **STYLES})


@pytest.mark.parametrize("sid", ["reference", *STYLES])
def test_correct_styles_get_full_marks(batch, sid):
    result = batch[sid]
    assert result.score == result.max_score == 100, failures(result)


@pytest.mark.parametrize("sid", list(DETACHED))
def test_a_detached_output_loses_points(batch, sid):
    """Each differentiable output and input is checked against the oracle's
    gradients, the lstm's state (h, c) in and out included; a detached output
    is named in the feedback."""
    result = batch[sid]
    _, must_fail, said = DETACHED[sid]
    assert result.score < 100
    assert must_fail in failed(result), failures(result)
    feedback = next(t.feedback for t in result.tests if t.name.split("[")[0] == must_fail)
    assert said in feedback, feedback


@pytest.mark.parametrize("sid", list(MISTAKES))
def test_real_mistakes_get_their_own_hint(batch, sid):
    _, must_fail, mistake = MISTAKES[sid]
    result = batch[sid]
    assert result.score < 100
    assert must_fail <= failed(result), failures(result)
    for test in result.tests:
        if test.name.split("[")[0] in must_fail:
            # Its own hint, and no other mistake's (per-tensor and element-wise
            # clipping must not be told each other's cause).
            assert test.mistakes == [mistake], (test.name, test.mistakes, test.feedback[:400])


def test_clipping_in_place_is_named_by_its_argument(batch):
    feedback = "\n".join(t.feedback for t in batch["clip_in_place"].tests if not t.passed)
    assert "clip_grad_norm modified its argument 1[0] in place" in feedback
