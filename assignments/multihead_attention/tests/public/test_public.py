"""Public tests: run them with `autograder check multihead_attention`.

They are a sample. The hidden tests that decide your grade check the same
functions on many more shapes, dtypes and masks, and the properties in the
handout (causality, masking, gradients, cost, speed).
"""

import math

import torch

from autograder.testing import assert_close, assert_tensor, fail, generator, random_tensor, unpack
from autograder.testing.recorded import oracles


def same_answer_twice(first, second, what, inputs, case):
    """Attention has no randomness: the same input always gives the same answer.
    (Said without the values, which change from run to run when it fails.)"""
    def same(a, b):  # values that are not tensors are for the value checks below
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return True
        return a.shape == b.shape and torch.allclose(a.double(), b.double(), rtol=1e-6,
                                                      atol=1e-9, equal_nan=True)

    if not all(same(a, b) for a, b in zip(first, second)):
        fail(f"{what} returned different results for the same {inputs} on two calls: the "
             "same input must always give the same answer.", case=case,
             hint="no dropout (nn.Dropout is active in training mode, F.dropout unless "
                  "training=False) and no random numbers.")


def test_causal_mask_3x3(student):
    """Query i may attend key j exactly when j <= i (section 3.3, causal masking)."""
    expected = torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    assert_close(student.causal_mask(3), expected, what="causal_mask(3)",
                 hint="row i is query i; True means 'may attend'.")


def test_sdpa_matches_torch(student):
    """Scaled dot-product attention equals PyTorch's on q (2, 4, 8), k and v (2, 5, 8)."""
    gen = generator(0)
    q, k, v = (random_tensor(shape, torch.float32, gen) for shape in ((2, 4, 8), (2, 5, 8), (2, 5, 8)))
    out, weights = unpack(student.scaled_dot_product_attention(q, k, v), 2,
                          "scaled_dot_product_attention", "out, weights")
    again = unpack(student.scaled_dot_product_attention(q, k, v), 2,
                   "scaled_dot_product_attention", "out, weights")
    case = "q (2, 4, 8), k (2, 5, 8), v (2, 5, 8), float32, seed 0"
    same_answer_twice((out, weights), again, "scaled_dot_product_attention", "q, k, v", case)
    expected_out, expected_weights = oracles.sdpa(q, k, v)
    assert_close(weights, expected_weights, what="weights", case=case)
    assert_close(out, expected_out, what="out", case=case)


def test_split_then_merge_is_identity(student):
    """split_heads gives (B, h, L, E/h), and merge_heads undoes it."""
    x = random_tensor((2, 3, 8), torch.float32, generator(1))
    heads = assert_tensor(student.split_heads(x, 4), what="split_heads(x, 4)", shape=(2, 4, 3, 2))
    assert_close(heads, x.reshape(2, 3, 4, 2).transpose(1, 2), what="split_heads(x, 4)")
    assert_close(student.merge_heads(heads), x, what="merge_heads(split_heads(x, 4))")


def projection_weights(d_model, dtype, seed):
    """Weights of q_proj, k_proj, v_proj and out_proj (nn.Linear layout: weight
    (out, in), then bias), drawn in that order from one seeded generator."""
    gen, weights = generator(seed), {}
    for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
        weights[proj + ".weight"] = random_tensor((d_model, d_model), dtype, gen,
                                                  1 / math.sqrt(d_model))
        weights[proj + ".bias"] = random_tensor((d_model,), dtype, gen, 0.1)
    return weights


def test_mha_self_attention_matches_torch(student):
    """MultiHeadAttention equals torch.nn.MultiheadAttention with the same weights."""
    d_model, n_heads, seed = 8, 2, 3
    weights = projection_weights(d_model, torch.float32, seed)
    module = student.MultiHeadAttention.build((d_model, n_heads), weights=weights)
    x = random_tensor((2, 4, d_model), torch.float32, generator(seed + 1))
    out, attn = unpack(module(x), 2, "MultiHeadAttention.forward", "out, weights")
    case = ("MultiHeadAttention(d_model=8, n_heads=2), self-attention, x (2, 4, 8), "
            "float32, seed 3")
    same_answer_twice((out, attn), unpack(module(x), 2, "MultiHeadAttention.forward"),
                      "MultiHeadAttention.forward", "x and weights", case)
    torch_module = oracles.torch_mha(d_model, n_heads, weights, torch.float32, True)
    with torch.no_grad():  # self-attention: query, key and value are x itself
        expected_out, expected_attn = torch_module(x, x, x, need_weights=True,
                                                   average_attn_weights=False)
    assert_close(attn, expected_attn, what="weights", case=case)
    assert_close(out, expected_out, what="out", case=case)
