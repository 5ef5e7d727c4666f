"""The inputs of multihead_attention's tests: attention cases (q, k, v and masks)
and multi-head attention cases (a module's weights and its inputs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from hypothesis import strategies as st

from autograder.testing import memoize
from autograder.testing.strategies import (describe_dtype, describe_shape, float_dtypes,
                                           generator, random_mask, random_tensor, seeds)


@dataclass(frozen=True)
class AttentionCase:
    """Inputs of ``scaled_dot_product_attention``: q (*batch, L, E), k (*batch, S, E),
    v (*batch, S, Ev)."""
    batch: tuple[int, ...]
    L: int
    S: int
    E: int
    Ev: int
    dtype: torch.dtype
    seed: int

    @memoize
    def tensors(self):
        gen = generator(self.seed)
        q = random_tensor((*self.batch, self.L, self.E), self.dtype, gen)
        k = random_tensor((*self.batch, self.S, self.E), self.dtype, gen)
        v = random_tensor((*self.batch, self.S, self.Ev), self.dtype, gen)
        return q, k, v

    @memoize
    def mask(self, keep: float = 0.7, fully_masked_row: bool = True, broadcast: bool = False):
        """A bool mask of shape (*batch, L, S), or (L, S) with ``broadcast``."""
        shape = (self.L, self.S) if broadcast else (*self.batch, self.L, self.S)
        return random_mask(shape, generator(self.seed + 1), keep, fully_masked_row)

    def describe(self) -> str:
        b = tuple(self.batch)
        return (f"q {describe_shape(b + (self.L, self.E))}, k {describe_shape(b + (self.S, self.E))}, "
                f"v {describe_shape(b + (self.S, self.Ev))}, {describe_dtype(self.dtype)}, seed {self.seed}")


@st.composite
def attention_cases(draw, max_batch_dims: int = 2, max_len: int = 7, square: bool = False,
                    min_e: int = 1, max_e: int = 32):
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=max_batch_dims)))
    L = draw(st.integers(1, max_len))
    S = L if square else draw(st.integers(1, max_len))
    return AttentionCase(batch=batch, L=L, S=S, E=draw(st.integers(min_e, max_e)),
                         Ev=draw(st.integers(1, 9)), dtype=draw(float_dtypes()),
                         seed=draw(seeds()))


@dataclass(frozen=True)
class MHACase:
    """A multi-head attention module and its inputs: query (B, L, E) and, for
    cross-attention, key/value (B, S, E)."""
    B: int
    L: int
    S: int
    d_model: int
    n_heads: int
    dtype: torch.dtype
    seed: int
    cross: bool = False
    bias: bool = True
    extras: dict = field(default_factory=dict, compare=False)

    @memoize
    def weights(self) -> dict[str, torch.Tensor]:
        """Weights for ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj`` (nn.Linear layout)."""
        gen = generator(self.seed)
        scale = 1 / math.sqrt(self.d_model)
        out = {}
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out[f"{name}.weight"] = random_tensor((self.d_model, self.d_model), self.dtype, gen, scale)
            if self.bias:
                out[f"{name}.bias"] = random_tensor((self.d_model,), self.dtype, gen, 0.1)
        return out

    @memoize
    def inputs(self):
        """(query, key) with key None for self-attention."""
        gen = generator(self.seed + 1)
        query = random_tensor((self.B, self.L, self.d_model), self.dtype, gen)
        key = random_tensor((self.B, self.S, self.d_model), self.dtype, gen) if self.cross else None
        return query, key

    @property
    def key_len(self) -> int:
        return self.S if self.cross else self.L

    @memoize
    def key_mask(self, keep: float = 0.7) -> torch.Tensor:
        """(B, S) bool, True = real key; batch element 0 has no real key at all,
        every other element at least one (key 0)."""
        mask = torch.rand(self.B, self.key_len, generator=generator(self.seed + 2)) < keep
        mask[0] = False
        mask[1:, 0] = True
        return mask

    def describe(self) -> str:
        kind = (f"cross-attention, query {describe_shape((self.B, self.L, self.d_model))}, key "
                f"{describe_shape((self.B, self.S, self.d_model))}") if self.cross else \
            f"self-attention, x {describe_shape((self.B, self.L, self.d_model))}"
        return (f"MultiHeadAttention(d_model={self.d_model}, n_heads={self.n_heads}"
                f"{'' if self.bias else ', bias=False'}), {kind}, {describe_dtype(self.dtype)}, "
                f"seed {self.seed}")


@st.composite
def mha_cases(draw, cross: bool | None = None, max_len: int = 6, min_batch: int = 1):
    n_heads = draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.integers(1, 6))
    cross = draw(st.booleans()) if cross is None else cross
    L = draw(st.integers(1, max_len))
    return MHACase(B=draw(st.integers(min_batch, 3)), L=L, S=draw(st.integers(1, max_len)) if cross else L,
                   d_model=n_heads * head_dim, n_heads=n_heads, dtype=draw(float_dtypes()),
                   seed=draw(seeds()), cross=cross, bias=draw(st.booleans()))
