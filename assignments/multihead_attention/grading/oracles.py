"""PyTorch's own modules as oracles for multi-head attention, wrapped for the
spec's conventions (student-api.md, section 3).

Each oracle is memoised (computed once per batch): ``nn.MultiheadAttention`` is
used only with explicit float masks, and rows with no allowed key are checked
against ``F.scaled_dot_product_attention``, which gives zeros instead of NaN.
Graders only: never shipped to students (see autograder/release/kits.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from autograder.testing import memoize


def _allowed(L: int, S: int, attn_mask, is_causal: bool):
    """Combine a bool mask with the causal mask (F.sdpa refuses both at once)."""
    if not is_causal:
        return attn_mask
    causal = torch.ones(L, S, dtype=torch.bool).tril()
    return causal if attn_mask is None else attn_mask & causal


@memoize
def sdpa(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """(out, weights) as the spec defines them, from torch's fused kernel."""
    L, S = q.size(-2), k.size(-2)
    if attn_mask is not None and attn_mask.dtype == torch.bool or is_causal:
        mask = _allowed(L, S, attn_mask, is_causal)
    else:
        mask = attn_mask
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
    scores = q @ k.transpose(-2, -1) * (1 / math.sqrt(q.size(-1)) if scale is None else scale)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool \
            else scores + mask
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return out, weights


@memoize
def sdpa_grads(q, k, v, grad_out, attn_mask=None, is_causal=False):
    """Gradients of (q, k, v) of sum(out * grad_out) through torch's kernel."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    L, S = q.size(-2), k.size(-2)
    out = F.scaled_dot_product_attention(*leaves, attn_mask=_allowed(L, S, attn_mask, is_causal))
    return torch.autograd.grad(out, leaves, grad_out)


def sdpa_weights(q, k, attn_mask=None):
    """The attention weights, differentiably, from torch's kernel: attending over
    the identity as values returns the weights themselves (rows with no allowed
    key give zeros and finite gradients, as the spec asks)."""
    S = k.size(-2)
    eye = torch.eye(S, dtype=q.dtype).expand(*k.shape[:-2], S, S)
    return F.scaled_dot_product_attention(q, k, eye, attn_mask=attn_mask)


@memoize
def sdpa_weight_grads(q, k, grad_weights, attn_mask=None):
    """Gradients of (q, k) of sum(weights * grad_weights) (v takes no part)."""
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k)]
    weights = sdpa_weights(*leaves, attn_mask=attn_mask)
    return torch.autograd.grad(weights, leaves, grad_weights)


def torch_mha(d_model: int, n_heads: int, weights: dict, dtype, bias: bool):
    """An ``nn.MultiheadAttention`` holding the spec's four projections."""
    mha = torch.nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True,
                                      dtype=dtype)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([weights[f"{p}_proj.weight"] for p in "qkv"]))
        mha.out_proj.weight.copy_(weights["out_proj.weight"])
        if bias:
            mha.in_proj_bias.copy_(torch.cat([weights[f"{p}_proj.bias"] for p in "qkv"]))
            mha.out_proj.bias.copy_(weights["out_proj.bias"])
    return mha


def _as_float_mask(mask, dtype):
    """True = may attend -> 0, False -> -inf; float masks pass through."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        return mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, float("-inf"))


def mha_forward(case, query, key=None, value=None, attn_mask=None, key_mask=None,
                is_causal=False):
    """(out, weights) of the spec's MultiHeadAttention, by torch primitives.

    Computed with F.linear and F.scaled_dot_product_attention, so rows whose keys
    are all masked give zeros; cross-checked against nn.MultiheadAttention in the
    framework's own tests."""
    return _mha_forward(case.weights(), case.n_heads, query, key, value, attn_mask, key_mask,
                        is_causal)


@memoize
def _mha_forward(weights, n_heads, query, key, value, attn_mask, key_mask, is_causal):
    key = query if key is None else key
    value = key if value is None else value
    B, L, E = query.shape

    def project(x, name):
        y = F.linear(x, weights[f"{name}.weight"], weights.get(f"{name}.bias"))
        return y.reshape(B, -1, n_heads, E // n_heads).transpose(1, 2)

    q, k, v = project(query, "q_proj"), project(key, "k_proj"), project(value, "v_proj")
    mask = attn_mask
    if key_mask is not None:
        keys = key_mask[:, None, None, :]
        if mask is None:
            mask = keys
        elif mask.dtype == torch.bool:
            mask = mask & keys
        else:
            mask = mask.masked_fill(~keys, float("-inf"))
    if mask is not None and mask.dtype != torch.bool:
        mask = mask.to(q.dtype)
    out, weights_ = sdpa(q, k, v, attn_mask=mask, is_causal=is_causal)
    out = out.transpose(1, 2).reshape(B, L, E)
    out = F.linear(out, weights["out_proj.weight"], weights.get("out_proj.bias"))
    return out, weights_


@memoize
def torch_mha_forward(case, query, key=None, value=None, attn_mask=None, key_mask=None):
    """nn.MultiheadAttention itself, with float masks, for inputs where no row is
    fully masked (it returns NaN weights there)."""
    mha = torch_mha(case.d_model, case.n_heads, case.weights(), case.dtype, case.bias)
    key = query if key is None else key
    value = key if value is None else value
    # Both masks as float (it warns on a bool key mask beside a float attn_mask);
    # a float key_padding_mask is added to the scores, so it keeps our meaning.
    with torch.no_grad():
        return mha(query, key, value, attn_mask=_as_float_mask(attn_mask, case.dtype),
                   key_padding_mask=_as_float_mask(key_mask, case.dtype),
                   need_weights=True, average_attn_weights=False)


# -- attention_scoring (section 3.2) ---------------------------------------
