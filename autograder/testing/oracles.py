"""PyTorch's own modules as oracles, wrapped for the spec's conventions.

Each oracle is memoised (computed once per batch) and follows the notes of
``student-api.md``: ``nn.MultiheadAttention`` is used only with explicit float
masks, and rows with no allowed key are checked against
``F.scaled_dot_product_attention``, which gives zeros instead of NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .memo import memoize


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

def softmax(scores, mask=None, temperature=1.0):
    """torch.softmax over the last axis with masked positions excluded; rows with
    no real position give zeros (torch gives NaN there)."""
    scaled = scores / temperature
    if mask is not None:
        scaled = scaled.masked_fill(~mask, float("-inf"))
    return torch.softmax(scaled, dim=-1).nan_to_num(0.0)


def bahdanau_scores(query, keys, W_q, W_k, v):
    return torch.tanh(F.linear(query, W_q).unsqueeze(1) + F.linear(keys, W_k)) @ v


def decoder_step(y_prev, s_prev, enc_outputs, params, enc_mask=None):
    """(s_new, context, weights) of one Bahdanau decoder step, by torch ops."""
    weights = softmax(bahdanau_scores(s_prev, enc_outputs, params["W_q"], params["W_k"],
                                      params["v"]), enc_mask)
    context = torch.bmm(weights.unsqueeze(1), enc_outputs).squeeze(1)
    cell = F.linear(torch.cat([y_prev, context], -1), params["W_ih"], params["b_ih"])
    s_new = torch.tanh(cell + F.linear(s_prev, params["W_hh"], params["b_hh"]))
    return s_new, context, weights


# -- recurrent_cells (section 3.1) -----------------------------------------

_CELL_MODULES = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}
_SEQ_MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def _load(module, params, suffix=""):
    W_ih, W_hh, b_ih, b_hh = params
    with torch.no_grad():
        getattr(module, "weight_ih" + suffix).copy_(W_ih)
        getattr(module, "weight_hh" + suffix).copy_(W_hh)
        if b_ih is not None:
            getattr(module, "bias_ih" + suffix).copy_(b_ih)
            getattr(module, "bias_hh" + suffix).copy_(b_hh)
    return module


def torch_cell(cell, params, dtype, nonlinearity="tanh"):
    """nn.RNNCell / LSTMCell / GRUCell holding ``params``."""
    W_ih, W_hh, b_ih, _ = params
    kwargs = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
    return _load(_CELL_MODULES[cell](W_ih.shape[1], W_hh.shape[1], bias=b_ih is not None,
                                     dtype=dtype, **kwargs), params)


def torch_sequence(cell, params, dtype, params_bwd=None):
    """nn.RNN / LSTM / GRU (one layer, time-major), bidirectional with ``params_bwd``."""
    W_ih, W_hh, b_ih, _ = params
    module = _SEQ_MODULES[cell](W_ih.shape[1], W_hh.shape[1], bias=b_ih is not None,
                                bidirectional=params_bwd is not None, dtype=dtype)
    _load(module, params, "_l0")
    if params_bwd is not None:
        _load(module, params_bwd, "_l0_reverse")
    return module


def as_torch_state(cell, states):
    """Our states, one per direction (h, or (h, c) for lstm, each (B, H)), as
    nn.RNN's initial state: (dirs, B, H), or a pair of those for lstm."""
    if cell == "lstm":
        return torch.stack([h for h, _ in states]), torch.stack([c for _, c in states])
    return torch.stack(list(states))


def clip_grad_norm(grads, max_norm, eps=1e-6):
    """torch.nn.utils.clip_grad_norm_ on parameters holding ``grads``."""
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g))
        p.grad = g.clone()
        params.append(p)
    total = torch.nn.utils.clip_grad_norm_(params, max_norm)
    return [p.grad for p in params], total


def hidden_grad_norms(x, h0, W_ih, W_hh, b_ih=None, b_hh=None):
    """||d h_T.sum() / d h_t|| for every t, through nn.RNNCell and autograd."""
    cell = torch_cell("rnn", (W_ih, W_hh, b_ih, b_hh), x.dtype)
    h = torch.zeros(x.shape[1], W_hh.shape[1], dtype=x.dtype) if h0 is None else h0
    h = h.clone().requires_grad_(True)
    states = []
    for t in range(x.shape[0]):
        h = cell(x[t], h)
        states.append(h)
    return torch.stack([g.norm() for g in torch.autograd.grad(states[-1].sum(), states)])
