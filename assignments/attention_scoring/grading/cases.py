"""The inputs of attention_scoring's tests: a decoder query over encoder positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from autograder.testing import memoize
from autograder.testing.strategies import (describe_dtype, float_dtypes,
                                           generator, random_tensor, seeds)


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
                f"({self.B}, {self.T}, {self.Dv}), {describe_dtype(self.dtype)}, seed {self.seed}")


@st.composite
def scoring_cases(draw, same_dims: bool = False, max_t: int = 8, min_b: int = 1, min_t: int = 1):
    Dq = draw(st.integers(1, 12))
    return ScoringCase(B=draw(st.integers(min_b, 4)), T=draw(st.integers(min_t, max_t)), Dq=Dq,
                       Dk=Dq if same_dims else draw(st.integers(1, 12)),
                       Dv=draw(st.integers(1, 8)), A=draw(st.integers(1, 10)),
                       dtype=draw(float_dtypes()), seed=draw(seeds()))
