"""PyTorch's recurrent modules as oracles for the cells, sequences, clipping
and gradient norms of student-api.md, section 1. Graders only: never shipped
to students.
"""

from __future__ import annotations

import torch

from autograder.testing import memoize


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


def _leaves(params):
    return [p.detach().clone().requires_grad_(True) for p in params if p is not None]


@memoize
def cell_with_grad(cell, x, state, params, grad_outputs, nonlinearity="tanh"):
    """nn.RNNCell / LSTMCell / GRUCell on (x, state) and the gradients of
    sum(output * grad_output) (h' and c' for lstm) with respect to x, h (not
    for lstm, whose state is a pair), W_ih, W_hh and the biases if any: the
    order of ``wrt_positions``."""
    module = torch_cell(cell, params, x.dtype, nonlinearity)
    x_leaf = x.detach().clone().requires_grad_(True)
    if cell == "lstm":
        out = module(x_leaf, state)
        leaves = [x_leaf]
    else:
        h_leaf = state.detach().clone().requires_grad_(True)
        out = module(x_leaf, h_leaf)
        leaves = [x_leaf, h_leaf]
    leaves += [p for p in module.parameters()]
    outs = list(out) if isinstance(out, tuple) else [out]
    grads = torch.autograd.grad(outs, leaves, list(grad_outputs))
    return (tuple(o.detach() for o in outs) if cell == "lstm" else out.detach()), \
        tuple(g.detach() for g in grads)


def wrt_positions(cell, bias):
    """Where x, h (not for lstm), W_ih, W_hh and the biases are in a cell's
    arguments, and their names, in the order of :func:`cell_with_grad`."""
    positions = [0] + ([] if cell == "lstm" else [1]) + [2, 3] + ([4, 5] if bias else [])
    names = ["x"] + ([] if cell == "lstm" else ["h"]) + ["W_ih", "W_hh"] + \
        (["b_ih", "b_hh"] if bias else [])
    return positions, names


@memoize
def sequence_with_grad(cell, x, states, params, grad_output, grad_final=None,
                       params_bwd=None):
    """nn.RNN / LSTM / GRU (bidirectional with ``params_bwd``) over x from
    ``states`` (one per direction, or None for zeros) and the gradients of
    sum(outputs * grad_output) + sum(final h * grad_final) (one direction, not
    lstm) with respect to x, each direction's initial h (not lstm, only with
    states), and the forward direction's W_ih, W_hh, b_ih, b_hh.
    Returns (outputs, final, {name: gradient})."""
    module = torch_sequence(cell, params, x.dtype, params_bwd)
    x_leaf = x.detach().clone().requires_grad_(True)
    names, leaves = ["x"], [x_leaf]
    initial = None
    if states is not None:
        if cell == "lstm":
            initial = as_torch_state(cell, states)
        else:
            h_leaves = [h.detach().clone().requires_grad_(True) for h in states]
            initial = torch.stack(h_leaves)
            names += ["h0"] if len(states) == 1 else ["state_fwd", "state_bwd"]
            leaves += h_leaves
    weights = [module.weight_ih_l0, module.weight_hh_l0] + \
        ([module.bias_ih_l0, module.bias_hh_l0] if params[2] is not None else [])
    names += ["W_ih", "W_hh", "b_ih", "b_hh"][:len(weights)]
    leaves += weights
    out, final = module(x_leaf, initial)
    outs, grads = [out], [grad_output]
    if grad_final is not None:
        outs.append(final[0])
        grads.append(grad_final)
    got = torch.autograd.grad(outs, leaves, grads, allow_unused=True)
    gradients = {n: (torch.zeros_like(leaf) if g is None else g.detach())
                 for n, leaf, g in zip(names, leaves, got)}
    final = tuple(s.detach() for s in final) if cell == "lstm" else final.detach()
    return out.detach(), final, gradients


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
