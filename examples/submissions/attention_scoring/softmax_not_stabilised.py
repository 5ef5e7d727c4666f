"""Example of a typical mistake: the softmax does not subtract the row maximum, so exp() overflows for large scores."""


import torch


def dot_score(query, keys):
    """Luong dot score q . k_t for every encoder position: (B, Dq), (B, T, Dq) -> (B, T)."""
    return torch.einsum("bd,btd->bt", query, keys)


def general_score(query, keys, W):
    """Luong general score q^T W k_t with W (Dq, Dk): -> (B, T)."""
    return torch.einsum("bd,btd->bt", query @ W, keys)


def additive_score(query, keys, W_q, W_k, v):
    """Bahdanau additive score v^T tanh(W_q q + W_k k_t) with W_q (A, Dq),
    W_k (A, Dk), v (A,): -> (B, T)."""
    hidden = torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T)  # (B, T, A)
    return hidden @ v


def masked_softmax(scores, mask=None, temperature=1.0):
    """Softmax over the last axis of scores / temperature. ``mask`` (bool,
    broadcastable to scores, True = real position): masked positions get exactly
    0, and a row with no real position is all 0. Stable for scores of 1e4."""
    scaled = scores / temperature
    if mask is not None:
        scaled = scaled.masked_fill(~mask, float("-inf"))
    # Subtracting the row maximum changes nothing mathematically and keeps exp()
    # from overflowing; a fully masked row has maximum -inf, so use 0 there.
    row_max = scaled.amax(dim=-1, keepdim=True).detach()
    row_max = torch.zeros_like(row_max)
    exp = torch.exp(scaled - row_max)
    total = exp.sum(dim=-1, keepdim=True)
    return exp / torch.where(total > 0, total, torch.ones_like(total))


def attend(scores, values, mask=None, temperature=1.0):
    """Soft alignment: weights = masked_softmax(scores, mask, temperature) (B, T)
    and context = the weighted sum of values (B, Dv). Returns (context, weights)."""
    weights = masked_softmax(scores, mask, temperature)
    context = torch.einsum("bt,btd->bd", weights, values)
    return context, weights


def attention_backward(query, keys, values, grad_context):
    """Gradients of context = softmax(dot_score(query, keys)) @ values, derived by
    hand: returns (grad_query (B, D), grad_keys (B, T, D), grad_values (B, T, Dv))."""
    scores = torch.einsum("bd,btd->bt", query, keys)
    weights = masked_softmax(scores)
    grad_values = weights.unsqueeze(-1) * grad_context.unsqueeze(1)        # (B, T, Dv)
    grad_weights = torch.einsum("btv,bv->bt", values, grad_context)        # (B, T)
    # Softmax Jacobian: dL/ds_t = w_t (dL/dw_t - sum_u w_u dL/dw_u)
    grad_scores = weights * (grad_weights - (weights * grad_weights).sum(-1, keepdim=True))
    grad_query = torch.einsum("bt,btd->bd", grad_scores, keys)
    grad_keys = grad_scores.unsqueeze(-1) * query.unsqueeze(1)
    return grad_query, grad_keys, grad_values


def decoder_step(y_prev, s_prev, enc_outputs, params, enc_mask=None):
    """One Bahdanau decoder step. Attention weights come from the *previous*
    state: additive_score(s_prev, enc_outputs, W_q, W_k, v) masked by enc_mask;
    context = attend(...); s_new = tanh(W_ih [y_prev; context] + b_ih + W_hh s_prev + b_hh).
    Returns (s_new (B, H), context (B, De), weights (B, T))."""
    scores = additive_score(s_prev, enc_outputs, params["W_q"], params["W_k"], params["v"])
    context, weights = attend(scores, enc_outputs, enc_mask)
    rnn_input = torch.cat([y_prev, context], dim=-1)
    s_new = torch.tanh(rnn_input @ params["W_ih"].T + params["b_ih"]
                       + s_prev @ params["W_hh"].T + params["b_hh"])
    return s_new, context, weights
