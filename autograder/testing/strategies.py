"""Strategy primitives every assignment's cases are built from.

Hypothesis draws small structured *cases* (shapes, dtype, a seed); the tensors
themselves come from a seeded ``torch.Generator``, so a failing case is named in
feedback by its shapes, dtype and seed, and rebuilt exactly from them. Each
assignment defines its own case types in ``assignments/<id>/grading/cases.py``
from these primitives; a case's tensors are built once (memoised) and each
submission gets its own copy.
"""

from __future__ import annotations

import torch
from hypothesis import strategies as st

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


def describe_shape(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def describe_dtype(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
