"""Public tests: run them with `autograder check toy_softmax`. The hidden tests
that decide your grade check many more shapes, dtypes and temperatures."""

import torch

from autograder.testing import assert_close


def test_softmax_of_two_scores(student):
    """softmax([[0, log 3]]) is [[1/4, 3/4]]: weights proportional to exp(score)."""
    x = torch.tensor([[0.0, 1.0986122886681098]])
    assert_close(student.softmax(x), torch.tensor([[0.25, 0.75]]), what="softmax([[0, log 3]])")
