"""A correct submission in another style than the reference: einsum, one fused
q/k/v matmul, float64 scores inside, a logsumexp softmax and an extra buffer.
It must get full marks."""

import math

import torch
from torch import nn


def causal_mask(q_len, k_len=None):
    k_len = q_len if k_len is None else k_len
    i = torch.arange(q_len).unsqueeze(1)
    j = torch.arange(k_len).unsqueeze(0)
    return j <= i


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = torch.einsum("...le,...se->...ls", q.double(), k.double()) * scale
    if attn_mask is not None and attn_mask.dtype != torch.bool:
        scores = scores + attn_mask.double()
        attn_mask = None
    if is_causal:
        causal = causal_mask(q.shape[-2], k.shape[-2])
        attn_mask = causal if attn_mask is None else attn_mask & causal
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, -math.inf)
    log_norm = torch.logsumexp(scores, dim=-1, keepdim=True)
    empty = torch.isinf(log_norm)
    weights = torch.exp(scores - torch.where(empty, torch.zeros_like(log_norm), log_norm))
    weights = torch.where(empty, torch.zeros_like(weights), weights)
    out = torch.einsum("...ls,...sv->...lv", weights, v.double())
    return out.to(q.dtype), weights.to(q.dtype)


def split_heads(x, n_heads):
    batch, length, width = x.shape
    if width % n_heads:
        raise ValueError("width must be divisible by the number of heads")
    return x.view(batch, length, n_heads, -1).permute(0, 2, 1, 3)


def merge_heads(x):
    return x.permute(0, 2, 1, 3).flatten(2)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, bias=True, dropout=0.0):
        super().__init__()
        if d_model % n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        self.n_heads = n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def forward(self, query, key=None, value=None, attn_mask=None, key_mask=None,
                is_causal=False):
        key = query if key is None else key
        value = key if value is None else value
        if key is query and value is query:  # one fused matmul for self-attention
            weight = torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight])
            bias = None if self.q_proj.bias is None else torch.cat(
                [self.q_proj.bias, self.k_proj.bias, self.v_proj.bias])
            q, k, v = nn.functional.linear(query, weight, bias).chunk(3, dim=-1)
        else:
            q, k, v = self.q_proj(query), self.k_proj(key), self.v_proj(value)
        q, k, v = (split_heads(t, self.n_heads) for t in (q, k, v))
        if key_mask is not None:
            real = key_mask[:, None, None, :]
            if attn_mask is None:
                attn_mask = real
            elif attn_mask.dtype == torch.bool:
                attn_mask = attn_mask & real
            else:
                attn_mask = attn_mask.masked_fill(~real, -math.inf)
        out, weights = scaled_dot_product_attention(q, k, v, attn_mask, is_causal)
        return self.out_proj(merge_heads(out)), weights


def attention_cost(seq_len, d_model, n_heads, batch=1, bytes_per_element=4):
    n, d = seq_len, d_model
    return {"flops": batch * (8 * n * d * d + 4 * n * n * d),
            "score_bytes": batch * n_heads * n * n * bytes_per_element}
