# Generated from the reference solution by `autograder templates`.
# Fill in every function that raises NotImplementedError.
"""Assignment 1: RNN, LSTM and GRU from scratch (section 3.1 of "From RNNs to attention").

Implement the three recurrent cells with PyTorch's weight layouts and gate
orders, unroll them over a sequence (forwards and backwards), combine two
directions, measure how gradients vanish or explode through time, and clip
gradients by their global norm. Read README.md (the handout) first.
Sequences are time-major: x (T, B, I).

Check your work from the unzipped folder (see CHECK.md). Once:

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    pip install .

then, after each change:

    autograder check recurrent_cells

Rules: torch.nn.RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell and torch._VF are
not allowed.
"""

import torch


def _affine(x, W, b):
    out = x @ W.T
    return out if b is None else out + b


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """Elman cell: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu.
    x (B, I), h (B, H), W_ih (H, I), W_hh (H, H) -> h' (B, H)."""
    raise NotImplementedError("rnn_cell: see the handout (README.md), section 3.1")


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    """LSTM cell with gates in PyTorch's order i, f, g, o (W_ih (4H, I)).
    state = (h, c); returns (h', c')."""
    raise NotImplementedError("lstm_cell: see the handout (README.md), section 3.1")


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    """GRU cell with gates in PyTorch's order r, z, n (W_ih (3H, I)):
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h."""
    raise NotImplementedError("gru_cell: see the handout (README.md), section 3.1")


def unroll(cell, x, state, W_ih, W_hh, b_ih=None, b_hh=None, reverse=False):
    """Run ``cell`` ("rnn", "lstm" or "gru") over x (T, B, I). ``state`` is h0,
    (h0, c0) for lstm, or None for zeros. Returns (outputs (T, B, H),
    final_state); with reverse=True the sequence is read from the last step to
    the first and outputs[t] is still the state after reading step t."""
    raise NotImplementedError("unroll: see the handout (README.md), section 3.1")


def bidirectional(cell, x, params_fwd, params_bwd, state_fwd=None, state_bwd=None):
    """Two unrolls, one per direction; outputs (T, B, 2H) concatenate
    [forward, backward] on the last axis. Returns (outputs, (final_fwd, final_bwd))."""
    raise NotImplementedError("bidirectional: see the handout (README.md), section 3.1")


def hidden_grad_norms(x, h0, W_ih, W_hh, b_ih=None, b_hh=None):
    """For a tanh Elman RNN over x (T, B, I): entry t is the L2 norm of the
    gradient of h_T.sum() with respect to h_t (the state after step t). The last
    entry is sqrt(B * H); going back in time the norms shrink (vanishing) or
    grow (exploding) with the recurrent weight."""
    raise NotImplementedError("hidden_grad_norms: see the handout (README.md), section 3.1")


def clip_grad_norm(grads, max_norm, eps=1e-6):
    """Scale all gradients by min(1, max_norm / (total_norm + eps)), where
    total_norm is the L2 norm over all of them together. Returns
    (clipped_list, total_norm); the inputs are not modified."""
    raise NotImplementedError("clip_grad_norm: see the handout (README.md), section 3.1")
