"""Assignment 2: Bahdanau and Luong attention by hand (section 3.2 of "From RNNs to attention").

A decoder query (B, Dq) attends over T encoder states: keys (B, T, Dk) and
values (B, T, Dv). Implement the scoring functions, a masked softmax with a
temperature, soft alignment, the backward pass of dot-product attention
derived by hand, and one decoder step of a seq2seq model with attention.
Read README.md (the handout) first. Masks are bool, True = real position.

Check your work from the unzipped folder (see CHECK.md). Once:

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    pip install .

then, after each change:

    autograder check attention_scoring

Rules: no torch.softmax / F.softmax / Tensor.softmax inside masked_softmax, and
no torch.autograd (or .backward()) inside attention_backward.
"""

import torch


def dot_score(query, keys):
    """Luong dot score q . k_t for every encoder position: (B, Dq), (B, T, Dq) -> (B, T)."""
    # BEGIN SOLUTION
    return torch.einsum("bd,btd->bt", query, keys)
    # END SOLUTION


def general_score(query, keys, W):
    """Luong general score q^T W k_t with W (Dq, Dk): -> (B, T)."""
    # BEGIN SOLUTION
    return torch.einsum("bd,btd->bt", query @ W, keys)
    # END SOLUTION


def additive_score(query, keys, W_q, W_k, v):
    """Bahdanau additive score v^T tanh(W_q q + W_k k_t) with W_q (A, Dq),
    W_k (A, Dk), v (A,): -> (B, T)."""
    # BEGIN SOLUTION
    hidden = torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T)  # (B, T, A)
    return hidden @ v
    # END SOLUTION


def masked_softmax(scores, mask=None, temperature=1.0):
    """Softmax over the last axis of scores / temperature. ``mask`` (bool,
    broadcastable to scores, True = real position): masked positions get exactly
    0, and a row with no real position is all 0. Stable for scores of 1e4."""
    # BEGIN SOLUTION
    scaled = scores / temperature
    if mask is not None:
        scaled = scaled.masked_fill(~mask, float("-inf"))
    # Subtracting the row maximum changes nothing mathematically and keeps exp()
    # from overflowing; a fully masked row has maximum -inf, so use 0 there.
    row_max = scaled.amax(dim=-1, keepdim=True).detach()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp = torch.exp(scaled - row_max)
    total = exp.sum(dim=-1, keepdim=True)
    return exp / torch.where(total > 0, total, torch.ones_like(total))
    # END SOLUTION


def attend(scores, values, mask=None, temperature=1.0):
    """Soft alignment: weights = masked_softmax(scores, mask, temperature) (B, T)
    and context = the weighted sum of values (B, Dv). Returns (context, weights)."""
    # BEGIN SOLUTION
    weights = masked_softmax(scores, mask, temperature)
    context = torch.einsum("bt,btd->bd", weights, values)
    return context, weights
    # END SOLUTION


def attention_backward(query, keys, values, grad_context):
    """Gradients of context = softmax(dot_score(query, keys)) @ values, derived by
    hand: returns (grad_query (B, D), grad_keys (B, T, D), grad_values (B, T, Dv))."""
    # BEGIN SOLUTION
    scores = torch.einsum("bd,btd->bt", query, keys)
    weights = masked_softmax(scores)
    grad_values = weights.unsqueeze(-1) * grad_context.unsqueeze(1)        # (B, T, Dv)
    grad_weights = torch.einsum("btv,bv->bt", values, grad_context)        # (B, T)
    # Softmax Jacobian: dL/ds_t = w_t (dL/dw_t - sum_u w_u dL/dw_u)
    grad_scores = weights * (grad_weights - (weights * grad_weights).sum(-1, keepdim=True))
    grad_query = torch.einsum("bt,btd->bd", grad_scores, keys)
    grad_keys = grad_scores.unsqueeze(-1) * query.unsqueeze(1)
    return grad_query, grad_keys, grad_values
    # END SOLUTION


def decoder_step(y_prev, s_prev, enc_outputs, params, enc_mask=None):
    """One Bahdanau decoder step. Attention weights come from the *previous*
    state: additive_score(s_prev, enc_outputs, W_q, W_k, v) masked by enc_mask;
    context = attend(...); s_new = tanh(W_ih [y_prev; context] + b_ih + W_hh s_prev + b_hh).
    Returns (s_new (B, H), context (B, De), weights (B, T))."""
    # BEGIN SOLUTION
    scores = additive_score(s_prev, enc_outputs, params["W_q"], params["W_k"], params["v"])
    context, weights = attend(scores, enc_outputs, enc_mask)
    rnn_input = torch.cat([y_prev, context], dim=-1)
    s_new = torch.tanh(rnn_input @ params["W_ih"].T + params["b_ih"]
                       + s_prev @ params["W_hh"].T + params["b_hh"])
    return s_new, context, weights
    # END SOLUTION
