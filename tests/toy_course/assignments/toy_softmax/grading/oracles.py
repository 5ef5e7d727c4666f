"""PyTorch's own softmax as the oracle. Graders only: never in a student kit."""

from __future__ import annotations

import torch

from autograder.testing import memoize


@memoize
def softmax(x, temperature=1.0):
    return torch.softmax(x / temperature, dim=-1)
