"""Oracles for attention scoring (student-api.md, section 2): the masked
softmax, Bahdanau's additive scores and one decoder step, from torch primitives.
Graders only: never shipped to students.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F



def softmax(scores, mask=None, temperature=1.0):
    """torch.softmax over the last axis with masked positions excluded; rows with
    no real position give zeros (torch gives NaN there)."""
    scaled = scores / temperature
    if mask is not None:
        scaled = scaled.masked_fill(~mask, float("-inf"))
    return torch.softmax(scaled, dim=-1).nan_to_num(0.0)


def dot_scores(query, keys):
    """Luong dot scores (B, T), by a batched matrix product."""
    return torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)


def general_scores(query, keys, W):
    """Luong general scores q^T W k_t (B, T), by a batched matrix product."""
    return torch.bmm(keys, (query @ W).unsqueeze(-1)).squeeze(-1)


def attend(scores, values, mask=None, temperature=1.0):
    """(context, weights) of soft alignment: the masked softmax, then the
    weights-weighted sum of the values."""
    weights = softmax(scores, mask, temperature)
    return torch.bmm(weights.unsqueeze(1), values).squeeze(1), weights


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
