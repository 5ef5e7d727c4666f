"""Example of a typical mistake: the gradients are scaled in place, so the caller's tensors change."""

import torch


def _affine(x, W, b):
    out = x @ W.T
    return out if b is None else out + b


def rnn_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None, nonlinearity="tanh"):
    """Elman cell: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu.
    x (B, I), h (B, H), W_ih (H, I), W_hh (H, H) -> h' (B, H)."""
    pre = _affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)
    if nonlinearity == "tanh":
        return torch.tanh(pre)
    if nonlinearity == "relu":
        return torch.relu(pre)
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}")


def lstm_cell(x, state, W_ih, W_hh, b_ih=None, b_hh=None):
    """LSTM cell with gates in PyTorch's order i, f, g, o (W_ih (4H, I)).
    state = (h, c); returns (h', c')."""
    h, c = state
    gates = _affine(x, W_ih, b_ih) + _affine(h, W_hh, b_hh)
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    c_new = f * c + i * torch.tanh(g)   # the additive path that lets gradients survive
    h_new = o * torch.tanh(c_new)
    return h_new, c_new


def gru_cell(x, h, W_ih, W_hh, b_ih=None, b_hh=None):
    """GRU cell with gates in PyTorch's order r, z, n (W_ih (3H, I)):
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h."""
    i_r, i_z, i_n = _affine(x, W_ih, b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = _affine(h, W_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def unroll(cell, x, state, W_ih, W_hh, b_ih=None, b_hh=None, reverse=False):
    """Run ``cell`` ("rnn", "lstm" or "gru") over x (T, B, I). ``state`` is h0,
    (h0, c0) for lstm, or None for zeros. Returns (outputs (T, B, H),
    final_state); with reverse=True the sequence is read from the last step to
    the first and outputs[t] is still the state after reading step t."""
    step = {"rnn": rnn_cell, "lstm": lstm_cell, "gru": gru_cell}[cell]
    T, B = x.shape[0], x.shape[1]
    if state is None:
        zeros = x.new_zeros(B, W_hh.shape[1])
        state = (zeros, zeros.clone()) if cell == "lstm" else zeros
    outputs = [None] * T
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        state = step(x[t], state, W_ih, W_hh, b_ih, b_hh)
        outputs[t] = state[0] if cell == "lstm" else state
    return torch.stack(outputs), state


def bidirectional(cell, x, params_fwd, params_bwd, state_fwd=None, state_bwd=None):
    """Two unrolls, one per direction; outputs (T, B, 2H) concatenate
    [forward, backward] on the last axis. Returns (outputs, (final_fwd, final_bwd))."""
    out_fwd, final_fwd = unroll(cell, x, state_fwd, *params_fwd)
    out_bwd, final_bwd = unroll(cell, x, state_bwd, *params_bwd, reverse=True)
    return torch.cat([out_fwd, out_bwd], dim=-1), (final_fwd, final_bwd)


def hidden_grad_norms(x, h0, W_ih, W_hh, b_ih=None, b_hh=None):
    """For a tanh Elman RNN over x (T, B, I): entry t is the L2 norm of the
    gradient of h_T.sum() with respect to h_t (the state after step t). The last
    entry is sqrt(B * H); going back in time the norms shrink (vanishing) or
    grow (exploding) with the recurrent weight."""
    with torch.enable_grad():
        h = x.new_zeros(x.shape[1], W_hh.shape[1]) if h0 is None else h0
        h = h.detach().requires_grad_(True)
        states = []
        for t in range(x.shape[0]):
            h = rnn_cell(x[t].detach(), h, W_ih.detach(), W_hh.detach(),
                         None if b_ih is None else b_ih.detach(),
                         None if b_hh is None else b_hh.detach())
            states.append(h)
        grads = torch.autograd.grad(states[-1].sum(), states)
    return torch.stack([g.norm() for g in grads])


def clip_grad_norm(grads, max_norm, eps=1e-6):
    """Scale all gradients by min(1, max_norm / (total_norm + eps)), where
    total_norm is the L2 norm over all of them together. Returns
    (clipped_list, total_norm); the inputs are not modified."""
    total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    factor = torch.clamp(max_norm / (total_norm + eps), max=1.0)
    for g in grads:
        g.mul_(factor)
    return grads, total_norm
