"""PyTorch's recurrent modules as oracles for the cells, sequences, clipping
and gradient norms of student-api.md, section 1. Graders only: never shipped
to students.
"""

from __future__ import annotations

import functools

import torch
from torch.func import functional_call

from autograder.testing import memoize
from autograder.testing.gradients import expected_gradients


_CELL_MODULES = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}
_SEQ_MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def _load(module, params, suffix=""):
    W_ih, W_hh, b_ih, b_hh = params
    with torch.no_grad():
        getattr(module, "weight_ih" + suffix).copy_(W_ih)
        getattr(module, "weight_hh" + suffix).copy_(W_hh)
        if b_ih is not None:
            getattr(module, "bias_ih" + suffix).copy_(b_ih)
            getattr(module, "bias_hh" + suffix).copy_(b_hh)
    return module


def torch_cell(cell, params, dtype, nonlinearity="tanh"):
    """nn.RNNCell / LSTMCell / GRUCell holding ``params``."""
    W_ih, W_hh, b_ih, _ = params
    kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    return _load(_CELL_MODULES[cell](W_ih.shape[1], W_hh.shape[1], bias=b_ih is not None,
                                     dtype=dtype, **kwargs), params)


def torch_sequence(cell, params, dtype, params_bwd=None):
    """nn.RNN / LSTM / GRU (one layer, time-major), bidirectional with ``params_bwd``."""
    W_ih, W_hh, b_ih, _ = params
    module = _SEQ_MODULES[cell](W_ih.shape[1], W_hh.shape[1], bias=b_ih is not None,
                                bidirectional=params_bwd is not None, dtype=dtype)
    _load(module, params, "_l0")
    if params_bwd is not None:
        _load(module, params_bwd, "_l0_reverse")
    return module


def as_torch_state(cell, states):
    """Our states, one per direction (h, or (h, c) for lstm, each (B, H)), as
    nn.RNN's initial state: (dirs, B, H), or a pair of those for lstm."""
    if cell == "lstm":
        return torch.stack([h for h, _ in states]), torch.stack([c for _, c in states])
    return torch.stack(list(states))


def _weights(params, suffix=""):
    """(W_ih, W_hh, b_ih, b_hh) by the parameter names of torch's modules."""
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    return {name + suffix: p for name, p in zip(names, params) if p is not None}


def _cell(cell, x, state, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """rnn_cell / lstm_cell / gru_cell of student-api.md: nn.RNNCell / LSTMCell /
    GRUCell run on these weights (functional_call), so autograd reaches every
    argument, the lstm's state pair included."""
    module = torch_cell(cell, (W_ih, W_hh, b_ih, b_hh), x.dtype, nonlinearity)
    return functional_call(module, _weights((W_ih, W_hh, b_ih, b_hh)), (x, state))


def _final(cell, final, direction):
    """One direction's final state of nn.RNN's (dirs, B, H) (a pair for lstm)."""
    return tuple(s[direction] for s in final) if cell == "lstm" else final[direction]


def _unroll(cell, x, state, W_ih, W_hh, b_ih=None, b_hh=None, reverse=False):
    """unroll of student-api.md: nn.RNN / LSTM / GRU on these weights, over the
    time-flipped input for ``reverse``."""
    params = (W_ih, W_hh, b_ih, b_hh)
    module = torch_sequence(cell, params, x.dtype)
    initial = None if state is None else as_torch_state(cell, [state])
    out, final = functional_call(module, _weights(params, "_l0"),
                                 (x.flip(0) if reverse else x, initial))
    return (out.flip(0) if reverse else out), _final(cell, final, 0)


def _bidirectional(cell, x, params_fwd, params_bwd, state_fwd=None, state_bwd=None):
    """bidirectional of student-api.md: nn.RNN / LSTM / GRU(bidirectional=True)
    on these weights; a missing initial state is zeros."""
    module = torch_sequence(cell, params_fwd, x.dtype, params_bwd)
    initial = None
    if state_fwd is not None or state_bwd is not None:
        zeros = x.new_zeros(x.shape[1], params_fwd[1].shape[1])
        zero = (zeros, zeros) if cell == "lstm" else zeros
        initial = as_torch_state(cell, [zero if state_fwd is None else state_fwd,
                                        zero if state_bwd is None else state_bwd])
    weights = {**_weights(params_fwd, "_l0"), **_weights(params_bwd, "_l0_reverse")}
    out, final = functional_call(module, weights, (x, initial))
    return out, (_final(cell, final, 0), _final(cell, final, 1))


# The student's functions, argument for argument: a test's wrt paths and
# grad_outputs mean the same for the oracle as for the submission.
ORACLES = {"rnn_cell": functools.partial(_cell, "rnn"),
           "lstm_cell": functools.partial(_cell, "lstm"),
           "gru_cell": functools.partial(_cell, "gru"),
           "unroll": _unroll, "bidirectional": _bidirectional}


@memoize
def with_gradients(name, args, kwargs, grad_outputs, wrt):
    """The oracle for the student's function ``name`` on ``(args, kwargs)``:
    its result, and autograd's gradients of sum(output * grad_output) over the
    outputs given one (nested like the result) with respect to the inputs in
    ``wrt`` (as for ``call_with_grad``). Once per batch."""
    oracle = ORACLES[name]
    with torch.no_grad():
        result = oracle(*args, **kwargs)
    return result, tuple(expected_gradients(oracle, args, kwargs, grad_outputs=grad_outputs,
                                            wrt=wrt))


def clip_grad_norm(grads, max_norm, eps=1e-6):
    """torch.nn.utils.clip_grad_norm_ on parameters holding ``grads``."""
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g))
        p.grad = g.clone()
        params.append(p)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [p.grad for p in params], total


def hidden_grad_norms(x, h0, W_ih, W_hh, b_ih=None, b_hh=None):
    """||d h_T.sum() / d h_t|| for every t, through nn.RNNCell and autograd."""
    cell = torch_cell("rnn", (W_ih, W_hh, b_ih, b_hh), x.dtype)
    h = torch.zeros(x.shape[1], W_hh.shape[1], dtype=x.dtype) if h0 is None else h0
    h = h.clone().requires_grad_(True)
    states = []
    for t in range(x.shape[0]):
        h = cell(x[t], h)
        states.append(h)
    return torch.stack([g.norm() for g in torch.autograd.grad(states[-1].sum(), states)])
