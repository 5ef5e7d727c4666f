"""PyTorch's recurrent modules as oracles for the cells, sequences, clipping
and gradient norms of student-api.md, section 1. Graders only: never shipped
to students.
"""

from __future__ import annotations

import torch



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
