"""The inputs of recurrent_cells's tests: a cell kind, its weights in PyTorch's
layout and a time-major sequence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from hypothesis import strategies as st

from autograder.testing import memoize
from autograder.testing.strategies import (describe_dtype, float_dtypes,
                                           generator, random_tensor, seeds)


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
                f"{describe_dtype(self.dtype)}{'' if self.bias else ', no bias'}, seed {self.seed}")


@st.composite
def rnn_cases(draw, cells=("rnn", "lstm", "gru"), max_t: int = 6):
    return RNNCase(cell=draw(st.sampled_from(cells)), T=draw(st.integers(1, max_t)),
                   B=draw(st.integers(1, 4)), I=draw(st.integers(1, 6)),
                   H=draw(st.integers(1, 6)), dtype=draw(float_dtypes()), seed=draw(seeds()),
                   bias=draw(st.booleans()))
