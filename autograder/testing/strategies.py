"""Every shape, dtype and value the tests use, in one place.

Hypothesis draws small structured *cases* (shapes, dtype, a seed); the tensors
themselves come from a seeded ``torch.Generator``, so a failing case is named in
feedback by its shapes, dtype and seed, and rebuilt exactly from them. Every
submission of a batch meets the same cases, so a case's tensors are built once
(memoised) and each submission gets its own copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from hypothesis import strategies as st

from .memo import memoize

FLOAT_DTYPES = (torch.float32, torch.float64)


def float_dtypes():
    return st.sampled_from(FLOAT_DTYPES)


def seeds():
    return st.integers(min_value=0, max_value=2**31 - 1)


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_tensor(shape, dtype, gen: torch.Generator, scale: float = 1.0) -> torch.Tensor:
    return (torch.randn(tuple(shape), generator=gen, dtype=torch.float64) * scale).to(dtype)


def random_mask(shape, gen: torch.Generator, keep: float = 0.7,
                fully_masked_row: bool = True) -> torch.Tensor:
    """A bool mask (True = may attend). With ``fully_masked_row`` the first row of
    the last two axes masks every key, the special case where a softmax gives NaN
    unless it is handled."""
    mask = torch.rand(tuple(shape), generator=gen) < keep
    if fully_masked_row and len(shape) >= 2 and shape[-2] > 1:
        mask[..., 0, :] = False
    return mask


def _shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


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
        return (f"q {_shape(b + (self.L, self.E))}, k {_shape(b + (self.S, self.E))}, "
                f"v {_shape(b + (self.S, self.Ev))}, {_dtype(self.dtype)}, seed {self.seed}")


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
        """(B, S) bool, True = real key; batch element 0 has no real key at all."""
        mask = torch.rand(self.B, self.key_len, generator=generator(self.seed + 2)) < keep
        mask[0] = False
        return mask

    def describe(self) -> str:
        kind = (f"cross-attention, query {_shape((self.B, self.L, self.d_model))}, key "
                f"{_shape((self.B, self.S, self.d_model))}") if self.cross else \
            f"self-attention, x {_shape((self.B, self.L, self.d_model))}"
        return (f"MultiHeadAttention(d_model={self.d_model}, n_heads={self.n_heads}"
                f"{'' if self.bias else ', bias=False'}), {kind}, {_dtype(self.dtype)}, "
                f"seed {self.seed}")


@st.composite
def mha_cases(draw, cross: bool | None = None, max_len: int = 6):
    n_heads = draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.integers(1, 6))
    cross = draw(st.booleans()) if cross is None else cross
    L = draw(st.integers(1, max_len))
    return MHACase(B=draw(st.integers(1, 3)), L=L, S=draw(st.integers(1, max_len)) if cross else L,
                   d_model=n_heads * head_dim, n_heads=n_heads, dtype=draw(float_dtypes()),
                   seed=draw(seeds()), cross=cross, bias=draw(st.booleans()))


@dataclass(frozen=True)
class ScoringCase:
    """A decoder query (B, Dq) over T encoder positions: keys (B, T, Dk), values
    (B, T, Dv); A is the additive attention size; H, Dy the decoder's sizes."""
    B: int
    T: int
    Dq: int
    Dk: int
    Dv: int
    A: int
    dtype: torch.dtype
    seed: int

    @memoize
    def tensors(self):
        gen = generator(self.seed)
        query = random_tensor((self.B, self.Dq), self.dtype, gen)
        keys = random_tensor((self.B, self.T, self.Dk), self.dtype, gen)
        values = random_tensor((self.B, self.T, self.Dv), self.dtype, gen)
        return query, keys, values

    @memoize
    def mask(self, fully_masked_row: bool = True) -> torch.Tensor:
        """(B, T) bool, True = real position; a padded tail per row, and with
        ``fully_masked_row`` row 0 has no real position at all."""
        gen = generator(self.seed + 1)
        lengths = torch.randint(1, self.T + 1, (self.B,), generator=gen)
        mask = torch.arange(self.T)[None, :] < lengths[:, None]
        if fully_masked_row:
            mask[0] = False
        return mask

    def describe(self) -> str:
        return (f"query ({self.B}, {self.Dq}), keys ({self.B}, {self.T}, {self.Dk}), values "
                f"({self.B}, {self.T}, {self.Dv}), {_dtype(self.dtype)}, seed {self.seed}")


@st.composite
def scoring_cases(draw, same_dims: bool = False, max_t: int = 8):
    Dq = draw(st.integers(1, 12))
    return ScoringCase(B=draw(st.integers(1, 4)), T=draw(st.integers(1, max_t)), Dq=Dq,
                       Dk=Dq if same_dims else draw(st.integers(1, 12)),
                       Dv=draw(st.integers(1, 8)), A=draw(st.integers(1, 10)),
                       dtype=draw(float_dtypes()), seed=draw(seeds()))


GATES = {"rnn": 1, "lstm": 4, "gru": 3}


@dataclass(frozen=True)
class RNNCase:
    """A recurrent cell and a time-major sequence x (T, B, I) with PyTorch's
    weight layout: W_ih (G*H, I), W_hh (G*H, H), G = 1, 4 or 3 gates."""
    cell: str
    T: int
    B: int
    I: int
    H: int
    dtype: torch.dtype
    seed: int
    bias: bool = True

    @memoize
    def params(self, offset: int = 0):
        """(W_ih, W_hh, b_ih, b_hh), biases None when bias=False."""
        gen = generator(self.seed + 10 + offset)
        G, scale = GATES[self.cell], 1 / math.sqrt(self.H)
        W_ih = random_tensor((G * self.H, self.I), self.dtype, gen, scale)
        W_hh = random_tensor((G * self.H, self.H), self.dtype, gen, scale)
        if not self.bias:
            return W_ih, W_hh, None, None
        return (W_ih, W_hh, random_tensor((G * self.H,), self.dtype, gen, scale),
                random_tensor((G * self.H,), self.dtype, gen, scale))

    @memoize
    def x(self) -> torch.Tensor:
        return random_tensor((self.T, self.B, self.I), self.dtype, generator(self.seed))

    @memoize
    def state(self, offset: int = 0):
        gen = generator(self.seed + 20 + offset)
        h = random_tensor((self.B, self.H), self.dtype, gen)
        return (h, random_tensor((self.B, self.H), self.dtype, gen)) if self.cell == "lstm" else h

    def describe(self) -> str:
        return (f"{self.cell}, x ({self.T}, {self.B}, {self.I}), hidden size {self.H}, "
                f"{_dtype(self.dtype)}{'' if self.bias else ', no bias'}, seed {self.seed}")


@st.composite
def rnn_cases(draw, cells=("rnn", "lstm", "gru"), max_t: int = 6):
    return RNNCase(cell=draw(st.sampled_from(cells)), T=draw(st.integers(1, max_t)),
                   B=draw(st.integers(1, 4)), I=draw(st.integers(1, 6)),
                   H=draw(st.integers(1, 6)), dtype=draw(float_dtypes()), seed=draw(seeds()),
                   bias=draw(st.booleans()))
