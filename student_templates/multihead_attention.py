# Generated from the reference solution by `autograder templates`.
# Fill in every function that raises NotImplementedError.
"""Assignment 3: multi-head attention (section 3.3 of "From RNNs to attention").

Implement scaled dot-product attention, the causal mask of autoregressive
models, and a multi-head attention module that works for self- and
cross-attention. Read README.md (the handout) first: it gives the math, the
shapes and the mask convention (True = may attend).

Check your work from the unzipped folder (see CHECK.md). Once:

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    pip install .

then, after each change:

    autograder check multihead_attention

Rules: use plain tensor operations. F.scaled_dot_product_attention,
nn.MultiheadAttention and F.multi_head_attention_forward are not allowed.
"""

import math

import torch
from torch import nn


def causal_mask(q_len, k_len=None):
    """Bool mask of shape (q_len, k_len), True where query i may attend key j,
    that is where j <= i (top-left aligned). ``k_len`` defaults to ``q_len``."""
    raise NotImplementedError("causal_mask: see the handout (README.md), section 3.3")


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """softmax(q k^T * scale + mask) v over the last two axes.

    q (..., L, E), k (..., S, E), v (..., S, Ev); returns (out (..., L, Ev),
    weights (..., L, S)). ``scale`` defaults to 1/sqrt(E). ``attn_mask`` is bool
    (True = may attend) or float (added to the scores) and broadcasts to
    (..., L, S); ``is_causal`` adds the causal mask. A row with no allowed key
    gets all-zero weights and an all-zero output, never NaN.
    """
    raise NotImplementedError("scaled_dot_product_attention: see the handout (README.md), section 3.3")


def split_heads(x, n_heads):
    """(B, L, E) -> (B, n_heads, L, E // n_heads). Raises ValueError if E is not
    divisible by n_heads."""
    raise NotImplementedError("split_heads: see the handout (README.md), section 3.3")


def merge_heads(x):
    """(B, h, L, d) -> (B, L, h * d), the inverse of split_heads."""
    raise NotImplementedError("merge_heads: see the handout (README.md), section 3.3")


class MultiHeadAttention(nn.Module):
    """Multi-head attention with projections q_proj, k_proj, v_proj, out_proj
    (each nn.Linear(d_model, d_model, bias=bias))."""

    def __init__(self, d_model, n_heads, bias=True):
        super().__init__()
        raise NotImplementedError("MultiHeadAttention.__init__: see the handout (README.md), section 3.3")

    def forward(self, query, key=None, value=None, attn_mask=None, key_mask=None,
                is_causal=False):
        """query (B, L, E); key/value (B, S, E) (key defaults to query, value to
        key); key_mask (B, S) bool, True = real key. Returns (out (B, L, E),
        weights (B, h, L, S))."""
        raise NotImplementedError("MultiHeadAttention.forward: see the handout (README.md), section 3.3")


def attention_cost(seq_len, d_model, n_heads, batch=1, bytes_per_element=4):
    """FLOPs and attention-matrix bytes of one self-attention forward:
    {"flops": 8*B*n*d^2 + 4*B*n^2*d, "score_bytes": B*h*n^2*bytes_per_element}."""
    raise NotImplementedError("attention_cost: see the handout (README.md), section 3.3")
