"""My solution: everything through 3-d bmm on (batch * heads) slices."""
import math
import torch
from torch import nn


def causal_mask(q_len, k_len=None):
    k_len = k_len or q_len
    return torch.tril(torch.ones(q_len, k_len)).bool()


def _bias_from(mask, like):
    # bool masks become 0 / -inf biases; float masks are already biases
    if mask is None:
        return torch.zeros((), dtype=like.dtype)
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=like.dtype).masked_fill(~mask, -math.inf)
    return mask.to(like.dtype)


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    *lead, L, E = q.shape
    S = k.shape[-2]
    if scale is None:
        scale = E ** -0.5
    qf = q.reshape(-1, L, E)
    kf = k.expand(*lead, S, E).reshape(-1, S, E)
    vf = v.expand(*lead, S, v.shape[-1]).reshape(-1, S, v.shape[-1])
    bias = _bias_from(attn_mask, q)
    if is_causal:
        bias = bias + _bias_from(causal_mask(L, S), q)
    raw = torch.bmm(qf, kf.transpose(1, 2)).reshape(*lead, L, S) * scale + bias
    top = raw.max(dim=-1, keepdim=True).values
    top = top.masked_fill(top == -math.inf, 0.0)
    unnorm = (raw - top).exp()
    denom = unnorm.sum(-1, keepdim=True)
    attn = unnorm / denom.clamp_min(torch.finfo(raw.dtype).tiny)
    ctx = torch.bmm(attn.reshape(-1, L, S), vf).reshape(*lead, L, v.shape[-1])
    return ctx, attn


def split_heads(x, n_heads):
    B, T, C = x.size()
    if C % n_heads:
        raise ValueError(f"{C} % {n_heads} != 0")
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2).contiguous()


def merge_heads(x):
    B, H, T, D = x.size()
    return x.transpose(1, 2).contiguous().view(B, T, H * D)


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, bias=True):
        super().__init__()
        if d_model % n_heads:
            raise ValueError("heads must divide d_model")
        self.h = n_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (
            nn.Linear(d_model, d_model, bias=bias) for _ in range(4))

    def forward(self, query, key=None, value=None, attn_mask=None, key_mask=None,
                is_causal=False):
        key = key if key is not None else query
        value = value if value is not None else key
        bias = _bias_from(attn_mask, query)
        if key_mask is not None:
            bias = bias + _bias_from(key_mask[:, None, None, :], query)
        q, k, v = (split_heads(proj(t), self.h) for proj, t in
                   ((self.q_proj, query), (self.k_proj, key), (self.v_proj, value)))
        ctx, attn = scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=is_causal)
        return self.out_proj(merge_heads(ctx)), attn


def attention_cost(seq_len, d_model, n_heads, batch=1, bytes_per_element=4):
    n, d = seq_len, d_model
    flops = batch * n * d * (8 * d + 4 * n)
    return {"flops": flops, "score_bytes": batch * n_heads * n * n * bytes_per_element}
