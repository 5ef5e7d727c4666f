# Generated from the reference solution by `autograder templates`.
# Fill in every function that raises NotImplementedError.
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
    raise NotImplementedError("dot_score: see the handout (README.md), section 3.2")


def general_score(query, keys, W):
    """Luong general score q^T W k_t with W (Dq, Dk): -> (B, T)."""
    raise NotImplementedError("general_score: see the handout (README.md), section 3.2")


def additive_score(query, keys, W_q, W_k, v):
    """Bahdanau additive score v^T tanh(W_q q + W_k k_t) with W_q (A, Dq),
    W_k (A, Dk), v (A,): -> (B, T)."""
    raise NotImplementedError("additive_score: see the handout (README.md), section 3.2")


def masked_softmax(scores, mask=None, temperature=1.0):
    """Softmax over the last axis of scores / temperature. ``mask`` (bool,
    broadcastable to scores, True = real position): masked positions get exactly
    0, and a row with no real position is all 0. Stable for scores of 1e4."""
    raise NotImplementedError("masked_softmax: see the handout (README.md), section 3.2")


def attend(scores, values, mask=None, temperature=1.0):
    """Soft alignment: weights = masked_softmax(scores, mask, temperature) (B, T)
    and context = the weighted sum of values (B, Dv). Returns (context, weights)."""
    raise NotImplementedError("attend: see the handout (README.md), section 3.2")


def attention_backward(query, keys, values, grad_context):
    """Gradients of context = softmax(dot_score(query, keys)) @ values, derived by
    hand: returns (grad_query (B, D), grad_keys (B, T, D), grad_values (B, T, Dv))."""
    raise NotImplementedError("attention_backward: see the handout (README.md), section 3.2")


def decoder_step(y_prev, s_prev, enc_outputs, params, enc_mask=None):
    """One Bahdanau decoder step. Attention weights come from the *previous*
    state: additive_score(s_prev, enc_outputs, W_q, W_k, v) masked by enc_mask;
    context = attend(...); s_new = tanh(W_ih [y_prev; context] + b_ih + W_hh s_prev + b_hh).
    Returns (s_new (B, H), context (B, De), weights (B, T))."""
    raise NotImplementedError("decoder_step: see the handout (README.md), section 3.2")
