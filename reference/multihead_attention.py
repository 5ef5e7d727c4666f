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
    # BEGIN SOLUTION
    k_len = q_len if k_len is None else k_len
    return torch.ones(q_len, k_len, dtype=torch.bool).tril()
    # END SOLUTION


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """softmax(q k^T * scale + mask) v over the last two axes.

    q (..., L, E), k (..., S, E), v (..., S, Ev); returns (out (..., L, Ev),
    weights (..., L, S)). ``scale`` defaults to 1/sqrt(E). ``attn_mask`` is bool
    (True = may attend) or float (added to the scores) and broadcasts to
    (..., L, S); ``is_causal`` adds the causal mask. A row with no allowed key
    gets all-zero weights and an all-zero output, never NaN.
    """
    # BEGIN SOLUTION
    L, S = q.size(-2), k.size(-2)
    scale = 1.0 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale

    allowed = None
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            allowed = attn_mask
        else:
            scores = scores + attn_mask
    if is_causal:
        causal = causal_mask(L, S).to(q.device)
        allowed = causal if allowed is None else allowed & causal
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))

    # A stable softmax that gives zeros, not NaN, where every key is masked:
    # subtract the row maximum (a constant per row, so the result is unchanged),
    # using 0 instead where the maximum is -inf.
    row_max = scores.amax(dim=-1, keepdim=True).detach()
    row_max = torch.where(torch.isfinite(row_max), row_max, torch.zeros_like(row_max))
    exp = torch.exp(scores - row_max)
    total = exp.sum(dim=-1, keepdim=True)
    weights = exp / torch.where(total > 0, total, torch.ones_like(total))
    return weights @ v, weights
    # END SOLUTION


def split_heads(x, n_heads):
    """(B, L, E) -> (B, n_heads, L, E // n_heads). Raises ValueError if E is not
    divisible by n_heads."""
    # BEGIN SOLUTION
    B, L, E = x.shape
    if E % n_heads != 0:
        raise ValueError(f"embedding size {E} is not divisible by {n_heads} heads")
    return x.reshape(B, L, n_heads, E // n_heads).transpose(1, 2)
    # END SOLUTION


def merge_heads(x):
    """(B, h, L, d) -> (B, L, h * d), the inverse of split_heads."""
    # BEGIN SOLUTION
    B, h, L, d = x.shape
    return x.transpose(1, 2).reshape(B, L, h * d)
    # END SOLUTION


class MultiHeadAttention(nn.Module):
    """Multi-head attention with projections q_proj, k_proj, v_proj, out_proj
    (each nn.Linear(d_model, d_model, bias=bias))."""

    def __init__(self, d_model, n_heads, bias=True):
        super().__init__()
        # BEGIN SOLUTION
        if d_model % n_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads = d_model, n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        # END SOLUTION

    def forward(self, query, key=None, value=None, attn_mask=None, key_mask=None,
                is_causal=False):
        """query (B, L, E); key/value (B, S, E) (key defaults to query, value to
        key); key_mask (B, S) bool, True = real key. Returns (out (B, L, E),
        weights (B, h, L, S))."""
        # BEGIN SOLUTION
        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)

        mask = attn_mask
        if key_mask is not None:
            keys = key_mask[:, None, None, :]  # (B, 1, 1, S): the same for every head and query
            if mask is None:
                mask = keys
            elif mask.dtype == torch.bool:
                mask = mask & keys
            else:
                mask = mask.masked_fill(~keys, float("-inf"))
        out, weights = scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)
        return self.out_proj(merge_heads(out)), weights
        # END SOLUTION


def attention_cost(seq_len, d_model, n_heads, batch=1, bytes_per_element=4):
    """FLOPs and attention-matrix bytes of one self-attention forward:
    {"flops": 8*B*n*d^2 + 4*B*n^2*d, "score_bytes": B*h*n^2*bytes_per_element}."""
    # BEGIN SOLUTION
    n, d, B = seq_len, d_model, batch
    projections = 4 * (2 * B * n * d * d)   # q, k, v and out: (B*n, d) @ (d, d) each
    attention = 2 * (2 * B * n * n * d)     # q k^T and weights @ v, summed over heads
    return {"flops": projections + attention,
            "score_bytes": B * n_heads * n * n * bytes_per_element}
    # END SOLUTION
