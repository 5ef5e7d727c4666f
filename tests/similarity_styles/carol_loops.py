# Multi-head attention, written head by head with explicit loops.

import torch
import torch.nn.functional as F
from torch import nn


def causal_mask(q_len, k_len=None):
    if k_len is None:
        k_len = q_len
    mask = torch.zeros((q_len, k_len), dtype=torch.bool)
    for row in range(q_len):
        mask[row, : min(row + 1, k_len)] = True
    return mask


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    d = q.shape[-1]
    factor = scale if scale is not None else d ** -0.5
    logits = torch.matmul(q, k.transpose(-1, -2)) * factor
    keep = torch.ones(logits.shape[-2:], dtype=torch.bool)
    if is_causal:
        keep = causal_mask(logits.shape[-2], logits.shape[-1])
    if attn_mask is not None:
        if attn_mask.dtype is torch.bool:
            keep = keep & attn_mask
        else:
            logits = logits + attn_mask
    logits = logits.masked_fill(keep.logical_not(), -float("inf"))
    probs = F.softmax(logits, dim=-1)
    probs = torch.nan_to_num(probs, nan=0.0)
    return torch.matmul(probs, v), probs


def split_heads(x, n_heads):
    b, n, e = x.shape
    assert_divisible(e, n_heads)
    heads = [x[:, :, h * (e // n_heads):(h + 1) * (e // n_heads)] for h in range(n_heads)]
    return torch.stack(heads, dim=1)


def merge_heads(x):
    return torch.cat([x[:, h] for h in range(x.shape[1])], dim=-1)


def assert_divisible(e, n_heads):
    if e % n_heads != 0:
        raise ValueError("cannot split %d features into %d heads" % (e, n_heads))


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, bias=True):
        super().__init__()
        assert_divisible(d_model, n_heads)
        self.n_heads = n_heads
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(d_model, d_model, bias=bias))

    def forward(self, query, key=None, value=None, attn_mask=None, key_mask=None,
                is_causal=False):
        if key is None:
            key = query
        if value is None:
            value = key
        heads_q = split_heads(self.q_proj(query), self.n_heads)
        heads_k = split_heads(self.k_proj(key), self.n_heads)
        heads_v = split_heads(self.v_proj(value), self.n_heads)
        if key_mask is not None:
            pad = key_mask.unsqueeze(1).unsqueeze(2)
            if attn_mask is None:
                attn_mask = pad
            elif attn_mask.dtype is torch.bool:
                attn_mask = torch.logical_and(attn_mask, pad)
            else:
                attn_mask = attn_mask.masked_fill(pad.logical_not(), -float("inf"))
        context, probs = scaled_dot_product_attention(heads_q, heads_k, heads_v,
                                                      attn_mask=attn_mask, is_causal=is_causal)
        return self.out_proj(merge_heads(context)), probs


def attention_cost(seq_len, d_model, n_heads, batch=1, bytes_per_element=4):
    linear_flops = 4 * 2 * batch * seq_len * d_model * d_model
    score_flops = 2 * 2 * batch * seq_len * seq_len * d_model
    memory = batch * n_heads * seq_len * seq_len * bytes_per_element
    return dict(flops=linear_flops + score_flops, score_bytes=memory)
