"""The inputs of toy_softmax's tests: a shape, a dtype, a temperature and a seed."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from autograder.testing import memoize
from autograder.testing.strategies import (describe_dtype, describe_shape, float_dtypes,
                                           generator, random_tensor, seeds)


@dataclass(frozen=True)
class SoftmaxCase:
    shape: tuple[int, ...]
    temperature: float
    dtype: torch.dtype
    seed: int

    @memoize
    def x(self, scale: float = 1.0) -> torch.Tensor:
        return random_tensor(self.shape, self.dtype, generator(self.seed), scale)

    def describe(self) -> str:
        return (f"x {describe_shape(self.shape)}, temperature {self.temperature:g}, "
                f"{describe_dtype(self.dtype)}, seed {self.seed}")


@st.composite
def softmax_cases(draw, max_dims: int = 3):
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=max_dims)))
    temperature = draw(st.sampled_from([0.5, 1.0, 2.0]))
    return SoftmaxCase(shape, temperature, draw(float_dtypes()), draw(seeds()))
